"""The exact optimum π*(y|x) ∝ π_ref(y|x)·e^{Φ(C(x,y))/β}, as a yardstick and as a challenger.

THEORY.md, "Reaching the optimum". The optimum spends all of its KL on the calibrated reward,
so what it shows through a bank of m reference samples at a sequence KL is the most a trained
run at that KL can show: the yardstick for a run's reward-visible KL.
"""

from __future__ import annotations

import numpy as np

from infalign_core import theory
from infalign_core.errors import InfAlignError

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


def share_seen(visible_kl: float | None, config: dict | None, kl: float, m: int) -> float | None:
    """A run's reward-visible KL as a share of what the exact optimum shows through the same bank at its KL.

    1 means the run spends its KL where the reward looks as fully as the optimum does; the
    bank's own coarseness (m + 1 levels) cancels, unlike a share of the sequence KL.
    """
    ceiling = optimum_visible_kl(config, kl, m)
    if visible_kl is None or ceiling is None or ceiling <= 0 or not np.isfinite(visible_kl):
        return None
    return float(visible_kl) / ceiling
