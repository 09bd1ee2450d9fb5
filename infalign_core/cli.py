"""Command line: ``python -m infalign_core <command>``.

Each command is a ``_add_<command>`` function that registers its parser and sets
``func``; the work itself lives in the library modules, imported lazily so that
``theory`` never pays for importing torch. Errors a user can fix are printed as one
line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from infalign_core import classroom
from infalign_core.cli_output import json_safe as _json_safe
from infalign_core.cli_output import print_unscored as _print_unscored
from infalign_core.errors import InfAlignError, one_line, user_error
from infalign_core.sampling_settings import SamplingSettings


def _positive_float(text: str) -> float:
    """Parse a finite float > 0 for argparse."""
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _finite_float(text: str) -> float:
    """Parse a finite float for argparse."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text}")
    return value


def _positive_int(text: str) -> int:
    """Parse an int >= 1 for argparse."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _bool(text: str) -> bool:
    """Parse true/false (also yes/no, 1/0) for argparse."""
    value = str(text).strip().lower()
    if value in ("true", "yes", "1", "on"):
        return True
    if value in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _add_chat_flags(p) -> None:
    """--completion-mode and --system-prompt: how prompts are rendered for the models."""
    p.add_argument(
        "--completion-mode",
        action="store_true",
        help="no chat templates: the policy continues the raw prompt text and the reward scores prompt + response",
    )
    p.add_argument("--system-prompt", default=None, help="system prompt the chat templates put first")


def _chat_format(args):
    """The chat.ChatFormat the flags ask for."""
    from infalign_core.chat import ChatFormat

    return ChatFormat(completion=bool(args.completion_mode), system_prompt=args.system_prompt or None)


def _print_notes(*sources) -> None:
    """Print every note of loaded models, rewards and samples to stderr, once each."""
    seen = set()
    for source in sources:
        for note in getattr(source, "notes", ()) or ():
            if note not in seen:
                seen.add(note)
                print(f"note: {note}", file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr and exit status 2."""

    def error(self, message: str):
        """Print ``error: message`` (no usage block) and exit 2."""
        self.exit(2, f"error: {one_line(message)} (see {self.prog} --help)\n")


def _print_json(obj) -> None:
    """Print one JSON object on one line (the contract for ``--json``)."""
    print(json.dumps(obj, allow_nan=False))


# --- theory -----------------------------------------------------------------


def _add_theory(sub) -> None:
    p = sub.add_parser(
        "theory",
        help="calibrated-space KL and win rates of a transform (no language model needed)",
        description="Exact KL and standard / best-of-N / worst-of-N win rates of the "
        "KL-regularised optimum for a transformed calibrated reward.",
    )
    p.add_argument("--transform", required=True, choices=["identity", "log", "exp", "optimal"])
    p.add_argument(
        "--t",
        type=_finite_float,
        default=None,
        help="exponential transform's t (default: the best t for N at this KL)",
    )
    p.add_argument(
        "--mode", choices=["best", "worst"], default="best", help="best-of-N or worst-of-N (exp and optimal)"
    )
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--beta", type=_positive_float, help="KL coefficient beta > 0")
    g.add_argument("--kl", type=_positive_float, help="KL budget in nats > 0; beta is solved for")
    p.add_argument("--n", type=_positive_int, required=True, help="N of best-of-N / worst-of-N")
    p.add_argument(
        "--procedure",
        default=None,
        metavar="SPEC",
        help="also print procedure_win_rate for an inference procedure: bon:N, won:N, poisson:MU, "
        "mix:P:N, expr:T(x), soft:N:TAU or reject:Q:N. With --transform optimal, solve that "
        "procedure's optimal transform; with --transform exp and no --t, use its best t",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run_theory)


def _run_theory(args) -> int:
    from infalign_core import explorer

    point = explorer.evaluate_cli(
        transform=args.transform,
        t=args.t,
        mode=args.mode,
        beta=args.beta,
        kl=args.kl,
        n=args.n,
        procedure=args.procedure,
    )
    if args.json:
        _print_json(point)
    else:
        width = max(len(k) for k in point)
        for key, value in point.items():
            print(f"{key:<{width}}  {value:.6g}")
    return 0


# --- calibrate --------------------------------------------------------------


def _add_calibrate(sub) -> None:
    p = sub.add_parser(
        "calibrate",
        help="build (or reuse) per-prompt reference reward banks and KS-check their calibration",
        description="Sample m reference responses per prompt, score them, store the sorted rewards "
        "(cached on disk by everything that produced them), then check that the calibrated rewards "
        "of fresh reference samples are Uniform[0, 1].",
    )
    p.add_argument(
        "--prompts",
        default="bundled",
        help="'bundled', a .jsonl/.json/.csv/.tsv/.txt file, a saved dataset folder or a hub dataset id",
    )
    p.add_argument("--column", default=None, help="column holding the prompts (default: guessed)")
    p.add_argument("--split", default=None, help="split to use (bundled: train or eval; default all)")
    p.add_argument(
        "--prompt-subset", default=None, help="dataset config or data_dir (HH: helpful-base, harmless-base)"
    )
    p.add_argument("--num-prompts", type=_positive_int, default=32, help="the first P prompts (default 32)")
    p.add_argument("--m", type=_positive_int, required=True, help="reference samples per prompt")
    p.add_argument("--heldout", type=_positive_int, default=None, help="held-out samples/prompt (default m)")
    p.add_argument("--policy", default="default", help="reference policy: default, preset, folder, hub id")
    p.add_argument(
        "--reward",
        default="default",
        help="reward: default, vader, oracle, proxy, judge:RUBRIC, a folder or hub id",
    )
    p.add_argument("--label", default=None, help="which label of a multi-label reward model is the reward")
    _add_judge_flag(p)
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: best available)")
    p.add_argument("--max-new-tokens", type=_positive_int, default=24)
    p.add_argument("--temperature", type=_positive_float, default=1.0)
    p.add_argument("--top-p", type=_positive_float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=_positive_int, default=256, help="sampling batch size (rows)")
    p.add_argument("--cache-dir", default=None, help="default: $INFALIGN_CACHE_DIR or cache/banks")
    _add_chat_flags(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run_calibrate)


