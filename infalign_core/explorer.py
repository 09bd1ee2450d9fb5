"""The computations behind the theory pages, as plain functions over the engine.

The "Transforms & frontiers" page and the landing page only pick widgets and draw; every
number they show comes from here (so it can be tested without streamlit):

- :func:`resolve_transform` turns a page choice (name, N, mode, t, β *or* a KL budget)
  into a transform, its β and its exact point (KL, standard and best/worst-of-N win rates).
- :func:`transform_curve` samples Φ on [0, 1], rescaled to [0, 1] so transforms of very
  different scales share one chart.
- the optimal transform's frontier and its gap to the best exponential are
  ``procedures.optimal_frontier`` / ``procedures.optimal_gap`` for ``bon:N`` and ``won:N``
  (one theory API for every procedure).
- :func:`best_t_table`, :func:`tradeoff`, :func:`headline` and :func:`bon_policy_points`
  make the page's table, trade-off bars, landing-page numbers and reference markers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from infalign_core import optimal, procedures
from infalign_core.errors import InfAlignError
from infalign_core.theory import (
    BETA_RANGE,
    TheoryPoint,
    beta_for_kl,
    bon_policy_point,
    check_n,
    default_betas,
    evaluate,
)
from infalign_core.transforms import MAX_T, Transform, check_mode, make_transform, t_label

Phi = Callable[[np.ndarray], np.ndarray]

BEST_T_RANGE = (0.05, MAX_T)


def inference_win_rate(point: TheoryPoint, mode: str) -> float:
    """The best-of-N win rate in ``best`` mode, the worst-of-N win rate in ``worst`` mode."""
    return point.bon_win_rate if check_mode(mode) == "best" else point.won_win_rate


def transform_curve(phi: Phi, count: int = 401) -> dict[str, np.ndarray]:
    """Φ on a uniform grid of [0, 1], and Φ rescaled to [0, 1] (points where Φ = −∞ are dropped)."""
    u = np.linspace(0.0, 1.0, count)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.asarray(phi(u), dtype=np.float64)
    finite = np.isfinite(values)
    u, values = u[finite], values[finite]
    spread = values.max() - values.min()
    normalised = (values - values.min()) / spread if spread > 0 else u.copy()
    return {"u": u, "phi": values, "normalised": normalised}


@dataclass(frozen=True)
class Resolved:
    """A transform chosen on the page, with the β it is used at and its exact point for N."""

    name: str
    label: str
    phi: Phi
    beta: float
    n: int
    mode: str
    point: TheoryPoint

    @property
    def win_rate(self) -> float:
        """The best-of-N (or worst-of-N) win rate at this transform's point."""
        return inference_win_rate(self.point, self.mode)


def _check_beta(beta: float) -> float:
    """β as a float inside the engine's range, or an error saying what to pick."""
    if not np.isfinite(beta) or not BETA_RANGE[0] <= beta <= BETA_RANGE[1]:
        raise InfAlignError(f"β must be a number in [{BETA_RANGE[0]:g}, {BETA_RANGE[1]:g}], got {beta}")
    return float(beta)


def resolve_transform(
    name: str,
    *,
    n: int,
    mode: str = "best",
    t: float | None = None,
    beta: float | None = None,
    kl: float | None = None,
    optimal_family=None,
    exponential_family=None,
) -> Resolved:
    """Build a transform from a page choice and evaluate it at β, or at the β that spends ``kl`` nats.

    For ``exp`` with ``t=None`` the best t for N at the KL budget is used; ``optimal`` is
    solved for N and mode (its β comes with it, since the optimum is a fixed point). At a KL
    budget, cached ``families`` (an ``OptimalFamily`` for N and mode, an ``ExponentialFamily``
    for the mode) read the optimum and the best t off their traces instead of solving afresh.
    """
    n, mode = check_n(n), check_mode(mode)
    if (beta is None) == (kl is None):
        raise InfAlignError("give exactly one of β or a KL budget")
    if beta is not None:
        beta = _check_beta(beta)
    if name == "optimal":
        if (
            kl is not None
            and optimal_family is not None
            and (optimal_family.n, optimal_family.mode) == (n, mode)
        ):
            phi = optimal_family.at_kl(kl)
        elif kl is None:
            phi = optimal.optimal_transform(n, beta, mode)
        else:
            phi = optimal.optimal_transform_for_kl(n, kl, mode)
        return Resolved(name, f"optimal (N={n})", phi, phi.beta, n, mode, evaluate(phi, phi.beta, n))
    if name == "exp" and t is None:
        if kl is None:
            raise InfAlignError("the best t is defined at equal KL: choose a KL budget, or set t yourself")
        if exponential_family is not None and exponential_family.mode == mode:
            choice = exponential_family.best_t(n, kl)
        else:
            choice = procedures.best_exponential_t(procedures.of_n(n, mode), kl)
        phi = Transform("exp", choice.t, mode)
        label = f"exp (best t={t_label(choice.t)} for N={n})"
        return Resolved(name, label, phi, choice.beta, n, mode, evaluate(phi, choice.beta, n))
    phi = make_transform(name, t=t, mode=mode)
    label = f"exp (t={t:g})" if name == "exp" else name
    beta = beta_for_kl(phi, kl) if beta is None else beta
    return Resolved(name, label, phi, beta, n, mode, evaluate(phi, beta, n))


