"""Inference procedures beyond best-of-N: win rates, first variations and optimal transforms.

A *pointwise* procedure maps x, the CDF of one sample's calibrated reward, to T(x), the
CDF of the sample it returns (THEORY.md, "Any rank-based procedure"). T is increasing
with T(0) = 0 and T(1) = 1. The reference's calibrated reward is uniform, so T(π_ref)
has CDF T(u), and with G the aligned policy's CDF

    W(T(π) ≻ T(π_ref)) = 1 − ∫₀¹ T(G(u)) T′(u) du = ∫₀¹ (1 − T(G(u))) T′(u) du,

the second form computed from 1 − G so upper tails keep their accuracy. Its first
variation gives the optimal transform's fixed point Φ′(u) = T′(u)·T′(G(u)).

| spec | T(x) |
|---|---|
| ``bon:N`` | x^N |
| ``won:N`` | 1 − (1 − x)^N |
| ``poisson:MU`` | x·e^{μ(x−1)}: best-of-(1 + Poisson(μ)) |
| ``mix:P:N`` | p·x^N + (1 − p)·x: best-of-N with probability p, else one sample |
| ``expr:…`` | a user's T in x (see :mod:`infalign_core.expression`) |

Two procedures are functionals of G rather than pointwise maps:

- ``soft:N:TAU`` picks one of N samples with probability ∝ e^{C/τ}. With w(c) = e^{(c−1)/τ}
  and 1/(a + S) = ∫₀^∞ e^{−s(a+S)} ds, its output density is exactly
  f(c) = N g(c) w(c) ∫₀^∞ e^{−s w(c)} M(s)^{N−1} ds, where M(s) = ∫ g e^{−s w}: a 1-D
  integral over s = e^σ on Gauss–Legendre panels, shared by all grid nodes.
- ``reject:Q:N`` samples until C ≥ q, at most N times, and else returns the last. With
  γ = G(q) its output CDF is T_γ(G) with T_γ(y) = γ^{N−1} y below γ and
  γ^N + (y − γ)(1 − γ^N)/(1 − γ) above: pointwise once γ is known.

For these W comes from the output distribution, and δW/δg is written out in closed form.

Optimal transforms: for ``bon``/``won`` the scaled ODE of :mod:`infalign_core.optimal`
(one integration per β, checked by the engine); for every other procedure a damped
fixed point Φ ← δW/δg[g_Φ] on the engine's panel grid, at a β or (adjusting β every
step) at a KL budget, with an error when it does not converge.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numpy.polynomial import legendre
from scipy import interpolate, optimize, special

from infalign_core import expression, optimal
from infalign_core.checks import BETA_RANGE, MAX_N, check_beta_in_range, check_kl
from infalign_core.errors import InfAlignError
from infalign_core.theory import (
    AlignedPolicy,
    Grid,
    aligned_policy,
    beta_for_kl,
    evaluate,
    exponential_kl_reach,
    make_grid,
)
from infalign_core.transforms import MAX_T, Transform, check_mode, t_label

Phi = Callable[[np.ndarray], np.ndarray]

KINDS = ("bon", "won", "poisson", "mix", "expr", "soft", "reject")
MAX_MU = 1000.0
TAU_RANGE = (0.01, 1000.0)
EXAMPLES = ("bon:4", "won:4", "poisson:3", "mix:0.5:8", "expr:x**3", "soft:4:0.1", "reject:0.8:4")
DESCRIPTIONS = {
    "bon": "Best-of-N: draw N responses and keep the one the reward model likes most.",
    "won": "Worst-of-N: the jailbreak view; an attacker draws N and keeps the worst.",
    "poisson": "Best-of-(1 + Poisson(μ)): a random number of tries, μ extra on average "
    "(as in 'Inference-Time Reward Hacking').",
    "mix": "Best-of-N on a share p of the requests, one plain sample on the rest.",
    "expr": "Your own decoding rule, given as T(x): the CDF of what it returns when one sample has CDF x.",
    "soft": "Soft best-of-N: one of N samples, picked with probability ∝ e^{C/τ}; τ → 0 is best-of-N, "
    "τ → ∞ one sample.",
    "reject": "Rejection sampling: resample until the calibrated reward reaches q, at most N times, else keep the last.",
}
_CHECK_POINTS = np.unique(np.concatenate([np.linspace(0.0, 1.0, 2001), np.geomspace(1e-9, 1.0, 200)]))
_FIXED_POINT_TOL = 1e-10
_HUGE = 1e250  # stands in for an infinite slope; far beyond anything e^{λΦ} can resolve
# Φ more than this many units of 1/λ below its peak has density below e^{−60} of the peak: the
# residual ignores differences below that floor, so a singular end (Φ → −∞) cannot dominate it.
_DEPTH = 60.0
_MAX_ITERATIONS = 400


def _log_pow(n: float, x: np.ndarray) -> np.ndarray:
    """x^n computed as exp(n log x), 0 at x = 0 for n > 0."""
    return np.exp(special.xlogy(n, x))


@dataclass(frozen=True)
class Procedure:
    """A decoding procedure applied to both sides of a win-rate comparison."""

    spec: str
    kind: str
    n: int = 1
    mu: float = 0.0
    p: float = 1.0
    tau: float = 1.0
    q: float = 0.0
    tree: expression.Node | None = field(default=None, compare=False)
    tree_prime: expression.Node | None = field(default=None, compare=False)

    @property
    def pointwise(self) -> bool:
        """Whether T is a fixed map of G (else the output law is a functional of G)."""
        return self.kind not in ("soft", "reject")

    @property
    def description(self) -> str:
        """What the procedure models, in one sentence."""
        return DESCRIPTIONS[self.kind]

    @property
    def label(self) -> str:
        """A short human-readable name."""
        return {
            "bon": f"best-of-{self.n}",
            "won": f"worst-of-{self.n}",
            "poisson": f"best-of-(1+Poisson({self.mu:g}))",
            "mix": f"best-of-{self.n} w.p. {self.p:g}",
            "expr": f"T(x) = {self.spec[5:]}",
            "soft": f"soft best-of-{self.n} (τ={self.tau:g})",
            "reject": f"reject below {self.q:g} (≤ {self.n} tries)",
        }[self.kind]

    @property
    def breaks(self) -> tuple[float, ...]:
        """Points where the procedure's integrands have a kink (rejection's threshold)."""
        return (self.q,) if self.kind == "reject" and 0.0 < self.q < 1.0 else ()

    @property
    def grid_ns(self) -> tuple[int, ...]:
        """The N whose order statistics the quadrature grid should resolve."""
        if self.kind == "poisson":
            return (max(1, min(MAX_N, round(1 + self.mu + 4 * math.sqrt(self.mu)))),)
        return (self.n,)

    @property
    def mode(self) -> str:
        """'best' when the procedure favours high rewards (∫ T < 1/2), else 'worst'."""
        if self.kind == "won":
            return "best" if self.n == 1 else "worst"
        if self.kind in ("bon", "poisson", "mix", "soft", "reject"):
            return "best"
        u = np.linspace(0.0, 1.0, 2001)
        return "best" if np.trapezoid(self.t(u, 1.0 - u), u) <= 0.5 + 1e-12 else "worst"

    # --- pointwise maps: T, 1 − T and T′, from x and 1 − x (so tails stay accurate) ---------

    def t(self, x: np.ndarray, s: np.ndarray) -> np.ndarray:
        """T(x) for a pointwise procedure (s = 1 − x)."""
        return 1.0 - self.upper(x, s)

    def upper(self, x: np.ndarray, s: np.ndarray) -> np.ndarray:
        """1 − T(x), computed from s = 1 − x where that is the accurate side."""
        k = self.kind
        if k == "bon":
            return -np.expm1(special.xlogy(self.n, x))
        if k == "won":
            return _log_pow(self.n, s)
        if k == "poisson":
            decay = np.exp(-self.mu * s)
            return -np.expm1(-self.mu * s) + s * decay
        if k == "mix":
            return self.p * -np.expm1(special.xlogy(self.n, x)) + (1.0 - self.p) * s
        if k == "expr":
            return 1.0 - expression.evaluate_tree(self.tree, x)
        raise InfAlignError(f"{self.label} is not a pointwise map of the CDF")

    def t_prime(self, x: np.ndarray, s: np.ndarray) -> np.ndarray:
        """T′(x) for a pointwise procedure (s = 1 − x)."""
        k = self.kind
        if k == "bon":
            return self.n * _log_pow(self.n - 1, x)
        if k == "won":
            return self.n * _log_pow(self.n - 1, s)
        if k == "poisson":
            return np.exp(-self.mu * s) * (1.0 + self.mu * x)
        if k == "mix":
            return self.p * self.n * _log_pow(self.n - 1, x) + (1.0 - self.p)
        if k == "expr":
            return expression.evaluate_tree(self.tree_prime, x)
        raise InfAlignError(f"{self.label} is not a pointwise map of the CDF")


# --- parsing -----------------------------------------------------------------------------

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def _integer(text: str, what: str, lo: int = 1, hi: int = MAX_N) -> int:
    if not re.fullmatch(r"\d+", text):
        raise InfAlignError(f"{what} must be a whole number, got {text!r}")
    value = int(text)
    if not lo <= value <= hi:
        raise InfAlignError(f"{what} must lie in [{lo}, {hi}], got {value}")
    return value


def _number(text: str, what: str, lo: float, hi: float, lo_open: bool = False) -> float:
    if not re.fullmatch(_NUMBER, text):
        raise InfAlignError(f"{what} must be a number, got {text!r}")
    value = float(text)
    if not (lo < value if lo_open else lo <= value) or not value <= hi:
        bracket = "(" if lo_open else "["
        raise InfAlignError(f"{what} must lie in {bracket}{lo:g}, {hi:g}], got {value:g}")
    return value


def parse_procedure(spec: str) -> Procedure:
    """Parse a procedure spec such as ``bon:4``, ``poisson:3``, ``mix:0.5:8``, ``expr:x**3``."""
    if not isinstance(spec, str) or ":" not in spec:
        raise InfAlignError(f"a procedure looks like one of {', '.join(EXAMPLES)}; got {spec!r}")
    spec = spec.strip()
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "expr":
        return _expression_procedure(rest)
    parts = [part.strip() for part in rest.split(":")]
    arity = {"bon": 1, "won": 1, "poisson": 1, "mix": 2, "soft": 2, "reject": 2}
    if kind not in arity:
        raise InfAlignError(
            f"unknown procedure {kind!r}: choose one of {', '.join(KINDS)} (e.g. {', '.join(EXAMPLES)})"
        )
    if len(parts) != arity[kind]:
        raise InfAlignError(f"{kind} takes {arity[kind]} parameter(s), e.g. {EXAMPLES[KINDS.index(kind)]}")
    canonical = f"{kind}:{':'.join(parts)}"
    if kind in ("bon", "won"):
        return Procedure(canonical, kind, n=_integer(parts[0], "N"))
    if kind == "poisson":
        return Procedure(canonical, kind, mu=_number(parts[0], "μ", 0.0, MAX_MU))
    if kind == "mix":
        return Procedure(canonical, kind, p=_number(parts[0], "p", 0.0, 1.0), n=_integer(parts[1], "N"))
    if kind == "soft":
        tau = _number(parts[1], "τ", *TAU_RANGE)
        return Procedure(canonical, kind, n=_integer(parts[0], "N"), tau=tau)
    return Procedure(canonical, kind, q=_number(parts[0], "q", 0.0, 1.0), n=_integer(parts[1], "N"))


def _expression_procedure(text: str) -> Procedure:
    """A user's T(x), checked: finite on [0, 1], T(0) = 0, T(1) = 1, increasing."""
    tree = expression.parse(text)
    tree_prime = expression.derivative(tree)
    values = expression.evaluate_tree(tree, _CHECK_POINTS)
    slopes = expression.evaluate_tree(tree_prime, _CHECK_POINTS[1:-1])
    if not np.all(np.isfinite(values)):
        bad = _CHECK_POINTS[~np.isfinite(values)][0]
        raise InfAlignError(
            f"T(x) = {text.strip()} is not finite at x = {bad:g}: it must be defined on all of [0, 1]"
        )
    if abs(values[0]) > 1e-9 or abs(values[-1] - 1.0) > 1e-9:
        raise InfAlignError(
            f"T(x) = {text.strip()} gives T(0) = {values[0]:.6g} and T(1) = {values[-1]:.6g}; "
            "a CDF map needs T(0) = 0 and T(1) = 1"
        )
    if np.any(np.isnan(slopes)) or np.any(slopes < -1e-12) or np.any(np.diff(values) < -1e-12):
        raise InfAlignError(f"T(x) = {text.strip()} is not increasing on [0, 1]")
    return Procedure(f"expr:{text.strip()}", "expr", tree=tree, tree_prime=tree_prime)


