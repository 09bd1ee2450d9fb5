"""The arena page's views of a finished evaluation: example picks and a chosen procedure's win rate (not a page)."""

import streamlit as st

from infalign_core import arena, arena_theory, eval_rewards
from infalign_core.errors import InfAlignError
from infalign_core.figures import arena as arena_figures
from infalign_core.text import literal


def judge_shares(state: arena.ArenaState) -> str:
    """The tie and unscored shares beside a judge's win rates."""
    ties = "—" if state.tie_share is None else f"{100 * state.tie_share:.1f} %"
    return f"Judge reward: {ties} of sample pairs tie (each counts ½); {100 * state.unscored_share:.1f} % unscored (left out, not 0)."


def show_eval_rewards(record: dict | None, state: arena.ArenaState) -> None:
    """The three win rates under the trained reward and each other reward, side by side."""
    others = dict((record or {}).get("eval_rewards") or {})
    trained = others.pop("trained_on", None)
    if not others or trained is None:
        return
    st.subheader("Under other rewards")
    st.caption(
        "The same samples of both sides, scored again by each reward. A win rate the trained reward shows "
        "but the others do not is over-optimisation of the trained reward (Goodhart)."
    )
    rows = eval_rewards.table_rows(trained, eval_rewards.trained_summary(state), others, state.n)
    st.dataframe(rows, hide_index=True, width="stretch")


def show_picks(state: arena.ArenaState) -> None:
    """Best-of-N and worst-of-N picks of the first prompts, challenger beside reference."""
    for tab, mode in zip(
        st.tabs([f"best-of-{state.n} picks", f"worst-of-{state.n} picks"]), ("best", "worst"), strict=True
    ):
        for pick in arena.example_picks(state, 3, mode):
            tab.markdown(f"**{literal(pick.prompt)}**")
            ours, theirs = tab.columns(2)
            for col, who, text, reward in (
                (ours, "challenger", pick.challenger_response, pick.challenger_reward),
                (theirs, "reference", pick.reference_response, pick.reference_reward),
            ):
                col.caption(arena_figures.pick_caption(who, pick.winner, reward))
                col.markdown(literal(pick.prompt + text))  # generated text read as written, not as Markdown


@st.cache_data(max_entries=16, show_spinner="Tracing the procedure's theory curve…")
def _curve(config_items: tuple, spec: str):
    """The procedure's theory curve for a run's Φ (None without one), or the error message."""
    try:
        return arena_theory.procedure_theory_curve(dict(config_items) if config_items else None, spec)
    except InfAlignError as err:
        return str(err)


def show_procedure(state: arena.ArenaState, run_config: dict | None) -> None:
    """Any inference procedure's win rate from the evaluation's K samples per side, on its theory curve."""
    st.subheader("Any inference procedure")
    spec = st.text_input(
        "Procedure",
        f"mix:0.5:{state.n}",
        key="arena_procedure",
        help="bon:N, won:N, poisson:MU, mix:P:N, soft:N:TAU or reject:Q:N, scored on the samples above",
    )
    try:
        estimate = arena.procedure_estimate(state, spec)
    except InfAlignError as err:
        st.error(literal(err))
        return
    metric, chart = st.columns([1, 3])
    metric.metric(
        f"{estimate.spec} win rate", f"{estimate.win_rate:.3f}", help=f"{estimate.level:.0%} interval"
    )
    metric.caption(f"[{estimate.ci_low:.3f}, {estimate.ci_high:.3f}] · {estimate.method}")
    if estimate.method == "truncated":
        metric.caption(
            f"best-of-Poisson cut at K = {state.challenger_rewards.shape[1]}: P(N > K) = {estimate.truncated_mass:.2g} "
            f"per side, so |bias| ≤ {estimate.bias_bound:.2g}; raise K to shrink it"
        )
    if estimate.method == "monte carlo":
        metric.caption(
            f"{estimate.draws} random ordered subsets per prompt; choices by calibrated reward against the "
            "reference's other samples of the prompt"
        )
    config = tuple(sorted((run_config or {}).items())) if run_config else None
    curve = _curve(config, estimate.spec)
    if isinstance(curve, str):
        st.error(literal(curve))
        curve = None
    kl = state.kl.k1 if state.kl is not None else None
    kl_stderr = state.kl.k1_stderr if state.kl is not None else 0.0
    chart.plotly_chart(arena_figures.procedure_figure(curve, estimate, kl, kl_stderr), key="procedure-point")


