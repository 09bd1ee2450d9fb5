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

Everything here is numpy only; the arena that samples and scores lives in ``infalign_core.arena``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.special import gammaln

from infalign_core.errors import InfAlignError

MODES = ("best", "worst")


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
    return weighted_win_rates(
        a, b, order_statistic_weights(a.shape[1], n, mode), order_statistic_weights(b.shape[1], n, mode)
    )


def weighted_win_rates(challenger, reference, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Σ_i Σ_j p_i q_j [1{a_(i) > b_(j)} + ½·1{a_(i) = b_(j)}] per prompt, over each side's sorted rewards.

    p and q weight the challenger's and the reference's order statistics (each sums to 1):
    one N's order-statistic weights give the all-subsets estimator; a mixture of them gives
    the estimator for a mixture of procedures, since the win rate is bilinear in the two sides.
    """
    a, b = (
        np.sort(_as_rewards(challenger, "challenger"), axis=1),
        np.sort(_as_rewards(reference, "reference"), axis=1),
    )
    prompts, k_a = a.shape
    k_b = b.shape[1]
    q_cumulative = np.concatenate([[0.0], np.cumsum(q)])
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


def tie_share(challenger, reference) -> float:
    """Share of (challenger sample, reference sample) pairs of a prompt with equal rewards, averaged over prompts.

    Ties count ½ in every win rate; with a judge's integer scores they are common, so the share
    is shown beside its win rates. NaN (unscored) entries are left out of the pairs.
    """
    a, b = np.asarray(challenger, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    shares = []
    for x, y in zip(a, b):
        x, y = x[~np.isnan(x)], y[~np.isnan(y)]
        if x.size and y.size:
            shares.append(float(np.mean(x[:, None] == y[None, :])))
    return float(np.mean(shares)) if shares else float("nan")


def estimate_scored_win_rates(
    challenger, reference, n: int, *, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[WinRateEstimate, dict]:
    """``estimate_win_rates`` where NaN marks an unscored sample (a judge's unparseable answer).

    Unscored samples are left out, never counted as 0: each prompt is estimated from its scored
    samples (all-subsets, unbiased given them), and a prompt with fewer than N scored samples on
    either side is left out. Returns the estimate and {tie_share, unscored_share, prompts_left_out}.
    """
    n = _check_n(n)
    a, b = np.asarray(challenger, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0] or not a.size or not b.size:
        raise InfAlignError(
            f"challenger and reference rewards must be [prompts, samples] arrays over the same prompts, "
            f"got shapes {a.shape} and {b.shape}"
        )
    unscored = float(np.isnan(np.concatenate([a.ravel(), b.ravel()])).mean())
    extras = {"tie_share": tie_share(a, b), "unscored_share": unscored, "prompts_left_out": 0}
    if not unscored:
        return estimate_win_rates(a, b, n, resamples=resamples, level=level, seed=seed), extras
    rows = []
    for x, y in zip(a, b):
        x, y = x[~np.isnan(x)][None, :], y[~np.isnan(y)][None, :]
        if min(x.shape[1], y.shape[1]) < n:
            extras["prompts_left_out"] += 1
            continue
        rows.append(
            [
                per_prompt_win_rates(x, y, 1)[0],
                per_prompt_win_rates(x, y, n, "best")[0],
                per_prompt_win_rates(x, y, n, "worst")[0],
            ]
        )
    if not rows:
        raise InfAlignError(
            f"no prompt has N = {n} scored samples on both sides ({100 * unscored:.0f} % unscored): "
            "use a judge that follows the rubric's format, or raise K"
        )
    table = np.asarray(rows).T
    low, high = bootstrap_interval(table, resamples=resamples, level=level, seed=seed)
    fields = {}
    for i, name in enumerate(METRICS):
        fields[name] = float(table[i].mean())
        fields[f"{name}_ci_low"] = float(low[i])
        fields[f"{name}_ci_high"] = float(high[i])
    estimate = WinRateEstimate(
        n=n,
        num_prompts=table.shape[1],
        k_challenger=a.shape[1],
        k_reference=b.shape[1],
        level=float(level),
        per_prompt=dict(zip(METRICS, table)),
        **fields,
    )
    return estimate, extras


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


# --- any inference procedure (procedures.py) ---------------------------------------------------


@dataclass
class ProcedureEstimate:
    """A procedure's win rate of challenger over reference from K samples per side, with an interval.

    ``method`` says how: ``all-subsets`` (exact average over subsets, unbiased), ``truncated``
    (best-of-Poisson cut at K: ``truncated_mass`` = P(N > K) per side, |bias| ≤ ``bias_bound``)
    or ``monte carlo`` (``draws`` random ordered N-subsets per prompt and side).
    """

    spec: str
    method: str
    win_rate: float
    ci_low: float
    ci_high: float
    level: float
    num_prompts: int
    truncated_mass: float = 0.0
    bias_bound: float = 0.0
    draws: int = 0
    per_prompt: np.ndarray = field(default=None, repr=False)

    def as_dict(self) -> dict:
        """JSON-ready numbers (the per-prompt array left out)."""
        out = asdict(self)
        out.pop("per_prompt")
        return out


def procedure_side_weights(procedure, k: int) -> tuple[np.ndarray, float]:
    """Order-statistic weights over K sorted samples for a mixture of best-of-N's, and the mass cut at K.

    bon/won are one N; ``mix:P:N`` is p·best-of-N + (1 − p)·one sample; ``poisson:MU`` puts
    P(N = 1 + j) on best-of-(1 + j) for 1 + j ≤ K and its remaining mass on best-of-K.
    """
    kind = procedure.kind
    if kind in ("bon", "won"):
        return order_statistic_weights(k, procedure.n, "best" if kind == "bon" else "worst"), 0.0
    if kind == "mix":
        weights = (1.0 - procedure.p) * order_statistic_weights(k, 1)
        if procedure.p > 0:
            weights = weights + procedure.p * order_statistic_weights(k, procedure.n)
        return weights, 0.0
    if kind == "poisson":
        from scipy import stats

        ns = np.arange(1, k + 1)
        pmf = stats.poisson.pmf(ns - 1, procedure.mu)
        cut = float(max(0.0, 1.0 - pmf.sum()))
        pmf[-1] += cut  # the tail beyond K is scored as best-of-K; the bias bound accounts for it
        weights = sum(w * order_statistic_weights(k, int(n)) for n, w in zip(ns, pmf, strict=True) if w > 0)
        return np.asarray(weights), cut
    raise InfAlignError(f"{procedure.label} has no all-subsets estimator; it is estimated by Monte Carlo")


def _monte_carlo_picks(rewards: np.ndarray, calibrated: np.ndarray, procedure, draws: int, rng) -> np.ndarray:
    """The reward each of ``draws`` runs of soft best-of-N or rejection returns, per prompt: [P, draws]."""
    prompts, k = rewards.shape
    n = procedure.n
    # A random ordered N-subset of the K samples per draw: the first N of a random permutation.
    order = np.argsort(rng.random((prompts, draws, k)), axis=2)[:, :, :n]
    c = np.take_along_axis(np.broadcast_to(calibrated[:, None, :], (prompts, draws, k)), order, axis=2)
    r = np.take_along_axis(np.broadcast_to(rewards[:, None, :], (prompts, draws, k)), order, axis=2)
    if procedure.kind == "soft":
        logits = c / procedure.tau
        prob = np.exp(logits - logits.max(axis=2, keepdims=True))
        prob /= prob.sum(axis=2, keepdims=True)
        pick = (rng.random((prompts, draws, 1)) > np.cumsum(prob, axis=2)).sum(axis=2)
        pick = np.minimum(pick, n - 1)
    else:
        ok = c >= procedure.q
        pick = np.where(ok.any(axis=2), ok.argmax(axis=2), n - 1)
    return np.take_along_axis(r, pick[..., None], axis=2)[..., 0]


def estimate_procedure_win_rate(
    challenger,
    reference,
    procedure,
    *,
    challenger_calibrated=None,
    reference_calibrated=None,
    draws: int = 2000,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> ProcedureEstimate:
    """The procedure's win rate from K rewards per prompt and side (ties ½), with a bootstrap interval over prompts.

    Mixtures of best-of-N (bon, won, mix, poisson) use the all-subsets estimator with each
    side's own mixture of order-statistic weights (the win rate is bilinear in the two
    sides); soft best-of-N and rejection need the samples' calibrated rewards (their
    choice depends on C) and are estimated by Monte Carlo over random ordered N-subsets.
    """
    a, b = _as_rewards(challenger, "challenger"), _as_rewards(reference, "reference")
    if a.shape[0] != b.shape[0]:
        raise InfAlignError(
            f"the challenger has rewards for {a.shape[0]} prompts and the reference for {b.shape[0]}; "
            "both sides must answer the same prompts"
        )
    k = min(a.shape[1], b.shape[1])
    needs = procedure.n if procedure.kind != "poisson" else 1
    if needs > k:
        raise InfAlignError(
            f"{procedure.label} needs at least {needs} samples per prompt, but K = {k}; raise K"
        )
    truncated = bias = 0.0
    if procedure.kind in ("bon", "won", "mix", "poisson"):
        p, truncated = procedure_side_weights(procedure, a.shape[1])
        q, cut_b = procedure_side_weights(procedure, b.shape[1])
        truncated = max(truncated, cut_b)
        # Both sides' W differ from the untruncated one only when either side's N was cut.
        bias = 1.0 - (1.0 - truncated) ** 2
        per_prompt = weighted_win_rates(a, b, p, q)
        method, used = ("truncated" if truncated > 0 else "all-subsets"), 0
    elif procedure.kind in ("soft", "reject"):
        if challenger_calibrated is None or reference_calibrated is None:
            raise InfAlignError(
                f"{procedure.label} chooses by calibrated reward: pass both sides' calibrated rewards"
            )
        ca, cb = np.asarray(challenger_calibrated, np.float64), np.asarray(reference_calibrated, np.float64)
        if ca.shape != a.shape or cb.shape != b.shape:
            raise InfAlignError(
                "calibrated rewards must have the same [prompts, samples] shape as the rewards"
            )
        if int(draws) < 10:
            raise InfAlignError(f"use at least 10 Monte Carlo draws, got {draws}")
        rng = np.random.default_rng(seed)
        ours = _monte_carlo_picks(a, ca, procedure, int(draws), rng)
        theirs = _monte_carlo_picks(b, cb, procedure, int(draws), rng)
        per_prompt = ((ours > theirs) + 0.5 * (ours == theirs)).mean(axis=1)
        method, used = "monte carlo", int(draws)
    else:
        raise InfAlignError(
            f"{procedure.label}: the arena estimates bon, won, mix, poisson, soft and reject; "
            "a user's T(x) has theory numbers only"
        )
    low, high = bootstrap_interval(per_prompt, resamples=resamples, level=level, seed=seed)
    return ProcedureEstimate(
        spec=procedure.spec,
        method=method,
        win_rate=float(per_prompt.mean()),
        ci_low=float(low),
        ci_high=float(high),
        level=float(level),
        num_prompts=a.shape[0],
        truncated_mass=float(truncated),
        bias_bound=float(bias),
        draws=used,
        per_prompt=per_prompt,
    )


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
