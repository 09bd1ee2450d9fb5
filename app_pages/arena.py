"""Best-of-N arena: a policy's best-of-N against the reference's best-of-N, live, and on the theory's chart."""

import streamlit as st

from app_pages import arena_views, cached, linked, widgets
from infalign_core import arena, arena_results, challengers, data, eval_rewards, gallery, links, report, runs
from infalign_core.errors import InfAlignError
from infalign_core.figures import arena as arena_figures
from infalign_core.sampling_settings import SamplingSettings
from infalign_core.text import literal

REFERENCE, FOLDER = "reference (bundled default policy)", "a local model folder…"
OPTIMUM = "the exact optimum (tilted resampling, no training)"
LABELS = arena_figures.LABELS

st.title("Best-of-N arena")
st.caption(
    "K samples per prompt from the challenger and from the reference, scored by the reward. The best-of-N "
    "win rate averages 1{best of N challenger samples beats best of N reference samples} (ties ½) over "
    "all N-subsets of the K — unbiased, no subset enumerated — and over prompts; intervals are a "
    "bootstrap over prompts. The challenger's KL to the reference is measured on its own samples."
)

# --- choosing the contestants --------------------------------------------------------------------
infos = [info for info in runs.list_all_runs() if runs.has_checkpoint(info.path)]
if not infos:
    st.info(
        "No CTRL runs with a checkpoint yet: train one on the **CTRL runs** page (its checkpoint appears here "
        "after the first save), or evaluate the reference itself or a local model folder."
    )
run_of = {
    (
        f"gallery · {gallery.title(i.run_id)}"
        if i.gallery
        else f"{i.run_id} · {i.config.get('transform')} · {i.state}"
    ): i
    for i in infos
}
from_link = linked.restore(links.ARENA, "arena")
wanted = from_link.get("challenger_id")  # a link's run picks the challenger
label_of = {info.run_id: label for label, info in run_of.items()}
if wanted:
    if wanted in label_of:
        st.session_state["challenger"] = label_of[wanted]
    else:
        st.warning(f"link parameter run={literal(wanted)}: no run with a checkpoint; kept the page's default")
left, mid, right = st.columns(3)
choice = left.selectbox("Challenger", [*run_of, REFERENCE, OPTIMUM, FOLDER], key="challenger")
folder = left.text_input("Model folder", key="folder") if choice == FOLDER else ""
wanted_optimum = arena_views.optimum_controls(left.container(border=True)) if choice == OPTIMUM else None
run_config = run_of[choice].config if choice in run_of else {}
defaults = challengers.arena_settings(run_config)
if st.session_state.get("_arena_challenger") != choice:  # a new challenger: N follows its run's N
    st.session_state["_arena_challenger"] = choice
    if run_config.get("n") and "n" not in from_link:
        st.session_state["n"] = min(int(run_config["n"]), 64)
follow, source = widgets.following, "the challenger's run"  # fields that follow the challenger until edited
reference_source = follow(left, "text_input", "Reference", defaults.reference, "reference", source)
reward_source = follow(left, "text_input", "Reward", defaults.reward, "reward", source)
eval_specs = left.multiselect("Also score with", eval_rewards.CHOICES, key="eval_rewards", accept_new_options=True, help=eval_rewards.CHOICES_HELP)  # fmt: skip
judge = left.text_input("Judge model", key="judge", help="For judge:RUBRIC: a chat model's folder, hub id or preset") if any(s.startswith("judge:") for s in eval_specs) else None  # fmt: skip
n = mid.number_input("N (best-of-N / worst-of-N)", 1, 64, key="n")
k = mid.number_input("K samples per prompt (≥ N)", 1, 512, key="k")
split = right.selectbox("Prompts (bundled)", ["eval", "train"], key="split")
num_prompts = right.number_input("Number of prompts", 2, 480, key="num_prompts")
with right.popover("Sampling"):
    max_new_tokens = follow(st, "number_input", "Max new tokens", defaults.max_new_tokens, "max_new_tokens", source, min_value=1, max_value=256)  # fmt: skip
    temperature = follow(
        st, "number_input", "Temperature", defaults.temperature, "temperature", source, min_value=0.05, max_value=5.0, step=0.05,
        help="Both sides sample at it; the KL is that of the tempered distributions. Default: the run's own.",
    )  # fmt: skip
    top_p = follow(
        st, "number_input", "Top-p", defaults.top_p, "top_p", source, min_value=0.01, max_value=1.0, step=0.01,
        help="Nucleus sampling for both sides. Below 1 the KL is not measured: a response outside the "
        "reference's nucleus has infinite KL.",
    )  # fmt: skip
    seed = st.number_input("Seed", 0, 2**31 - 1, 0, key="seed")
    batch = st.number_input("Prompts per batch", 1, 64, 8, key="batch")
