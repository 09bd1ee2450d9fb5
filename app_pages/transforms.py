"""Transforms & frontiers: Φ curves, aligned densities and win rate against KL, for any N. No model needed."""

import numpy as np
import pandas as pd
import streamlit as st

from app_pages import linked, procedure_panel
from app_pages import theory_cache as tc
from infalign_core import explorer, figures, links, theory
from infalign_core.text import literal
from infalign_core.transforms import TRANSFORM_NAMES

T_CHOICES = links.T_CHOICES
N_CHOICES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
TABLE_FORMAT = {
    "best t": st.column_config.NumberColumn(format="%.2f"),  # theory.t_label's rounding
    "β": st.column_config.NumberColumn(format="%.4g"),
    "win rate": st.column_config.NumberColumn(format="%.4f"),
    "identity win rate": st.column_config.NumberColumn(format="%.4f"),
    "gain (points)": st.column_config.NumberColumn(format="%+.2f"),
}


def _section(fig, alt: str, text: str, metric: tuple[str, str] | None = None) -> None:
    """A chart with a short explanation (markdown with $…$ formulas) beside it."""
    chart, side = st.columns([3, 1])
    chart.plotly_chart(fig, alt=alt)
    if metric:
        side.metric(*metric)
    side.markdown(text)


st.title("Transforms & frontiers")
linked.restore(links.TRANSFORMS, "transforms", links.read_transforms)
with st.sidebar:
    st.header("Controls")
    kind, mode, n, spec = procedure_panel.sidebar(theory.MAX_N)
    # The procedure view has its own transforms (optimal, best exponential, identity): the
    # controls it would ignore are not drawn (their values come back from the link's defaults).
    closed_form = kind in ("bon", "won")
    names = st.multiselect("Transforms", TRANSFORM_NAMES, key="names") if closed_form else []
    ns = st.multiselect("N on the frontier chart", N_CHOICES, key="ns") if closed_form else []
    hold = st.radio("Hold fixed", ("KL budget", "β"), horizontal=True, key="hold")
    if hold == "KL budget":
        kl, beta = st.slider("KL budget, nats", 0.05, 8.0, step=0.05, key="kl"), None
    else:
        kl, beta = None, st.number_input("β, KL coefficient", 1e-3, 1e3, format="%.4f", key="beta")
    if closed_form:
        best_t = st.toggle("use the best t for this N and KL", key="best_t", disabled=kl is None)
        t = st.select_slider(
            "t, exponential steepness", T_CHOICES, key="t", disabled=best_t and kl is not None
        )
        if kl is None:
            st.caption("The best t is defined at equal KL: hold a KL budget to use it.")
        log_y = st.toggle("log scale for the densities", key="density_log")
    linked.publish(links.TRANSFORMS, "transforms")

word, best = f"{mode}-of-{n}", mode == "best"
if kind not in ("bon", "won"):  # beyond best-of-N: its own view, all numbers from explorer/procedures
    procedure_panel.show(spec, kl, beta)
    st.stop()
if not names:
    st.warning("Pick at least one transform in the sidebar.")
    st.stop()
if not ns:
    st.warning(f"No N picked for the frontier chart; showing N = {n}.")
ns = tuple(sorted(set(ns or [n])))
family_ns = tuple(sorted({*ns, n}))  # one exponential sweep serves the table and the best t for N

exp_t = None if best_t and kl is not None else float(t)
resolved, shown = {}, set()
keys = {name: (name, n, mode, exp_t if name == "exp" else None, beta, kl, family_ns) for name in names}
for name in names:
    result = tc.resolve(*keys[name])
    if isinstance(result, str):
        st.error(literal(result))
        shown.add(result)
    else:
        resolved[name] = result
# Comparisons at equal KL use the budget, or what calibrated RLHF (identity) spends at this β.
identity = tc.resolve("identity", n, mode, None, beta, kl, family_ns)
kl_ref = float(kl if kl is not None else (identity.point.kl if not isinstance(identity, str) else 0.5))
held = f"KL budget **{kl:g} nats**" if kl is not None else f"β = **{beta:g}** (RLHF spends {kl_ref:.3f} nats)"
st.caption(f"Inference procedure **{word}**; {held}.")
if resolved:
    st.dataframe(pd.DataFrame(explorer.tradeoff(list(resolved.values()))), hide_index=True)

