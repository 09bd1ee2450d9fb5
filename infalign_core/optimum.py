"""The exact optimum π*(y|x) ∝ π_ref(y|x)·e^{Φ(C(x,y))/β}, as a yardstick and as a challenger.

THEORY.md, "Reaching the optimum". The optimum spends all of its KL on the calibrated reward,
so what it shows through a bank of m reference samples at a sequence KL is the most a trained
run at that KL can show: the yardstick for a run's reward-visible KL.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from infalign_core import theory
from infalign_core.arena import ArenaState
from infalign_core.arena_kl import reward_visible_kl
from infalign_core.errors import InfAlignError
from infalign_core.sampling_settings import DEFAULT_SAMPLING, SamplingSettings
from infalign_core.winrate import KLEstimate, estimate_scored_win_rates

CALIBRATED_TRANSFORMS = ("identity", "log", "exp", "optimal")


def run_phi_at_kl(config: dict | None, kl: float):
    """(Φ, β) of the exact optimum for a run's transform at sequence KL ``kl``; None for ``raw``.

    A run's recorded Φ (its t, or the optimal Φ it trained on) is tilted to spend ``kl``; an
    optimal run whose Φ was not recorded gets the optimal Φ for that KL, as the theory overlay does.
    """
    from infalign_core.arena_theory import run_transform
    from infalign_core.explorer import transform_at

    config = config or {}
    if config.get("transform") not in CALIBRATED_TRANSFORMS:
        return None
    phi = run_transform(config)
    if phi is not None:
        return phi, theory.beta_for_kl(phi, kl)
    if config.get("transform") != "optimal":
        return None
    return transform_at(
        transform="optimal",
        t=None,
        mode=config.get("mode") or "best",
        beta=None,
        kl=kl,
        n=int(config.get("n") or 4),
        procedure=config.get("procedure"),
    )


def optimum_visible_kl(config: dict | None, kl: float, m: int) -> float | None:
    """What the exact optimum for a run's Φ, at the run's sequence KL, shows through a bank of m.

    The rank-level KL of :func:`theory.rank_level_kl`: the most any estimate from ranks against
    m reference rewards can read for a policy at that KL. None where the run has no theory
    (``raw``) or the KL is out of the transform's reach; 0 at KL ≤ 0.
    """
    if kl is None or not np.isfinite(kl):
        return None
    m = theory.check_bank_size(m)
    if kl <= 0:
        return 0.0
    try:
        resolved = run_phi_at_kl(config, float(kl))
        if resolved is None:
            return None
        phi, beta = resolved
        return float(theory.rank_level_kl(phi, beta, m)[0])
    except InfAlignError:
        return None


def equivalent_kl(config: dict | None, visible_kl: float | None, kl: float, m: int) -> float | None:
    """The sequence KL at which the exact optimum for a run's Φ shows ``visible_kl`` through a bank of m.

    Where the run would sit on its theory curve if none of its KL were wasted: the optimum spends
    all its KL on the calibrated reward, so its KL is its continuous calibrated KL, while what a bank
    of m shows of it is less (``theory.rank_level_kl``). Φ is the run's at its sequence KL ``kl``.
    None without a theory or beyond the Φ's reach; 0 when nothing is seen.
    """
    from scipy import optimize

    if visible_kl is None or not np.isfinite(visible_kl):
        return None
    if visible_kl <= 0:
        return 0.0
    if kl is None or not np.isfinite(kl) or kl <= 0:
        return None
    m = theory.check_bank_size(m)
    try:
        resolved = run_phi_at_kl(config, float(kl))
    except InfAlignError:
        return None
    if resolved is None:
        return None
    phi = resolved[0]
    lo, hi = np.log(theory.BETA_RANGE[0]), np.log(theory.BETA_RANGE[1])

    def gap(log_beta: float) -> float:
        return float(theory.rank_level_kl(phi, np.exp(log_beta), m)[0]) - visible_kl

    try:
        if gap(lo) < 0 or gap(hi) > 0:
            return None
        beta = float(np.exp(optimize.brentq(gap, lo, hi, xtol=1e-6)))
        return float(theory.aligned_policy(phi, beta).kl[0])
    except (InfAlignError, ValueError):
        return None


def share_seen(visible_kl: float | None, config: dict | None, kl: float, m: int) -> float | None:
    """A run's reward-visible KL as a share of what the exact optimum shows through the same bank at its KL.

    1 means the run spends its KL where the reward looks as fully as the optimum does; the
    bank's own coarseness (m + 1 levels) cancels, unlike a share of the sequence KL.
    """
    ceiling = optimum_visible_kl(config, kl, m)
    if visible_kl is None or ceiling is None or ceiling <= 0 or not np.isfinite(visible_kl):
        return None
    return float(visible_kl) / ceiling


# --- sampling the optimum: tilted resampling of reference samples ------------------------------

DEFAULT_POOL = 512
MAX_POOL = 65_536
ESS_FLOOR = 64
"""Fewer effective samples per prompt than this and the resampled law is a handful of pool members."""
KL_TOLERANCE = 0.05
"""The pool's KL may fall this far (relative) below the theory's before M is called too small."""


@dataclass(frozen=True)
class OptimumSpec:
    """Which exact optimum: a transform as the ``theory`` command builds it, at a β or a KL budget."""

    transform: str  # identity, log, exp or optimal
    n: int = 4
    mode: str = "best"
    t: float | None = None  # exp only; None: the best t for N (or the procedure) at the KL budget
    procedure: str | None = None  # a procedure spec: optimal then means that procedure's optimum
    kl: float | None = None
    beta: float | None = None


@dataclass(frozen=True)
class ResolvedOptimum:
    """An optimum's Φ and β, with the theory's numbers for it (the M → ∞ limit of tilted resampling)."""

    spec: OptimumSpec
    phi: Callable[[np.ndarray], np.ndarray]
    beta: float
    t: float | None  # the exponential's t actually used
    mode: str
    theory: dict  # kl, beta, standard/bon/won win rates (+ procedure_win_rate with a procedure)

    @property
    def label(self) -> str:
        """'the exact optimum · exp (best-of-N, t=12.6) · 0.5 nats', for legends and tables."""
        name = self.spec.transform if self.t is None else f"exp ({self.mode}-of-N, t={self.t:.3g})"
        if self.spec.transform == "optimal":
            name = f"optimal for {self.spec.procedure or f'{self.mode}-of-{self.spec.n}'}"
        return f"the exact optimum · {name} · {self.theory['kl']:.3g} nats"

    def run_config(self, pool: int) -> dict:
        """The optimum described as a run config, so the arena's theory overlays and records take it."""
        return {
            "transform": self.spec.transform,
            "t": self.t,
            "mode": self.mode,
            "n": self.spec.n,
            "procedure": self.spec.procedure,
            "beta": self.beta,
            "kl_target": self.spec.kl,
            "phi_beta": self.beta if self.spec.transform == "optimal" else None,
            "optimum_pool": int(pool),
        }


