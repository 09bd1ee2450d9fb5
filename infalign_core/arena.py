"""The arena: sample K responses per prompt from a challenger and the reference, score, estimate.

Resolves what to evaluate (the reference, a model folder or a CTRL run), samples and scores both
sides a batch of prompts at a time, measures the challenger's KL on its own samples, and keeps the
results beside the run with the theory's prediction at the measured KL. The estimators themselves
are in ``infalign_core.winrate``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from infalign_core import classroom
from infalign_core.errors import InfAlignError
from infalign_core.winrate import (
    METRICS,
    KLEstimate,
    WinRateEstimate,
    _check_mode,
    _check_n,
    estimate_win_rates,
    kl_from_logprobs,
)

ARENA_FILE = "arena.json"
RUN_CONFIG_FILE = "config.json"


# --- KL of the challenger against the reference, on its own samples -----------------------------


def _same_tokenizer(first, second) -> bool:
    if first is second:
        return True
    try:
        return len(first) == len(second) and first.get_vocab() == second.get_vocab()
    except (AttributeError, TypeError):
        return False


def sample_logprobs(
    policy, reference, samples, *, batch_size: int = 64, temperature: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """log π_T(y|x) and log π_ref,T(y|x) of every sampled response (EOS included where it was emitted).

    Both at the temperature the samples were drawn at (per-token log-softmax of logits / T).
    """
    from infalign_core.sampling import sequence_logprobs

    if not _same_tokenizer(policy.tokenizer, reference.tokenizer):
        raise InfAlignError(
            "the challenger and the reference use different tokenizers, so the KL between them is not "
            "defined token by token; pick a challenger trained from this reference"
        )
    prompts = samples.row_prompts()
    out = []
    for loaded in (policy,) if reference is policy else (policy, reference):
        logp = sequence_logprobs(
            loaded.model,
            loaded.tokenizer,
            prompts,
            samples.response_ids,
            finished=samples.finished,
            batch_size=batch_size,
            temperature=temperature,
            chat=getattr(policy, "chat", None),  # both sides see the prompt as the policy did
        )
        out.append(logp.double().cpu().numpy())
    return out[0], out[-1]


def measure_kl(policy, reference, samples, *, batch_size: int = 64, temperature: float = 1.0) -> KLEstimate:
    """KL(π_T‖π_ref,T) of a loaded policy against a loaded reference, on samples drawn from π_T."""
    log_pi, log_ref = sample_logprobs(
        policy, reference, samples, batch_size=batch_size, temperature=temperature
    )
    return kl_from_logprobs(log_pi, log_ref, samples.prompt_index)


# --- what to evaluate: the reference, a model folder or a CTRL run ------------------------------


@dataclass
class ChallengerSource:
    """Where a challenger's weights come from, and the CTRL run it belongs to (if any)."""

    model: str  # what load_policy gets
    label: str
    run_dir: Path | None = None
    run_config: dict | None = None


def _run_config(folder: Path) -> dict | None:
    """The CTRL config of a run folder, or None if ``folder`` is not a run."""
    path = folder / RUN_CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and "transform" in data and "architectures" not in data else None


def resolve_challenger(source: str, runs_root: str | Path | None = None) -> ChallengerSource:
    """Turn 'reference'/'default', a run folder or id, a checkpoint folder, a model folder or hub id into a source."""
    text = (source or "").strip()
    if not text:
        raise InfAlignError(
            "no challenger given: use 'reference', a CTRL run folder or id, or a model folder"
        )
    if text in ("reference", "default"):
        return ChallengerSource("default", "reference (bundled default policy)")
    classroom.guard_source(text, "challenger folder")
    path = Path(os.path.expanduser(text))
    if not path.exists() and "/" not in text:
        from infalign_core.gallery import gallery_root
        from infalign_core.runs import default_runs_root

        # A run id: the user's runs first, then the gallery's.
        for candidate in (Path(runs_root) if runs_root is not None else default_runs_root(), gallery_root()):
            if (candidate / text / RUN_CONFIG_FILE).is_file():
                path = candidate / text
                break
    if path.is_dir():
        run_dir = path if _run_config(path) is not None else None
        if run_dir is None and _run_config(path.parent) is not None:
            config = _trained_config(_run_config(path.parent), path)
            return ChallengerSource(str(path), f"run {path.parent.name} ({path.name})", path.parent, config)
        if run_dir is not None:
            from infalign_core.ctrl import checkpoint_path

            checkpoint = checkpoint_path(run_dir)
            config = _run_config(run_dir)
            if checkpoint is None:
                raise InfAlignError(
                    f"run {run_dir.name} has no checkpoint yet (one is written every "
                    f"{config.get('checkpoint_every', '?')} steps and at the end); wait for it or pick another run"
                )
            return ChallengerSource(
                str(checkpoint), f"run {run_dir.name}", run_dir, _trained_config(config, checkpoint)
            )
    return ChallengerSource(text, text)


