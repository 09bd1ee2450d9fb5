"""Families, not points: what the live Transforms page caches so a KL-budget move costs milliseconds.

A point at a new KL budget used to cost a root-find each time: the optimal transform's
(10–20 ODE integrations) and the best exponential t's (about 25 β root-finds per N). Both
quantities belong to one-parameter families that are cheap to trace once:

- :class:`OptimalFamily`: every μ of the optimal transform's scaled ODE is the exact
  optimum for *some* β (see :mod:`infalign_core.optimal`). Traced once per N and mode,
  log μ is a smooth monotone function of log KL, so a new budget needs one integration at
  the interpolated μ (and a secant step in the rare case it lands further off than 1e-7).
- :class:`ExponentialFamily`: one vectorised sweep over β per t gives every KL and win rate
  for every N at once; the best t at a budget is the vertex of a parabola through the best
  grid t and its neighbours, then evaluated exactly (one β root-find) at that t.

Every number a family returns is an exact point of the theory for the transform it names;
only the *choice* (which μ, which t) is read off the family.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import interpolate

from infalign_core import optimal
from infalign_core.errors import InfAlignError
from infalign_core.procedures import ExponentialChoice, best_exponential_t, of_n
from infalign_core.theory import (
    BETA_RANGE,
    beta_for_kl,
    check_n,
    evaluate,
    frontier,
)
from infalign_core.transforms import MAX_T, Transform, check_mode

KL_MAX = 8.5  # a little past the page's 8-nat slider, so the top budget interpolates
_KL_TOLERANCE = 1e-5  # relative: the page prints KL to four decimals
_T_RANGE = (0.05, MAX_T)


@dataclass(frozen=True)
class OptimalFamily:
    """The optimal transform's shots for one N and mode, as log μ against log KL (sorted)."""

    n: int
    mode: str
    log_mu: np.ndarray
    log_kl: np.ndarray

    def at_kl(self, kl: float) -> optimal.OptimalTransform:
        """The exact optimal transform whose KL is ``kl`` (to 1e-7 relative), from one or two integrations."""
        if not np.isfinite(kl) or kl <= 0:
            raise InfAlignError(f"the KL budget must be a finite number > 0 nats, got {kl}")
        target = float(np.log(kl))
        if not self.log_kl[0] <= target <= self.log_kl[-1]:
            return optimal.optimal_transform_for_kl(self.n, kl, self.mode)  # outside the traced range
        sign = 1.0 if self.mode == "best" else -1.0
        inverse = interpolate.CubicSpline(self.log_kl, self.log_mu)
        log_mu, slope = float(inverse(target)), float(inverse.derivative()(target))  # d log μ / d log KL
        for _ in range(4):
            shot = optimal._integrate(log_mu, self.n, sign)
            if not (np.isfinite(shot.kl) and shot.kl > 0):
                break
            miss = target - float(np.log(shot.kl))
            if abs(miss) <= _KL_TOLERANCE:
                return optimal.OptimalTransform(
                    n=self.n, mode=self.mode, beta=1.0 / shot.lam, kl=shot.kl, _shot=shot
                )
            log_mu += slope * miss  # Newton with the family's slope: the guess is already close
        return optimal.optimal_transform_for_kl(self.n, kl, self.mode)