# --- output distributions and win rates ----------------------------------------------------


@dataclass(frozen=True)
class _Soft:
    """The σ = log s quadrature for soft best-of-N on one grid, shared by every β."""

    ds: np.ndarray  # (S,) weights of ds = s dσ
    kernel: np.ndarray  # (S, K·p): e^{−s w(u)} at the grid's nodes
    w: np.ndarray  # (K·p,) w(u) = e^{(u−1)/τ}


def _soft_quadrature(grid: Grid, n: int, tau: float) -> _Soft:
    """Panels of unit width in σ, from where s·N is negligible to where e^{−s w} vanishes."""
    w = np.exp((grid.u.ravel() - 1.0) / tau)
    lo, hi = math.log(1e-11 / n), math.log(40.0) + 1.0 / tau
    edges = np.linspace(lo, hi, math.ceil(hi - lo) + 1)
    x, weights = legendre.leggauss(8)
    half = 0.5 * np.diff(edges)[:, None]
    sigma = (0.5 * (edges[1:] + edges[:-1])[:, None] + half * x).ravel()
    s = np.exp(sigma)
    ds = (half * weights).ravel() * s
    return _Soft(ds=ds, kernel=np.exp(-s[:, None] * w[None, :]), w=w)


def _soft_parts(proc: Procedure, grid: Grid, density: np.ndarray, quad: _Soft):
    """M(s), the output density f and A = ∫ e^{−s w} M^{N−1} ds, for densities (B, K, p)."""
    flat = (density * grid.weights).reshape(density.shape[0], -1)
    m = flat @ quad.kernel.T  # (B, S)
    a = (quad.ds * m ** (proc.n - 1)) @ quad.kernel  # (B, K·p)
    f = proc.n * density.reshape(density.shape[0], -1) * quad.w * a
    return m, a, f.reshape(density.shape)