st.session_state["challenger_id"] = run_of[choice].run_id if choice in run_of else ""
linked.publish(links.ARENA, "arena", right)


# --- the live evaluation ------------------------------------------------------------------------
if st.button("Evaluate", type="primary", key="evaluate"):
    try:
        if int(n) > int(k):
            raise InfAlignError(f"N = {n} needs K ≥ N samples per prompt; raise K to at least {n} or lower N")
        info = run_of.get(choice)
        source = challengers.resolve_challenger(
            str(info.path) if info else ("reference" if choice in (REFERENCE, OPTIMUM) else folder)
        )
        if wanted_optimum:  # the optimum is the reference tilted: resolved (and refused) before sampling
            resolved, pool = arena_views.resolve_optimum(wanted_optimum, int(n))
        prompts = data.load_prompts("bundled", split=split, limit=int(num_prompts)).prompts
        challenger = cached.arena_model(source.model, cached.weights_version(source.model))
        same = source.model == "default" and reference_source == "default"
        reference = (
            challenger
            if same
            else cached.arena_model(reference_source, cached.weights_version(reference_source))
        )
        reward_fn = cached.reward(reward_source, defaults.reward_label or "")
        st.session_state.setdefault("loaded_models", {})["arena challenger"] = source.label
        progress, metrics, chart = st.progress(0.0, "sampling…"), st.empty(), st.empty()
        sampling = SamplingSettings(int(max_new_tokens), float(temperature), float(top_p), int(seed))
        common = dict(n=int(n), k=int(k), sampling=sampling, prompts_per_batch=int(batch))
        for state in (
            arena_views.optimum_states(reference, reward_fn, prompts, resolved, pool, common)
            if wanted_optimum
            else arena.run_arena(challenger, reference, reward_fn, prompts, **common)
        ):
            progress.progress(
                state.done / state.total_prompts,
                f"{state.done}/{state.total_prompts} prompts · {state.seconds:.0f} s",
            )
            with metrics.container():
                cols = st.columns(4)
                for col, (name, label) in zip(cols, LABELS.items()):
                    e = state.estimate
                    col.metric(f"{label} win rate", f"{getattr(e, name):.3f}", help=f"{e.level:.0%} interval")
                    col.caption(f"[{getattr(e, f'{name}_ci_low'):.3f}, {getattr(e, f'{name}_ci_high'):.3f}]")
                kl = state.kl  # None at top-p < 1 (kl_note says why)
                cols[3].metric("KL(π‖π_ref), nats", f"{kl.k1:.3f}" if kl else "—", help=state.kl_note or None)
                cols[3].caption(f"± {kl.k1_stderr:.3f} (k3 {kl.k3:.3f})" if kl else state.kl_note)
                if getattr(reward_fn, "may_abstain", False):  # a judge's integer scores tie often
                    st.caption(arena_views.judge_shares(state))
            chart.plotly_chart(
                arena_figures.convergence_figure(state.estimate), key=f"convergence-{state.done}"
            )
        settings = arena_results.record_settings(
            n=n, k=k, prompts=f"bundled:{split}", num_prompts=state.done, sampling=sampling, reference=reference,
            reward_fn=reward_fn, prompts_per_batch=batch,
        )  # fmt: skip
        run_config = resolved.run_config(pool) if wanted_optimum else source.run_config
        if wanted_optimum:  # labelled as what a perfect trainer would reach; warns when M is too small
            record = arena_views.optimum_record(state, settings, resolved)
            source.label = record["label"]
        else:
            record = arena_results.arena_record(state, settings, run_config)
            record["label"], record["picks"] = source.label, arena_results.picks_record(state)
        if eval_specs:
            with st.spinner("Scoring both sides with the other rewards…"):
                others = {s: cached.reward(eval_rewards.with_judge(s, judge)) for s in eval_specs}
                record["eval_rewards"] = {"trained_on": reward_fn.name, **eval_rewards.eval_reward_results(state, others, seed=int(seed))}  # fmt: skip
        if source.run_dir is not None and gallery.is_gallery(source.run_dir):
            st.info("Gallery runs are read-only: this evaluation is kept for this session, not saved.")
        elif source.run_dir is not None:
            arena_results.save_arena_result(source.run_dir, record)
        st.session_state.setdefault("arena_results", {})[f"{source.label} · N={n} · K={k}"] = record
        st.session_state["arena_last"], st.session_state["arena_last_config"] = state, run_config
        st.session_state["arena_last_record"] = record
    except InfAlignError as err:
        st.error(literal(err))