def optimal_family(
    n: int, mode: str = "best", kl_range: tuple[float, float] = (0.02, KL_MAX), spacing: float = 0.1
) -> OptimalFamily:
    """Trace the optimal transform for N with shots ``spacing`` apart in log KL (or 0.02 nats) over ``kl_range``.

    Starts from :func:`optimal.optimal_transforms` (spread evenly in KL) and bisects in log μ
    wherever neighbours are further apart in log KL, so small budgets are covered as
    densely as large ones: a few dozen ODE integrations, once per N and mode.
    """
    n, mode = check_n(n), check_mode(mode)
    sign = 1.0 if mode == "best" else -1.0
    shots = {m._shot.log_mu: m.kl for m in optimal.optimal_transforms(n, mode, kl_range[1], 16)}
    low, high = np.log(kl_range[0]), np.log(kl_range[1])
    for _ in range(200):
        pairs = sorted((mu, kl) for mu, kl in shots.items() if np.isfinite(kl) and kl > 0)
        gaps = [
            (a[0], b[0])
            for a, b in itertools.pairwise(pairs)
            # Close in log KL, but no closer than 0.02 nats: a guess that near converges anyway.
            if np.log(b[1] / a[1]) > spacing
            and b[1] - a[1] > 0.02
            and np.log(b[1]) > low
            and np.log(a[1]) < high
        ]
        if not gaps:
            break
        for a, b in gaps[:8]:
            mid = 0.5 * (a + b)
            shot = optimal._integrate(mid, n, sign)
            shots[mid] = shot.kl if np.isfinite(shot.kl) else np.inf
    # Only shots at or below the solver's verified edge: past it the stiff system's own KL is
    # wrong (worst-of-64 claims 1.5 nats where its Φ spends 0.58), and a budget beyond the
    # traced range falls through to the exact solver, which refuses it with the reachable range.
    edge = optimal._edge(n, mode)
    edge_mu = np.inf if edge is None else edge.log_mu
    pairs = sorted(
        (mu, kl) for mu, kl in shots.items() if np.isfinite(kl) and kl > 1e-12 and mu <= edge_mu + 1e-12
    )
    # Keep KL strictly increasing in μ (it is, up to solver noise at the ends).
    kept = pairs[:1]
    for log_mu, kl in pairs[1:]:
        if kl > kept[-1][1]:
            kept.append((log_mu, kl))
    if len(kept) < 4:
        raise InfAlignError(f"no optimal-transform family could be traced for {mode}-of-{n}; try a smaller N")
    log_mu, kl = np.array(kept).T
    return OptimalFamily(n=n, mode=mode, log_mu=log_mu, log_kl=np.log(kl))


@dataclass(frozen=True)
class ExponentialFamily:
    """KL and win rates of the exponential transform over a (t, β) grid, for several N at once."""

    mode: str
    ns: tuple[int, ...]
    log_t: np.ndarray  # (T,)
    log_kl: np.ndarray  # (T, B), increasing along each row
    win_rate: np.ndarray  # (T, len(ns), B): best-of-N or worst-of-N per mode
    _memo: dict = field(default_factory=dict, compare=False, repr=False)  # (n, kl) → choice

    def best_t(self, n: int, kl: float) -> ExponentialChoice:
        """The best t for N at the KL budget, read off the family, with its exact β and win rate."""
        key = (int(n), float(kl))
        if key not in self._memo:  # the page asks twice per budget (table and comparison)
            self._memo[key] = self._best_t(*key)
        return self._memo[key]

    def _best_t(self, n: int, kl: float) -> ExponentialChoice:
        """:meth:`best_t`, uncached."""
        n = check_n(n)
        if n not in self.ns:
            return best_exponential_t(of_n(n, self.mode), kl)
        if not np.isfinite(kl) or kl <= 0:
            raise InfAlignError(f"the KL budget must be a finite number > 0 nats, got {kl}")
        scores = _cubic_at(self.log_kl, self.win_rate[:, self.ns.index(n)], float(np.log(kl)))
        if np.all(np.isnan(scores)):
            return best_exponential_t(of_n(n, self.mode), kl)  # the exact search raises the clear error
        best = int(np.nanargmax(scores))
        lo, hi = max(best - 1, 0), min(best + 1, len(scores) - 1)
        if not np.all(np.isfinite(scores[lo : hi + 1])):
            # The best grid t sits where the budget leaves the exponential's reach: the optimum
            # is on that edge, between grid points, so search exactly.
            return best_exponential_t(of_n(n, self.mode), kl)
        log_t = float(self.log_t[best])
        if lo < best < hi:  # the parabola through the best grid t and its neighbours
            a, b, _ = np.polyfit(self.log_t[lo : hi + 1], scores[lo : hi + 1], 2)
            if a < 0:
                log_t = float(np.clip(-b / (2 * a), self.log_t[lo], self.log_t[hi]))
        choice = _exact_exponential(log_t, n, kl, self.mode)
        return choice if choice is not None else best_exponential_t(of_n(n, self.mode), kl)


