"""The optimal transform for best-of-N or worst-of-N: a fixed point, solved as an ODE.

Derivation (best-of-N). In calibrated space the aligned policy is a density g on [0, 1]
with CDF G, and the objective is

    J(g) = W_N(g) − β ∫ g log g,   W_N(g) = 1 − ∫_0^1 G(u)^N · N u^{N−1} du.

Perturb g by δg with ∫ δg = 0, so δG(u) = ∫_0^u δg. Then

    δW_N = −∫_0^1 N G^{N−1} δG · N u^{N−1} du = −∫_0^1 δg(v) ∫_v^1 N² u^{N−1} G(u)^{N−1} du dv,
    δ(β ∫ g log g) = β ∫ δg (log g + 1).

Stationarity for every admissible δg gives β log g(v) = Φ(v) + const with

    Φ(v) = −∫_v^1 N² u^{N−1} G(u)^{N−1} du,   i.e.   Φ'(u) = N² u^{N−1} G(u)^{N−1},

so the optimum is ordinary KL-regularised RL with reward Φ(C): g = e^{λΦ}/Z, λ = 1/β.
Because G is the optimum's own CDF, Φ is a fixed point. A damped fixed-point iteration
on Φ oscillates when N is large and β small; instead write h = log g:

    G' = e^{h},   h' = λ N² u^{N−1} G^{N−1},   G(0) = 0,  G(1) = 1,

a boundary-value problem in one unknown, h(0) = a. Shooting on a works but the solution
blows up for a too large. Better: scale it out. With G = e^{a} E and h = a + k,

    E' = e^{k},   k' = μ N² u^{N−1} E^{N−1},   E(0) = 0, k(0) = 0,   μ = λ e^{(N−1)a},

which no longer mentions a. One integration for a given μ is the exact optimum for
a = −log E(1) and λ(μ) = μ E(1)^{N−1}; λ(μ) increases from 0 (μ → 0) to ∞ (as μ
approaches the blow-up threshold), so hitting a given β or KL is a one-dimensional
root-find over log μ, each step one integration. We integrate log E instead of E (E can
reach e^{700}) and carry q = ∫_0^u e^{k} k / E, so KL = ∫ g log g = a + q(1) comes out of
the same integration.

Worst-of-N: Φ'(u) = N² (1−u)^{N−1} (1 − G(u))^{N−1}. In the reflected variable ũ = 1 − u
with G̃(ũ) = 1 − G(1 − ũ) it is the same system with λ → −λ (k decreasing), which never
blows up; λ(μ) = μ Ẽ(1)^{N−1} is again increasing in μ.

N = 1 gives k = μu: the identity transform, as the theory says.

Checked answers. Far from the reference (tiny β, large N) the scaled system becomes
stiff: k can fall by 10^40 across one step, and the ODE's own KL is then no longer that
of the Φ it returns. So every transform handed out is evaluated independently through
the quadrature engine (:mod:`infalign_core.theory`); if its KL there misses the target
by more than ``KL_TOLERANCE`` (relative), the solver refuses and names the range of KL
(and β) it can verify, instead of returning a wrong Φ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import integrate, optimize

from infalign_core.checks import check_beta_in_range, check_kl, check_mode, check_n
from infalign_core.errors import InfAlignError
from infalign_core.theory import aligned_policy

_START = 1e-12  # integration starts here; the series below covers [0, _START]
_RTOL, _ATOL = 1e-10, 1e-12
_BLOW_UP = 700.0  # log E beyond this: λ(μ) is effectively infinite
# A solved Φ counts as hitting a KL (or β) when the quadrature engine's KL for it agrees
# this closely (relative): well above the engine's 1e-6 accuracy, far below a visible miss.
KL_TOLERANCE = 1e-3
_KL_FLOOR = 1e-12  # absolute slack for KLs near 0


@dataclass(frozen=True)
class _Shot:
    """One integration of the scaled system for one μ."""

    log_mu: float
    lam: float  # λ(μ); inf when the solution blew up
    a: float  # log g at the start of the integration variable
    kl: float
    solution: integrate.OdeSolution | None


def _integrate(log_mu: float, n: int, sign: float) -> _Shot:
    """Integrate E, k and the running mean of k from _START to 1 for one μ."""
    mu = math.exp(log_mu)
    scale = float(sign * mu * n * n)

    def rhs(u: float, y: np.ndarray) -> list[float]:
        # Scalar math, not numpy: this runs thousands of times per solve.
        log_e, k, q = float(y[0]), float(y[1]), float(y[2])
        ratio = math.exp(min(k - log_e, _BLOW_UP))  # E'/E
        dk = scale * math.exp(min((n - 1) * (math.log(u) + log_e), _BLOW_UP)) if n > 1 else scale
        return [ratio, dk, ratio * (k - q)]

    def blow_up(u: float, y: np.ndarray) -> float:
        return _BLOW_UP - y[0]

    blow_up.terminal = True
    k0 = scale * _START ** (2 * n - 1) / (2 * n - 1)
    y0 = np.array([np.log(_START), k0, k0 / 2.0])
    with np.errstate(all="ignore"):  # a shot past the blow-up threshold is expected, not an error
        sol = integrate.solve_ivp(
            rhs, (_START, 1.0), y0, method="DOP853", rtol=_RTOL, atol=_ATOL, dense_output=True, events=blow_up
        )
    if sol.status == 1 or not sol.success or not np.all(np.isfinite(sol.y[:, -1])):
        return _Shot(log_mu, np.inf, -np.inf, np.inf, None)
    log_e1, _, q1 = sol.y[:, -1]
    a = -log_e1
    lam = mu * np.exp((n - 1) * log_e1)
    return _Shot(log_mu, lam, a, a + q1, sol.sol)


def _solve(n: int, sign: float, target: float, key: str) -> _Shot:
    """Find μ whose solution has λ (key='lam') or KL (key='kl') equal to target."""

    def gap(log_mu: float) -> float:
        value = getattr(_integrate(log_mu, n, sign), key)
        return np.log(value) - np.log(target) if np.isfinite(value) and value > 0 else np.inf

    # λ(μ) ≈ μ for small μ, so log λ is a good first guess for log μ; expand to a bracket.
    lo = hi = np.log(target) if key == "lam" else 0.0
    step = 1.0
    if gap(lo) > 0:
        while gap(lo) > 0:
            lo, hi, step = lo - step, lo, step * 2
            if lo < -800:
                raise InfAlignError(
                    "the optimal-transform solver found no solution this close to the reference"
                )
    else:
        while gap(hi) < 0:
            lo, hi, step = hi, hi + step, step * 2
            if hi > 800:
                raise InfAlignError(
                    "the optimal-transform solver found no solution this far from the reference"
                )
    log_mu = lo if lo == hi else optimize.brentq(gap, lo, hi, xtol=1e-10, maxiter=200)
    return _integrate(log_mu, n, sign)


@dataclass(frozen=True)
class OptimalTransform:
    """The optimal Φ for best-of-N or worst-of-N at its β, normalised to Φ(0) = 0.

    Callable on calibrated rewards like any transform; ``beta`` is the β it is optimal
    for (the optimum is a fixed point, so Φ and β come as a pair) and ``kl`` its KL.
    """

    n: int
    mode: str
    beta: float
    kl: float
    _shot: _Shot

    name = "optimal"

    def __call__(self, u: np.ndarray) -> np.ndarray:
        """Φ(u), from the ODE's dense output."""
        u = np.asarray(u, dtype=np.float64)
        x = (u if self.mode == "best" else 1.0 - u).ravel()
        k = np.zeros_like(x)  # k ≈ 0 on [0, _START]: the series start of the integration
        inside = x >= _START
        if inside.any():
            k[inside] = self._shot.solution(np.minimum(x[inside], 1.0))[1]
        k = k.reshape(u.shape)
        if self.mode == "best":
            return k / self.lam
        # Reflected: k̃ falls from 0 at ũ = 0 to k̃(1) at u = 0, so Φ(0) = 0 and Φ increases.
        return (k - self._shot.solution(1.0)[1]) / self.lam

    @property
    def lam(self) -> float:
        """λ = 1/β."""
        return 1.0 / self.beta

    @property
    def label(self) -> str:
        """A short human-readable name."""
        return f"optimal ({self.mode}-of-{self.n}, β={self.beta:.3g})"


