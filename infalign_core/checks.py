"""Input checks shared by the theory engine, the optimal-transform solver and the procedures.

They live here, below every theory module, so that ``theory``, ``optimal``, ``transforms``
and ``procedures`` can import them without importing one another in a circle.
"""

from __future__ import annotations

import numpy as np

from infalign_core.errors import InfAlignError

BETA_RANGE = (1e-3, 1e3)
MAX_N = 1024
MODES = ("best", "worst")


def check_n(n: int) -> int:
    """Validate N of best-of-N / worst-of-N."""
    if int(n) != n or n < 1:
        raise InfAlignError(f"N must be an integer ≥ 1, got {n}")
    if n > MAX_N:
        raise InfAlignError(f"N must be at most {MAX_N}, got {n}")
    return int(n)


def check_mode(mode: str) -> str:
    """Validate a best/worst mode and return it."""
    if mode not in MODES:
        raise InfAlignError(f"mode must be 'best' or 'worst', got {mode!r}")
    return mode


def check_beta(beta) -> np.ndarray:
    """Validate β values (> 0, finite) and return them as a float64 array."""
    beta = np.asarray(beta, dtype=np.float64)
    if not np.all(np.isfinite(beta)) or np.any(beta <= 0):
        raise InfAlignError("β must be a finite number > 0")
    return beta


def check_beta_in_range(beta: float | None) -> float:
    """Validate one β for a solver: finite, > 0 and inside BETA_RANGE."""
    if beta is None or not np.isfinite(beta) or beta <= 0:
        raise InfAlignError(f"β must be a finite number > 0, got {beta}")
    if not BETA_RANGE[0] <= beta <= BETA_RANGE[1]:
        raise InfAlignError(f"β must lie in [{BETA_RANGE[0]:g}, {BETA_RANGE[1]:g}], got {beta:g}")
    return float(beta)


def check_kl(kl: float | None) -> float:
    """Validate a KL budget in nats."""
    if kl is None or not np.isfinite(kl) or kl <= 0:
        raise InfAlignError(f"the KL budget must be a finite number > 0 nats, got {kl}")
    return float(kl)