def best_t_table(
    ns: Sequence[int], kl: float, mode: str = "best", choose: Callable | None = None
) -> list[dict[str, float | str]]:
    """For each N: the best exponential t at the KL budget, its β and win rate, and calibrated RLHF's.

    ``choose(n, kl)`` finds the best t (default: the exact search; the page passes a cached family's).
    """
    mode = check_mode(mode)
    choose = choose or (lambda n, kl: procedures.best_exponential_t(procedures.of_n(n, mode), kl))
    identity = Transform("identity")
    try:
        identity_beta = beta_for_kl(identity, kl)
    except InfAlignError:
        identity_beta = None
    rows: list[dict[str, float | str]] = []
    for n in ns:
        # Every row has every column, in one order, so it tabulates cleanly; NaN marks what is missing.
        row: dict[str, float | str] = dict.fromkeys(
            ("N", "best t", "β", "win rate", "identity win rate"), np.nan
        )
        row.update({"N": int(n), "gain (points)": np.nan, "note": ""})
        try:
            choice = choose(n, kl)
            row.update({"best t": choice.t, "β": choice.beta, "win rate": choice.win_rate})
            if choice.t >= 0.999 * BEST_T_RANGE[1]:
                row["note"] = f"t capped at {BEST_T_RANGE[1]:g}"
            elif getattr(choice, "at_beta_floor", False):
                row["note"] = (
                    f"β at its floor {BETA_RANGE[0]:g}: a steeper t would need a smaller β, "
                    "so this is the steepest t that reaches the KL"
                )
        except InfAlignError as err:
            row["note"] = str(err)
        if identity_beta is not None:
            row["identity win rate"] = inference_win_rate(evaluate(identity, identity_beta, n), mode)
            row["gain (points)"] = 100.0 * (float(row["win rate"]) - float(row["identity win rate"]))
        rows.append(row)
    return rows


def best_t_trend(rows: Sequence[Mapping], mode: str) -> str:
    """One sentence on how the best t moves with N in these rows, true to the rows (floor-pinned ones named)."""
    ok = [row for row in rows if np.isfinite(row["best t"])]
    pinned = [int(row["N"]) for row in ok if str(row.get("note", "")).startswith("β at its floor")]
    if len(ok) < 2:
        trend = "With one N there is no trend to read."
    else:
        ts = [float(row["best t"]) for row in ok]
        first, last = ok[0], ok[-1]
        span = f"from t = {t_label(ts[0])} at N = {first['N']} to {t_label(ts[-1])} at N = {last['N']}"
        if np.all(np.diff(ts) >= 0):
            where = 1 if mode == "best" else 0
            trend = f"Here it grows with N, {span}: the {mode} of N samples sits nearer u = {where}."
        else:
            top = ok[int(np.argmax(ts))]
            trend = f"Here it peaks at N = {top['N']} (t = {t_label(max(ts))}) and does not grow throughout ({span})."
    if pinned:
        trend += (
            f" For N = {', '.join(map(str, pinned))} the best t sits where β reaches its floor {BETA_RANGE[0]:g}: "
            "a steeper t would need a smaller β than the engine resolves, so the t shown is the steepest reachable "
            "and the true best may lie beyond it."
        )
    return trend


def tradeoff(resolved: Sequence[Resolved]) -> list[dict[str, float | str]]:
    """Standard and best/worst-of-N win rates side by side for each resolved transform."""
    return [
        {
            "transform": r.label,
            "β": r.beta,
            "KL": r.point.kl,
            "standard win rate": r.point.standard_win_rate,
            f"{r.mode}-of-{r.n} win rate": r.win_rate,
        }
        for r in resolved
    ]