def _engine_kl(shot: _Shot, n: int, mode: str) -> float:
    """The KL of the shot's Φ at its β, computed by the quadrature engine, not the ODE."""
    if shot.solution is None or not np.isfinite(shot.lam) or shot.lam <= 0:
        return np.nan
    phi = OptimalTransform(n=n, mode=mode, beta=1.0 / shot.lam, kl=shot.kl, _shot=shot)
    try:
        return float(aligned_policy(phi, phi.beta, ns=(n,)).kl[0])
    except (InfAlignError, FloatingPointError, OverflowError):
        return np.nan


def _agrees(value: float, target: float) -> bool:
    """Whether a KL (or λ) hits its target within the solver's tolerance."""
    return bool(np.isfinite(value) and abs(value - target) <= KL_TOLERANCE * abs(target) + _KL_FLOOR)


def _verified(shot: _Shot, n: int, mode: str) -> bool:
    """Whether the engine's KL for the shot's Φ matches the ODE's own KL."""
    return np.isfinite(shot.kl) and _agrees(_engine_kl(shot, n, mode), shot.kl)


@lru_cache(maxsize=64)
def _edge(n: int, mode: str) -> _Shot | None:
    """The verified shot with the largest μ: bisected between KL ≈ 0 and the first unverified shot.

    Each step is one integration and one independent evaluation by the engine; None when not
    even the shot next to the reference is verified.
    """
    sign = 1.0 if mode == "best" else -1.0
    good = _integrate(_LOG_MU_START, n, sign)
    if not _verified(good, n, mode):
        return None
    log_bad, step = None, 1.0
    while log_bad is None and good.log_mu + step < _LOG_MU_MAX:
        shot = _integrate(good.log_mu + step, n, sign)
        if _verified(shot, n, mode):
            good, step = shot, step * 2.0
        else:
            log_bad = shot.log_mu
    if log_bad is not None:
        for _ in range(_BISECTIONS):
            if log_bad - good.log_mu < 1e-9:
                break
            shot = _integrate(0.5 * (good.log_mu + log_bad), n, sign)
            if _verified(shot, n, mode):
                good = shot
            else:
                log_bad = shot.log_mu
    return good


