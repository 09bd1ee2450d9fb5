"""Calibrated-space analytics: KL and win rates of the KL-regularised optimum, exactly.

For a transform Φ and β > 0 (λ = 1/β), the optimum of E[Φ(C)] − β·KL(π‖π_ref) is
π ∝ π_ref·e^{λΦ(C)}, so the calibrated reward u = C(x, y) of its samples has density

    g(u) = e^{λΦ(u)} / Z  on [0, 1],   G(u) = ∫_0^u g,

whatever the prompt, base model or reward model (THEORY.md). Then

    KL(π‖π_ref)        = ∫ g log g
    standard win rate  = ∫ u g(u) du
    best-of-N win rate = 1 − ∫ G(u)^N · N u^{N−1} du      (max of N vs max of N)
    worst-of-N win rate = ∫ (1 − G(u))^N · N (1 − u)^{N−1} du   (min of N vs min of N)

Numerics. The integrands can be extremely peaked (β = 1e-3 puts the mass within 1e-3
of u = 1; t = 500 or N = 1024 within 1/500 or 1/1024), so a uniform grid would need
millions of points. Instead [0, 1] is cut into panels whose breakpoints follow the
integrand: geometric towards both ends (for log u and u^λ singularities), at every
unit step of λΦ below its maximum for the λ values in play (so e^{λΦ} changes by a
bounded factor across a panel), and at steps of 1/(N − 1) near the ends for the order
statistics. Each panel carries a Gauss–Legendre rule and its spectral partial-integral
matrix, which gives the CDF G (and 1 − G, integrated from the right so it keeps its
relative accuracy) at every node with the same order of accuracy. The density is
normalised in log space (log-sum-exp), so nothing overflows for t up to 500 and β
down to 1e-3. All β of a sweep share one grid and are evaluated in one array pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property, lru_cache

import numpy as np
from numpy.polynomial import legendre
from scipy import optimize, special

from infalign_core.checks import BETA_RANGE as BETA_RANGE
from infalign_core.checks import MAX_N as MAX_N
from infalign_core.checks import check_beta as _check_beta
from infalign_core.checks import check_n as check_n
from infalign_core.errors import InfAlignError
from infalign_core.transforms import MAX_T, Transform, check_mode
from infalign_core.transforms import rounded_t as rounded_t
from infalign_core.transforms import t_label as t_label

_GAUSS_ORDER = 8
# Step in λΦ between breakpoints, and how far below the maximum they go: e^{-40} of the
# peak density is far below the 1e-6 accuracy target.
_LEVEL_STEP = 2.0
_LEVEL_DEPTH = 40.0

Phi = Callable[[np.ndarray], np.ndarray]


@lru_cache(maxsize=4)
def _gauss_panel(order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nodes, weights and partial-integral matrix S of Gauss–Legendre on [−1, 1].

    S[i, j] = ∫_{−1}^{x_i} ℓ_j(s) ds for the Lagrange basis ℓ_j on the nodes, built as
    W·V⁻¹ with V[i, k] = P_k(x_i) and W[i, k] = ∫_{−1}^{x_i} P_k, using
    ∫ P_k = (P_{k+1} − P_{k−1})/(2k + 1).
    """
    x, w = legendre.leggauss(order)
    vander = legendre.legvander(x, order)  # P_0..P_order at the nodes
    integral = np.empty((order, order))
    integral[:, 0] = x + 1.0
    for k in range(1, order):
        integral[:, k] = (vander[:, k + 1] - vander[:, k - 1]) / (2 * k + 1)
    s = integral @ np.linalg.inv(vander[:, :order])
    return x, w, s