def spec_for_run(config: dict | None, kl: float) -> OptimumSpec | None:
    """The exact optimum to set beside a run: its transform (its t, its procedure) at its measured KL.

    None for a run without a theory (``raw``). An optimal run is compared with the optimal Φ
    for its KL, as the theory overlay does.
    """
    config = config or {}
    if config.get("transform") not in CALIBRATED_TRANSFORMS or not np.isfinite(kl) or kl <= 0:
        return None
    return OptimumSpec(
        transform=config["transform"],
        n=int(config.get("n") or 4),
        mode=config.get("mode") or "best",
        t=float(config["t"]) if config["transform"] == "exp" and config.get("t") is not None else None,
        procedure=config.get("procedure"),
        kl=float(kl),
    )


def resolve_optimum(spec: OptimumSpec) -> ResolvedOptimum:
    """Φ and β of the optimum (β solved from the KL budget when one is given) and its exact theory."""
    from infalign_core import procedures
    from infalign_core.explorer import transform_at

    if spec.transform not in CALIBRATED_TRANSFORMS:
        raise InfAlignError(
            f"the exact optimum needs a calibrated transform ({', '.join(CALIBRATED_TRANSFORMS)}), got {spec.transform!r}"
        )
    if spec.t is not None and spec.transform != "exp":
        raise InfAlignError(f"t belongs to the exponential transform; drop it for {spec.transform}")
    phi, beta = transform_at(
        transform=spec.transform,
        t=spec.t,
        mode=spec.mode,
        beta=spec.beta,
        kl=spec.kl,
        n=spec.n,
        procedure=spec.procedure,
    )
    point = theory.evaluate(phi, beta, spec.n).as_dict()
    if spec.procedure is not None:
        point["procedure_win_rate"] = procedures.procedure_win_rate(
            phi, beta, procedures.parse_procedure(spec.procedure)
        )
    t = float(phi.t) if spec.transform == "exp" else None
    mode = phi.mode if spec.transform == "exp" else spec.mode
    return ResolvedOptimum(spec, phi, float(beta), t, mode, point)