def _trained_config(config: dict, checkpoint: Path) -> dict:
    """A run's config plus ``phi_beta``, the β its checkpoint's optimal Φ was solved at (when recorded)."""
    from infalign_core.ctrl import trained_phi_beta

    phi_beta = trained_phi_beta(checkpoint)
    return {**config, "phi_beta": phi_beta} if phi_beta is not None else config


def load_challenger(source: str, *, device: str | None = None, runs_root=None):
    """Load the challenger policy; returns (LoadedPolicy, ChallengerSource). Not a causal LM → InfAlignError."""
    from infalign_core.models import load_policy

    resolved = resolve_challenger(source, runs_root)
    return load_policy(resolved.model, device=device), resolved


# --- the arena: sample, score, estimate, batch by batch ------------------------------------------


@dataclass
class ArenaState:
    """Everything sampled so far and the estimates on it; ``run_arena`` yields one after each batch."""

    prompts: list[str]
    challenger_rewards: np.ndarray  # [p, K]
    reference_rewards: np.ndarray  # [p, K]
    challenger_responses: list[list[str]]
    reference_responses: list[list[str]]
    policy_logprobs: np.ndarray  # [p, K] log π of the challenger's samples
    reference_logprobs: np.ndarray  # [p, K] log π_ref of the same samples
    total_prompts: int
    n: int
    estimate: WinRateEstimate | None = None
    kl: KLEstimate | None = None
    seconds: float = 0.0
    kl_note: str = ""  # why ``kl`` is None when the KL was asked for (top-p < 1)
    calibrated_kl: float | None = None  # the KL the reward sees (see ``reward_visible_kl``)

    @property
    def done(self) -> int:
        """Prompts evaluated so far."""
        return len(self.prompts)


def _stream_seed(seed: int, batch: int, side: int) -> int:
    # Distinct streams per side: the reference against itself must not compare a sample with itself.
    return (int(seed) * 1_000_003 + batch * 7_919 + side * 104_729) % (2**31 - 1)