def _soft_reference_cdf(proc: Procedure, grid: Grid, quad: _Soft) -> np.ndarray:
    """The CDF of soft best-of-N's output under the reference (g = 1) at the grid nodes."""
    _, _, f = _soft_parts(proc, grid, np.ones((1, *grid.u.shape)), quad)
    return np.clip(grid.cumulative(f)[0], 0.0, 1.0)


def _reject_terms(proc: Procedure, gamma: np.ndarray):
    """γ^{N−1}, c_γ = Σ_{k<N} γ^k and its derivative, for each β (γ = G(q))."""
    ks = np.arange(proc.n, dtype=np.float64)
    gamma = np.asarray(gamma, dtype=np.float64)[..., None]
    powers = gamma**ks
    c = powers.sum(-1)
    dc = (ks[1:] * gamma ** (ks[1:] - 1.0)).sum(-1) if proc.n > 1 else np.zeros(c.shape)
    return powers[..., -1], c, dc


def _reject_upper(proc: Procedure, cdf: np.ndarray, surv: np.ndarray, gamma: np.ndarray, below: np.ndarray):
    """1 − T_γ(G) at the nodes: 1 − γ^{N−1}G below q, (1 − γ^N)(1 − G)/(1 − γ) above."""
    lead, c, _ = _reject_terms(proc, gamma)
    shape = (-1,) + (1,) * (cdf.ndim - 1)
    return np.where(below, 1.0 - lead.reshape(shape) * cdf, c.reshape(shape) * surv)


