"""Win rates of a policy against the reference under best-of-N and worst-of-N decoding, from samples.

The arena draws K ≥ N responses per prompt from each side and scores them. The win rate of
best-of-N (BoN) against best-of-N is E[1{max of N challenger rewards > max of N reference
rewards} + ½·1{equal}]. Picking one N-subset per prompt wastes samples; averaging over *all*
N-subsets of both sides is the unbiased estimator with the least variance, and it needs no
enumeration: the maximum of a uniformly random N-subset of K sorted values is the j-th smallest
with probability

    P(max = x_(j)) = C(j−1, N−1) / C(K, N),      P(min = x_(j)) = C(K−j, N−1) / C(K, N),

so per prompt the estimate is Σ_i Σ_j p_i q_j [1{a_(i) > b_(j)} + ½·1{a_(i) = b_(j)}], which a
searchsorted of one side's sorted values into the other's cumulative weights computes for all
prompts at once. N = 1 gives the standard win rate. Intervals come from a bootstrap over prompts
(the unit that is sampled independently). The KL of the challenger against the reference is
measured on the challenger's own samples with the k1 and k3 estimators.

Everything here but ``run_arena``, ``measure_kl`` and ``load_challenger`` is numpy only.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.special import gammaln

from infalign_core.errors import InfAlignError

MODES = ("best", "worst")
ARENA_FILE = "arena.json"
RUN_CONFIG_FILE = "config.json"


# --- the estimators -----------------------------------------------------------------------------


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise InfAlignError(f"N must be a whole number ≥ 1, got {n!r}")
    if n < 1:
        raise InfAlignError(f"N must be at least 1 (best-of-1 is the standard win rate), got {n}")
    return int(n)


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InfAlignError(f"mode must be 'best' or 'worst', got {mode!r}")
    return mode


def _log_binomial(a: np.ndarray, b: int) -> np.ndarray:
    """log C(a, b) for a ≥ b ≥ 0 (elementwise in a)."""
    a = np.asarray(a, dtype=np.float64)
    return gammaln(a + 1.0) - gammaln(b + 1.0) - gammaln(a - b + 1.0)


def order_statistic_weights(k: int, n: int, mode: str = "best") -> np.ndarray:
    """P(the max (best) or min (worst) of a random N-subset of K values is the j-th smallest), j = 1..K."""
    k, n, mode = int(k), _check_n(n), _check_mode(mode)
    if n > k:
        raise InfAlignError(f"N = {n} needs at least N samples per prompt, but K = {k}; raise K or lower N")
    j = np.arange(1, k + 1)
    weights = np.zeros(k)
    ok = j >= n
    weights[ok] = np.exp(_log_binomial(j[ok] - 1, n - 1) - _log_binomial(k, n))
    weights /= weights.sum()  # exact up to rounding; renormalised so the weights sum to 1
    return weights if mode == "best" else weights[::-1].copy()


def _as_rewards(rewards, name: str) -> np.ndarray:
    """A [P, K] float64 array of rewards, or an InfAlignError saying what is wrong with it."""
    array = np.asarray(rewards, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise InfAlignError(
            f"{name} rewards must be a [prompts, samples] array with at least one of each, got shape {array.shape}"
        )
    if np.isnan(array).any():
        rows = np.flatnonzero(np.isnan(array).any(axis=1))
        raise InfAlignError(
            f"{name} rewards contain NaN (prompt rows {rows[:5].tolist()}); fix or drop those samples first"
        )
    return array


def check_rewards(challenger, reference, n: int = 1) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate a pair of [P, K] reward arrays (same P; K ≥ N on both sides); returns them as float64."""
    n = _check_n(n)
    a, b = _as_rewards(challenger, "challenger"), _as_rewards(reference, "reference")
    if a.shape[0] != b.shape[0]:
        raise InfAlignError(
            f"the challenger has rewards for {a.shape[0]} prompts and the reference for {b.shape[0]}; "
            "both sides must answer the same prompts"
        )
    k = min(a.shape[1], b.shape[1])
    if n > k:
        raise InfAlignError(
            f"N = {n} is more than the K = {k} samples per prompt; best-of-N needs K ≥ N (raise K or lower N)"
        )
    return a, b, n


