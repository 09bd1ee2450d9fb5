"""The theory beside an arena measurement: a run's Φ, its frontier along β and its point at a measured KL.

For the standard, best-of-N and worst-of-N win rates (``theory_curve``, ``theory_at_kl``) and for
any inference procedure (``procedure_theory_curve``, ``procedure_theory_at_kl``).
"""

from __future__ import annotations

import numpy as np

from infalign_core.errors import InfAlignError
from infalign_core.winrate import METRICS


def run_transform(config: dict | None):
    """The Φ a run trained on: closed forms, and the optimal Φ at the β it was solved at (``phi_beta``).

    None for ``raw`` (no theory curve) and for an optimal run whose Φ was not recorded.
    """
    from infalign_core.transforms import Transform

    name = (config or {}).get("transform")
    if name in ("identity", "log"):
        return Transform(name)
    if name == "exp" and config.get("t") is not None:
        return Transform("exp", float(config["t"]), config.get("mode", "best"))
    if name == "optimal" and config.get("phi_beta") is not None:
        from infalign_core.ctrl import CTRLConfig, make_phi

        trained = CTRLConfig(
            transform="optimal",
            n=int(config.get("n") or 4),
            mode=config.get("mode", "best"),
            procedure=config.get("procedure"),
        )
        return make_phi(trained, float(config["phi_beta"]))
    return None


def theory_curve(config: dict | None, n: int, kl_max: float = 2.0, count: int = 60) -> dict | None:
    """The theory's KL, standard, best-of-N and worst-of-N win rates along β for a run's transform and N.

    None when the run has no theory curve (``raw`` is a prompt-dependent transform).
    """
    from infalign_core import theory

    name = (config or {}).get("transform")
    if name == "optimal" and config.get("phi_beta") is None:  # the optimum at every KL (the envelope)
        from infalign_core import optimal

        points = [
            theory.evaluate(phi, phi.beta, n)
            for phi in optimal.optimal_transforms(
                int(config.get("n") or n), config.get("mode", "best"), kl_max, count // 4
            )
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
        if name == "optimal" and config.get("phi_beta") is None:
            from infalign_core.optimal import optimal_transform_for_kl

            phi = optimal_transform_for_kl(int(config.get("n") or n), kl, config.get("mode", "best"))
            return theory.evaluate(phi, phi.beta, n).as_dict()
        phi = run_transform(config)
        if phi is None:
            return None
        return theory.evaluate(phi, theory.beta_for_kl(phi, kl), n).as_dict()
    except InfAlignError:
        return None


def procedure_theory_curve(
    config: dict | None, spec: str, kl_max: float = 2.0, count: int = 60
) -> dict | None:
    """The theory's win rate under a procedure along β for a run's Φ (None without a theory curve).

    An optimal run with no recorded β gets the procedure's optimal envelope instead.
    """
    from infalign_core import procedures, theory

    proc = procedures.parse_procedure(spec)
    name = (config or {}).get("transform")
    if name == "optimal" and config.get("phi_beta") is None:
        optimum = procedures.optimal_frontier(proc, np.linspace(kl_max / 8, kl_max, 8))
        return {"label": f"optimal for {proc.label}", "kl": optimum.kl, "win_rate": optimum.win_rate}
    phi = run_transform(config)
    if phi is None:
        return None
    front = procedures.procedure_frontier(phi, theory.default_betas(count), proc)
    keep = front.kl <= kl_max
    return {"label": f"{phi.label}, {proc.label}", "kl": front.kl[keep], "win_rate": front.win_rate[keep]}


def procedure_theory_at_kl(config: dict | None, spec: str, kl: float) -> float | None:
    """The theory's win rate under a procedure for a run's Φ at the KL it measured (None without one)."""
    from infalign_core import procedures, theory

    if not np.isfinite(kl) or (config or {}).get("transform") not in ("identity", "log", "exp", "optimal"):
        return None
    if kl <= 0:
        return 0.5
    proc = procedures.parse_procedure(spec)
    try:
        if config.get("transform") == "optimal" and config.get("phi_beta") is None:
            return procedures.optimal_for_procedure(proc, kl=kl).win_rate
        phi = run_transform(config)
        return None if phi is None else procedures.procedure_win_rate(phi, theory.beta_for_kl(phi, kl), proc)
    except InfAlignError:
        return None