@dataclass(frozen=True)
class Grid:
    """Panel Gauss–Legendre quadrature on [0, 1] with cumulative integrals at the nodes."""

    u: np.ndarray  # (K, p) nodes
    weights: np.ndarray  # (K, p) quadrature weights
    half: np.ndarray  # (K, 1) half-widths of the panels

    def integrate(self, f: np.ndarray) -> np.ndarray:
        """∫_0^1 f, for f sampled at the nodes (leading axes are batch axes)."""
        return np.einsum("...kp,kp->...", f, self.weights)

    def cumulative(self, f: np.ndarray) -> np.ndarray:
        """∫_0^{u_i} f at every node."""
        _, w, s = _gauss_panel(self.u.shape[1])
        panel = np.einsum("...kp,p->...k", f, w) * self.half[:, 0]
        before = np.cumsum(panel, axis=-1) - panel
        return before[..., None] + self.half * (f @ s.T)

    def cumulative_right(self, f: np.ndarray) -> np.ndarray:
        """∫_{u_i}^1 f at every node, summed from the right so small tails stay accurate."""
        _, w, s = _gauss_panel(self.u.shape[1])
        panel = np.einsum("...kp,p->...k", f, w) * self.half[:, 0]
        after = np.cumsum(panel[..., ::-1], axis=-1)[..., ::-1] - panel
        return after[..., None] + self.half * (f @ (w[None, :] - s).T)


def _monotone_inverse(levels: np.ndarray, values: np.ndarray, points: np.ndarray) -> np.ndarray:
    """u at which a nondecreasing sampled function reaches each level (linear interpolation)."""
    finite = np.isfinite(values)
    values, points = np.maximum.accumulate(values[finite]), points[finite]
    inside = (levels > values[0]) & (levels < values[-1])
    return np.interp(levels[inside], values, points)


def make_grid(
    phi: Phi, lambdas: Sequence[float], ns: Sequence[int] = (1,), breaks: Sequence[float] = ()
) -> Grid:
    """Build a grid that resolves e^{λΦ} for every λ given and the order statistics for every N.

    ``breaks`` are extra panel edges, for integrands with a kink or jump there (a threshold).
    """
    x, w, _ = _gauss_panel(_GAUSS_ORDER)
    tiny = 10.0 ** -np.arange(1, 16)
    points = [np.linspace(0.0, 1.0, 33), tiny, 1.0 - tiny, np.asarray(breaks, dtype=np.float64)]
    probe = np.unique(
        np.concatenate([np.linspace(0.0, 1.0, 4097), tiny, 1.0 - tiny, np.geomspace(1e-15, 1, 200)])
    )
    probe = np.unique(np.concatenate([probe, 1.0 - probe]))
    with np.errstate(invalid="ignore", over="ignore"):
        values = np.asarray(phi(probe), dtype=np.float64)
    steps = np.arange(1.0, _LEVEL_DEPTH / _LEVEL_STEP + 1.0) * _LEVEL_STEP
    for lam in np.atleast_1d(np.asarray(lambdas, dtype=np.float64)):
        scaled = lam * values
        points.append(_monotone_inverse(scaled[-1] - steps, scaled, probe))
    for n in ns:
        if n > 1:
            near = np.geomspace(0.02, 80.0, 30) / (n - 1)
            near = near[near < 0.5]
            points += [near, 1.0 - near]
    edges = np.unique(np.clip(np.concatenate(points), 0.0, 1.0))
    edges = edges[np.concatenate([[True], np.diff(edges) > 1e-16])]
    if edges[-1] < 1.0:
        edges = np.append(edges, 1.0)
    edges[0], edges[-1] = 0.0, 1.0
    mid = 0.5 * (edges[1:] + edges[:-1])[:, None]
    half = 0.5 * np.diff(edges)[:, None]
    return Grid(u=mid + half * x[None, :], weights=half * w[None, :], half=half)