def _reject_reference_slope(proc: Procedure, u: np.ndarray) -> np.ndarray:
    """T_q′(u): the density of the reference's output under rejection sampling."""
    lead, c, _ = _reject_terms(proc, np.array(proc.q))
    return np.where(u < proc.q, lead, c)


def _gamma(proc: Procedure, policy: AlignedPolicy) -> np.ndarray:
    """G(q) for each β, by the engine's cumulative integral up to the panel edge at q."""
    below = policy.grid.u < proc.q
    return np.clip(policy.grid.integrate(np.where(below, policy.density, 0.0)), 0.0, 1.0)


def aligned_win_rate(policy: AlignedPolicy, proc: Procedure) -> np.ndarray:
    """W(T(π) ≻ T(π_ref)) for each β of the aligned policy."""
    grid, u = policy.grid, policy.grid.u
    if proc.pointwise:
        integrand = proc.upper(policy.cdf, policy.survival) * proc.t_prime(u, 1.0 - u)
        return np.clip(grid.integrate(integrand), 0.0, 1.0)
    if proc.kind == "reject":
        gamma = _gamma(proc, policy)
        upper = _reject_upper(proc, policy.cdf, policy.survival, gamma, u < proc.q)
        return np.clip(grid.integrate(upper * _reject_reference_slope(proc, u)), 0.0, 1.0)
    quad = _soft_quadrature(grid, proc.n, proc.tau)
    _, _, f = _soft_parts(proc, grid, policy.density, quad)
    return np.clip(grid.integrate(f * _soft_reference_cdf(proc, grid, quad)), 0.0, 1.0)


def cross_win_rate(policy: AlignedPolicy, ours: Procedure, theirs: Procedure) -> np.ndarray:
    """W(T_ours(π) ≻ T_theirs(π_ref)) for two pointwise procedures: ∫ (1 − T_ours(G)) T_theirs′(u) du."""
    u = policy.grid.u
    integrand = ours.upper(policy.cdf, policy.survival) * theirs.t_prime(u, 1.0 - u)
    return policy.grid.integrate(integrand)


def output_density(policy: AlignedPolicy, proc: Procedure) -> np.ndarray:
    """The density of the calibrated reward that the procedure returns, at the grid nodes."""
    u = policy.grid.u
    if proc.pointwise:
        return proc.t_prime(policy.cdf, policy.survival) * policy.density
    if proc.kind == "reject":
        lead, c, _ = _reject_terms(proc, _gamma(proc, policy))
        shape = (-1, 1, 1)
        return np.where(u < proc.q, lead.reshape(shape), c.reshape(shape)) * policy.density
    return _soft_parts(proc, policy.grid, policy.density, _soft_quadrature(policy.grid, proc.n, proc.tau))[2]


def first_variation(policy: AlignedPolicy, proc: Procedure) -> np.ndarray:
    """δW/δg at the grid nodes for each β, up to an additive constant (the optimum's Φ̂[g])."""
    grid, u = policy.grid, policy.grid.u
    if proc.pointwise:
        # −∫_v^1 T′(G)T′(u) du, summed from the right: a T′ singular at 0 (e.g. √x) makes Φ̂ → −∞
        # at u → 0, harmlessly, and an underflowed G = 0 gives a huge finite slope rather than inf.
        with np.errstate(all="ignore"):
            slope = proc.t_prime(policy.cdf, policy.survival) * proc.t_prime(u, 1.0 - u)
        slope = np.minimum(np.nan_to_num(slope, nan=0.0, posinf=_HUGE), _HUGE)
        return -grid.cumulative_right(slope)
    if proc.kind == "reject":
        gamma = _gamma(proc, policy)
        lead, c, dc = _reject_terms(proc, gamma)
        below = u < proc.q
        slope_ref = _reject_reference_slope(proc, u)
        shape = (-1, 1, 1)
        slope = np.where(below, lead.reshape(shape), c.reshape(shape)) * slope_ref
        # ∂T_γ/∂γ: (N−1)γ^{N−2}·G below q; Nγ^{N−1} − c_γ + (G − γ)·c_γ′ above.
        dlead = (proc.n - 1) * gamma ** max(proc.n - 2, 0) if proc.n > 1 else np.zeros_like(gamma)
        g_cdf = policy.cdf
        d_t = np.where(
            below,
            dlead.reshape(shape) * g_cdf,
            (proc.n * lead - c).reshape(shape) + (g_cdf - gamma.reshape(shape)) * dc.reshape(shape),
        )
        jump = grid.integrate(d_t * slope_ref)
        return grid.cumulative(slope) + np.where(below, -jump.reshape(shape), 0.0)
    quad = _soft_quadrature(grid, proc.n, proc.tau)
    m, a, _ = _soft_parts(proc, grid, policy.density, quad)
    h = _soft_reference_cdf(proc, grid, quad).ravel()
    batch = policy.density.shape[0]
    first = proc.n * quad.w * h * a
    if proc.n > 1:
        flat = (policy.density * grid.weights).reshape(batch, -1) * quad.w * h
        b = flat @ quad.kernel.T  # (B, S)
        first = first + proc.n * (proc.n - 1) * ((quad.ds * m ** (proc.n - 2) * b) @ quad.kernel)
    return first.reshape(policy.density.shape)