def comparison(records: dict) -> None:
    """The comparison table with a paired difference to a chosen baseline, and a seeds-averaged pairing."""
    from infalign_core import arena_results

    keys = list(records)
    default = next((i for i, key in enumerate(keys) if "calibrated" in key.lower()), 0)
    baseline = st.selectbox(
        "Δ vs baseline: each run − this one, paired over the same prompts and reference samples",
        keys, index=default, key="paired_baseline",
    )  # fmt: skip
    table = arena_figures.comparison_table(records, baseline)
    for columns in arena_figures.COMPARISON_PARTS.values():
        st.dataframe(table[[c for c in columns if c in table]], hide_index=True, width="stretch")
    st.caption(
        "Δ and − theory are on each run's own procedure (BoN: best-of-N, WoN: worst-of-N). Δ is the mean over "
        "prompts of this run's win rate minus the baseline's, with a 95 % paired bootstrap interval: the "
        "same prompts and the same reference samples cancel most of the noise two separate intervals carry."
    )
    with st.expander("Paired comparison of several evaluations (seeds averaged, as the README's headline)"):
        left, right = st.columns(2)
        these = left.multiselect("These evaluations", keys, key="paired_these")
        those = right.multiselect("minus these (same count, paired in order)", keys, key="paired_those")
        if these and those:
            try:
                for metric in arena_results.METRICS:
                    d = arena_results.paired_comparison(
                        [records[k] for k in these], [records[k] for k in those], metric
                    )
                    n = records[these[0]]["settings"]["n"]
                    st.markdown(literal(f"{arena_results.metric_label(metric, n)}: {d.text(_names(these), _names(those))}"))  # fmt: skip
            except InfAlignError as err:
                st.error(literal(err))


def _names(keys: list[str]) -> str:
    """'CTRL best-of-4 (exp)', or 'A + B + C (mean)' for several."""
    names = [key.split(" · ")[1] if key.startswith("gallery · ") else key.split(" · ")[0] for key in keys]
    return names[0] if len(names) == 1 else " + ".join(names) + " (mean)"


OPTIMUM_HELP = (
    "No training: for each prompt, M reference samples are drawn and scored, each is calibrated by its "
    "mid-rank among the M, and the challenger's K samples are drawn from them with probability ∝ e^{Φ(C)/β}. "
    "That is π* ∝ π_ref·e^{Φ(C)/β}, the policy the theory says CTRL converges to: what a perfect trainer "
    "would reach in this world. Its KL is the resampled law's against the M samples (→ the theory's as M "
    "grows). It is also a decoding procedure in its own right (a soft best-of-M), at M samples per response."
)


def resolve_optimum(wanted: tuple, n: int):
    """The optimum the controls ask for, resolved (its β solved from the budget) before any sampling: (resolved, M)."""
    from infalign_core import optimum

    transform, mode, budget, pool = wanted
    return optimum.resolve_optimum(optimum.OptimumSpec(transform, n, mode, kl=budget)), pool


def optimum_states(reference, reward_fn, prompts, resolved, pool: int, common: dict):
    """The optimum's arena states as the batches come in (``optimum.run_optimum``)."""
    from infalign_core import optimum

    return optimum.run_optimum(reference, reward_fn, prompts, resolved, pool=pool, **common)


def optimum_record(state, settings: dict, resolved) -> dict:
    """The optimum's record (``arena_results.optimum_record``), with its warning shown when M is too small."""
    from infalign_core import arena_results

    if state.warning:
        st.warning(state.warning)
    return arena_results.optimum_record(state, settings, resolved)


def optimum_controls(container):
    """The exact optimum's settings (transform, mode, KL budget, pool M): an OptimumSpec and M."""
    from infalign_core import optimum

    container.caption(OPTIMUM_HELP)
    a, b = container.columns(2)
    transform = a.selectbox("Transform Φ", ["exp", "identity", "optimal", "log"], key="optimum_transform")
    mode = b.selectbox("For", ["best", "worst"], key="optimum_mode", format_func=lambda m: f"{m}-of-N")
    kl = a.number_input("KL budget, nats", 0.01, 5.0, 0.5, 0.01, key="optimum_kl")
    pool = b.number_input("Pool M per prompt", 2, optimum.MAX_POOL, optimum.DEFAULT_POOL, key="optimum_pool")
    return transform, mode, float(kl), int(pool)