def reachable(n: int, mode: str = "best") -> tuple[float, float]:
    """The largest KL (and the smallest β) at which the solver's optimum for N and mode is verified."""
    edge = _edge(check_n(n), check_mode(mode))
    return (0.0, np.inf) if edge is None else (float(edge.kl), float(1.0 / edge.lam))


def _solve_verified(n: int, mode: str, target: float, key: str) -> _Shot | None:
    """Solve for λ or KL = target, retrying inside the verified range of μ when the free solve fails.

    The free bracket expansion can step past the verified edge, where the stiff system's own KL
    is wrong and may even fall, and land on a spurious root; below the edge both λ(μ) and KL(μ)
    increase, so a root found there is the real one.
    """
    sign = 1.0 if mode == "best" else -1.0

    def ok(shot: _Shot) -> bool:
        return _agrees(getattr(shot, key), target) and _verified(shot, n, mode)

    try:
        shot = _solve(n, sign, target, key)
        if ok(shot):
            return shot
    except InfAlignError:
        pass
    edge = _edge(n, mode)
    if edge is None:
        return None

    def gap(log_mu: float) -> float:
        return float(np.log(getattr(_integrate(log_mu, n, sign), key)) - np.log(target))

    lo, hi = _LOG_MU_START, edge.log_mu
    if hi <= lo or not gap(lo) < 0 < gap(hi) + 1e-12:
        return None
    shot = _integrate(optimize.brentq(gap, lo, hi, xtol=1e-10, maxiter=200), n, sign)
    return shot if ok(shot) else None


def _out_of_reach(n: int, mode: str, *, beta: float | None = None, kl: float | None = None) -> InfAlignError:
    """The error for a target the solver cannot verify, naming the range it can.

    A target inside that range that still fails (a stiff shot the engine does not confirm) is
    said to be so: "β = 0.001 is beyond … β ≥ 1e-08" would contradict itself.
    """
    kl_max, beta_min = reachable(n, mode)
    asked = f"β = {beta:g}" if beta is not None else f"KL budget {kl:g} nats"
    inside = beta >= beta_min if beta is not None else kl <= kl_max
    span = f"KL in (0, {kl_max:.4g}] nats (β down to {beta_min:.3g})"
    if inside:
        return InfAlignError(
            f"the optimal-transform solver could not verify {asked} for {mode}-of-{n}, although its "
            f"verified range covers {span}; try a nearby value, or hold the "
            f"{'KL budget' if beta is not None else 'β'} instead"
        )
    return InfAlignError(
        f"{asked} is beyond what the optimal-transform solver can verify for {mode}-of-{n}: it reaches "
        f"{span}; {'raise β' if beta is not None else 'lower the KL budget'}, or use a smaller N"
    )