def policy_for(phi: Phi, beta: float | Sequence[float], proc: Procedure) -> AlignedPolicy:
    """The aligned policy for Φ at β on a grid that also resolves the procedure's order statistics."""
    betas = np.atleast_1d(np.asarray(beta, dtype=np.float64))
    grid = make_grid(phi, 1.0 / betas, proc.grid_ns, proc.breaks)
    return aligned_policy(phi, betas, grid=grid)


def procedure_win_rate(phi: Phi, beta: float, proc: Procedure) -> float:
    """The procedure's win rate of the optimum for Φ at β."""
    return float(aligned_win_rate(policy_for(phi, beta, proc), proc)[0])


@dataclass(frozen=True)
class ProcedureFrontier:
    """Win rate under a procedure against KL as β sweeps, for one transform."""

    beta: np.ndarray
    kl: np.ndarray
    win_rate: np.ndarray


def procedure_frontier(phi: Phi, betas: Sequence[float], proc: Procedure) -> ProcedureFrontier:
    """KL and the procedure's win rate of the optimum for Φ at every β (one grid, chunked for soft)."""
    betas = np.asarray(betas, dtype=np.float64)
    grid = make_grid(phi, _spread(1.0 / betas), proc.grid_ns, proc.breaks)
    policy = aligned_policy(phi, betas, grid=grid)
    if proc.kind == "soft":
        rates = np.concatenate(
            [
                aligned_win_rate(aligned_policy(phi, betas[i : i + 16], grid=grid), proc)
                for i in range(0, len(betas), 16)
            ]
        )
    else:
        rates = aligned_win_rate(policy, proc)
    return ProcedureFrontier(beta=betas, kl=policy.kl, win_rate=rates)


def _spread(lambdas: np.ndarray, ratio: float = 4.0) -> np.ndarray:
    """A few λ spaced by at most ``ratio`` covering the given ones (one grid for a sweep)."""
    lo, hi = float(lambdas.min()), float(lambdas.max())
    if hi / lo <= ratio:
        return np.unique(lambdas)
    return np.geomspace(lo, hi, int(np.ceil(np.log(hi / lo) / np.log(ratio))) + 1)


# --- optimal transforms -------------------------------------------------------------------


@dataclass(frozen=True)
class NodeTransform:
    """A transform known at grid nodes, interpolated monotonically (PCHIP) between breaks."""

    nodes: np.ndarray
    values: np.ndarray
    breaks: tuple[float, ...] = ()

    def __call__(self, u: np.ndarray) -> np.ndarray:
        """Φ(u) by piecewise-cubic monotone interpolation, one piece per interval between breaks."""
        u = np.asarray(u, dtype=np.float64)
        flat, out = u.ravel(), np.empty(u.size)
        edges = (-np.inf, *self.breaks, np.inf)
        for lo, hi in itertools.pairwise(edges):
            inside, here = (self.nodes >= lo) & (self.nodes < hi), (flat >= lo) & (flat < hi)
            if here.any():
                out[here] = _pchip(self.nodes[inside], self.values[inside])(flat[here])
        return out.reshape(u.shape)


@lru_cache(maxsize=256)
def _pchip_cached(nodes: bytes, values: bytes) -> interpolate.PchipInterpolator:
    return interpolate.PchipInterpolator(np.frombuffer(nodes), np.frombuffer(values), extrapolate=True)


def _pchip(nodes: np.ndarray, values: np.ndarray) -> interpolate.PchipInterpolator:
    # Nodes of sub-1e-16 panels can coincide in floating point: keep the first of each.
    keep = np.concatenate([[True], np.diff(nodes) > 0])
    nodes, values = np.ascontiguousarray(nodes[keep]), np.ascontiguousarray(values[keep])
    return _pchip_cached(nodes.tobytes(), values.tobytes())


@dataclass(frozen=True)
class ProcedureOptimum:
    """The optimal Φ for a procedure at its β, with the KL and win rate it reaches."""

    procedure: Procedure
    phi: Phi
    beta: float
    kl: float
    win_rate: float
    residual: float  # max |Φ̂[g_Φ] − Φ| / range of Φ; 0 for the ODE-solved bon/won
    iterations: int

    def __call__(self, u: np.ndarray) -> np.ndarray:
        """Φ(u)."""
        return self.phi(u)

    @property
    def label(self) -> str:
        """A short human-readable name."""
        return f"optimal ({self.procedure.label}, β={self.beta:.3g})"