def _exact_exponential(log_t: float, n: int, kl: float, mode: str) -> ExponentialChoice | None:
    """The exponential with this t at the KL budget, exactly; None where the budget is out of its reach."""
    phi = Transform("exp", float(np.exp(log_t)), mode)
    try:
        beta = beta_for_kl(phi, kl)
    except InfAlignError:
        return None
    point = evaluate(phi, beta, n)
    rate = point.bon_win_rate if mode == "best" else point.won_win_rate
    return ExponentialChoice(
        t=phi.t, beta=beta, win_rate=rate, mode=mode, kl=float(kl), procedure=of_n(n, mode).spec
    )


def _cubic_at(log_kl: np.ndarray, rates: np.ndarray, target: float) -> np.ndarray:
    """Each row's win rate at log KL = target, by the cubic through the four nearest β (NaN if out of range).

    Rows run in increasing log KL; a row that does not bracket the target gives NaN.
    """
    rows, _width = log_kl.shape
    out = np.full(rows, np.nan)
    for row in range(rows):
        x, y = log_kl[row], rates[row]
        ok = np.isfinite(x)
        x, y = x[ok], y[ok]
        if len(x) < 4 or not x[0] <= target <= x[-1]:
            continue
        j = int(np.clip(np.searchsorted(x, target) - 2, 0, len(x) - 4))
        xs, ys = x[j : j + 4], y[j : j + 4]
        weights = [
            np.prod([(target - xs[m]) / (xs[k] - xs[m]) for m in range(4) if m != k]) for k in range(4)
        ]
        out[row] = float(np.dot(weights, ys))
    return out


def exponential_family(
    ns: Sequence[int], mode: str = "best", count_t: int = 32, count_beta: int = 28
) -> ExponentialFamily:
    """Sweep the exponential transform over ``count_t`` values of t, every N at once.

    For each t the β sweep spans just the page's KL range (two β root-finds find its ends),
    so ``count_beta`` points resolve the win rate there finely.
    """
    mode = check_mode(mode)
    ns = tuple(sorted({check_n(n) for n in ns}))
    log_t = np.linspace(np.log(_T_RANGE[0]), np.log(_T_RANGE[1]), count_t)
    log_kls, rates = [], []
    for lt in log_t:
        phi = Transform("exp", float(np.exp(lt)), mode)
        ends = []
        for kl, fallback in ((KL_MAX, BETA_RANGE[0]), (0.02, BETA_RANGE[1])):
            try:
                ends.append(beta_for_kl(phi, kl))
            except InfAlignError:
                ends.append(fallback)  # out of reach: sweep to the end of β's range instead
        betas = np.geomspace(ends[0], ends[1], count_beta)[::-1]  # KL increasing along the row
        f = frontier(phi, betas, ns)
        with np.errstate(divide="ignore"):
            log_kls.append(np.where(f.kl > 0, np.log(np.maximum(f.kl, 1e-300)), np.nan))
        rates.append(f.bon_win_rate if mode == "best" else f.won_win_rate)
    return ExponentialFamily(
        mode=mode, ns=ns, log_t=log_t, log_kl=np.array(log_kls), win_rate=np.array(rates)
    )


def best_t_rows(family: ExponentialFamily, ns: Sequence[int], kl: float) -> list[dict[str, float | str]]:
    """The page's best-t table (the columns of :func:`explorer.best_t_table`), from the family."""
    from infalign_core.explorer import best_t_table

    return best_t_table(ns, kl, family.mode, choose=family.best_t)