def headline(n: int = 4, kl: float = 0.5, mode: str = "best") -> dict[str, float]:
    """Best-of-N (or worst-of-N) win rate at one KL budget: calibrated RLHF, best exponential, optimal."""
    names = {"identity": "identity", "best exponential": "exp", "optimal": "optimal"}
    return {label: resolve_transform(name, n=n, mode=mode, kl=kl).win_rate for label, name in names.items()}


def bon_policy_points(ns_policy: Sequence[int], n_eval: int, mode: str = "best") -> dict[str, np.ndarray]:
    """KL and best/worst-of-``n_eval`` win rate of the best-of-n policies, for markers on a frontier."""
    points = [bon_policy_point(n, n_eval) for n in ns_policy]
    return {
        "n": np.array([int(n) for n in ns_policy]),
        "kl": np.array([p.kl for p in points]),
        "win_rate": np.array([inference_win_rate(p, mode) for p in points]),
    }


def transform_at(
    *,
    transform: str,
    t: float | None,
    mode: str,
    beta: float | None,
    kl: float | None,
    n: int,
    procedure: str | None = None,
) -> tuple[Phi, float]:
    """Φ and β as the ``theory`` command builds them: β given, or solved so the optimum spends ``kl``.

    ``optimal`` with a procedure spec is that procedure's optimal transform, without one
    best/worst-of-N's; ``exp`` without t takes the best t for N (or the procedure) at ``kl``.
    """
    n, mode = check_n(n), check_mode(mode)
    if (beta is None) == (kl is None):
        raise InfAlignError("give exactly one of β or a KL budget")
    proc = procedures.parse_procedure(procedure) if procedure is not None else None
    if beta is not None:
        beta = float(_check_beta(beta))
    if t is not None and (t < 0 or not np.isfinite(t)):
        raise InfAlignError(f"t must be a finite number ≥ 0, got {t:g}")
    if transform == "optimal" and proc is not None:
        phi = procedures.optimal_for_procedure(proc, beta=beta, kl=kl)
        return phi, phi.beta
    if transform == "optimal":
        phi = (
            optimal.optimal_transform(n, beta, mode)
            if beta is not None
            else optimal.optimal_transform_for_kl(n, kl, mode)
        )
        return phi, phi.beta
    if transform == "exp" and t is None:
        if kl is None:
            raise InfAlignError("the exponential transform needs --t, or --kl to choose the best t")
        if proc is not None:
            choice = procedures.best_exponential_t(proc, kl)
            t, mode = choice.t, choice.mode
        else:
            t = procedures.best_exponential_t(procedures.of_n(n, mode), kl).t
    phi = make_transform(transform, t=t, mode=mode)
    return phi, (beta_for_kl(phi, kl) if beta is None else beta)


def evaluate_cli(
    *,
    transform: str,
    t: float | None,
    mode: str,
    beta: float | None,
    kl: float | None,
    n: int,
    procedure: str | None = None,
) -> dict[str, float]:
    """The ``theory`` command: build the transform, solve β from a KL budget if asked, evaluate.

    With a procedure spec the point also carries ``procedure_win_rate``; ``optimal`` then
    means that procedure's optimal transform, and ``exp`` without t its best t.
    """
    phi, beta = transform_at(transform=transform, t=t, mode=mode, beta=beta, kl=kl, n=n, procedure=procedure)
    point = evaluate(phi, beta, n).as_dict()
    if procedure is not None:
        point["procedure_win_rate"] = procedures.procedure_win_rate(
            phi, beta, procedures.parse_procedure(procedure)
        )
    return point


# --- inference procedures beyond best-of-N (the page's "Beyond best-of-N" view) ---------------

PROCEDURE_LABELS = {
    "bon": "best-of-N",
    "won": "worst-of-N",
    "poisson": "best-of-(1 + Poisson(μ))",
    "mix": "best-of-N on a share p",
    "soft": "soft best-of-N",
    "reject": "rejection sampling",
    "expr": "your own T(x)",
}
PROCEDURE_DEFAULTS = {"n": 4, "mu": 3.0, "p": 0.5, "tau": 0.1, "q": 0.8, "expr": "x**3"}


def procedure_spec(kind: str, *, n: int, mu: float, p: float, tau: float, q: float, expr: str) -> str:
    """The spec string for a page choice (only the parameters the kind uses)."""
    specs = {
        "bon": f"bon:{int(n)}",
        "won": f"won:{int(n)}",
        "poisson": f"poisson:{mu:g}",
        "mix": f"mix:{p:g}:{int(n)}",
        "soft": f"soft:{int(n)}:{tau:g}",
        "reject": f"reject:{q:g}:{int(n)}",
        "expr": f"expr:{expr}",
    }
    if kind not in specs:
        raise InfAlignError(f"unknown procedure {kind!r}; choose one of {', '.join(specs)}")
    return specs[kind]