if "arena_last" in st.session_state:
    arena_views.show_eval_rewards(st.session_state.get("arena_last_record"), st.session_state["arena_last"])
    arena_views.show_picks(st.session_state["arena_last"])
    arena_views.show_procedure(st.session_state["arena_last"], st.session_state.get("arena_last_config"))

# --- every evaluation so far: on the theory's chart and in a table ----------------------------------
records, evaluated = dict(st.session_state.get("arena_results", {})), []
for info in runs.list_all_runs():
    for record in arena_results.load_arena_results(info.path):
        name = f"gallery · {gallery.title(info.run_id)}" if info.gallery else f"run {info.run_id}"
        records.setdefault(
            f"{name} · N={record['settings']['n']} · K={record['settings']['k']}", {**record, "label": name}
        )
        evaluated.append(info.run_id)
if records:
    st.subheader("Measured points on the theory's curves")
    st.caption(
        "Each evaluated run at its measured KL, with its win rate's interval (vertical) and ±1.96 standard "
        "errors of its KL (horizontal), beside the theory's curve for its transform and N: the exact "
        "win rate of the KL-regularised optimum as β sweeps. A ★ is that optimum sampled in this world."
    )
    place = st.radio("Place each run at", list(arena_figures.KL_PLACES), horizontal=True, key="kl_place", help=arena_figures.KL_PLACE_HELP)  # fmt: skip
    for tab, (name, label) in zip(st.tabs(["best-of-N", "worst-of-N"]), list(LABELS.items())[1:]):
        at = arena_figures.KL_PLACES[place]
        fig, notes = arena_figures.measured_frontier_figure(records, name, label, cached.theory_curve, at=at)
        tab.plotly_chart(fig, key=f"frontier-{name}")
        for note in notes:
            tab.info(note)
    arena_views.comparison(records)
    st.caption("Evaluations of your runs are saved in each run's arena.json, so they survive restarts.")
    chosen = st.multiselect(
        "Runs in the report", list(dict.fromkeys(evaluated)), default=list(dict.fromkeys(evaluated))
    )
    optima = {name: r for name, r in records.items() if r.get("optimum")}  # the report carries them too
    if st.button("Build a stakeholder report", key="build_report", disabled=not (chosen or optima)):
        with st.spinner("Writing the report…"):
            st.session_state["arena_report"] = report.build_report(chosen, optimum_records=optima).encode()
    if st.session_state.get("arena_report"):
        st.download_button(
            "Download the report (HTML)",
            st.session_state["arena_report"],
            "infalign-report.html",
            "text/html",
        )