def check_pool(pool) -> int:
    """Validate M, the reference samples drawn per prompt to resample from."""
    if isinstance(pool, bool) or not isinstance(pool, int | np.integer) or not 2 <= pool <= MAX_POOL:
        raise InfAlignError(
            f"the pool M must be an integer in [2, {MAX_POOL}] samples per prompt, got {pool!r}"
        )
    return int(pool)


def pool_calibrated(rewards) -> np.ndarray:
    """Each pool member's mid-rank among its own row of M rewards: (#below + ½ #equal, itself included) / M.

    Without ties a row's values are exactly (i − ½)/M, i = 1..M: uniform, mean ½.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    ranks = np.empty_like(rewards)
    for row, values in enumerate(rewards):  # sorting: M log M per prompt, not M²
        ordered = np.sort(values)
        below = np.searchsorted(ordered, values, side="left")
        ranks[row] = (below + 0.5 * (np.searchsorted(ordered, values, side="right") - below)) / values.size
    return ranks


def tilt_weights(calibrated, phi, beta: float) -> np.ndarray:
    """Self-normalised weights e^{Φ(C)/β}/Z per row (log-sum-exp, so no overflow at small β)."""
    with np.errstate(invalid="ignore", over="ignore"):
        log_w = np.asarray(phi(np.asarray(calibrated, dtype=np.float64)), dtype=np.float64) / beta
    if not np.all(np.isfinite(log_w) | (log_w == -np.inf)) or np.any(np.all(log_w == -np.inf, axis=-1)):
        raise InfAlignError("the transform gave NaN or +inf on the pool's calibrated rewards")
    log_w = log_w - log_w.max(axis=-1, keepdims=True)
    w = np.exp(log_w)
    return w / w.sum(axis=-1, keepdims=True)


def pool_kl(weights) -> np.ndarray:
    """KL of the resampled law against the M reference samples, per row: Σ w̄ log(M w̄)."""
    w = np.asarray(weights, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(w > 0, w * np.log(w * w.shape[-1]), 0.0)
    return terms.sum(axis=-1)


def effective_sample_size(weights) -> np.ndarray:
    """1/Σ w̄² per row: how many pool members the resampled law effectively draws on."""
    w = np.asarray(weights, dtype=np.float64)
    return 1.0 / np.sum(w * w, axis=-1)


def tilted_resample(pool_rewards, phi, beta: float, k: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """K draws per row from its M pool members with probability ∝ e^{Φ(C)/β}, C the mid-rank in the row.

    Returns (picks [rows, K] of pool indices, weights [rows, M]). As M grows the drawn law
    tends to π* ∝ π_ref·e^{Φ(C)/β}: a soft best-of-M, with the M samples as their own bank.
    """
    weights = tilt_weights(pool_calibrated(pool_rewards), phi, beta)
    picks = np.stack([rng.choice(weights.shape[1], size=int(k), p=w) for w in weights])
    return picks, weights


def pool_theory(phi, beta: float, pool: int) -> tuple[float, float]:
    """(KL, ESS) of tilted resampling from M untied samples, whose mid-ranks are exactly (i − ½)/M."""
    levels = (np.arange(int(pool)) + 0.5) / int(pool)
    w = tilt_weights(levels[None, :], phi, beta)
    return float(pool_kl(w)[0]), float(effective_sample_size(w)[0])


def pool_is_enough(phi, beta: float, pool: int, kl: float) -> bool:
    """Whether M untied samples give an ESS ≥ ESS_FLOOR and a KL within KL_TOLERANCE of the theory's."""
    pool_kl_value, ess = pool_theory(phi, beta, pool)
    return ess >= ESS_FLOOR and abs(pool_kl_value - kl) <= KL_TOLERANCE * kl