@dataclass(frozen=True)
class AlignedPolicy:
    """The aligned policy's calibrated-reward distribution for one or more β (leading axis)."""

    beta: np.ndarray  # (B,)
    grid: Grid
    log_density: np.ndarray  # (B, K, p), normalised: ∫ e^{log_density} = 1

    @cached_property
    def density(self) -> np.ndarray:
        """g at the grid nodes."""
        return np.exp(self.log_density)

    @cached_property
    def cdf(self) -> np.ndarray:
        """G at the grid nodes."""
        return np.clip(self.grid.cumulative(self.density), 0.0, 1.0)

    @cached_property
    def survival(self) -> np.ndarray:
        """1 − G at the grid nodes, accurate in the upper tail."""
        return np.clip(self.grid.cumulative_right(self.density), 0.0, 1.0)

    @cached_property
    def kl(self) -> np.ndarray:
        """KL(π‖π_ref) = ∫ g log g, in nats."""
        # g log g -> 0 where g underflows to 0 (log_density is then very negative, not NaN).
        return np.maximum(self.grid.integrate(self.density * self.log_density), 0.0)

    @cached_property
    def standard_win_rate(self) -> np.ndarray:
        """W(π ≻ π_ref) = ∫ u g(u) du."""
        return self.grid.integrate(self.grid.u * self.density)

    def bon_win_rate(self, n: int) -> np.ndarray:
        """Best-of-N of π against best-of-N of π_ref: 1 − ∫ G^N N u^{N−1} du."""
        n = check_n(n)
        reference_max_density = n * np.exp(special.xlogy(n - 1, self.grid.u))
        return np.clip(1.0 - self.grid.integrate(self.cdf**n * reference_max_density), 0.0, 1.0)

    def won_win_rate(self, n: int) -> np.ndarray:
        """Worst-of-N of π against worst-of-N of π_ref: ∫ (1 − G)^N N (1 − u)^{N−1} du."""
        n = check_n(n)
        reference_min_density = n * np.exp(special.xlog1py(n - 1, -self.grid.u))
        return np.clip(self.grid.integrate(self.survival**n * reference_min_density), 0.0, 1.0)

    def curves(self, index: int = 0) -> dict[str, np.ndarray]:
        """u, density and CDF of one β as flat sorted arrays, for plotting."""
        return {
            "u": self.grid.u.ravel(),
            "density": self.density[index].ravel(),
            "cdf": self.cdf[index].ravel(),
        }


def aligned_policy(
    phi: Phi, beta: float | Sequence[float], ns: Sequence[int] = (1,), grid: Grid | None = None
) -> AlignedPolicy:
    """The tilted density g ∝ e^{Φ/β} for each β, on a grid that resolves it (and N's order statistics)."""
    betas = np.atleast_1d(_check_beta(beta))
    lambdas = 1.0 / betas
    if grid is None:
        grid = make_grid(phi, _representative(lambdas), ns)
    with np.errstate(invalid="ignore", over="ignore"):
        values = np.asarray(phi(grid.u), dtype=np.float64)
    if np.any(np.isnan(values)) or np.any(values == np.inf):
        raise InfAlignError("the transform returned NaN or +inf on [0, 1]")
    log_f = lambdas[:, None, None] * values[None]
    # log-sum-exp by hand: the shifted exponentials are reused as the unnormalised density.
    peak = np.max(log_f, axis=(1, 2), keepdims=True)
    with np.errstate(invalid="ignore"):
        shifted = np.exp(log_f - peak)
    z = grid.integrate(shifted)[:, None, None]
    policy = AlignedPolicy(beta=betas, grid=grid, log_density=log_f - peak - np.log(z))
    policy.__dict__["density"] = shifted / z  # cached_property's slot: saves one exp pass
    return policy


def _representative(lambdas: np.ndarray, ratio: float = 4.0) -> np.ndarray:
    """A few λ values spaced by at most ``ratio``, covering the given ones (one grid for a sweep)."""
    lo, hi = float(lambdas.min()), float(lambdas.max())
    if hi / lo <= ratio:
        return np.unique(lambdas)
    count = int(np.ceil(np.log(hi / lo) / np.log(ratio))) + 1
    return np.geomspace(lo, hi, count)


@dataclass(frozen=True)
class TheoryPoint:
    """One aligned policy's exact numbers for one N."""

    kl: float
    beta: float
    standard_win_rate: float
    bon_win_rate: float
    won_win_rate: float

    def as_dict(self) -> dict[str, float]:
        """The point as a plain dict (the CLI's JSON keys)."""
        return {k: float(v) for k, v in asdict(self).items()}


def evaluate(phi: Phi, beta: float, n: int) -> TheoryPoint:
    """KL, standard, best-of-N and worst-of-N win rates of the optimum for Φ at β."""
    n = check_n(n)
    policy = aligned_policy(phi, beta, ns=(n,))
    return TheoryPoint(
        kl=float(policy.kl[0]),
        beta=float(beta),
        standard_win_rate=float(policy.standard_win_rate[0]),
        bon_win_rate=float(policy.bon_win_rate(n)[0]),
        won_win_rate=float(policy.won_win_rate(n)[0]),
    )


