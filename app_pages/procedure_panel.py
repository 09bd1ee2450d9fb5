"""The inference-procedure choice and the "Beyond best-of-N" view of Transforms & frontiers (not a page).

The choice lives in the page's link as ``procedure=SPEC``, so a link reproduces a what-if.
Every number comes from :mod:`infalign_core.explorer` / :mod:`infalign_core.procedures`.
"""

import pandas as pd
import streamlit as st

from infalign_core import explorer, figures
from infalign_core.errors import InfAlignError
from infalign_core.text import literal
from infalign_core.theory import t_label

KINDS = tuple(explorer.PROCEDURE_LABELS)
FORMAT = {
    "t": st.column_config.NumberColumn(format="%.3g"),
    "β": st.column_config.NumberColumn(format="%.4g"),
    "win rate": st.column_config.NumberColumn(format="%.4f"),
}


def choose_kind() -> str:
    """The procedure selectbox; its state (and the link's ``procedure=SPEC``) lives in session state."""
    d = explorer.PROCEDURE_DEFAULTS
    defaults = {
        "procedure_kind": "bon",
        **{f"procedure_{name}": d[name] for name in ("mu", "p", "tau", "q", "expr")},
    }
    for key, value in defaults.items():  # widgets not drawn on the last run lose their state
        st.session_state.setdefault(key, value)
    return st.selectbox(
        "Inference procedure", KINDS, format_func=explorer.PROCEDURE_LABELS.get, key="procedure_kind"
    )


def sidebar(max_n: int) -> tuple[str, str, int, str | None]:
    """The procedure, the best/worst mode the N-based charts use, N, and the spec (None if invalid)."""
    kind = choose_kind()
    n = int(st.number_input("N, samples at inference", 1, max_n, step=1, key="n"))
    mode, spec = "worst" if kind == "won" else "best", parameters(kind, n)
    # What the link carries: mode and n for best/worst-of-N, procedure=SPEC beyond them.
    st.session_state["mode"] = mode
    st.session_state["procedure_spec"] = spec if kind not in ("bon", "won") else None
    return kind, mode, n, spec


def parameters(kind: str, n: int) -> str | None:
    """The kind's own parameters; returns the spec (also written to the link), or None after showing the error."""
    d = explorer.PROCEDURE_DEFAULTS
    mu = (
        st.number_input("μ, mean extra tries", 0.0, 1000.0, step=0.5, key="procedure_mu")
        if kind == "poisson"
        else d["mu"]
    )
    p = (
        st.slider("p, share of requests with best-of-N", 0.0, 1.0, step=0.05, key="procedure_p")
        if kind == "mix"
        else d["p"]
    )
    tau = (
        st.number_input("τ, softness", 0.01, 1000.0, format="%.3f", key="procedure_tau")
        if kind == "soft"
        else d["tau"]
    )
    q = (
        st.slider("q, calibrated-reward threshold", 0.0, 1.0, step=0.05, key="procedure_q")
        if kind == "reject"
        else d["q"]
    )
    expr = (
        st.text_input("T(x)", key="procedure_expr", help="numbers, x, + - * / **, exp, log, sqrt")
        if kind == "expr"
        else d["expr"]
    )
    if kind == "poisson":
        st.caption("N is not used: the number of tries is 1 + Poisson(μ).")
    try:
        spec = explorer.procedure_spec(kind, n=n, mu=mu, p=p, tau=tau, q=q, expr=expr)
        explorer.procedures.parse_procedure(spec)
    except InfAlignError as err:
        st.error(literal(err))
        return None
    return spec


@st.cache_data(
    show_spinner="Solving this procedure's optimal transforms across KL (a few seconds per new procedure)…"
)
def _view(spec):
    """The procedure's frontiers and optimal-vs-exponential gap, or the error message."""
    try:
        return explorer.procedure_view(spec)
    except InfAlignError as err:
        return str(err)


@st.cache_data(show_spinner="Finding the best t and the optimum at this KL…")
def _at(spec, kl):
    """The best t, the optimum and calibrated RLHF at one KL, or the error message."""
    try:
        return explorer.procedure_at_kl(spec, kl)
    except InfAlignError as err:
        return str(err)


@st.cache_data(show_spinner=False)
def _identity_kl(beta):
    """What calibrated RLHF (identity Φ) spends at β: the page's KL when β is held fixed."""
    return explorer.resolve_transform("identity", n=1, beta=beta).point.kl


def show(spec: str | None, kl: float | None, beta: float | None) -> None:
    """The Beyond best-of-N view: explanation, table at the KL, frontiers, optimal Φ vs the best exponential."""
    if spec is None:  # parameters() has shown why
        return
    kl_ref = float(kl if kl is not None else _identity_kl(beta))
    view, at = _view(spec), _at(spec, round(kl_ref, 6))
    proc = explorer.procedures.parse_procedure(spec)
    st.caption(f"Inference procedure **{literal(proc.label)}** (`{spec}`); KL **{kl_ref:.3g} nats**.")
    st.markdown(
        f"**What it models.** {proc.description} Its win rate compares the procedure applied to the aligned "
        "policy with the same procedure applied to the reference, in calibrated space: "
        + (
            "$W = 1 - \\int_0^1 T(G(u))\\,T'(u)\\,du$, and the optimal Φ solves $\\Phi'(u) = T'(u)\\,T'(G(u))$."
            if proc.pointwise
            else "its output law is a functional of $G$; $W$ is computed from it and the optimal Φ is the damped "
            "fixed point of $\\Phi = \\delta W/\\delta g$ (it need not be monotone)."
        )
    )
    for problem in {item for item in (view, at) if isinstance(item, str)}:
        st.error(literal(problem))
    if isinstance(at, str) or isinstance(view, str):
        return
    table, side = st.columns([3, 1])
    table.dataframe(pd.DataFrame(at.rows()), hide_index=True, column_config=FORMAT)
    side.metric(f"best t at {kl_ref:.3g} nats", t_label(at.exponential.t))
    side.metric("optimal − best exponential", f"{100 * at.gap:+.3f} points")
    chart, text = st.columns([3, 1])
    fig = figures.frontier_figure(
        [*view.lines, at.exponential_line], (), kl_ref, max(3.0, 1.25 * kl_ref), f"{proc.label} win rate"
    )
    chart.plotly_chart(fig, alt="procedure frontiers")
    text.markdown(
        "**Win rate against KL under this procedure.** Each line sweeps β for one transform; the optimal "
        "transform's points are solved at each KL (one Φ per point). The dotted line marks the KL above."
    )
    pair = [
        {"label": label, **explorer.transform_curve(phi)}
        for label, phi in (
            ("optimal", at.optimum.phi),
            (f"exp (t={t_label(at.exponential.t)})", at.exponential_phi),
        )
    ]
    ok = (
        view.gap.exponential_win_rate == view.gap.exponential_win_rate
    )  # drop NaN (out of the exponential's reach)
    chart, text = st.columns([3, 1])
    chart.plotly_chart(
        figures.optimal_vs_exponential_figure(
            *pair, view.gap.frontier.kl[ok], 100 * view.gap.gap[ok], kl_ref
        ),
        alt="optimal vs exponential for the procedure",
    )
    text.markdown(
        "**Optimal Φ against the best exponential.** Left: both transforms rescaled to [0, 1]; right: how many "
        "points of win rate the optimal transform adds at equal KL. Where the gap is a fraction of a point the "
        "exponential, with its best t, is the practical choice."
    )