def _policy_from_values(values: np.ndarray, lam: np.ndarray, grid: Grid) -> AlignedPolicy:
    """The tilted density e^{λΦ}/Z from Φ at the grid nodes (log-sum-exp), for each λ."""
    log_f = np.asarray(lam, dtype=np.float64).reshape(-1, 1, 1) * values[None]
    peak = log_f.max(axis=(1, 2), keepdims=True)
    shifted = np.exp(log_f - peak)
    z = grid.integrate(shifted)[:, None, None]
    policy = AlignedPolicy(beta=1.0 / np.atleast_1d(lam), grid=grid, log_density=log_f - peak - np.log(z))
    policy.__dict__["density"] = shifted / z
    return policy


def _lambda_for_kl(values: np.ndarray, grid: Grid, kl: float) -> float:
    """λ at which e^{λΦ}/Z has the given KL on this grid (KL increases with λ)."""

    def gap(log_lam: float) -> float:
        return float(
            np.log(max(_policy_from_values(values, np.exp(log_lam), grid).kl[0], 1e-300)) - np.log(kl)
        )

    lo, hi = -12.0, 2.0
    while gap(hi) < 0:
        lo, hi = hi, hi + 4.0
        if hi > 200:
            raise InfAlignError(f"KL budget {kl:g} nats is out of reach for this procedure's transform")
    while gap(lo) > 0:
        lo -= 4.0
        if lo < -60:
            raise InfAlignError(f"KL budget {kl:g} nats is too close to 0 to solve for")
    return float(np.exp(optimize.brentq(gap, lo, hi, xtol=1e-13)))


def _clip(values: np.ndarray, lam: float) -> np.ndarray:
    """Φ − max Φ, floored at −_DEPTH/λ (where e^{λΦ} no longer matters)."""
    return np.maximum(values - values.max(), -_DEPTH / lam)


def _residual(values: np.ndarray, target: np.ndarray, lam: float) -> float:
    """max |Φ̂ − Φ| (each shifted to peak 0 and clipped at −_DEPTH/λ), relative to Φ̂'s range."""
    a, b = _clip(target, lam), _clip(values, lam)
    return float(np.max(np.abs(a - b)) / (float(np.ptp(a)) or 1.0))


def _iterate(proc: Procedure, grid: Grid, values: np.ndarray, lam: float, kl: float | None):
    """Damped fixed point Φ ← (1 − α)Φ + αΦ̂[g_Φ] on one grid; α halves when the residual grows."""
    damping, previous = 0.5, np.inf
    for iteration in range(1, _MAX_ITERATIONS + 1):
        if kl is not None:
            try:
                lam = _lambda_for_kl(values, grid, kl)
            except InfAlignError:
                raise InfAlignError(
                    f"the optimal transform for {proc.label} did not converge: the damped fixed point drifted "
                    f"away after {iteration} steps (Φ running off to −∞ where T′ is singular, or a budget "
                    "too large); try another KL budget or procedure"
                ) from None
        target = first_variation(_policy_from_values(values, lam, grid), proc)[0]
        if not np.all(np.isfinite(target)):
            raise InfAlignError(f"the optimal transform for {proc.label} hit a non-finite first variation")
        target = target - target.max()
        residual = _residual(values, target, lam)
        if residual < _FIXED_POINT_TOL:
            return target, lam, residual, iteration
        if residual > previous:
            damping = max(damping * 0.5, 1.0 / 64)
        previous = residual
        values = (1.0 - damping) * values + damping * target
    return values, lam, residual, _MAX_ITERATIONS


def _as_transform(values: np.ndarray, grid: Grid, proc: Procedure) -> NodeTransform:
    """Φ normalised to Φ(0) = 0 as a callable on [0, 1]."""
    phi = NodeTransform(grid.u.ravel(), values.ravel(), proc.breaks)
    return NodeTransform(grid.u.ravel(), values.ravel() - float(phi(np.array([0.0]))[0]), proc.breaks)