def beta_for_kl(phi: Phi, kl: float, beta_range: tuple[float, float] = BETA_RANGE) -> float:
    """The β at which the optimum for Φ has KL(π‖π_ref) = kl (KL falls as β grows)."""
    if not np.isfinite(kl) or kl <= 0:
        raise InfAlignError(f"the KL budget must be a finite number > 0 nats, got {kl}")
    lo, hi = beta_range
    grid = make_grid(phi, _representative(np.array([1.0 / hi, 1.0 / lo])))

    def kl_at(log_beta: float) -> float:
        return float(aligned_policy(phi, np.exp(log_beta), grid=grid).kl[0])

    kl_max, kl_min = kl_at(np.log(lo)), kl_at(np.log(hi))
    if kl > kl_max:
        raise InfAlignError(
            f"KL budget {kl:g} nats is beyond this transform's reach for β ≥ {lo:g} "
            f"(at most {kl_max:.3g} nats); lower the budget or {_reach_further(phi)}"
        )
    if kl < kl_min:
        raise InfAlignError(f"KL budget {kl:g} nats needs β above {hi:g}; raise the budget")
    root = optimize.brentq(lambda lb: np.log(kl_at(lb)) - np.log(kl), np.log(lo), np.log(hi), xtol=1e-12)
    return float(np.exp(root))


def _reach_further(phi: Phi) -> str:
    """Which way a transform reaches more KL: a steeper best-of-N exponential, a flatter worst-of-N one."""
    if getattr(phi, "name", None) == "exp" and getattr(phi, "mode", "best") == "worst":
        return "pick a smaller t (a flatter worst-of-N exponential reaches further)"
    if getattr(phi, "name", None) == "exp":
        return "pick a larger t"
    return "pick a transform steeper near u = 1"


@lru_cache(maxsize=8)
def exponential_kl_reach(mode: str = "best") -> float:
    """The largest KL any exponential t in its range reaches at the β floor (best: steepest t; worst: flattest).

    For best-of-N the reach grows with t, for worst-of-N it shrinks (e^{−t·u} saturates early, so
    the tilted policy spreads over the flat top), so the extreme is at one end of the t range.
    """
    mode = check_mode(mode)
    ends = [aligned_policy(Transform("exp", t, mode), BETA_RANGE[0]).kl[0] for t in (0.05, MAX_T)]
    return float(max(ends))


@dataclass(frozen=True)
class Frontier:
    """Win rate against KL as β sweeps, for one transform and several N."""

    beta: np.ndarray  # (B,)
    kl: np.ndarray  # (B,)
    standard_win_rate: np.ndarray  # (B,)
    ns: tuple[int, ...]
    bon_win_rate: np.ndarray  # (len(ns), B)
    won_win_rate: np.ndarray  # (len(ns), B)


def frontier(phi: Phi, betas: Sequence[float], ns: Sequence[int] = (1,)) -> Frontier:
    """KL, standard and best/worst-of-N win rates of the optimum for Φ at every β, all N at once."""
    ns = tuple(check_n(n) for n in ns)
    policy = aligned_policy(phi, betas, ns=ns)
    return Frontier(
        beta=policy.beta,
        kl=policy.kl,
        standard_win_rate=policy.standard_win_rate,
        ns=ns,
        bon_win_rate=np.stack([policy.bon_win_rate(n) for n in ns]),
        won_win_rate=np.stack([policy.won_win_rate(n) for n in ns]),
    )


def default_betas(count: int = 200) -> np.ndarray:
    """A log-spaced β sweep that spans KL from ~0 to several nats."""
    return np.geomspace(0.005, 50.0, count)