def procedure_widgets(spec: str) -> dict:
    """The page's widget values that reproduce a spec (kind plus its parameters over the defaults)."""
    proc = procedures.parse_procedure(spec)
    values = {"kind": proc.kind, **PROCEDURE_DEFAULTS}
    if proc.kind in ("bon", "won", "mix", "soft", "reject"):
        values["n"] = proc.n
    values.update(
        {
            "poisson": {"mu": proc.mu},
            "mix": {"p": proc.p},
            "soft": {"tau": proc.tau},
            "reject": {"q": proc.q},
        }.get(proc.kind, {})
    )
    if proc.kind == "expr":
        values["expr"] = proc.spec[len("expr:") :]
    return values


@dataclass(frozen=True)
class ProcedureView:
    """Everything the page shows for one procedure across KL: frontiers and the optimal-vs-exponential gap."""

    procedure: procedures.Procedure
    lines: list[dict]  # frontier_figure lines: identity and optimal
    gap: procedures.OptimalGap


def procedure_view(spec: str, kl_max: float = 3.0, count: int = 8) -> ProcedureView:
    """The procedure's win-rate frontiers (identity; optimal at ``count`` KLs) and the optimal's gap to the best exponential."""
    proc = procedures.parse_procedure(spec)
    kls = np.linspace(kl_max / count, kl_max, count)
    gap = procedures.optimal_gap(proc, kls)
    optimum = gap.frontier
    identity = procedures.procedure_frontier(Transform("identity"), default_betas(200), proc)
    lines = [
        {
            "name": "identity",
            "label": "identity",
            "legend": "identity (calibrated RLHF)",
            "n": proc.spec,
            "n_index": 0,
            "kl": identity.kl,
            "beta": identity.beta,
            "win_rate": identity.win_rate,
        },
        {
            "name": "optimal",
            "label": "optimal",
            "legend": f"optimal for {proc.label}",
            "n": proc.spec,
            "n_index": 0,
            "kl": optimum.kl,
            "win_rate": optimum.win_rate,
            "markers": True,
        },
    ]
    return ProcedureView(proc, lines, gap)


@dataclass(frozen=True)
class ProcedureAtKL:
    """One KL budget under a procedure: the best exponential t, the optimum and calibrated RLHF."""

    procedure: procedures.Procedure
    kl: float
    exponential: procedures.ExponentialChoice
    optimum: procedures.ProcedureOptimum
    identity_win_rate: float
    exponential_line: dict  # frontier_figure line of exp at the best t

    @property
    def exponential_phi(self) -> Transform:
        """The exponential transform at the best t."""
        return Transform("exp", self.exponential.t, self.exponential.mode)

    @property
    def gap(self) -> float:
        """Optimal minus best-exponential win rate at this KL."""
        return self.optimum.win_rate - self.exponential.win_rate

    def rows(self) -> list[dict[str, float | str]]:
        """A small table: transform, t, β and the procedure's win rate at this KL."""
        return [
            {
                "transform": "identity (calibrated RLHF)",
                "t": np.nan,
                "β": np.nan,
                "win rate": self.identity_win_rate,
            },
            {
                "transform": "best exponential",
                "t": self.exponential.t,
                "β": self.exponential.beta,
                "win rate": self.exponential.win_rate,
            },
            {"transform": "optimal", "t": np.nan, "β": self.optimum.beta, "win rate": self.optimum.win_rate},
        ]


def procedure_at_kl(spec: str, kl: float) -> ProcedureAtKL:
    """The best exponential t, the optimal Φ and calibrated RLHF's win rate for the procedure at a KL budget."""
    proc = procedures.parse_procedure(spec)
    choice = procedures.best_exponential_t(proc, kl)
    optimum = procedures.optimal_for_procedure(proc, kl=kl)
    identity = Transform("identity")
    identity_rate = procedures.procedure_win_rate(identity, beta_for_kl(identity, kl), proc)
    exp = Transform("exp", choice.t, choice.mode)
    front = procedures.procedure_frontier(exp, default_betas(200), proc)
    line = {
        "name": "exp",
        "label": "exp",
        "legend": f"exp, best t={t_label(choice.t)} at {kl:g} nats",
        "n": proc.spec,
        "n_index": 0,
        "kl": front.kl,
        "beta": front.beta,
        "win_rate": front.win_rate,
    }
    return ProcedureAtKL(proc, float(kl), choice, optimum, identity_rate, line)