def per_prompt_win_rates(challenger, reference, n: int = 1, mode: str = "best") -> np.ndarray:
    """Unbiased best-of-N (or worst-of-N) win rate of challenger over reference, one per prompt, ties ½.

    ``challenger`` is [P, K_a], ``reference`` [P, K_b] (K ≥ N each); the result averages over all
    N-subsets of both sides exactly, through the order statistics' weights.
    """
    a, b, n = check_rewards(challenger, reference, n)
    mode = _check_mode(mode)
    prompts, k_a = a.shape
    k_b = b.shape[1]
    a, b = np.sort(a, axis=1), np.sort(b, axis=1)
    p = order_statistic_weights(k_a, n, mode)
    q_cumulative = np.concatenate([[0.0], np.cumsum(order_statistic_weights(k_b, n, mode))])
    # Dense ranks over all values make equal rewards equal integers; offsetting each prompt's ranks
    # by its row puts every prompt in its own interval, so one searchsorted serves all prompts.
    values, inverse = np.unique(np.concatenate([a.ravel(), b.ravel()]), return_inverse=True)
    span = values.size + 1
    offset = np.arange(prompts, dtype=np.int64)[:, None] * span
    keys_a = (inverse[: a.size].reshape(a.shape) + offset).ravel()
    keys_b = (inverse[a.size :].reshape(b.shape) + offset).ravel()
    start = np.repeat(np.arange(prompts, dtype=np.int64) * k_b, k_a)
    below = q_cumulative[np.searchsorted(keys_b, keys_a, side="left") - start]
    at_or_below = q_cumulative[np.searchsorted(keys_b, keys_a, side="right") - start]
    beats = (0.5 * (below + at_or_below)).reshape(prompts, k_a)
    # Rounded at 1e-12 (far below any sampling error) so that sure wins and all-tie prompts give
    # exactly 1 and ½ rather than 1 − 2⁻⁵² from the weights' rounding.
    return np.clip(np.round(beats @ p, 12), 0.0, 1.0)


def win_rate(challenger, reference, n: int = 1, mode: str = "best") -> float:
    """The unbiased best-of-N (or worst-of-N) win rate averaged over prompts (N = 1: standard)."""
    return float(per_prompt_win_rates(challenger, reference, n, mode).mean())


def naive_per_prompt_win_rates(
    challenger, reference, n: int = 1, mode: str = "best", seed: int = 0
) -> np.ndarray:
    """The naive estimate: one random N-subset per prompt from each side, its max (min) compared, ties ½.

    Unbiased too, but it throws away the other subsets, so its variance is larger.
    """
    a, b, n = check_rewards(challenger, reference, n)
    mode = _check_mode(mode)
    rng = np.random.default_rng(seed)

    def pick(x: np.ndarray) -> np.ndarray:
        """The max (min) of one uniformly random N-subset per row."""
        subset = np.argsort(rng.random(x.shape), axis=1)[:, :n]
        chosen = np.take_along_axis(x, subset, axis=1)
        return chosen.max(axis=1) if mode == "best" else chosen.min(axis=1)

    ours, theirs = pick(a), pick(b)
    return (ours > theirs) + 0.5 * (ours == theirs)


