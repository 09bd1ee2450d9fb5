"""Reward transformations Φ of the calibrated reward u ∈ [0, 1].

CTRL trains with the reward Φ(C(x, y)), where C is the calibrated reward (the
mid-rank CDF of the response's reward among reference samples for the same prompt).
Every Φ here is increasing, so a higher calibrated reward is never worth less:

- ``identity``: Φ(u) = u. Optimal for the standard win rate (N = 1).
- ``log``: Φ(u) = log u. With β = 1/(n − 1) its optimum *is* the best-of-n policy.
- ``exp`` in ``best`` mode: Φ(u) = (e^{t·u} − 1)/(e^{t} − 1), for best-of-N: it rewards
  the top of the reference distribution sharply.
- ``exp`` in ``worst`` mode: Φ(u) = (1 − e^{−t·u})/(1 − e^{−t}), an increasing version of
  −e^{−t·u} for worst-of-N: it penalises the worst responses most.
- ``optimal``: the fixed-point transform for a given N, mode and β; it is solved in
  :mod:`infalign_core.optimal` and behaves like any transform here.

Normalising the exponentials to Φ(0) = 0, Φ(1) = 1 keeps useful β values in a sane
range whatever t is (THEORY.md, practical notes); t → 0 recovers the identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infalign_core.checks import MODES as MODES
from infalign_core.checks import check_mode as check_mode
from infalign_core.errors import InfAlignError

TRANSFORM_NAMES = ("identity", "log", "exp", "optimal")
MAX_T = 500.0
# Below this t the normalised exponentials equal u to double precision.
_T_IDENTITY = 1e-12


def rounded_t(t: float) -> float:
    """The exponential's t rounded as pages show and CTRL uses it: two decimals, one place for all."""
    return round(float(t), 2)


def t_label(t: float) -> str:
    """The exponential's t as text, from :func:`rounded_t` (12.63, never 12.6 here and 12.7 there; 10, not 10.00)."""
    return f"{rounded_t(t):g}"


def identity(u: np.ndarray) -> np.ndarray:
    """Φ(u) = u."""
    return np.asarray(u, dtype=np.float64)


def log_transform(u: np.ndarray) -> np.ndarray:
    """Φ(u) = log u (−inf at u = 0)."""
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(u, dtype=np.float64))


def exp_best(u: np.ndarray, t: float) -> np.ndarray:
    """Φ(u) = (e^{t·u} − 1)/(e^{t} − 1), written so that no t up to 500 overflows."""
    u = np.asarray(u, dtype=np.float64)
    if t < _T_IDENTITY:
        return u.copy()
    # (e^{tu} - 1)/(e^t - 1) = e^{t(u-1)} * (1 - e^{-tu})/(1 - e^{-t}): every factor <= 1.
    return np.exp(t * (u - 1.0)) * (np.expm1(-t * u) / np.expm1(-t))


def exp_worst(u: np.ndarray, t: float) -> np.ndarray:
    """Φ(u) = (1 − e^{−t·u})/(1 − e^{−t}): increasing, steepest at the worst responses."""
    u = np.asarray(u, dtype=np.float64)
    if t < _T_IDENTITY:
        return u.copy()
    return np.expm1(-t * u) / np.expm1(-t)


@dataclass(frozen=True)
class Transform:
    """A closed-form transform Φ: ``identity``, ``log`` or ``exp`` (with t and mode)."""

    name: str
    t: float = 0.0
    mode: str = "best"

    def __call__(self, u: np.ndarray) -> np.ndarray:
        """Evaluate Φ at calibrated rewards u (vectorised)."""
        if self.name == "identity":
            return identity(u)
        if self.name == "log":
            return log_transform(u)
        return exp_best(u, self.t) if self.mode == "best" else exp_worst(u, self.t)

    @property
    def label(self) -> str:
        """A short human-readable name, e.g. ``exp (best-of-N, t=12)``."""
        if self.name == "exp":
            return f"exp ({self.mode}-of-N, t={t_label(self.t)})"
        return self.name


def make_transform(name: str, *, t: float | None = None, mode: str = "best") -> Transform:
    """Build a closed-form transform by name, validating its parameters."""
    check_mode(mode)
    if name == "optimal":
        raise InfAlignError(
            "the optimal transform depends on N and β; build it with infalign_core.optimal.optimal_transform"
        )
    if name not in ("identity", "log", "exp"):
        raise InfAlignError(f"unknown transform {name!r}; choose one of {', '.join(TRANSFORM_NAMES)}")
    if name != "exp":
        return Transform(name)
    if t is None:
        raise InfAlignError("the exponential transform needs t (try --t 10, or give --kl to get the best t)")
    if not np.isfinite(t) or t < 0:
        raise InfAlignError(f"t must be a finite number ≥ 0, got {t}")
    if t > MAX_T:
        raise InfAlignError(f"t must be at most {MAX_T:g}, got {t:g}")
    return Transform("exp", float(t), mode)