def pool_needed(phi, beta: float, kl: float) -> int | None:
    """The smallest M (64 · 2^j, up to MAX_POOL) whose tilted resampling is enough for this optimum; None if none is."""
    pool = ESS_FLOOR
    while pool <= MAX_POOL:
        if pool_is_enough(phi, beta, pool, kl):
            return pool
        pool *= 2
    return None


def ess_warning(resolved: ResolvedOptimum, pool: int, ess: float, kl: float) -> str:
    """A one-line warning when M is too small for the budget ('' when it is enough), naming an M that would do."""
    target = resolved.theory["kl"]
    if ess >= ESS_FLOOR and abs(kl - target) <= KL_TOLERANCE * target:
        return ""
    needed = pool_needed(resolved.phi, resolved.beta, target)
    advice = (
        f"a pool of M = {needed} per prompt would do"
        if needed is not None
        else f"no pool up to {MAX_POOL} is enough; lower the KL budget"
    )
    return (
        f"tilted resampling from M = {pool} reference samples per prompt is too coarse for {target:.3g} nats: "
        f"an effective sample size of {ess:.0f} (at least {ESS_FLOOR} wanted) and a KL of {kl:.3g} against "
        f"the theory's {target:.3g}; {advice}"
    )


@dataclass
class OptimumState(ArenaState):
    """An arena state whose challenger is the exact optimum, with its pool's effective sample sizes."""

    pool: int = DEFAULT_POOL
    ess: np.ndarray | None = None  # [prompts] effective sample size of each prompt's resampled law
    pool_kl: np.ndarray | None = None  # [prompts] its KL against the prompt's M reference samples
    warning: str = ""  # set when M is too small for the budget (``ess_warning``)