def optimal_for_procedure(
    proc: Procedure,
    *,
    beta: float | None = None,
    kl: float | None = None,
    start: Phi | None = None,
    method: str = "auto",
) -> ProcedureOptimum:
    """The optimal transform for the procedure at β or at a KL budget (exactly one of them).

    ``method="auto"`` uses the scaled ODE for best/worst-of-N and the damped fixed point
    otherwise; ``"fixed_point"`` forces the latter (to check one against the other).
    """
    if (beta is None) == (kl is None):
        raise InfAlignError("give exactly one of β or a KL budget")
    if beta is not None:
        beta = check_beta_in_range(beta)
    else:
        kl = check_kl(kl)
    if method not in ("auto", "fixed_point"):
        raise InfAlignError(f"method must be 'auto' or 'fixed_point', got {method!r}")
    if method == "auto" and (proc.kind in ("bon", "won") or (proc.kind == "mix" and proc.p == 1.0)):
        mode = "worst" if proc.kind == "won" else "best"
        ode = (
            optimal.optimal_transform(proc.n, beta, mode)
            if kl is None
            else optimal.optimal_transform_for_kl(proc.n, kl, mode)
        )
        rate = procedure_win_rate(ode, ode.beta, proc)
        return ProcedureOptimum(proc, ode, ode.beta, ode.kl, rate, 0.0, 0)
    # Start from the small-KL optimum Φ̂[uniform] (Φ′ = T′(u)² for a pointwise T).
    coarse = make_grid(lambda u: np.asarray(u, dtype=np.float64), [1.0], proc.grid_ns, proc.breaks)
    if start is None:
        start_values = first_variation(_policy_from_values(np.zeros(coarse.u.shape), 1.0, coarse), proc)[0]
        phi = _as_transform(start_values - start_values.max(), coarse, proc)
    else:
        phi = start
    total, residual = 0, np.inf
    try:
        lam = 1.0 / beta if beta is not None else _lambda_for_kl(phi(coarse.u), coarse, kl)
        for _ in range(4):
            grid = make_grid(phi, [lam], proc.grid_ns, proc.breaks)
            values, lam, residual, used = _iterate(proc, grid, phi(grid.u), lam, kl)
            total += used
            phi = _as_transform(values, grid, proc)
            if residual < _FIXED_POINT_TOL and used <= 2:
                break
    except (ValueError, FloatingPointError, ZeroDivisionError) as err:
        if isinstance(err, InfAlignError):
            raise
        raise InfAlignError(
            f"the optimal transform for {proc.label} could not be solved ({err}); "
            "try a smaller KL budget (or a larger β)"
        ) from None
    if residual > 1e-6:
        raise InfAlignError(
            f"the optimal transform for {proc.label} did not converge (residual {residual:.2g} after "
            f"{total} damped fixed-point steps); try a smaller KL budget (or a larger β)"
        )
    policy = policy_for(phi, 1.0 / lam, proc)
    return ProcedureOptimum(
        proc, phi, 1.0 / lam, float(policy.kl[0]), float(aligned_win_rate(policy, proc)[0]), residual, total
    )


def fixed_point_residual(opt: ProcedureOptimum) -> float:
    """How far the returned Φ is from its own Φ̂[g_Φ], on a fresh grid (relative to Φ's range)."""
    policy = policy_for(opt.phi, opt.beta, opt.procedure)
    target = first_variation(policy, opt.procedure)[0]
    return _residual(opt.phi(policy.grid.u), target, 1.0 / opt.beta)


# --- the best exponential and the gap -----------------------------------------------------


@dataclass(frozen=True)
class ExponentialChoice:
    """The best t of the exponential transform for a procedure at a KL budget, with its β and win rate."""

    t: float
    beta: float
    win_rate: float
    mode: str  # the exponential's direction: exp(t·c) for "best", exp(−t·c) for "worst"
    kl: float
    procedure: str  # the spec it was chosen for (bon:N, won:N, poisson:MU, ...)

    @property
    def at_beta_floor(self) -> bool:
        """True when the search stopped at the β floor: a steeper t would need β below it."""
        return self.beta <= BETA_RANGE[0] * 1.1

    @property
    def label(self) -> str:
        """This t as every page shows it (one rounding: transforms.t_label)."""
        return t_label(self.t)


def best_exponential_t(
    proc: Procedure, kl: float, t_range: tuple[float, float] = (0.05, MAX_T)
) -> ExponentialChoice:
    """Maximise the procedure's win rate over the exponential's t at equal KL.

    Best-of-N and worst-of-N are scored by the engine's closed order-statistic forms
    (``theory.evaluate``), every other procedure by its own win rate; the direction of the
    exponential follows the procedure (worst-of-N: exp(−t·c)).
    """
    kl = check_kl(kl)
    if proc.kind in ("bon", "won"):
        mode = "worst" if proc.kind == "won" else "best"

        def win_rate_at(phi: Transform, beta: float) -> float:
            point = evaluate(phi, beta, proc.n)
            return point.bon_win_rate if mode == "best" else point.won_win_rate

    else:
        mode = proc.mode

        def win_rate_at(phi: Transform, beta: float) -> float:
            return procedure_win_rate(phi, beta, proc)

    def score(log_t: float) -> tuple[float, float]:
        phi = Transform("exp", float(np.exp(log_t)), mode)
        beta = beta_for_kl(phi, kl)
        return win_rate_at(phi, beta), beta

    def safe(log_t: float) -> float:
        try:
            return score(log_t)[0]
        except InfAlignError:
            return float("nan")

    # The optimum is broad and unimodal in log t: scan coarsely, then refine around the best.
    log_ts = np.linspace(np.log(t_range[0]), np.log(t_range[1]), 14)
    scores = np.array([safe(lt) for lt in log_ts])
    if np.all(np.isnan(scores)):
        reach = exponential_kl_reach(mode)
        raise InfAlignError(
            f"KL budget {kl:g} nats is beyond the exponential transform's reach for every t "
            f"({mode}-of-N reaches at most {reach:.3g} nats at β ≥ {BETA_RANGE[0]:g}); "
            f"choose a budget in (0, {np.floor(reach * 10) / 10:g}]"
        )
    best = int(np.nanargmax(scores))
    lo, hi = log_ts[max(best - 1, 0)], log_ts[min(best + 1, len(log_ts) - 1)]
    result = optimize.minimize_scalar(
        lambda lt: -safe(lt), bounds=(lo, hi), method="bounded", options={"xatol": 1e-3}
    )
    log_t = float(result.x) if -result.fun >= scores[best] else float(log_ts[best])
    rate, beta = score(log_t)
    return ExponentialChoice(
        t=float(np.exp(log_t)), beta=beta, win_rate=rate, mode=mode, kl=kl, procedure=proc.spec
    )