def run_arena(
    challenger,
    reference,
    reward_fn,
    prompts: Sequence[str],
    *,
    n: int,
    k: int,
    max_new_tokens: int = 24,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    prompts_per_batch: int = 8,
    resamples: int = 2000,
    level: float = 0.95,
    with_kl: bool = True,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[ArenaState]:
    """Sample K responses per prompt from both policies a batch of prompts at a time; yield the running state.

    ``challenger`` and ``reference`` are LoadedPolicy objects, ``reward_fn`` a RewardFunction.
    Both sides sample at ``temperature`` and ``top_p``; the KL is that of the tempered
    distributions. With top-p < 1 it is not measured (``kl_note`` says why; see ``top_p_kl_note``).
    Estimates are recomputed on all prompts seen after each batch, so a caller can draw them converging.
    The reference and the reward see prompts rendered as the challenger does (``same_rendering``).
    """
    from infalign_core.sampling import sample

    n = _check_n(n)
    if int(k) < n:
        raise InfAlignError(f"K = {k} samples per prompt cannot form a best-of-{n}; choose K ≥ N")
    prompts = [str(p) for p in prompts]
    if not prompts:
        raise InfAlignError("no prompts to evaluate on")
    if int(prompts_per_batch) < 1:
        raise InfAlignError(f"prompts_per_batch must be ≥ 1, got {prompts_per_batch}")
    if not (np.isfinite(temperature) and temperature > 0):
        raise InfAlignError(f"the arena samples at a temperature > 0, got {temperature}")
    if not (np.isfinite(top_p) and 0 < top_p <= 1):
        raise InfAlignError(f"top-p must be in (0, 1], got {top_p}")
    kl_note = top_p_kl_note(top_p) if with_kl else ""
    with_kl = with_kl and not kl_note
    reference, reward_fn = same_rendering(challenger, reference, reward_fn)
    started = time.perf_counter()
    empty = np.zeros((0, int(k)))
    state = ArenaState([], empty, empty, [], [], empty, empty, len(prompts), n, kl_note=kl_note)
    for batch, lo in enumerate(range(0, len(prompts), int(prompts_per_batch))):
        if should_stop is not None and state.done and should_stop():
            break
        chunk = prompts[lo : lo + int(prompts_per_batch)]
        draws = []
        for side, policy in enumerate((challenger, reference)):
            samples = sample(
                policy,
                chunk,
                int(k),
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                seed=_stream_seed(seed, batch, side),
            )
            rewards = reward_fn.score(samples.row_prompts(), samples.responses).reshape(len(chunk), int(k))
            draws.append((samples, rewards))
        (ours, our_rewards), (theirs, their_rewards) = draws
        if with_kl:
            log_pi, log_ref = sample_logprobs(challenger, reference, ours, temperature=temperature)
        else:
            log_pi = log_ref = np.full(len(ours), np.nan)
        state = ArenaState(
            prompts=state.prompts + chunk,
            challenger_rewards=np.vstack([state.challenger_rewards, our_rewards]),
            reference_rewards=np.vstack([state.reference_rewards, their_rewards]),
            challenger_responses=state.challenger_responses + _by_prompt(ours.responses, int(k)),
            reference_responses=state.reference_responses + _by_prompt(theirs.responses, int(k)),
            policy_logprobs=np.vstack([state.policy_logprobs, log_pi.reshape(len(chunk), int(k))]),
            reference_logprobs=np.vstack([state.reference_logprobs, log_ref.reshape(len(chunk), int(k))]),
            total_prompts=len(prompts),
            n=n,
            kl_note=kl_note,
        )
        state.estimate = estimate_win_rates(
            state.challenger_rewards, state.reference_rewards, n, resamples=resamples, level=level, seed=seed
        )
        state.calibrated_kl = reward_visible_kl(state.challenger_rewards, state.reference_rewards)
        if with_kl:
            rows = np.repeat(np.arange(state.done), int(k))
            state.kl = kl_from_logprobs(state.policy_logprobs, state.reference_logprobs, rows)
        state.seconds = time.perf_counter() - started
        yield state


def reward_visible_kl(challenger_rewards, reference_rewards) -> float:
    """The KL the reward sees: each challenger sample's mid-rank among its prompt's K reference samples, pooled.

    The binned, Miller–Madow corrected KL of those ranks against the reference's own law
    (``calibration.calibrated_kl``); by data processing at most the sequence KL, so their ratio
    is the share of the KL that moves the reward.
    """
    from infalign_core.calibration import calibrated_kl, calibrated_reward

    ours = np.asarray(challenger_rewards, dtype=np.float64)
    bank = np.sort(np.asarray(reference_rewards, dtype=np.float64), axis=1)
    rows = np.repeat(np.arange(ours.shape[0]), ours.shape[1])
    return calibrated_kl(calibrated_reward(bank, rows, ours.ravel()), m=bank.shape[1])


def top_p_kl_note(top_p: float) -> str:
    """Why the arena measures no KL at this top-p ('' at top-p = 1, where it does)."""
    if top_p >= 1.0:
        return ""
    return (
        f"KL not measured at top-p = {top_p:g}: nucleus sampling truncates both policies, so a response "
        "outside the reference's nucleus has infinite KL and the estimate is not meaningful; "
        "evaluate at top-p = 1 for the KL (the win rates above are at the top-p you chose)"
    )


def _by_prompt(responses: Sequence[str], k: int) -> list[list[str]]:
    return [list(responses[i : i + k]) for i in range(0, len(responses), k)]


def same_rendering(challenger, reference, reward_fn):
    """The reference and reward seeing prompts as the challenger does (its chat template use, system prompt).

    A run trained in completion mode, or with a system prompt, is evaluated the same way: its
    checkpoint records its rendering, and both sides and the reward follow it.
    """
    import dataclasses

    chat = getattr(challenger, "chat", None)
    if chat is None:
        return reference, reward_fn
    if getattr(reference, "chat", chat) != chat:
        reference = dataclasses.replace(reference, chat=chat)  # shares the weights
    if hasattr(reward_fn, "with_chat") and getattr(reward_fn, "chat", chat) != chat:
        reward_fn = reward_fn.with_chat(chat)
    return reference, reward_fn


def rendering_settings(reference, prompt_subset: str | None = None) -> dict:
    """What an arena record adds about prompt rendering and subsets; empty for the template-less default."""
    from infalign_core.chat import rendering_key

    extra = {}
    rendering = rendering_key(reference.tokenizer, getattr(reference, "chat", None))
    if rendering["template"] is not None or rendering["completion"]:
        extra["rendering"] = rendering
    if prompt_subset:
        extra["prompt_subset"] = prompt_subset
    return extra


def evaluate(challenger, reference, reward_fn, prompts: Sequence[str], **kwargs) -> ArenaState:
    """Run the arena to the end and return its final state (``run_arena``'s arguments)."""
    states = run_arena(challenger, reference, reward_fn, prompts, **kwargs)
    last = None
    for last in states:  # noqa: B007 (only the final state is wanted)
        pass
    return last


@dataclass
class Pick:
    """One prompt's best-of-N (or worst-of-N) pick on each side, from its first N samples."""

    prompt: str
    challenger_response: str
    challenger_reward: float
    reference_response: str
    reference_reward: float
    winner: str  # "challenger", "reference" or "tie"


def example_picks(state: ArenaState, count: int = 3, mode: str = "best") -> list[Pick]:
    """Best-of-N (worst-of-N) picks of the first N samples of a few prompts, side by side, the winner named."""
    mode = _check_mode(mode)
    choose = np.argmax if mode == "best" else np.argmin
    picks = []
    for row in range(min(count, state.done)):
        ours = state.challenger_rewards[row, : state.n]
        theirs = state.reference_rewards[row, : state.n]
        i, j = int(choose(ours)), int(choose(theirs))
        # Higher is better in both modes: worst-of-N compares each side's worst pick.
        winner = "tie" if ours[i] == theirs[j] else ("challenger" if ours[i] > theirs[j] else "reference")
        picks.append(
            Pick(
                state.prompts[row],
                state.challenger_responses[row][i],
                float(ours[i]),
                state.reference_responses[row][j],
                float(theirs[j]),
                winner,
            )
        )
    return picks


# --- theory for a run, and results that survive restarts -----------------------------------------


def run_transform(config: dict | None):
    """The Φ a run trained on: closed forms, and the optimal Φ at the β it was solved at (``phi_beta``).

    None for ``raw`` (no theory curve) and for an optimal run whose Φ was not recorded.
    """
    from infalign_core.transforms import Transform

    name = (config or {}).get("transform")
    if name in ("identity", "log"):
        return Transform(name)
    if name == "exp" and config.get("t") is not None:
        return Transform("exp", float(config["t"]), config.get("mode", "best"))
    if name == "optimal" and config.get("phi_beta") is not None:
        from infalign_core.ctrl import CTRLConfig, make_phi

        trained = CTRLConfig(
            transform="optimal",
            n=int(config.get("n") or 4),
            mode=config.get("mode", "best"),
            procedure=config.get("procedure"),
        )
        return make_phi(trained, float(config["phi_beta"]))
    return None


def theory_curve(config: dict | None, n: int, kl_max: float = 2.0, count: int = 60) -> dict | None:
    """The theory's KL, standard, best-of-N and worst-of-N win rates along β for a run's transform and N.

    None when the run has no theory curve (``raw`` is a prompt-dependent transform).
    """
    from infalign_core import theory

    name = (config or {}).get("transform")
    if name == "optimal" and config.get("phi_beta") is None:  # the optimum at every KL (the envelope)
        from infalign_core import optimal

        points = [
            theory.evaluate(phi, phi.beta, n)
            for phi in optimal.optimal_family(
                int(config.get("n") or n), config.get("mode", "best"), kl_max, count // 4
            )
        ]
        points.sort(key=lambda p: p.kl)
        return {
            "label": f"optimal ({config.get('mode', 'best')}-of-{config.get('n')})",
            "kl": np.array([p.kl for p in points]),
            "standard_win_rate": np.array([p.standard_win_rate for p in points]),
            "bon_win_rate": np.array([p.bon_win_rate for p in points]),
            "won_win_rate": np.array([p.won_win_rate for p in points]),
        }
    phi = run_transform(config)
    if phi is None:
        return None
    front = theory.frontier(phi, theory.default_betas(count), ns=(n,))
    keep = front.kl <= kl_max
    return {
        "label": phi.label,
        "kl": front.kl[keep],
        "standard_win_rate": front.standard_win_rate[keep],
        "bon_win_rate": front.bon_win_rate[0][keep],
        "won_win_rate": front.won_win_rate[0][keep],
    }


def theory_at_kl(config: dict | None, n: int, kl: float) -> dict | None:
    """The theory's win rates for a run's transform at the KL it measured (None without a curve)."""
    from infalign_core import theory

    name = (config or {}).get("transform")
    if not np.isfinite(kl) or name not in ("identity", "log", "exp", "optimal"):
        return None
    if kl <= 0:  # the reference itself (k1 can dip below 0 by sampling noise)
        return {"kl": 0.0, "beta": None, **dict.fromkeys(METRICS, 0.5)}
    try:
        if name == "optimal" and config.get("phi_beta") is None:
            from infalign_core.optimal import optimal_transform_for_kl

            phi = optimal_transform_for_kl(int(config.get("n") or n), kl, config.get("mode", "best"))
            return theory.evaluate(phi, phi.beta, n).as_dict()
        phi = run_transform(config)
        if phi is None:
            return None
        return theory.evaluate(phi, theory.beta_for_kl(phi, kl), n).as_dict()
    except InfAlignError:
        return None


# --- any inference procedure: the arena's estimate and the theory's curve ----------------------


def arena_calibrated_rewards(state: ArenaState) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated rewards of both sides' samples against K − 1 of the reference side's rewards of the same prompt.

    Mid-rank CDF, ties ½. Sample i of either side is ranked among the reference's samples
    other than the i-th: a reference sample is never compared with itself, and both sides'
    calibrated rewards come from equally large banks, so the reference against itself is
    exactly symmetric. Soft best-of-N and rejection choose by these.
    """
    ours, theirs = state.challenger_rewards, state.reference_rewards
    k = theirs.shape[1]
    if k < 2:
        raise InfAlignError("calibrating the arena's samples needs K ≥ 2 reference samples per prompt")

    def rank(values: np.ndarray) -> np.ndarray:
        others = np.arange(k)[None, :] != (np.arange(values.shape[1]) % k)[:, None]  # [K_side, K]
        below = ((theirs[:, None, :] < values[:, :, None]) & others).sum(axis=2)
        equal = ((theirs[:, None, :] == values[:, :, None]) & others).sum(axis=2)
        return (below + 0.5 * equal) / (k - 1)

    return rank(ours), rank(theirs)


def procedure_estimate(
    state: ArenaState,
    spec: str,
    *,
    draws: int = 2000,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
):
    """The arena's win rate for an inference procedure (winrate.estimate_procedure_win_rate on its samples)."""
    from infalign_core.procedures import parse_procedure
    from infalign_core.winrate import estimate_procedure_win_rate

    proc = parse_procedure(spec)
    calibrated = arena_calibrated_rewards(state) if proc.kind in ("soft", "reject") else (None, None)
    return estimate_procedure_win_rate(
        state.challenger_rewards,
        state.reference_rewards,
        proc,
        challenger_calibrated=calibrated[0],
        reference_calibrated=calibrated[1],
        draws=draws,
        resamples=resamples,
        level=level,
        seed=seed,
    )


def procedure_theory_curve(
    config: dict | None, spec: str, kl_max: float = 2.0, count: int = 60
) -> dict | None:
    """The theory's win rate under a procedure along β for a run's Φ (None without a theory curve).

    An optimal run with no recorded β gets the procedure's optimal envelope instead.
    """
    from infalign_core import procedures, theory

    proc = procedures.parse_procedure(spec)
    name = (config or {}).get("transform")
    if name == "optimal" and config.get("phi_beta") is None:
        kl, rate = procedures.optimal_frontier(proc, np.linspace(kl_max / 8, kl_max, 8))
        return {"label": f"optimal for {proc.label}", "kl": kl, "win_rate": rate}
    phi = run_transform(config)
    if phi is None:
        return None
    front = procedures.procedure_frontier(phi, theory.default_betas(count), proc)
    keep = front.kl <= kl_max
    return {"label": f"{phi.label}, {proc.label}", "kl": front.kl[keep], "win_rate": front.win_rate[keep]}


def procedure_theory_at_kl(config: dict | None, spec: str, kl: float) -> float | None:
    """The theory's win rate under a procedure for a run's Φ at the KL it measured (None without one)."""
    from infalign_core import procedures, theory

    if not np.isfinite(kl) or (config or {}).get("transform") not in ("identity", "log", "exp", "optimal"):
        return None
    if kl <= 0:
        return 0.5
    proc = procedures.parse_procedure(spec)
    try:
        if config.get("transform") == "optimal" and config.get("phi_beta") is None:
            return procedures.optimal_for_procedure(proc, kl=kl).win_rate
        phi = run_transform(config)
        return None if phi is None else procedures.procedure_win_rate(phi, theory.beta_for_kl(phi, kl), proc)
    except InfAlignError:
        return None


def arena_record(state: ArenaState, settings: dict, run_config: dict | None = None) -> dict:
    """One evaluation as JSON-ready data: settings, estimates, KL, the theory at that KL and the gaps."""
    estimate = state.estimate.as_dict() if state.estimate else {}
    kl = state.kl.as_dict() if state.kl else {}
    if state.calibrated_kl is not None:
        kl["calibrated"] = state.calibrated_kl
        if kl.get("k1", 0.0) > 0:
            kl["share_seen"] = state.calibrated_kl / kl["k1"]
    per_prompt = {
        name: np.round(v, 8).tolist()
        for name, v in (state.estimate.per_prompt if state.estimate else {}).items()
    }
    if state.kl is not None:
        per_prompt["kl_k1"] = np.round(
            (state.policy_logprobs - state.reference_logprobs).mean(axis=1), 8
        ).tolist()
    record = {
        "settings": dict(settings),
        "num_prompts_done": state.done,
        "win_rates": estimate,
        "kl": kl,
        "per_prompt": per_prompt,
        "seconds": round(state.seconds, 2),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if state.kl_note:
        record["kl_note"] = state.kl_note
    if run_config is not None:
        record["run"] = {
            key: run_config.get(key)
            for key in ("transform", "t", "mode", "n", "procedure", "beta", "kl_target", "seed", "phi_beta")
        }
        theory_point = theory_at_kl(run_config, state.n, kl.get("k1", float("nan")))
        if theory_point is not None:
            record["theory"] = theory_point
            record["gap_to_theory"] = {
                name: estimate[name] - theory_point[name] for name in METRICS if name in estimate
            }
        # The same theory at the KL the reward sees: where the run sits if no KL were wasted.
        seen_point = theory_at_kl(run_config, state.n, kl.get("calibrated", float("nan")))
        if seen_point is not None:
            record["theory_at_calibrated_kl"] = seen_point
    return record


def load_arena_results(run_dir: str | Path) -> list[dict]:
    """Every evaluation saved for a run ([] when none or unreadable)."""
    try:
        data = json.loads((Path(run_dir) / ARENA_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return []
    return data if isinstance(data, list) else []


def save_arena_result(run_dir: str | Path, record: dict) -> Path:
    """Store an evaluation in run_dir/arena.json (atomically), replacing one with the same settings."""
    path = Path(run_dir) / ARENA_FILE
    kept = [r for r in load_arena_results(run_dir) if r.get("settings") != record.get("settings")]
    tmp = path.with_name(f".{ARENA_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps([*kept, record], indent=1, allow_nan=True), encoding="utf-8")
    os.replace(tmp, path)
    return path


def find_arena_result(run_dir: str | Path, settings: dict) -> dict | None:
    """The saved evaluation with exactly these settings, if any."""
    return next((r for r in load_arena_results(run_dir) if r.get("settings") == settings), None)