def _run_calibrate(args) -> int:
    from infalign_core import calibration, data
    from infalign_core.models import load_policy
    from infalign_core.rewards import load_reward

    if args.top_p > 1:
        raise InfAlignError(f"--top-p must be in (0, 1], got {args.top_p}.")
    prompt_set = data.load_prompts(
        args.prompts, column=args.column, split=args.split, limit=args.num_prompts, subset=args.prompt_subset
    )
    for notice in prompt_set.notices:
        print(f"note: {notice}", file=sys.stderr)
    chat = _chat_format(args)
    policy = load_policy(args.policy, device=args.device, chat=chat)
    reward_fn = load_reward(
        _reward_source(args.reward, args.judge), label=args.label, device=args.device, chat=chat
    )
    _print_notes(policy)
    bars: dict = {}

    def progress(done: int, total: int, stage: str) -> None:
        if args.json:
            return
        from tqdm import tqdm

        if stage not in bars:
            for bar in bars.values():
                bar.close()
            bars[stage] = tqdm(total=total, desc=stage, unit="resp", file=sys.stderr, leave=False)
        bar = bars[stage]
        bar.update(done - bar.n)

    try:
        result = calibration.calibrate(
            policy,
            reward_fn,
            prompt_set.prompts,
            args.m,
            sampling=SamplingSettings(
                max_new_tokens=args.max_new_tokens,
                temperature=args.temperature,
                top_p=args.top_p,
                seed=args.seed,
                batch_size=args.batch_size,
            ),
            heldout=args.heldout,
            cache_dir=args.cache_dir,
            progress=progress,
        )
    finally:
        for bar in bars.values():
            bar.close()
    for notice in result.bank.notices:
        print(f"note: {notice}", file=sys.stderr)
    _print_notes(policy, reward_fn)
    out = {
        "ks_statistic": result.uniformity.ks_statistic,
        "ks_pvalue": result.uniformity.ks_pvalue,
        "num_prompts": result.bank.num_prompts,
        "m": result.bank.m,
        "bank_path": str(result.bank.path),
        "cached": result.bank.cached,
    }
    if args.json:
        _print_json(out)
    else:
        width = max(len(k) for k in out)
        for key, value in out.items():
            if isinstance(value, bool):
                value = str(value).lower()
            print(f"{key:<{width}}  {value:.4g}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    return 0


# --- sample -------------------------------------------------------------------


def _add_sample(sub) -> None:
    p = sub.add_parser(
        "sample",
        help="sample N responses to one prompt and score them, best first",
        description="Sample N responses from the policy, score prompt + response with the reward, "
        "and print them sorted by reward (the first taste of best-of-N / worst-of-N).",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--prompt", help="the prompt: one user turn, or an HH dialogue ('\\n\\nHuman: …')")
    what.add_argument(
        "--messages", help='the prompt as a JSON list of messages, e.g. [{"role": "user", "content": "hi"}]'
    )
    p.add_argument("--n", type=_positive_int, required=True, help="how many responses")
    p.add_argument("--policy", default="default", help="policy: default, a preset, a folder or a hub id")
    p.add_argument(
        "--reward",
        default="default",
        help="reward: default, vader, oracle, judge:RUBRIC, a folder or a hub id",
    )
    p.add_argument("--label", default=None, help="which label of a multi-label reward model is the reward")
    _add_judge_flag(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-new-tokens", type=_positive_int, default=24)
    p.add_argument("--temperature", type=_finite_float, default=1.0, help="0 = greedy")
    p.add_argument("--top-p", type=_positive_float, default=1.0)
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: best available)")
    p.add_argument("--trust-remote-code", action="store_true", help="run code shipped with a hub model")
    _add_chat_flags(p)
    p.add_argument(
        "--json", action="store_true", help="print one JSON list of {text, reward, finished, rendered_prompt}"
    )
    p.set_defaults(func=_run_sample)


def _run_sample(args) -> int:
    from infalign_core.models import load_policy
    from infalign_core.rewards import load_reward
    from infalign_core.sampling import sample

    prompt = args.prompt if args.messages is None else _messages_prompt(args.messages)
    chat = _chat_format(args)
    policy = load_policy(args.policy, device=args.device, trust_remote_code=args.trust_remote_code, chat=chat)
    reward_fn = load_reward(
        _reward_source(args.reward, args.judge),
        label=args.label,
        device=args.device,
        trust_remote_code=args.trust_remote_code,
        chat=chat,
    )
    _print_notes(policy)
    samples = sample(
        policy,
        [prompt],
        args.n,
        sampling=SamplingSettings(
            max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p, seed=args.seed
        ),
    )
    rewards = reward_fn.score(samples.row_prompts(), samples.responses)
    _print_notes(samples, reward_fn)
    _print_unscored(reward_fn)
    # Unscored responses (a judge's unparseable answers) sort last and print as null, never 0.
    order = sorted(range(len(rewards)), key=lambda i: (math.isnan(rewards[i]), -rewards[i]))
    rendered = samples.rendered_prompts[0]
    rows = [
        {
            "text": samples.responses[i],
            "reward": None if math.isnan(rewards[i]) else float(rewards[i]),
            "finished": bool(samples.finished[i]),
            "rendered_prompt": rendered,
        }
        for i in order
    ]
    if args.json:
        _print_json(rows)
    else:
        print(f"prompt: {prompt!r}   reward: {reward_fn.name}   policy: {args.policy}")
        if rendered != prompt:
            print(f"rendered prompt (what the policy saw): {rendered!r}")
        shown = prompt if rendered == prompt else ""
        for rank, row in enumerate(rows, 1):
            tail = "" if row["finished"] else " …"
            value = "unscored" if row["reward"] is None else f"{row['reward']:+9.4f}"
            print(f"{rank:>3}  {value:>9}  {shown}{row['text']}{tail}")
    return 0


def _add_judge_flag(p) -> None:
    p.add_argument(
        "--judge",
        default=None,
        help="the judge model for --reward judge:RUBRIC: a chat model's folder, a hub id or a preset",
    )


def _reward_source(reward: str | None, judge: str | None) -> str | None:
    """The reward source with the judge folded in (``judge:RUBRIC@MODEL``), so configs and records carry it."""
    from infalign_core.judge import is_judge, judge_spec, split_spec

    if judge is None:
        return reward
    if not is_judge(reward):
        raise InfAlignError(
            f"--judge {judge} needs a judge reward: give --reward judge:RUBRIC (e.g. judge:helpfulness)."
        )
    rubric, _ = split_spec(reward)
    return judge_spec(rubric, judge)


def _messages_prompt(text: str) -> str:
    """A --messages JSON list as the prompt string the library carries."""
    from infalign_core.chat import prompt_text

    try:
        messages = json.loads(text)
    except json.JSONDecodeError as err:
        raise InfAlignError(f"--messages is not valid JSON ({err.msg}, column {err.colno}).") from None
    if not isinstance(messages, list):
        raise InfAlignError('--messages must be a JSON list like [{"role": "user", "content": "hi"}].')
    return prompt_text(messages)


# --- train ------------------------------------------------------------------


def _add_train(sub) -> None:
    import dataclasses
    import typing

    from infalign_core import ctrl

    p = sub.add_parser(
        "train",
        help="run CTRL (calibrate, transform, RL) into a run folder; resumable",
        description="Calibrate-and-transform RL: reference banks, then k samples per prompt per step, "
        "calibrated and transformed reward with the KL penalty inside, leave-one-out policy gradient. "
        "Metrics go to RUN_DIR/metrics.jsonl, checkpoints to RUN_DIR/checkpoint. Every option defaults "
        "to a CTRL-for-best-of-4 run on the bundled world; SIGTERM or Ctrl-C checkpoints and stops.",
    )
    p.add_argument("--config", default=None, help="a .json or .yaml CTRLConfig; flags override it")
    p.add_argument("--run-dir", required=True, help="the run folder (created if new)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its checkpoint")
    p.add_argument("--json", action="store_true", help="print the final metrics as one JSON object")
    hints = typing.get_type_hints(ctrl.CTRLConfig)
    choices = {
        "transform": ctrl.TRANSFORMS,
        "mode": ctrl.MODES,
        "dtype": ctrl.DTYPES,
        "kl_penalty": ctrl.KL_PENALTIES,
        "algorithm": ctrl.ALGORITHMS,
        "kl_controller": ctrl.KL_CONTROLLERS,
    }
    for f in dataclasses.fields(ctrl.CTRLConfig):
        hint = hints[f.name]
        base = next((t for t in typing.get_args(hint) if t is not type(None)), hint)
        parse = {int: int, float: _finite_float, bool: _bool}.get(base, str)
        if f.default is None:  # optional fields take "none" to mean unset
            parse = _optional(parse)
        default_text = "none" if f.default is None else f.default
        # A bare boolean flag (--completion-mode) means true; --completion-mode false also works.
        flag = {"nargs": "?", "const": True} if base is bool else {}
        p.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f"cfg_{f.name}",
            type=parse,
            choices=choices.get(f.name),
            default=argparse.SUPPRESS,
            help=f"{f.metadata.get('help', '')} (default {default_text})",
            **flag,
        )
    p.set_defaults(func=_run_train)


def _optional(parse):
    """Wrap an argparse type so that 'none' or '' gives None."""

    def wrapped(text: str):
        return None if text.strip().lower() in ("", "none") else parse(text)

    wrapped.__name__ = getattr(parse, "__name__", "value")
    return wrapped


def _run_train(args) -> int:
    from pathlib import Path

    from infalign_core import ctrl, runs

    flags = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_")}
    run_dir = Path(args.run_dir)
    runs.check_run_dir(run_dir)  # a file, a path under a file, someone else's folder: refused
    saved = run_dir / runs.CONFIG_FILE
    if saved.is_file():
        if flags or args.config:
            raise InfAlignError(
                f"{run_dir} already holds a run; its config.json is used as is. Drop the config flags, "
                "or give a new --run-dir."
            )
        runs.check_can_train(run_dir, resume=args.resume)
    else:
        if args.resume:
            raise InfAlignError(f"nothing to resume: {run_dir} holds no run (no config.json).")
        base = ctrl.CTRLConfig.load(args.config).to_dict() if args.config else {}
        config = ctrl.CTRLConfig.from_dict({**base, **flags}).resolved()
        ctrl.load_prompt_list(config)  # fail before writing anything
        runs.check_model_sources(config)
        run_dir.mkdir(parents=True, exist_ok=True)
        config.save(saved)
        runs.write_status(
            run_dir, state="queued", created=time.time(), device=runs.device_key(config), step=0
        )
    config = ctrl.CTRLConfig.load(saved)
    bar = None
    if not args.json:
        from tqdm import tqdm

        bar = tqdm(total=config.steps, desc="CTRL", unit="step", file=sys.stderr)

    def on_metrics(row: dict) -> None:
        if bar is not None:
            bar.n = row["step"]
            bar.set_postfix(
                cal=f"{row['reward/calibrated']:.3f}",
                kl=f"{row['kl/k1']:.3f}",
                bon="—" if row.get("winrate/bon") is None else f"{row['winrate/bon']:.3f}",
            )

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        result = runs.execute(run_dir, resume=args.resume, on_metrics=on_metrics, log=log)
    finally:
        if bar is not None:
            bar.close()
    status = runs.read_status(run_dir)
    result["state"] = status.get("state")
    if args.json:
        _print_json({k: v for k, v in result.items() if not (isinstance(v, float) and not math.isfinite(v))})
    else:
        for key, value in result.items():
            print(f"{key:<24}  {value:.4g}" if isinstance(value, float) else f"{key:<24}  {value}")
    return 0


# --- build-world ---------------------------------------------------------------


def _add_build_world(sub) -> None:
    p = sub.add_parser(
        "build-world",
        help="rebuild the bundled default world (tokenizer, tiny policy and reward model, prompts)",
        description="Generate the review corpus and train the world's tokenizer, reference policy and "
        "reward model with fixed seeds; writes policy/, reward/, prompts.jsonl and world.json.",
    )
    p.add_argument("--out", default=None, help="output folder (default: assets/world)")
    p.add_argument("--quick", action="store_true", help="reduced build for tests (seconds, not minutes)")
    p.add_argument("--seed", type=int, default=0, help="seed of the corpus and of training")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.set_defaults(func=_run_build_world)


def _run_build_world(args) -> int:
    from infalign_core import world

    out = args.out if args.out is not None else world.WORLD_DIR
    log = (lambda message: print(message, file=sys.stderr)) if args.json else print
    metrics = world.build_world(out, quick=args.quick, seed=args.seed, log=log)
    if args.json:
        _print_json(metrics)
    return 0


# --- export-trl -----------------------------------------------------------------


def _add_export_trl(sub) -> None:
    p = sub.add_parser(
        "export-trl",
        help="export a CTRL config for TRL's RLOOTrainer under accelerate (multi-GPU scale-out)",
        description="Build the reference banks, then write into OUT: the prompts with their banks "
        "(datasets save_to_disk), an RLOOConfig, a reward module (ctrl_reward.reward), a train script, "
        "an accelerate config and a README with the launch command. Without --config: the default CTRL "
        "settings on the bundled world.",
    )
    p.add_argument("--config", default=None, help="a .json or .yaml CTRLConfig (default: CTRLConfig())")
    p.add_argument("--out", required=True, help="folder to write (new, empty, or an earlier export)")
    p.add_argument(
        "--accelerate",
        choices=["fsdp2", "zero2", "zero3", "multi_gpu"],
        default="fsdp2",
        help="multi-GPU backend of the accelerate config (zero2/zero3 need deepspeed; default fsdp2)",
    )
    p.add_argument("--num-processes", type=_positive_int, default=8, help="GPUs in the accelerate config")
    p.add_argument("--json", action="store_true", help="print what was written as one JSON object")
    p.set_defaults(func=_run_export_trl)


def _run_export_trl(args) -> int:
    from infalign_core import ctrl
    from infalign_core.integrations import trl

    config = ctrl.CTRLConfig.load(args.config) if args.config else ctrl.CTRLConfig()

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    result = trl.export_trl(
        config, args.out, accelerate=args.accelerate, num_processes=args.num_processes, log=log
    )
    summary = {
        "out_dir": str(result.out_dir),
        "launch_command": result.launch_command,
        "num_prompts": result.num_prompts,
        "m": result.m,
        "bank_key": result.bank_key,
        "bank_cached": result.bank_cached,
        "files": {name: str(path) for name, path in result.files.items()},
    }
    if args.json:
        _print_json(summary)
    else:
        print(f"wrote {result.out_dir} ({result.num_prompts} prompts, m = {result.m}); launch with:")
        print(f"  {result.launch_command}")
    return 0


# --- winrate ------------------------------------------------------------------


def _add_winrate(sub) -> None:
    p = sub.add_parser(
        "winrate",
        help="best-of-N / worst-of-N win rates of a policy or CTRL run against the reference, with KL",
        description="Sample K responses per prompt from the challenger and from the reference, score them, "
        "and estimate the standard, best-of-N and worst-of-N win rates (unbiased over all N-subsets, ties "
        "half) with bootstrap intervals over prompts, plus the challenger's KL to the reference. A run "
        "folder (or run id) as --policy uses its checkpoint, and its reference and reward unless given.",
    )
    p.add_argument(
        "--policy", default=None, help="'reference', a CTRL run folder or id, a model folder or a hub id"
    )
    p.add_argument(
        "--optimum",
        default=None,
        choices=["identity", "log", "exp", "optimal"],
        help="instead of --policy: the exact optimum π_ref·e^{Φ(C)/β}/Z for this transform, sampled by tilted "
        "resampling of --pool reference samples per prompt (no training); with --kl or --beta, and --mode, "
        "--t, --procedure as in `theory`. Prints theory_* beside each win rate; kl is the resampled law's KL",
    )
    p.add_argument(
        "--mode", choices=["best", "worst"], default=None, help="--optimum: best-of-N or worst-of-N Φ"
    )
    p.add_argument(
        "--t", type=_finite_float, default=None, help="--optimum exp: t (default: the best t at --kl)"
    )
    p.add_argument(
        "--procedure",
        default=None,
        metavar="SPEC",
        help="--optimum: an inference procedure (bon:N, poisson:MU, …): optimal is its optimum, exp its best t; "
        "adds procedure_win_rate",
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--kl", type=_positive_float, default=None, help="--optimum: KL budget in nats")
    budget.add_argument("--beta", type=_positive_float, default=None, help="--optimum: KL coefficient β")
    p.add_argument(
        "--pool",
        type=_positive_int,
        default=None,
        help="--optimum: reference samples per prompt to resample from, M (default 512)",
    )
    p.add_argument("--reference", default=None, help="reference policy (default: the run's, else 'default')")
    p.add_argument(
        "--reward", default=None, help="reward: default, vader, oracle, judge:RUBRIC, a folder or hub id"
    )
    p.add_argument("--label", default=None, help="which label of a multi-label reward model is the reward")
    p.add_argument(
        "--eval-reward",
        action="append",
        default=[],
        metavar="R",
        help="also score both sides' samples with R (oracle, vader, judge:RUBRIC, a folder or hub id) and "
        "give the three win rates under it; repeatable",
    )
    _add_judge_flag(p)
    p.add_argument("--n", type=_positive_int, required=True, help="N of best-of-N / worst-of-N")
    p.add_argument("--k", type=_positive_int, required=True, help="samples per prompt from each side (K ≥ N)")
    p.add_argument("--num-prompts", type=_positive_int, default=32, help="the first P prompts (default 32)")
    p.add_argument("--prompts", default="bundled", help="'bundled', a prompt file or a hub dataset id")
    p.add_argument("--split", default=None, help="split of the prompt source (bundled: eval unless given)")
    p.add_argument("--column", default=None, help="column holding the prompts (default: guessed)")
    p.add_argument(
        "--prompt-subset", default=None, help="dataset config or data_dir (HH: helpful-base, harmless-base)"
    )
    p.add_argument("--max-new-tokens", type=_positive_int, default=None, help="default: the run's, else 24")
    p.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="sampling temperature of both sides (default: the run's, else 1); the KL is at this temperature",
    )
    p.add_argument(
        "--top-p",
        type=float,
        default=None,
        help="nucleus sampling of both sides (default: the run's, else 1); below 1 the KL is not measured "
        "(a response outside the reference's nucleus has infinite KL)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resamples", type=_positive_int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: best available)")
    p.add_argument("--save", action="store_true", help="also store the result in the run's arena.json")
    p.add_argument(
        "--compare",
        default=None,
        metavar="RUN",
        help="also give this policy − RUN for each win rate, paired over the same prompts and reference "
        "samples, with its interval (RUN needs an arena evaluation saved with the same settings)",
    )
    _add_chat_flags(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run_winrate)


def _run_winrate(args) -> int:
    from infalign_core import arena, arena_results, challengers, data, eval_rewards
    from infalign_core.judge import is_judge
    from infalign_core.models import load_policy
    from infalign_core.rewards import load_reward

    if (args.policy is None) == (args.optimum is None):
        raise InfAlignError("give the challenger as --policy or as --optimum TRANSFORM (one of them)")
    optimum_only = {"--mode": args.mode, "--t": args.t, "--procedure": args.procedure, "--kl": args.kl}
    optimum_only.update({"--beta": args.beta, "--pool": args.pool})
    given = [flag for flag, value in optimum_only.items() if value is not None]
    if args.optimum is None and given:
        raise InfAlignError(f"{', '.join(given)} only apply to --optimum; a --policy is evaluated as it is")
    if args.n > args.k:
        # Word for word the arena page's message: one input, one message, wherever it is typed.
        raise InfAlignError(
            f"N = {args.n} needs K ≥ N samples per prompt; raise K to at least {args.n} or lower N"
        )
    if args.optimum is not None:
        return _run_winrate_optimum(args)
    # Checked before sampling: a bad run id, or one never evaluated, costs nothing.
    compare = _comparison_run(args.compare) if args.compare is not None else None
    challenger, source = challengers.load_challenger(args.policy, device=args.device)
    if args.save and source.run_dir is not None:
        from infalign_core.gallery import is_gallery

        if is_gallery(source.run_dir):
            raise InfAlignError(
                f"{source.run_dir.name} is a gallery run and read-only: drop --save, or copy it to your runs first"
            )
    run = challengers.arena_settings(source.run_config)
    reference_source = args.reference or run.reference
    reference = (
        challenger
        if args.policy in ("reference", "default") and reference_source == "default"
        else load_policy(reference_source, device=args.device)
    )
    # Both sides and the reward see prompts as the challenger was trained on them (its checkpoint
    # records it), unless the flags say otherwise.
    if args.completion_mode or args.system_prompt:
        challenger.chat = _chat_format(args)
    chat = reference.chat = challenger.chat
    trained_source = args.reward or run.reward
    if args.judge is not None and is_judge(trained_source):
        trained_source = _reward_source(trained_source, args.judge)
    elif args.judge is not None and not any(is_judge(spec) for spec in args.eval_reward):
        raise InfAlignError("--judge needs a judge reward: give --reward or --eval-reward judge:RUBRIC.")
    reward_fn = load_reward(
        trained_source,
        label=args.label if args.label is not None else run.reward_label,
        device=args.device,
        chat=chat,
    )
    others = eval_rewards.load_eval_rewards(args.eval_reward, judge=args.judge, device=args.device, chat=chat)
    _print_notes(challenger, reference)
    split = args.split or ("eval" if args.prompts == "bundled" else None)
    prompt_set = data.load_prompts(
        args.prompts, column=args.column, split=split, limit=args.num_prompts, subset=args.prompt_subset
    )
    for notice in prompt_set.notices:
        print(f"note: {notice}", file=sys.stderr)
    max_new_tokens = args.max_new_tokens or run.max_new_tokens
    temperature = float(args.temperature if args.temperature is not None else run.temperature)
    top_p = float(args.top_p if args.top_p is not None else run.top_p)
    sampling = SamplingSettings(
        max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=args.seed
    )
    bar = None
    if not args.json:
        from tqdm import tqdm

        bar = tqdm(total=len(prompt_set.prompts), desc="arena", unit="prompt", file=sys.stderr)
    state = None
    try:
        for state in arena.run_arena(
            challenger,
            reference,
            reward_fn,
            prompt_set.prompts,
            sampling=sampling,
            n=args.n,
            k=args.k,
            resamples=args.resamples,
        ):
            if bar is not None:
                bar.n = state.done
                bar.set_postfix(bon=f"{state.estimate.bon_win_rate:.3f}")
    finally:
        if bar is not None:
            bar.close()
    out = {
        "policy": source.label,
        "reference": reference_source,
        "reward": reward_fn.name,
        **state.estimate.as_dict(),
        "temperature": temperature,
        "top_p": top_p,
        "kl": state.kl.k1 if state.kl else None,
        "kl_stderr": state.kl.k1_stderr if state.kl else None,
        "kl_k3": state.kl.k3 if state.kl else None,
        "kl_k3_stderr": state.kl.k3_stderr if state.kl else None,
        "kl_visible": state.calibrated_kl,
        "tie_share": state.tie_share,
        "unscored_share": state.unscored_share,
        "seconds": round(state.seconds, 2),
    }
    if others:
        out["eval_rewards"] = eval_rewards.eval_reward_results(
            state, others, resamples=args.resamples, seed=args.seed
        )
    _print_unscored(reward_fn, *others.values())
    _print_notes(*others.values())
    if state.kl_note:
        print(f"note: {state.kl_note}", file=sys.stderr)
    if source.run_dir is not None or compare is not None:
        settings = arena_results.record_settings(
            n=args.n,
            k=args.k,
            prompts=f"{args.prompts}:{split}",
            num_prompts=state.done,
            sampling=sampling,
            reference=reference,
            reward_fn=reward_fn,
        )
        settings.update(arena.rendering_settings(reference, args.prompt_subset))
        record = arena_results.arena_record(state, settings, source.run_config)
        if others:
            record["eval_rewards"] = {"trained_on": reward_fn.name, **out["eval_rewards"]}
        theory_point = record.get("theory")
        if theory_point:
            out["theory_bon_win_rate"] = theory_point["bon_win_rate"]
            out["theory_won_win_rate"] = theory_point["won_win_rate"]
        if record["kl"].get("optimum_visible"):
            # What the exact optimum at this KL shows through the same K reference samples, and the run's share.
            out["kl_visible_optimum"] = record["kl"]["optimum_visible"]
            out["share_seen"] = record["kl"]["share_seen"]
        if compare is not None:
            differences = arena_results.compare_with_run(record, compare)
            out["compare"] = {
                "run": args.compare,
                **{
                    d.metric: {"difference": d.difference, "ci_low": d.ci_low, "ci_high": d.ci_high}
                    for d in differences
                },
                "lines": [
                    f"{arena_results.metric_label(d.metric, args.n):<11} "
                    f"{d.text(_run_name(source), _run_name(compare))}"
                    for d in differences
                ],
            }
        if args.save and source.run_dir is not None:
            out["saved"] = str(arena_results.save_arena_result(source.run_dir, record))
    out = _json_safe(out)
    if args.json:
        _print_json(out)
    else:
        width = max(len(k) for k in out)
        for key, value in out.items():
            if key in ("eval_rewards", "compare"):
                continue
            print(f"{key:<{width}}  {value:.4f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
        if others:
            trained = eval_rewards.trained_summary(state)
            rows = eval_rewards.table_rows(reward_fn.name, trained, out["eval_rewards"], args.n)
            print("\nwin rates under each reward (95 % CI; ties count ½):")
            widths = {key: max(len(key), *(len(str(row[key])) for row in rows)) for key in rows[0]}
            print("  ".join(f"{key:<{widths[key]}}" for key in rows[0]))
            for row in rows:
                print("  ".join(f"{row[key]!s:<{widths[key]}}" for key in row))
        if out.get("compare"):
            print("paired over the same prompts and reference samples (95 % bootstrap intervals):")
            for line in out["compare"]["lines"]:
                print(f"  {line}")
    return 0


def _comparison_run(run_id: str) -> Path:
    """The folder of the run a policy is compared with; refused when it has no saved arena evaluation."""
    from infalign_core import arena_results, runs

    run_dir = runs.run_dir_of(run_id)
    if not arena_results.load_arena_results(run_dir):
        raise InfAlignError(
            f"run {run_id} has no saved arena evaluation to compare with: evaluate it first "
            f"(winrate --policy {run_id} --save, or the arena page)"
        )
    return run_dir


def _run_name(where) -> str:
    """A run's name for a comparison line: the gallery's title, else the run id (a challenger's label)."""
    from infalign_core import gallery

    run_dir = getattr(where, "run_dir", where)
    if run_dir is None:
        return where.label
    return gallery.title(Path(run_dir).name) or Path(run_dir).name


def _run_winrate_optimum(args) -> int:
    """``winrate --optimum``: the exact optimum by tilted resampling, with the theory beside each number."""
    from infalign_core import arena, data, optimum, theory
    from infalign_core.models import load_policy
    from infalign_core.rewards import load_reward

    if args.kl is None and args.beta is None:
        raise InfAlignError("--optimum needs a KL budget (--kl) or a KL coefficient (--beta)")
    if args.save:
        raise InfAlignError("the exact optimum is not a run, so there is nowhere to --save it; drop --save")
    pool = optimum.check_pool(args.pool if args.pool is not None else optimum.DEFAULT_POOL)
    spec = optimum.OptimumSpec(
        transform=args.optimum,
        n=args.n,
        mode=args.mode or "best",
        t=args.t,
        procedure=args.procedure,
        kl=args.kl,
        beta=args.beta,
    )
    resolved = optimum.resolve_optimum(spec)  # refuses bad values before any model loads
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise InfAlignError(f"top-p must be in (0, 1], got {args.top_p}")
    reference_source = args.reference or "default"
    reference = load_policy(reference_source, device=args.device)
    if args.completion_mode or args.system_prompt:
        reference.chat = _chat_format(args)
    reward_fn = load_reward(
        args.reward or "default", label=args.label, device=args.device, chat=reference.chat
    )
    _print_notes(reference)
    split = args.split or ("eval" if args.prompts == "bundled" else None)
    prompt_set = data.load_prompts(
        args.prompts, column=args.column, split=split, limit=args.num_prompts, subset=args.prompt_subset
    )
    for notice in prompt_set.notices:
        print(f"note: {notice}", file=sys.stderr)
    temperature = float(args.temperature if args.temperature is not None else 1.0)
    top_p = float(args.top_p if args.top_p is not None else 1.0)
    state = optimum.evaluate_optimum(
        reference,
        reward_fn,
        prompt_set.prompts,
        resolved,
        n=args.n,
        k=args.k,
        pool=pool,
        sampling=SamplingSettings(
            max_new_tokens=args.max_new_tokens or 24, temperature=temperature, top_p=top_p, seed=args.seed
        ),
        resamples=args.resamples,
    )
    out = {"policy": resolved.label, "reference": reference_source, "reward": reward_fn.name}
    for key, value in state.estimate.as_dict().items():
        out[key] = value
        if key.endswith("_ci_high") and key[: -len("_ci_high")] in resolved.theory:
            out[f"theory_{key[: -len('_ci_high')]}"] = resolved.theory[key[: -len("_ci_high")]]
    if args.procedure is not None:
        proc = arena.procedure_estimate(state, args.procedure, resamples=args.resamples, seed=args.seed)
        out.update(procedure_win_rate=proc.win_rate, procedure_win_rate_ci_low=proc.ci_low)
        out.update(procedure_win_rate_ci_high=proc.ci_high)
        out["theory_procedure_win_rate"] = resolved.theory["procedure_win_rate"]
    out.update(
        temperature=temperature,
        top_p=top_p,
        kl=state.kl.k1,
        kl_stderr=state.kl.k1_stderr,
        theory_kl=resolved.theory["kl"],
        beta=resolved.beta,
        t=resolved.t,
        pool=pool,
        ess=float(state.ess.mean()),
        ess_min=float(state.ess.min()),
        kl_visible=state.calibrated_kl,
        kl_visible_optimum=float(theory.rank_level_kl(resolved.phi, resolved.beta, args.k)[0]),
        seconds=round(state.seconds, 2),
    )
    if state.warning:
        print(f"warning: {state.warning}", file=sys.stderr)
        out["warning"] = state.warning
    out = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}
    if args.json:
        _print_json(out)
    else:
        width = max(len(k) for k in out)
        for key, value in out.items():
            print(f"{key:<{width}}  {value:.4f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    return 0


# --- runs, gallery ----------------------------------------------------------


def _add_runs(sub) -> None:
    p = sub.add_parser(
        "runs",
        help="list every CTRL run, the gallery's included",
        description="One line per run (yours, newest first, then the gallery's read-only runs). With --json "
        "the last stdout line is one JSON list of {id, state, transform, mode, n, kl, gallery}.",
    )
    p.add_argument("--copy", metavar="GALLERY_ID", default=None, help="copy a gallery run into your runs")
    p.add_argument("--json", action="store_true", help="print one JSON list")
    p.set_defaults(func=_run_runs)


def _run_runs(args) -> int:
    from infalign_core import runs

    if args.copy:
        print(
            f"copied {args.copy} to {runs.copy_to_runs(args.copy)}",
            file=sys.stderr if args.json else sys.stdout,
        )
    rows = [runs.summary(info) for info in runs.list_all_runs()]
    if args.json:
        _print_json(rows)
        return 0
    for row in rows:
        kl = f"{row['kl']:.3f}" if row["kl"] is not None else "–"
        mark = "  (gallery)" if row["gallery"] else ""
        print(
            f"{row['id']:<44} {row['state']:<11} {row['transform'] or '–':<9} {row['mode'] or '–':<6} "
            f"N={row['n']} KL={kl}{mark}"
        )
    if not rows:
        print("no runs yet: start one on the CTRL runs page or with `python -m infalign_core train`")
    return 0


def _add_build_gallery(sub) -> None:
    from infalign_core.ctrl import RECOMMENDED_RUN

    p = sub.add_parser(
        "build-gallery",
        help="train and evaluate the gallery's five runs (make gallery)",
        description=f"Train the five gallery runs as the recommended run (KL target {RECOMMENDED_RUN['kl_target']}) "
        "on CPU with fixed seeds, keep weights-only checkpoints, evaluate each in the arena (K = 64) and "
        "write them to assets/gallery.",
    )
    p.add_argument("--out", default=None, help="gallery folder (default assets/gallery)")
    p.add_argument(
        "--steps",
        type=_positive_int,
        default=None,
        help=f"policy-gradient steps per run (default: the recommended run's, {RECOMMENDED_RUN['steps']})",
    )
    p.add_argument("--arena-prompts", type=_positive_int, default=32, help="eval prompts in the arena")
    p.add_argument("--only", nargs="*", default=None, help="build only these gallery ids")
    p.set_defaults(func=_run_build_gallery)


def _run_build_gallery(args) -> int:
    from infalign_core import gallery_build

    gallery_build.build_gallery(
        Path(args.out) if args.out else None,
        steps=args.steps,
        only=args.only,
        arena_prompts=args.arena_prompts,
    )
    return 0


def _add_report(sub) -> None:
    p = sub.add_parser(
        "report",
        help="write a self-contained HTML report of CTRL runs (setup, theory, win rates, picks)",
        description="One HTML file that opens offline (plotly's JavaScript inlined): each run's setup, the "
        "theory's prediction at its measured KL, the measured win rates with intervals and the KL, sample "
        "picks, and charts of the frontier with the runs on it and of the win rates with their intervals.",
    )
    p.add_argument("--run", action="append", required=True, metavar="ID", help="a run id (repeat for more)")
    p.add_argument("--out", required=True, help="the HTML file to write")
    p.set_defaults(func=_run_report)


def _run_report(args) -> int:
    from infalign_core import report

    print(f"wrote {report.write_report(args.run, args.out)}")
    return 0


# --- registration -----------------------------------------------------------
# Commands added by other modules register here, one line each.
_COMMANDS = [
    _add_theory,
    _add_calibrate,
    _add_sample,
    _add_train,
    _add_build_world,
    _add_export_trl,
    _add_winrate,
    _add_runs,
    _add_build_gallery,
    _add_report,
]


def _add_agency(sub) -> None:
    from infalign_core.cli_agency import add_agency

    add_agency(sub)


def _add_judge_agreement(sub) -> None:
    from infalign_core.cli_agency import add_judge_agreement

    add_judge_agreement(sub)


_COMMANDS += [_add_agency, _add_judge_agreement]


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every command registered."""
    parser = _Parser(
        prog="python -m infalign_core",
        description="InfAlign Studio: inference-aware alignment from the command line.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _COMMANDS:
        add(sub)
    return parser


_PATH_ARGS = {
    "run_dir": "run folder",
    "config": "config file",
    "out": "output path",
    "cache_dir": "bank cache folder",
}
"""Every flag that names a file or folder (model, reward and prompt sources are checked where they load)."""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        for name, what in _PATH_ARGS.items():  # classroom mode: every typed path inside the roots
            if getattr(args, name, None):
                classroom.confine(getattr(args, name), what)
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        # One layer for every command: what a user can fix is one line and status 2; a bug
        # (anything user_error does not know) keeps its traceback so it can be reported.
        fixable = user_error(err)
        if fixable is None:
            raise
        print(f"error: {fixable}", file=sys.stderr)
        return 2