def of_n(n: int, mode: str = "best") -> Procedure:
    """Best-of-N (``bon:N``) or worst-of-N (``won:N``) as a procedure."""
    return parse_procedure(f"{'bon' if check_mode(mode) == 'best' else 'won'}:{n}")


@dataclass(frozen=True)
class OptimalFrontier:
    """Exact points of a procedure's optimal-transform frontier: KL, β and win rate, sorted by KL."""

    procedure: str  # its spec (bon:N, won:N, poisson:MU, ...)
    kl: np.ndarray
    beta: np.ndarray
    win_rate: np.ndarray


def optimal_frontier(
    proc: Procedure, kls: Sequence[float] | None = None, *, kl_max: float = 3.0, count: int = 14
) -> OptimalFrontier:
    """The win rate of the procedure's optimal transform against KL.

    At each budget in ``kls`` it can solve (warm-started), or without ``kls``: for best-of-N
    and worst-of-N the scaled ODE's own family up to ``kl_max`` (about ``count`` shots, each
    kept only where the engine's independent KL agrees), for any other procedure ``count``
    evenly spaced budgets up to ``kl_max``. Raises InfAlignError when no point can be solved.
    """
    if kls is None:
        if not np.isfinite(kl_max) or kl_max <= 0:
            raise InfAlignError(f"kl_max must be > 0 nats, got {kl_max}")
        if proc.kind in ("bon", "won"):
            return _ode_frontier(proc, kl_max, count)
        kls = np.linspace(kl_max / count, kl_max, count)
    done_kl, done_beta, done_rate, start = [], [], [], None
    for kl in sorted(kls):
        try:
            opt = optimal_for_procedure(proc, kl=float(kl), start=start)
        except InfAlignError:
            continue
        start = opt.phi if isinstance(opt.phi, NodeTransform) else None
        done_kl.append(opt.kl)
        done_beta.append(opt.beta)
        done_rate.append(opt.win_rate)
    if not done_kl:
        raise InfAlignError(
            f"no optimal-transform frontier could be solved for {proc.label}; try smaller KL budgets"
        )
    return OptimalFrontier(proc.spec, np.array(done_kl), np.array(done_beta), np.array(done_rate))


def _ode_frontier(proc: Procedure, kl_max: float, count: int) -> OptimalFrontier:
    """Best/worst-of-N's optimal frontier from the ODE's family, each point re-evaluated by the engine."""
    mode = "worst" if proc.kind == "won" else "best"
    points = []
    for phi in optimal.optimal_transforms(proc.n, mode, kl_max, count, verify=False):  # checked just below
        point = evaluate(phi, phi.beta, proc.n)
        # At extreme λ the ODE and the quadrature engine can part ways; keep only points where
        # the two independent KL computations agree.
        if phi.kl >= 1e-4 and abs(point.kl - phi.kl) <= 1e-3 * max(1.0, phi.kl):
            points.append(point)
    if not points:
        raise InfAlignError(
            f"no optimal-transform frontier could be solved for {mode}-of-{proc.n}; try a smaller N"
        )
    return OptimalFrontier(
        proc.spec,
        kl=np.array([p.kl for p in points]),
        beta=np.array([p.beta for p in points]),
        win_rate=np.array([p.bon_win_rate if mode == "best" else p.won_win_rate for p in points]),
    )


@dataclass(frozen=True)
class OptimalGap:
    """The procedure's optimal frontier beside the best exponential's win rate at the same KLs."""

    frontier: OptimalFrontier
    exponential_t: np.ndarray  # NaN where the KL is out of the exponential's reach
    exponential_win_rate: np.ndarray
    # True where the exponential's best t is pinned by the β floor: its win rate there is the steepest
    # reachable t's, so the gap reopens (the engine's β range, not the theory: the gap chart's kink).
    exponential_at_beta_floor: np.ndarray

    @property
    def gap(self) -> np.ndarray:
        """Optimal minus best-exponential win rate at equal KL (≥ 0 up to solver tolerance)."""
        return self.frontier.win_rate - self.exponential_win_rate


def optimal_gap(
    proc: Procedure, kls: Sequence[float] | None = None, *, kl_max: float = 3.0, count: int = 10
) -> OptimalGap:
    """How much win rate the procedure's optimal transform adds over the best exponential, across KL."""
    frontier = optimal_frontier(proc, kls, kl_max=kl_max, count=count)
    ts, rates, floor = [], [], []
    for budget in frontier.kl:
        try:
            choice = best_exponential_t(proc, float(budget))
            ts.append(choice.t)
            rates.append(choice.win_rate)
            floor.append(choice.at_beta_floor)
        except InfAlignError:
            ts.append(np.nan)
            rates.append(np.nan)
            floor.append(False)
    return OptimalGap(frontier, np.array(ts), np.array(rates), np.array(floor, dtype=bool))
