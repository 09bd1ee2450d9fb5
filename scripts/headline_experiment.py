"""The headline experiment: CTRL for best-of-4 against calibrated RLHF at equal KL, on the bundled world.

    .venv/bin/python scripts/headline_experiment.py            # train what is missing, evaluate, report

For every seed it trains two runs with the same settings except the transform, each through
``python -m infalign_core train`` with the KL-target controller (so both end near the same KL):

    exp       Φ(u) = (e^{t·u} − 1)/(e^t − 1), t = the theory's best t for best-of-4 at the KL target
    identity  Φ(u) = u (calibrated RLHF)

then evaluates every run in the arena on the prompts it was trained on: K samples per prompt
from the run and from the reference, the unbiased best-of-N win rate (order statistics over all
N-subsets) with a 95 % bootstrap interval, and the measured KL (k1, with its standard error).
The report compares the difference exp − identity (paired bootstrap over prompts, seeds
averaged) with the margin the theory predicts at the measured KLs, and gives each run's distance
to its transform's theory curve.

Resumable: finished runs are skipped, interrupted ones resume from their checkpoint, and an
evaluation is cached in the run's ``arena.json``. Runs are written as
``headline-<world>-<transform>-s<seed>`` in the runs folder (``runs/`` or $INFALIGN_RUNS_DIR), so the
arena page lists them; <world> is a hash of the bundled policy and reward, so rebuilding the world
starts fresh runs instead of mixing worlds. The table goes to ``<runs>/headline/results.json`` and
``results.md`` (``results-eval.*`` with ``--eval-split eval``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# Several torch threads on a small shared machine are many times slower than one (measured here:
# an arena evaluation took 60-280 s with the default threads and about 10 s with one).
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TRANSFORMS = ("exp", "identity")
# lever → (run-name suffix, CTRLConfig fields it changes, one-line help); "none" is CTRLConfig's default.
LEVERS = {
    "none": ("", {}, "the trainer's defaults"),
    "k16": ("-k16", {}, "k = 2k with half the prompts per step: the same samples per step"),
    "kl-loss": (
        "-klloss",
        {"kl_penalty": "loss"},
        "β·KL as a per-token k3 loss term instead of in the reward",
    ),
    "rloo-p": (
        "-rloop",
        {"algorithm": "rloo", "kl_controller": "proportional"},
        "the trainer before issue 17: RLOO with the proportional KL controller",
    ),
    "rloo-pi": ("-rloopi", {"algorithm": "rloo", "kl_controller": "pi"}, "RLOO with the PI KL controller"),
    "distil": (
        "-distil",
        {"algorithm": "distil", "kl_controller": "pi"},
        "weighted max-likelihood on fresh reference samples (PI controller)",
    ),
    "distil-rloo": (
        "-distilrloo",
        {"algorithm": "distil-rloo", "kl_controller": "pi"},
        "distil for half the steps, then RLOO (PI controller)",
    ),
}


def lever_suffix(lever: str) -> str:
    """The run-name suffix of a lever; the default's names its trainer once that is not the old one.

    Runs trained before the default changed keep their names, so a new default starts fresh runs
    instead of skipping old finished ones as done.
    """
    from infalign_core.ctrl import recommended_config

    if lever != "none":
        return LEVERS[lever][0]
    default = recommended_config()
    if (default.algorithm, default.kl_controller) == ("rloo", "proportional"):
        return ""
    return f"-{default.algorithm}-{default.kl_controller}"


def parse_args(argv=None) -> argparse.Namespace:
    """The experiment's settings (defaults: issue 6's)."""
    from infalign_core.ctrl import recommended_config

    run = recommended_config()  # the recommended run; each flag below overrides one of its fields
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--n", type=int, default=run.n, help="N of best-of-N (the run's and the arena's)")
    p.add_argument("--kl-target", type=float, default=run.kl_target, help="nats, for both transforms")
    p.add_argument("--steps", type=int, default=run.steps)
    p.add_argument("--num-prompts", type=int, default=run.num_prompts)
    p.add_argument(
        "--m", type=int, default=run.m, help="reference samples per prompt in the calibration bank"
    )
    p.add_argument("--k", type=int, default=run.k, help="samples per prompt per step")
    p.add_argument("--prompts-per-step", type=int, default=run.prompts_per_step)
    p.add_argument("--learning-rate", type=float, default=run.learning_rate)
    p.add_argument("--kl-horizon", type=int, default=run.kl_horizon)
    p.add_argument(
        "--t", type=float, default=None, help="exp's t (default: the theory's best for N at the KL target)"
    )
    p.add_argument("--eval-k", type=int, default=64, help="arena samples per prompt from each side")
    p.add_argument("--eval-split", default="train", help="prompts the arena uses: train (the run's) or eval")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    p.add_argument("--jobs", type=int, default=2, help="runs trained at once")
    p.add_argument("--runs-root", default=None, help="default: $INFALIGN_RUNS_DIR or runs/")
    p.add_argument(
        "--lever",
        choices=list(LEVERS),
        default="none",
        help="a trainer change, at the same samples per step: "
        + "; ".join(f"{name}: {text}" for name, (_, _, text) in LEVERS.items()),
    )
    p.add_argument("--train-only", action="store_true")
    p.add_argument("--eval-only", action="store_true", help="evaluate and report what is trained")
    return p.parse_args(argv)


def world_tag() -> str:
    """8 hex digits of the bundled policy's and reward's fingerprints: a rebuilt world gets new runs."""
    import hashlib

    from infalign_core.models import BUNDLED, folder_fingerprint

    both = folder_fingerprint(BUNDLED["policy"]) + folder_fingerprint(BUNDLED["reward"])
    return hashlib.sha256(both.encode()).hexdigest()[:8]


def run_configs(args) -> dict[str, dict]:
    """Run name → CTRLConfig fields, with β starting at the theory's β for the KL target."""
    from infalign_core import procedures, theory
    from infalign_core.transforms import Transform

    if args.t is None:
        choice = procedures.best_exponential_t(procedures.of_n(args.n, "best"), args.kl_target)
        t, beta_exp = round(choice.t, 4), choice.beta
    else:
        t = args.t
        beta_exp = theory.beta_for_kl(Transform("exp", t, "best"), args.kl_target)
    beta_identity = theory.beta_for_kl(Transform("identity"), args.kl_target)
    from infalign_core.ctrl import recommended_config

    suffix, lever_fields = lever_suffix(args.lever), LEVERS[args.lever][1]
    world = world_tag() + suffix
    run = recommended_config()
    common = {
        "algorithm": run.algorithm,
        "kl_controller": run.kl_controller,
        "num_prompts": args.num_prompts,
        "m": args.m,
        "k": args.k,
        "prompts_per_step": args.prompts_per_step,
        "learning_rate": args.learning_rate,
        "steps": args.steps,
        "kl_target": args.kl_target,
        "kl_horizon": args.kl_horizon,
        "n": args.n,
        "mode": "best",
        "device": "cpu",
        "checkpoint_every": 50,
        "sample_every": 50,
    }
    if args.lever == "k16":  # twice the samples per prompt, half the prompts: the same samples per step
        common.update(k=2 * args.k, prompts_per_step=max(1, args.prompts_per_step // 2))
    common.update(lever_fields)
    configs = {}
    for seed in args.seeds:
        configs[f"headline-{world}-exp-s{seed}"] = {
            **common,
            "transform": "exp",
            "t": t,
            "beta": round(beta_exp, 6),
            "seed": seed,
        }
        configs[f"headline-{world}-identity-s{seed}"] = {
            **common,
            "transform": "identity",
            "beta": round(beta_identity, 6),
            "seed": seed,
        }
    return configs


def train_all(args, root: Path, configs: dict[str, dict]) -> None:
    """Train (or resume) every run that is not finished, ``args.jobs`` at a time, each a CLI subprocess."""
    from infalign_core import runs
    from infalign_core.ctrl import CTRLConfig

    pending = []
    for name, fields in configs.items():
        run_dir = root / name
        state = runs.refresh_status(run_dir).get("state") if (run_dir / "config.json").is_file() else None
        if state == "finished":
            continue
        if state in ("running", "stopping"):
            print(f"{name}: already {state} (pid {runs.read_status(run_dir).get('pid')}); waiting for it")
        pending.append((name, fields, state))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    active: list[tuple[str, subprocess.Popen | None]] = []
    while pending or active:
        while pending and len(active) < args.jobs:
            name, fields, state = pending.pop(0)
            run_dir = root / name
            if state in ("running", "stopping"):
                active.append((name, None))
                continue
            cmd = [
                sys.executable,
                "-m",
                "infalign_core",
                "train",
                "--run-dir",
                str(run_dir.resolve()),
                "--json",
            ]
            if state is None:
                run_dir.mkdir(parents=True, exist_ok=True)
                config_path = run_dir.parent / f".{name}.config.json"
                CTRLConfig.from_dict(fields).save(config_path)
                cmd += ["--config", str(config_path)]
            else:
                cmd.append("--resume")
            log_path = Path("/tmp") / f"{root.name}-{name}.log"
            log = open(log_path, "ab")
            print(f"{name}: {'resuming' if state else 'starting'} (log {log_path})", flush=True)
            active.append((name, subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=log)))
        time.sleep(2.0)
        still = []
        for name, proc in active:
            if proc is None:
                if runs.refresh_status(root / name).get("state") in ("running", "stopping"):
                    still.append((name, proc))
                continue
            if proc.poll() is None:
                still.append((name, proc))
            else:
                state = runs.read_status(root / name).get("state")
                print(f"{name}: exit {proc.returncode}, state {state}", flush=True)
        active = still


EVAL_SEED = 12345  # the arena's sampling seed: the same reference samples for every run (paired)


def eval_prompts(args, config) -> list[str]:
    """The arena's prompts: the run's own training prompts, or the bundled eval split."""
    from infalign_core import ctrl, data

    if args.eval_split == "train":
        return ctrl.load_prompt_list(config)
    return data.load_prompts("bundled", split=args.eval_split, limit=args.num_prompts).prompts


def evaluate_runs(args, root: Path, names: list[str]) -> dict[str, dict]:
    """The arena's record for each finished run (cached in its arena.json)."""
    from infalign_core import arena, arena_results, challengers, runs
    from infalign_core.ctrl import CTRLConfig
    from infalign_core.models import load_policy
    from infalign_core.rewards import load_reward

    loaded: dict = {}
    records = {}
    # The arena's raw rewards, for the calibrated-space diagnostics (the train split keeps the old name).
    suffix = "" if args.eval_split == "train" else f"-{args.eval_split}"
    rewards_name = f"headline-arena-rewards{suffix}.npz"
    for name in names:
        run_dir = root / name
        status = runs.refresh_status(run_dir) if (run_dir / "config.json").is_file() else {}
        if status.get("state") != "finished":
            print(f"{name}: not finished ({status.get('state', 'missing')}); left out of the table")
            continue
        config = CTRLConfig.load(run_dir / "config.json")
        reference_source = config.reference or config.policy
        if "reference" not in loaded:
            loaded["reference"] = load_policy(reference_source, device="cpu")
            loaded["reward"] = load_reward(config.reward, label=config.reward_label, device="cpu")
        reference, reward_fn = loaded["reference"], loaded["reward"]
        prompts = eval_prompts(args, config)
        settings = {
            "n": args.n,
            "k": args.eval_k,
            "prompts": f"bundled:{args.eval_split}",
            "num_prompts": len(prompts),
            "max_new_tokens": config.max_new_tokens,
            "seed": EVAL_SEED,
            "reference": reference.fingerprint,
            "reward": reward_fn.fingerprint,
            "checkpoint_step": status.get("step"),
            "prompts_per_batch": 16,  # the reference's samples follow the batch: pairing needs it equal
        }
        record = arena_results.find_arena_result(run_dir, settings)
        if record is None:
            started = time.perf_counter()
            challenger, source = challengers.load_challenger(str(run_dir), device="cpu")
            state = arena.run_to_end(
                challenger,
                reference,
                reward_fn,
                prompts,
                sampling=config.sampling(EVAL_SEED),
                n=args.n,
                k=args.eval_k,
                prompts_per_batch=settings["prompts_per_batch"],
                resamples=args.resamples,
            )
            record = arena_results.arena_record(state, settings, source.run_config)
            arena_results.save_arena_result(run_dir, record)
            np.savez(
                run_dir / rewards_name,
                challenger=state.challenger_rewards,
                reference=state.reference_rewards,
                log_ratio=state.policy_logprobs - state.reference_logprobs,
            )
            print(f"{name}: evaluated in {time.perf_counter() - started:.0f} s", flush=True)
        metrics = [row for row in _read_jsonl(run_dir / "metrics.jsonl")][-30:]
        record["train"] = {
            "final_beta": metrics[-1]["kl/beta"] if metrics else None,
            "kl_last30": float(sum(r["kl/k1"] for r in metrics) / max(1, len(metrics))),
            "steps": status.get("step"),
        }
        if (run_dir / rewards_name).is_file():
            record["shape"] = calibrated_shape(
                run_dir / rewards_name, source_config(run_dir), record["kl"]["k1"]
            )
        records[name] = record
    return records


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


BINS = np.linspace(0.0, 1.0, 11)


def source_config(run_dir: Path) -> dict:
    """The run's config as a dict."""
    return json.loads((run_dir / "config.json").read_text(encoding="utf-8"))


def calibrated_shape(path: Path, config: dict, kl: float) -> dict:
    """Where the run puts its mass in calibrated space, against the theory's tilt at the same KL.

    u = mid-rank of each challenger sample among the reference's samples of its prompt. The plug-in
    KL of u's histogram against Uniform is the part of the sequence KL that moves the reward's
    rank (data processing: it is at most the sequence KL); the rest changes the text without
    changing its rank. Bin masses are compared with the theory's g(u) = e^{Φ(u)/β}/Z at the measured KL.
    """
    from infalign_core import arena_kl, arena_theory, theory

    arrays = np.load(path)
    a, b = arrays["challenger"], arrays["reference"]
    u = ((a[:, :, None] > b[:, None, :]) + 0.5 * (a[:, :, None] == b[:, None, :])).mean(axis=2).ravel()
    # u sits on a grid of 1/(2K); counting u == 1 in the top bin keeps all of [0, 1] covered.
    mass = np.histogram(u, bins=BINS)[0] / u.size
    # The reward-visible KL as the app logs it: binned over whole rank levels, Miller–Madow corrected.
    binned_kl = arena_kl.reward_visible_kl(a, b)
    out = {"mass": mass.round(4).tolist(), "calibrated_kl": binned_kl, "top_decile": float(mass[-1])}
    phi = arena_theory.run_transform(config)
    if phi is not None and kl > 0:
        beta = theory.beta_for_kl(phi, kl)
        grid = np.linspace(0.0, 1.0, 20001)
        log_g = np.asarray(phi(grid), dtype=np.float64) / beta
        g = np.exp(log_g - log_g.max())
        cdf = np.concatenate([[0.0], np.cumsum(0.5 * (g[1:] + g[:-1]) * np.diff(grid))])
        cdf /= cdf[-1]
        theory_mass = np.diff(np.interp(BINS, grid, cdf))
        out["theory_mass"] = theory_mass.round(4).tolist()
        out["theory_top_decile"] = float(theory_mass[-1])
        at_calibrated = arena_theory.theory_at_kl(config, int(config.get("n") or 4), binned_kl)
        out["theory_bon_at_calibrated_kl"] = at_calibrated["bon_win_rate"] if at_calibrated else None
    return out


def summarise(args, records: dict[str, dict]) -> dict:
    """Per-run rows, per-transform means, and exp − identity against the theory's margin."""
    import numpy as np

    from infalign_core import arena_results, arena_theory

    rows = []
    for name, rec in records.items():
        w, kl = rec["win_rates"], rec["kl"]
        theory = rec.get("theory") or {}
        rows.append(
            {
                "run": name,
                "transform": rec["run"]["transform"],
                "t": rec["run"].get("t"),
                "seed": rec["run"]["seed"],
                "beta_start": rec["run"]["beta"],
                "beta_final": rec["train"]["final_beta"],
                "kl": kl["k1"],
                "kl_stderr": kl["k1_stderr"],
                "kl_k3": kl["k3"],
                "standard_win_rate": w["standard_win_rate"],
                "bon_win_rate": w["bon_win_rate"],
                "bon_ci_low": w["bon_win_rate_ci_low"],
                "bon_ci_high": w["bon_win_rate_ci_high"],
                "won_win_rate": w["won_win_rate"],
                "theory_bon_at_kl": theory.get("bon_win_rate"),
                "gap_to_theory": (rec.get("gap_to_theory") or {}).get("bon_win_rate"),
                "calibrated_kl": (rec.get("shape") or {}).get("calibrated_kl"),
                "top_decile": (rec.get("shape") or {}).get("top_decile"),
                "theory_top_decile": (rec.get("shape") or {}).get("theory_top_decile"),
                "mass": (rec.get("shape") or {}).get("mass"),
                "theory_mass": (rec.get("shape") or {}).get("theory_mass"),
                "theory_bon_at_calibrated_kl": (rec.get("shape") or {}).get("theory_bon_at_calibrated_kl"),
            }
        )
    out: dict = {"settings": vars(args), "world": world_tag(), "runs": rows}
    seeds = sorted(
        {r["seed"] for r in rows if r["transform"] == "exp"}
        & {r["seed"] for r in rows if r["transform"] == "identity"}
    )
    if not seeds:
        return out
    by = {(r["transform"], r["seed"]): records[r["run"]] for r in rows}
    per_prompt = {
        tf: np.array([by[(tf, s)]["per_prompt"]["bon_win_rate"] for s in seeds]) for tf in ("exp", "identity")
    }
    # The arena page's paired comparison (the same function), so the page reproduces this number.
    paired = arena_results.paired_comparison(
        [by[("exp", s)] for s in seeds], [by[("identity", s)] for s in seeds], "bon_win_rate"
    )
    diff, low, high = paired.difference, paired.ci_low, paired.ci_high
    per_seed = [
        float(per_prompt["exp"][i].mean() - per_prompt["identity"][i].mean()) for i in range(len(seeds))
    ]
    mean_kl = {tf: float(np.mean([by[(tf, s)]["kl"]["k1"] for s in seeds])) for tf in ("exp", "identity")}
    seen = {
        tf: [(by[(tf, s)].get("shape") or {}).get("calibrated_kl") for s in seeds]
        for tf in ("exp", "identity")
    }
    mean_seen = {tf: float(np.mean(v)) if all(x is not None for x in v) else None for tf, v in seen.items()}
    mean_bon = {tf: float(per_prompt[tf].mean()) for tf in ("exp", "identity")}
    config_of = {tf: dict(by[(tf, seeds[0])]["run"]) for tf in ("exp", "identity")}
    theory_at = {
        tf: arena_theory.theory_at_kl(config_of[tf], args.n, mean_kl[tf]) for tf in ("exp", "identity")
    }
    predicted = (
        theory_at["exp"]["bon_win_rate"] - theory_at["identity"]["bon_win_rate"]
        if theory_at["exp"] and theory_at["identity"]
        else float("nan")
    )
    theory_seen = {
        tf: arena_theory.theory_at_kl(config_of[tf], args.n, mean_seen[tf]) if mean_seen[tf] else None
        for tf in ("exp", "identity")
    }
    predicted_seen = (
        theory_seen["exp"]["bon_win_rate"] - theory_seen["identity"]["bon_win_rate"]
        if theory_seen["exp"] and theory_seen["identity"]
        else float("nan")
    )
    at_target = {
        tf: arena_theory.theory_at_kl(config_of[tf], args.n, args.kl_target)["bon_win_rate"]
        for tf in ("exp", "identity")
    }
    gaps = [r["gap_to_theory"] for r in rows if r["gap_to_theory"] is not None]
    out["comparison"] = {
        "seeds": seeds,
        "mean_kl": mean_kl,
        "kl_difference": mean_kl["exp"] - mean_kl["identity"],
        "mean_bon_win_rate": mean_bon,
        "theory_bon_at_mean_kl": {tf: (theory_at[tf] or {}).get("bon_win_rate") for tf in theory_at},
        "difference": diff,
        "difference_ci_low": low,
        "difference_ci_high": high,
        "difference_per_seed": per_seed,
        "difference_seed_stderr": float(np.std(per_seed, ddof=1) / np.sqrt(len(per_seed)))
        if len(seeds) > 1
        else None,
        "predicted_margin_at_measured_kl": predicted,
        "mean_calibrated_kl": mean_seen,
        "share_of_kl_seen": {
            tf: mean_seen[tf] / mean_kl[tf] if mean_seen[tf] and mean_kl[tf] > 0 else None for tf in mean_kl
        },
        "predicted_margin_at_calibrated_kl": predicted_seen,
        "fraction_of_predicted_at_calibrated_kl": diff / predicted_seen if predicted_seen else float("nan"),
        "predicted_margin_at_target_kl": at_target["exp"] - at_target["identity"],
        "fraction_of_predicted": diff / predicted if predicted else float("nan"),
        "max_abs_gap_to_theory": float(max(abs(g) for g in gaps)) if gaps else None,
        "targets": {
            "difference >= 80% of predicted": bool(predicted and diff >= 0.8 * predicted),
            "CI excludes zero": bool(low > 0),
            "KLs within 0.05": bool(abs(mean_kl["exp"] - mean_kl["identity"]) <= 0.05),
            "each run within 0.05 of its curve": bool(gaps and max(abs(g) for g in gaps) <= 0.05),
        },
    }
    return out


def markdown(summary: dict) -> str:
    """The results as a markdown table plus the comparison lines."""
    lines = [
        "| run | transform | seed | β start → end | KL k1 (± se) | standard | BoN-4 [95 % CI] | theory BoN-4 at KL | gap |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def fmt(x, spec=".3f"):
        """A number, or a dash for a missing one."""
        return "–" if x is None else format(x, spec)

    for r in summary["runs"]:
        transform = r["transform"] if r["t"] is None else f"{r['transform']} (t={r['t']:.3g})"
        lines.append(
            f"| {r['run']} | {transform} | {r['seed']} | "
            f"{fmt(r['beta_start'])} → {fmt(r['beta_final'])} | {fmt(r['kl'])} ± {fmt(r['kl_stderr'])} | "
            f"{fmt(r['standard_win_rate'])} | {fmt(r['bon_win_rate'])} [{fmt(r['bon_ci_low'])}, {fmt(r['bon_ci_high'])}] | "
            f"{fmt(r['theory_bon_at_kl'])} | {fmt(r['gap_to_theory'], '+.3f')} |"
        )
    lines += [
        "",
        "Where each run puts its mass in calibrated space (u = rank of its sample among the reference's "
        "samples of the prompt), against the theory's tilt at the run's measured KL:",
        "",
        "| run | sequence KL | calibrated KL (10 bins) | mass in u ≥ 0.9: run / theory | mass in u < 0.5: run / theory "
        "| BoN-4: run / theory at calibrated KL |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in summary["runs"]:
        if r.get("mass") is None:
            continue
        low_run = sum(r["mass"][:5])
        low_theory = sum(r["theory_mass"][:5]) if r.get("theory_mass") else None
        lines.append(
            f"| {r['run']} | {fmt(r['kl'])} | {fmt(r['calibrated_kl'])} | {fmt(r['top_decile'])} / "
            f"{fmt(r['theory_top_decile'])} | {fmt(low_run)} / {fmt(low_theory)} | "
            f"{fmt(r['bon_win_rate'])} / {fmt(r['theory_bon_at_calibrated_kl'])} |"
        )
    c = summary.get("comparison")
    if c:
        lines += [
            "",
            f"Seeds {c['seeds']}. Mean KL: exp {c['mean_kl']['exp']:.3f}, identity {c['mean_kl']['identity']:.3f} "
            f"(difference {c['kl_difference']:+.3f} nats).",
            f"BoN-4 win rate exp − identity: **{c['difference']:+.4f}** "
            f"[{c['difference_ci_low']:+.4f}, {c['difference_ci_high']:+.4f}] (paired bootstrap over prompts, seeds averaged); "
            f"per seed {', '.join(f'{d:+.4f}' for d in c['difference_per_seed'])}.",
            f"Theory's margin at the measured KLs: {c['predicted_margin_at_measured_kl']:+.4f} "
            f"(at {summary['settings']['kl_target']} nats: {c['predicted_margin_at_target_kl']:+.4f}); "
            f"measured / predicted = {c['fraction_of_predicted']:.2f}.",
            f"Reward-visible KL (pooled calibrated rewards, Miller–Madow): exp {fmt(c['mean_calibrated_kl']['exp'])}, "
            f"identity {fmt(c['mean_calibrated_kl']['identity'])} (share of the sequence KL the reward sees: "
            f"{fmt(c['share_of_kl_seen']['exp'], '.0%')}, {fmt(c['share_of_kl_seen']['identity'], '.0%')}); "
            f"theory's margin there: {c['predicted_margin_at_calibrated_kl']:+.4f}, measured / predicted = "
            f"{c['fraction_of_predicted_at_calibrated_kl']:.2f}.",
            f"Largest distance of a run to its theory curve: {fmt(c['max_abs_gap_to_theory'])}.",
            "Targets: " + "; ".join(f"{k}: {'yes' if v else 'no'}" for k, v in c["targets"].items()) + ".",
        ]
    return "\n".join(lines) + "\n"


def evaluate_and_report(args, root: Path, configs: dict[str, dict]) -> int:
    """Evaluate every finished run, write results.json and results.md, print the markdown."""
    records = evaluate_runs(args, root, list(configs))
    summary = summarise(args, records)
    out_dir = root / "headline"
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "results" if args.eval_split == "train" else f"results-{args.eval_split}"
    stem += lever_suffix(args.lever)
    (out_dir / f"{stem}.json").write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    text = markdown(summary)
    (out_dir / f"{stem}.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


def main(argv=None) -> int:
    """Train, evaluate, report."""
    from infalign_core import runs

    args = parse_args(argv)
    root = Path(args.runs_root) if args.runs_root else runs.default_runs_root()
    root.mkdir(parents=True, exist_ok=True)
    configs = run_configs(args)
    if not args.eval_only:
        train_all(args, root, configs)
    if args.train_only:
        return 0
    return evaluate_and_report(args, root, configs)


if __name__ == "__main__":
    raise SystemExit(main())