def run_optimum(
    reference,
    reward_fn,
    prompts: Sequence[str],
    resolved: ResolvedOptimum,
    *,
    n: int,
    k: int,
    pool: int = DEFAULT_POOL,
    sampling: SamplingSettings = DEFAULT_SAMPLING,
    prompts_per_batch: int = 8,
    resamples: int = 2000,
    level: float = 0.95,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[OptimumState]:
    """The exact optimum as an arena challenger, by tilted resampling; yields the running state per batch.

    For each prompt: draw M reference samples and score them, calibrate each by its mid-rank
    among the M, and draw the challenger's K samples from them with self-normalised weights
    e^{Φ(C)/β}. The reference side is K fresh reference samples from the arena's own stream (the
    same draws as ``run_arena`` at this seed). The KL is exact for the resampled law against the
    M samples (k1 = k3 = Σ w̄ log(M w̄), errors over prompts); each sample's log π/π_ref is
    log(M w̄) of the pool member it drew.
    """
    from infalign_core.arena import _by_prompt, _stream_seed, check_arena
    from infalign_core.sampling import sample

    n, prompts = check_arena(n, k, prompts, prompts_per_batch)
    pool = check_pool(pool)
    seed = sampling.seed
    k = int(k)
    started = time.perf_counter()
    empty = np.zeros((0, k))
    state = OptimumState([], empty, empty, [], [], empty, empty, len(prompts), n, pool=pool)
    ess_all, kl_all = np.zeros(0), np.zeros(0)
    for batch, lo in enumerate(range(0, len(prompts), int(prompts_per_batch))):
        if should_stop is not None and state.done and should_stop():
            break
        chunk = prompts[lo : lo + int(prompts_per_batch)]
        theirs = sample(reference, chunk, k, dataclasses.replace(sampling, seed=_stream_seed(seed, batch, 1)))
        their_rewards = reward_fn.score(theirs.row_prompts(), theirs.responses).reshape(len(chunk), k)
        drawn = sample(
            reference, chunk, pool, dataclasses.replace(sampling, seed=_stream_seed(seed, batch, 2))
        )
        pool_rewards = np.asarray(reward_fn.score(drawn.row_prompts(), drawn.responses), dtype=np.float64)
        pool_rewards = pool_rewards.reshape(len(chunk), pool)
        if np.isnan(pool_rewards).any() or np.isnan(np.asarray(their_rewards, dtype=np.float64)).any():
            raise InfAlignError(
                "the exact optimum ranks every pool sample, but the reward left some unscored (NaN); "
                "use a reward that scores every response"
            )
        rng = np.random.default_rng(_stream_seed(seed, batch, 3))
        picks, weights = tilted_resample(pool_rewards, resolved.phi, resolved.beta, k, rng)
        rows = np.arange(len(chunk))[:, None]
        our_rewards = pool_rewards[rows, picks]
        our_responses = [[drawn.responses[r * pool + i] for i in row] for r, row in enumerate(picks)]
        log_ratio = np.log(weights[rows, picks] * pool)
        ess_all = np.concatenate([ess_all, effective_sample_size(weights)])
        kl_all = np.concatenate([kl_all, pool_kl(weights)])
        state = OptimumState(
            prompts=state.prompts + chunk,
            challenger_rewards=np.vstack([state.challenger_rewards, our_rewards]),
            reference_rewards=np.vstack([state.reference_rewards, their_rewards]),
            challenger_responses=state.challenger_responses + our_responses,
            reference_responses=state.reference_responses + _by_prompt(theirs.responses, k),
            policy_logprobs=np.vstack([state.policy_logprobs, log_ratio]),
            reference_logprobs=np.vstack([state.reference_logprobs, np.zeros_like(log_ratio)]),
            total_prompts=len(prompts),
            n=n,
            pool=pool,
            ess=ess_all,
            pool_kl=kl_all,
        )
        state.estimate, extras = estimate_scored_win_rates(
            state.challenger_rewards, state.reference_rewards, n, resamples=resamples, level=level, seed=seed
        )
        state.tie_share = extras["tie_share"]
        state.calibrated_kl = reward_visible_kl(state.challenger_rewards, state.reference_rewards)
        stderr = float(kl_all.std(ddof=1) / np.sqrt(kl_all.size)) if kl_all.size > 1 else 0.0
        mean_kl = float(kl_all.mean())
        state.kl = KLEstimate(
            mean_kl, stderr, mean_kl, stderr, int(state.challenger_rewards.size), state.done
        )
        state.warning = ess_warning(resolved, pool, float(ess_all.mean()), mean_kl)
        state.seconds = time.perf_counter() - started
        yield state


def evaluate_optimum(
    reference, reward_fn, prompts: Sequence[str], resolved: ResolvedOptimum, **kwargs
) -> OptimumState:
    """Run the optimum's arena to the end and return its final state (``run_optimum``'s arguments)."""
    last = None
    for last in run_optimum(reference, reward_fn, prompts, resolved, **kwargs):  # noqa: B007
        pass
    return last