def bootstrap_interval(
    per_prompt, *, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of the mean over prompts (the last axis), same resamples for every row.

    ``per_prompt`` is [..., P]; sharing the resampled prompts across rows makes differences of
    rows paired. Returns (low, high) with the leading shape.
    """
    values = np.asarray(per_prompt, dtype=np.float64)
    if values.ndim < 1 or values.shape[-1] < 1:
        raise InfAlignError("the bootstrap needs at least one prompt")
    if not 0 < level < 1:
        raise InfAlignError(f"the interval's level must be in (0, 1), got {level}")
    if int(resamples) < 10:
        raise InfAlignError(f"use at least 10 bootstrap resamples, got {resamples}")
    prompts = values.shape[-1]
    rng = np.random.default_rng(seed)
    # Each resample is a multinomial count vector over prompts: its mean is one matrix product.
    counts = rng.multinomial(prompts, np.full(prompts, 1.0 / prompts), size=int(resamples))
    means = values @ counts.T.astype(np.float64) / prompts
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2], axis=-1)
    return low, high


@dataclass
class WinRateEstimate:
    """Standard, best-of-N and worst-of-N win rates of a challenger against the reference, with intervals."""

    n: int
    num_prompts: int
    k_challenger: int
    k_reference: int
    level: float
    standard_win_rate: float
    standard_win_rate_ci_low: float
    standard_win_rate_ci_high: float
    bon_win_rate: float
    bon_win_rate_ci_low: float
    bon_win_rate_ci_high: float
    won_win_rate: float
    won_win_rate_ci_low: float
    won_win_rate_ci_high: float
    per_prompt: dict = field(default_factory=dict, repr=False)  # name → [P] array, for paired comparisons

    def as_dict(self) -> dict:
        """The estimate as plain JSON-ready numbers (per-prompt arrays left out)."""
        out = asdict(self)
        out.pop("per_prompt")
        return out


METRICS = ("standard_win_rate", "bon_win_rate", "won_win_rate")


def estimate_win_rates(
    challenger,
    reference,
    n: int,
    *,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> WinRateEstimate:
    """All three win rates (unbiased, ties ½) with percentile-bootstrap intervals over prompts."""
    a, b, n = check_rewards(challenger, reference, n)
    rows = np.stack(
        [
            per_prompt_win_rates(a, b, 1),
            per_prompt_win_rates(a, b, n, "best"),
            per_prompt_win_rates(a, b, n, "worst"),
        ]
    )
    low, high = bootstrap_interval(rows, resamples=resamples, level=level, seed=seed)
    means = rows.mean(axis=1)
    fields = {}
    for i, name in enumerate(METRICS):
        fields[name] = float(means[i])
        fields[f"{name}_ci_low"] = float(low[i])
        fields[f"{name}_ci_high"] = float(high[i])
    return WinRateEstimate(
        n=n,
        num_prompts=a.shape[0],
        k_challenger=a.shape[1],
        k_reference=b.shape[1],
        level=float(level),
        per_prompt=dict(zip(METRICS, rows)),
        **fields,
    )


def paired_difference(
    first, second, *, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of first − second over prompts with a paired bootstrap interval ([P] or [runs, P] each, averaged)."""
    first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if first.shape != second.shape:
        raise InfAlignError(f"paired values need the same shape, got {first.shape} and {second.shape}")
    diff = (first - second).reshape(-1, first.shape[-1]).mean(axis=0)
    low, high = bootstrap_interval(diff, resamples=resamples, level=level, seed=seed)
    return float(diff.mean()), float(low), float(high)


# --- KL of the challenger against the reference -------------------------------------------------


@dataclass
class KLEstimate:
    """KL(π‖π_ref) in nats from π's samples: k1 = E[log π/π_ref], k3 = E[(r − 1) − log r], r = π_ref/π."""

    k1: float
    k1_stderr: float
    k3: float
    k3_stderr: float
    num_samples: int
    num_prompts: int

    def as_dict(self) -> dict:
        """Plain numbers."""
        return asdict(self)


def kl_from_logprobs(policy_logprobs, reference_logprobs, prompt_index=None) -> KLEstimate:
    """k1 and k3 with standard errors from per-sample sequence log-probs under π and π_ref.

    Samples of one prompt are not independent draws of the KL (they share the prompt), so with
    ``prompt_index`` the errors come from the spread of per-prompt means.
    """
    log_pi = np.asarray(policy_logprobs, dtype=np.float64).ravel()
    log_ref = np.asarray(reference_logprobs, dtype=np.float64).ravel()
    if log_pi.shape != log_ref.shape or log_pi.size == 0:
        raise InfAlignError(
            "KL needs one policy and one reference log-prob per sample, and at least one sample"
        )
    if not (np.isfinite(log_pi).all() and np.isfinite(log_ref).all()):
        raise InfAlignError(
            "a sample has a non-finite log-probability (the reference gives it probability 0?); "
            "KL is infinite for such a policy"
        )
    log_ratio = log_pi - log_ref
    # (r − 1) − log r with log r = −log_ratio; clipped so an extreme ratio stays finite.
    k3 = np.expm1(np.minimum(-log_ratio, 700.0)) + log_ratio
    if prompt_index is None:
        groups = np.arange(log_ratio.size)
    else:
        groups = np.unique(np.asarray(prompt_index).ravel(), return_inverse=True)[1]
        if groups.size != log_ratio.size:
            raise InfAlignError("prompt_index needs one entry per sample")
    counts = np.bincount(groups)

    def mean_and_stderr(values: np.ndarray) -> tuple[float, float]:
        """Mean of per-prompt means and its standard error across prompts."""
        per_group = np.bincount(groups, weights=values) / counts
        if per_group.size < 2:
            return float(per_group.mean()), float("nan")
        return float(per_group.mean()), float(per_group.std(ddof=1) / np.sqrt(per_group.size))

    k1_mean, k1_se = mean_and_stderr(log_ratio)
    k3_mean, k3_se = mean_and_stderr(k3)
    return KLEstimate(k1_mean, k1_se, k3_mean, k3_se, int(log_ratio.size), int(counts.size))


def _same_tokenizer(first, second) -> bool:
    if first is second:
        return True
    try:
        return len(first) == len(second) and first.get_vocab() == second.get_vocab()
    except (AttributeError, TypeError):
        return False


def sample_logprobs(policy, reference, samples, *, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """log π(y|x) and log π_ref(y|x) of every sampled response (EOS included where it was emitted)."""
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
            chat=getattr(policy, "chat", None),  # both sides see the prompt as the policy did
        )
        out.append(logp.double().cpu().numpy())
    return out[0], out[-1]


def measure_kl(policy, reference, samples, *, batch_size: int = 64) -> KLEstimate:
    """KL(π‖π_ref) of a loaded policy against a loaded reference, on samples drawn from the policy."""
    log_pi, log_ref = sample_logprobs(policy, reference, samples, batch_size=batch_size)
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
    path = Path(os.path.expanduser(text))
    if not path.exists() and "/" not in text:
        from infalign_core.runs import default_runs_root

        candidate = Path(runs_root) if runs_root is not None else default_runs_root()
        if (candidate / text / RUN_CONFIG_FILE).is_file():
            path = candidate / text
    if path.is_dir():
        run_dir = path if _run_config(path) is not None else None
        if run_dir is None and _run_config(path.parent) is not None:
            return ChallengerSource(
                str(path), f"run {path.parent.name} ({path.name})", path.parent, _run_config(path.parent)
            )
        if run_dir is not None:
            from infalign_core.ctrl import checkpoint_path

            checkpoint = checkpoint_path(run_dir)
            config = _run_config(run_dir)
            if checkpoint is None:
                raise InfAlignError(
                    f"run {run_dir.name} has no checkpoint yet (one is written every "
                    f"{config.get('checkpoint_every', '?')} steps and at the end); wait for it or pick another run"
                )
            return ChallengerSource(str(checkpoint), f"run {run_dir.name}", run_dir, config)
    return ChallengerSource(text, text)


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
    seed: int = 0,
    prompts_per_batch: int = 8,
    resamples: int = 2000,
    level: float = 0.95,
    with_kl: bool = True,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[ArenaState]:
    """Sample K responses per prompt from both policies a batch of prompts at a time; yield the running state.

    ``challenger`` and ``reference`` are LoadedPolicy objects, ``reward_fn`` a RewardFunction.
    Estimates are recomputed on all prompts seen after each batch, so a caller can draw them converging.
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
    started = time.perf_counter()
    empty = np.zeros((0, int(k)))
    state = ArenaState([], empty, empty, [], [], empty, empty, len(prompts), n)
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
                seed=_stream_seed(seed, batch, side),
            )
            rewards = reward_fn.score(samples.row_prompts(), samples.responses).reshape(len(chunk), int(k))
            draws.append((samples, rewards))
        (ours, our_rewards), (theirs, their_rewards) = draws
        if with_kl:
            log_pi, log_ref = sample_logprobs(challenger, reference, ours)
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
        )
        state.estimate = estimate_win_rates(
            state.challenger_rewards, state.reference_rewards, n, resamples=resamples, level=level, seed=seed
        )
        if with_kl:
            rows = np.repeat(np.arange(state.done), int(k))
            state.kl = kl_from_logprobs(state.policy_logprobs, state.reference_logprobs, rows)
        state.seconds = time.perf_counter() - started
        yield state


def _by_prompt(responses: Sequence[str], k: int) -> list[list[str]]:
    return [list(responses[i : i + k]) for i in range(0, len(responses), k)]


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
    """The closed-form Φ of a run's config, None for ``raw`` (no theory curve) and for ``optimal``."""
    from infalign_core.transforms import Transform

    name = (config or {}).get("transform")
    if name in ("identity", "log"):
        return Transform(name)
    if name == "exp" and config.get("t") is not None:
        return Transform("exp", float(config["t"]), config.get("mode", "best"))
    return None


def theory_curve(config: dict | None, n: int, kl_max: float = 2.0, count: int = 60) -> dict | None:
    """The theory's KL, standard, best-of-N and worst-of-N win rates along β for a run's transform and N.

    None when the run has no theory curve (``raw`` is a prompt-dependent transform).
    """
    from infalign_core import theory

    name = (config or {}).get("transform")
    if name == "optimal":
        from infalign_core import optimal

        points = [
            theory.evaluate(phi, phi.beta, n)
            for phi in optimal.optimal_family(n, config.get("mode", "best"), kl_max, count // 4)
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
        if name == "optimal":
            from infalign_core.optimal import optimal_transform_for_kl

            phi = optimal_transform_for_kl(n, kl, config.get("mode", "best"))
            return theory.evaluate(phi, phi.beta, n).as_dict()
        phi = run_transform(config)
        if phi is None:
            return None
        return theory.evaluate(phi, theory.beta_for_kl(phi, kl), n).as_dict()
    except InfAlignError:
        return None


def arena_record(state: ArenaState, settings: dict, run_config: dict | None = None) -> dict:
    """One evaluation as JSON-ready data: settings, estimates, KL, the theory at that KL and the gaps."""
    estimate = state.estimate.as_dict() if state.estimate else {}
    kl = state.kl.as_dict() if state.kl else {}
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
    if run_config is not None:
        record["run"] = {
            key: run_config.get(key) for key in ("transform", "t", "mode", "n", "beta", "kl_target", "seed")
        }
        theory_point = theory_at_kl(run_config, state.n, kl.get("k1", float("nan")))
        if theory_point is not None:
            record["theory"] = theory_point
            record["gap_to_theory"] = {
                name: estimate[name] - theory_point[name] for name in METRICS if name in estimate
            }
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