def optimal_transform(n: int, beta: float, mode: str = "best") -> OptimalTransform:
    """The optimal transform for best-of-N (or worst-of-N) at KL coefficient β (its KL checked by the engine)."""
    n, mode, beta = check_n(n), check_mode(mode), check_beta_in_range(beta)
    shot = _solve_verified(n, mode, 1.0 / beta, "lam")
    if shot is None:
        raise _out_of_reach(n, mode, beta=beta)
    return OptimalTransform(n=n, mode=mode, beta=1.0 / shot.lam, kl=shot.kl, _shot=shot)


def optimal_transform_for_kl(n: int, kl: float | None, mode: str = "best") -> OptimalTransform:
    """The optimal transform for best-of-N (or worst-of-N) whose aligned policy has the given KL.

    The returned Φ's KL is checked through the quadrature engine; a budget it cannot meet
    raises InfAlignError naming the reachable range.
    """
    n, mode, kl = check_n(n), check_mode(mode), check_kl(kl)
    # No β range check here: the solution is exact whatever β it lands on, once verified.
    shot = _solve_verified(n, mode, kl, "kl")
    if shot is None:
        raise _out_of_reach(n, mode, kl=kl)
    return OptimalTransform(n=n, mode=mode, beta=1.0 / shot.lam, kl=shot.kl, _shot=shot)


# The scaled ODE's log μ: from where the policy is the reference (KL ≈ 0) up to where λ(μ)
# overflows; beyond ±800 exp(log μ) is not a float.
_LOG_MU_START = -10.0
_LOG_MU_MAX = 700.0
_BISECTIONS = 40
_REFINEMENTS = 24


def optimal_transforms(
    n: int, mode: str = "best", kl_max: float = 3.0, count: int = 14, verify: bool = True
) -> list[OptimalTransform]:
    """Optimal transforms for N spread evenly in KL over (0, kl_max], one ODE integration each.

    Every μ of the scaled system is the exact optimum for some β, so a frontier needs no
    root-find per point: walk log μ up until the KL passes kl_max (or λ(μ) blows up), then
    refine where consecutive KLs are further apart than kl_max / count. With ``verify`` each
    member is kept only if the quadrature engine confirms its KL (callers that evaluate every
    member through the engine anyway may check there instead).
    """
    n, mode = check_n(n), check_mode(mode)
    if not np.isfinite(kl_max) or kl_max <= 0:
        raise InfAlignError(f"kl_max must be > 0 nats, got {kl_max}")
    sign = 1.0 if mode == "best" else -1.0
    shots: dict[float, object] = {}

    def kl_at(log_mu: float) -> float:
        if log_mu not in shots:
            try:
                shots[log_mu] = _integrate(log_mu, n, sign)
            except (OverflowError, FloatingPointError):
                shots[log_mu] = None
        shot = shots[log_mu]
        return shot.kl if shot is not None and np.isfinite(shot.kl) and shot.kl > 0 else np.inf

    def finite() -> list[float]:
        return sorted(m for m in shots if np.isfinite(kl_at(m)))

    # Walk up in growing steps until the KL passes kl_max or λ(μ) blows up (best-of-N);
    # worst-of-N's KL grows only logarithmically in μ, hence the growing steps.
    log_mu, step = _LOG_MU_START, 1.0
    while kl_at(log_mu) < kl_max and log_mu + step < _LOG_MU_MAX and len(shots) < 30:
        log_mu, step = log_mu + step, step * 1.5
    # Between the last finite shot and a blow-up, bisect towards the threshold, where
    # the KL climbs steeply (very steeply for large N).
    for _ in range(_BISECTIONS):
        below = finite()
        beyond = [m for m in shots if m > (below[-1] if below else -np.inf) and not np.isfinite(kl_at(m))]
        if not below or not beyond or kl_at(below[-1]) >= kl_max:
            break
        kl_at(0.5 * (below[-1] + min(beyond)))
    # Refine wherever consecutive points below kl_max are further apart in KL than kl_max / count.
    for _ in range(_REFINEMENTS):
        mus = np.array(finite())
        if len(mus) < 2:
            break
        kls = np.array([kl_at(m) for m in mus])
        gaps = np.where(kls[:-1] < kl_max, np.minimum(kls[1:], kl_max) - kls[:-1], 0.0)
        widest = int(np.argmax(gaps))
        if gaps[widest] <= kl_max / count:
            break
        kl_at(0.5 * (mus[widest] + mus[widest + 1]))
    return [
        OptimalTransform(n=n, mode=mode, beta=1.0 / shots[m].lam, kl=shots[m].kl, _shot=shots[m])
        for m in finite()
        if kl_at(m) <= 1.25 * kl_max and (not verify or _verified(shots[m], n, mode))
    ]