curves = [{"name": k, "label": r.label, **tc.curves(*keys[k])["phi"]} for k, r in resolved.items()]
_section(
    figures.transform_curves_figure(curves),
    "transform curves",
    "**The transforms Φ.** CTRL trains on $\\Phi(C)$, a function of the calibrated reward $u = C \\in [0, 1]$. "
    "Only the *shape* matters (a scale is absorbed by β), so each curve is rescaled to [0, 1]. "
    + (
        "For best-of-N the exponential $\\frac{e^{tu}-1}{e^t-1}$ is steep near $u = 1$, where the best of N lands; "
        "the optimal Φ solves $\\Phi'(u) = N^2 u^{N-1} G(u)^{N-1}$."
        if best
        else "For worst-of-N the exponential $\\frac{1-e^{-tu}}{1-e^{-t}}$ is steep near $u = 0$, where the worst of N lands; "
        "the optimal Φ solves $\\Phi'(u) = N^2 (1-u)^{N-1} (1-G(u))^{N-1}$."
    ),
)
densities = [{"name": k, "label": r.label, **tc.curves(*keys[k])["density"]} for k, r in resolved.items()]
_section(
    figures.density_figure(densities, log_y=log_y),
    "aligned densities",
    "**The aligned policies.** The optimum of $\\mathbb{E}[\\Phi(C)] - \\beta\\,\\mathrm{KL}$ tilts the reference: "
    "its calibrated reward has density $g(u) = e^{\\Phi(u)/\\beta}/Z$, against the reference's flat $g = 1$. "
    "Then $\\mathrm{KL} = \\int g \\log g$ and the standard win rate is $\\int u\\, g(u)\\, du$.",
)

gap = tc.gap(n, mode)
lines = []
for name, r in resolved.items():
    if name != "optimal":
        lines += tc.frontier_lines(
            name, r.label, getattr(r.phi, "t", None) if name == "exp" else None, mode, ns
        )
if "optimal" in resolved and not isinstance(gap, str):
    lines.append(figures.optimal_frontier_line(gap.frontier, n, ns))
policy = tc.policy_series(ns, mode)
_section(
    figures.frontier_figure(lines, policy, kl_ref, max(3.0, 1.25 * kl_ref), f"{mode}-of-N win rate"),
    "frontiers",
    f"**Win rate against KL.** Each line sweeps β for one transform and one N (line style = N; N = 1 is the standard win rate). "
    f"The {mode}-of-N win rate compares {mode}-of-N of the aligned policy with {mode}-of-N of the reference. "
    "Diamonds are the best-of-n policies themselves ($\\mathrm{KL} = \\log n - \\frac{n-1}{n}$), which the log transform traces exactly."
    + (
        " The optimal transform's frontier (dots) is solved for the N in the sidebar."
        if "optimal" in resolved
        else ""
    ),
)

st.subheader(f"Best t for each N at {kl_ref:.3g} nats")
rows = tc.best_t_rows(ns, kl_ref, mode, family_ns, n)
table, chart, side = st.columns([6, 3, 2])
table.dataframe(pd.DataFrame(rows), hide_index=True, column_config=TABLE_FORMAT)
chart.plotly_chart(figures.best_t_figure(rows), alt="best t")
side.markdown(
    "**The best steepness.** For each N the exponential's t is tuned to maximise the win rate at this KL; the "
    f"optimum is broad, so nearby t lose little. {literal(explorer.best_t_trend(rows, mode))}"
)

st.subheader("Optimal transform vs the best exponential")
pair_keys = [(name, n, mode, None, None, kl_ref, family_ns) for name in ("optimal", "exp")]
opt, best_exp = (tc.resolve(*key) for key in pair_keys)
problems = [item for item in (best_exp, opt, gap) if isinstance(item, str)]
for problem in set(problems) - shown:
    st.error(literal(problem))
if not problems:
    ok = np.isfinite(gap.gap)
    pair = [{"label": r.label, **tc.curves(*key)["phi"]} for r, key in zip((opt, best_exp), pair_keys)]
    _section(
        figures.optimal_vs_exponential_figure(
            *pair, gap.frontier.kl[ok], 100 * gap.gap[ok], kl_ref, gap.exponential_at_beta_floor[ok]
        ),
        "optimal vs exponential",
        "**How close is the exponential?** The optimal Φ is the fixed point of the stationarity condition; the best "
        "exponential is one curve family with one knob. At equal KL their win rates differ by a fraction of a point: "
        "the exponential is the practical choice."
        + (
            " Open circles: there the exponential's best t is pinned where β reaches its floor (0.001), so it "
            "uses the steepest t it can reach and the gap reopens. That kink comes from the engine's β range, "
            "not from the theory."
            if gap.exponential_at_beta_floor[ok].any()
            else ""
        ),
        metric=(f"gap at {kl_ref:.3g} nats", f"{100 * (opt.win_rate - best_exp.win_rate):+.3f} points"),
    )
    st.subheader(f"The price: optimising for {word} costs standard win rate")
    pool = [r for r in (identity, best_exp, opt) if not isinstance(r, str)]
    _section(
        figures.tradeoff_figure(explorer.tradeoff(pool), f"{word} win rate"),
        "trade-off",
        f"**No free lunch.** At the same KL, calibrated RLHF (identity Φ) maximises the standard win rate "
        f"$\\int u\\, g(u)\\, du$; transforms tuned for {word} give some of it up to win more after {mode}-of-N decoding.",
    )