def bon_policy_point(n: int, n_eval: int = 1) -> TheoryPoint:
    """The best-of-n policy itself, evaluated with best/worst-of-``n_eval``.

    Its calibrated reward is the max of n uniforms, density n·u^{n−1}: the log transform's
    optimum at β = 1/(n − 1). So KL = log n − (n−1)/n and W₁ = n/(n+1) in closed form, and
    its best-of-N win rate is n/(n+1) for every N (G^N = u^{nN}). The worst-of-N win rate
    has no such closed form and comes from the same engine as every other point.
    """
    n, n_eval = check_n(n), check_n(n_eval)
    if n == 1:
        return TheoryPoint(
            kl=0.0, beta=float("inf"), standard_win_rate=0.5, bon_win_rate=0.5, won_win_rate=0.5
        )
    beta = 1.0 / (n - 1)
    won = float(aligned_policy(Transform("log"), beta, ns=(n_eval,)).won_win_rate(n_eval)[0])
    return TheoryPoint(
        kl=float(np.log(n) - (n - 1) / n),
        beta=beta,
        standard_win_rate=n / (n + 1),
        bon_win_rate=n / (n + 1),
        won_win_rate=won,
    )


# --- what a finite bank lets the reward see ------------------------------------------------

MAX_BANK = 100_000
_LEVEL_CHUNK = 256  # levels per block: bounds the (levels × nodes) kernel's memory


def check_bank_size(m) -> int:
    """Validate a bank size m (reference samples per prompt)."""
    if isinstance(m, bool) or not isinstance(m, int | np.integer) or not 1 <= m <= MAX_BANK:
        raise InfAlignError(f"the bank size m must be an integer in [1, {MAX_BANK}], got {m!r}")
    return int(m)


def rank_level_law(phi: Phi, beta: float | Sequence[float], m: int) -> np.ndarray:
    """P(level j), j = 0..m, of a sample's calibrated reward ranked against a fresh bank of m.

    A bank of m reference samples puts a response with calibrated reward u at level
    j = #{bank rewards below it} ~ Binomial(m, u), so under the aligned density g

        p_j = ∫ g(u) · C(m, j) u^j (1 − u)^{m−j} du,

    and under the reference (g = 1) every level has probability 1/(m + 1). Leading axis β.
    """
    m = check_bank_size(m)
    betas = np.atleast_1d(_check_beta(beta))
    # Panels of width ≤ 1/min(2m, 512) resolve every Binomial kernel (its width is ≥ ~1/m).
    breaks = np.linspace(0.0, 1.0, min(2 * m, 512) + 1)
    grid = make_grid(phi, _representative(1.0 / betas), ns=(m + 1,), breaks=breaks)
    log_g = aligned_policy(phi, betas, grid=grid).log_density  # (B, K, p)
    law = np.empty((betas.size, m + 1))
    for start in range(0, m + 1, _LEVEL_CHUNK):
        j = np.arange(start, min(start + _LEVEL_CHUNK, m + 1), dtype=np.float64)[:, None, None]
        log_choose = special.gammaln(m + 1.0) - special.gammaln(j + 1.0) - special.gammaln(m - j + 1.0)
        log_kernel = log_choose + special.xlogy(j, grid.u) + special.xlog1py(m - j, -grid.u)
        law[:, start : start + j.shape[0]] = grid.integrate(np.exp(log_kernel[None] + log_g[:, None]))
    return law / law.sum(axis=1, keepdims=True)


def rank_level_kl(phi: Phi, beta: float | Sequence[float], m: int) -> np.ndarray:
    """The KL a bank of m lets the reward see: KL of the rank-level law against uniform on m + 1 levels.

    At most the continuous KL ∫ g log g (data processing), and tends to it as m grows; no
    estimator of the reward-visible KL from ranks against a bank of m can read more (in
    expectation). Leading axis β.
    """
    law = rank_level_law(phi, beta, m)
    return np.maximum(np.sum(special.xlogy(law, law * (law.shape[1])), axis=1), 0.0)


def visible_kl_ceiling(phi: Phi, kl: float, m: int) -> float:
    """What the exact optimum for Φ at sequence KL ``kl`` shows through a bank of m (rank-level KL).

    The yardstick for a run's reward-visible KL: the optimum spends all its KL on the
    calibrated reward, so this is the most a run at that sequence KL can show through the bank.
    """
    if not np.isfinite(kl):
        raise InfAlignError(f"the KL must be a finite number, got {kl}")
    if kl <= 0:
        return 0.0
    return float(rank_level_kl(phi, beta_for_kl(phi, kl), m)[0])
