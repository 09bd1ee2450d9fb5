"""CTRL runs: configure, start, stop and resume runs; live curves; overlay runs to compare them."""

import pandas as pd
import streamlit as st

from app_pages import ctrl_form, linked, widgets
from infalign_core import ctrl, gallery, links, optimum_gap, runs
from infalign_core.errors import InfAlignError
from infalign_core.figures import ctrl as ctrl_figures
from infalign_core.text import literal

st.title("CTRL runs")
st.caption(
    "Calibrate the reward against reference samples, transform it with Φ for your inference procedure, "
    "and run KL-regularised RL (leave-one-out policy gradient). Each run is its own process: it survives "
    "reloads; Stop checkpoints it, Resume continues. Gallery runs are finished examples: read-only, copyable."
)
help_texts = ctrl.help_texts()
restored = linked.restore(links.CTRL, "ctrl")
if "overlay" in restored:  # once per session: a link's run ids that name no run are said, not swapped
    known = [info.run_id for info in runs.list_all_runs()]
    st.session_state["ctrl_link_warning"] = links.missing_runs_warning(restored["overlay"], known)
if st.session_state.get("ctrl_link_warning"):
    st.warning(literal(st.session_state["ctrl_link_warning"]))


def _notify(kind: str, text: str, follow: str | None = None) -> None:
    """Keep a message until the next action (a 2 s refresh must not wipe it); follow a run."""
    st.session_state["ctrl_notice"] = (kind, text)
    if follow:  # applied before the run selector is drawn next (a drawn widget's state is frozen)
        st.session_state["ctrl_follow"] = follow


# --- the form ------------------------------------------------------------------------------
# No min/max on the number boxes: a value out of range must reach Start and be refused there
# with the reason, not stay red in the box while Start silently uses the last valid one.
with st.expander("New run", expanded=True):
    fields, problem = ctrl_form.new_run_form(help_texts)
    if st.button("Start", type="primary", key="start"):
        try:
            if problem:
                raise InfAlignError(problem)
            run_id = runs.launch_run(ctrl.CTRLConfig(**fields).resolved(), owner=widgets.session_id())
            _notify(
                "info", f"Launched run {run_id}, shown below (it queues while the device is busy).", run_id
            )
        except InfAlignError as err:
            _notify("error", f"Not started: {literal(err)}")


# --- live view ------------------------------------------------------------------------------
def _act(action, run_id: str, done: str) -> None:
    """Run a Stop/Resume/Delete/Copy; its outcome stays on screen until the next action."""
    try:
        result = action(run_id)
        follow = result if isinstance(result, str) else None
        _notify("info", done.format(run_id=run_id, result=result), follow)
        if follow:  # the run selector is drawn already: redraw the page to follow the copy
            st.rerun()
    except InfAlignError as err:
        _notify("error", literal(err))


@st.fragment(run_every=2)
def live_view() -> None:
    """The runs table, the focused run's controls and curves, refreshed every 2 s."""
    notice_slot = st.container()  # filled last, so an action below shows its outcome in this run
    _live_body()
    _show_notice(notice_slot)


def _live_body() -> None:
    """Everything in the live view but the message."""
    infos = runs.list_all_runs()
    if not infos:
        st.info("No runs yet: pick a preset and press Start.")
        return
    st.dataframe(ctrl_figures.runs_table(infos), hide_index=True, width="stretch")
    ids = [i.run_id for i in infos]
    follow = st.session_state.pop("ctrl_follow", None)
    chosen = [follow] if follow in ids else [r for r in st.session_state.get("overlay", []) if r in ids]
    st.session_state["overlay"] = chosen or ids[:1]
    selected = st.multiselect("Runs to show (overlay several to compare)", ids, key="overlay")
    linked.publish(links.CTRL, "ctrl")
    if not selected:
        return
    focus = next(i for i in infos if i.run_id == selected[0])
    metrics = ctrl.read_metrics(focus.path)
    st.progress(*ctrl_figures.progress_line(focus, metrics, gallery.title if focus.gallery else None))
    buttons = st.columns(5)
    can_stop = focus.state in ("running", "queued") and not focus.gallery
    if buttons[0].button("Stop", disabled=not can_stop, key="stop"):
        _act(runs.stop_run, focus.run_id, "Stopping {run_id}: it checkpoints first.")
    can_resume = focus.state in ("stopped", "interrupted", "failed") and not focus.gallery
    if buttons[1].button("Resume", disabled=not can_resume, key="resume"):
        _act(
            lambda run_id: runs.resume_run(run_id, owner=widgets.session_id()),
            focus.run_id,
            "Resuming {run_id}.",
        )
    confirm = buttons[3].checkbox("Really delete", key="confirm_delete", disabled=focus.gallery)
    if buttons[2].button("Delete", disabled=not confirm or focus.gallery, key="delete"):
        _act(runs.delete_run, focus.run_id, "Deleted {run_id}.")
    if buttons[4].button("Copy to my runs", disabled=not focus.gallery, key="copy"):
        _act(runs.copy_to_runs, focus.run_id, "Copied {run_id} to your runs as {result}.")
    if focus.status.get("error"):
        st.error(f"{focus.run_id} failed: {literal(focus.status['error'])}")
    st.plotly_chart(ctrl_figures.curves_figure(selected))
    st.caption(ctrl_figures.CURVES_CAPTION)
    shortfall = ctrl_figures.recommended_run_shortfall()
    if shortfall:  # the issue-17 targets the trainer still misses, from the gallery's records
        st.caption(shortfall)
    missing = next((r["winrate/missing"] for r in reversed(metrics) if r.get("winrate/missing")), None)
    if missing:
        st.info(f"{focus.run_id}: {missing}.")
    gap = optimum_gap.for_run_dir(focus.path, focus.config, metrics)
    if gap is not None:  # how far from the exact optimum at its KL, and where the KL went
        st.info(f"{focus.run_id}: {gap.text()}")
    warning = ctrl.saturation_warning(metrics)
    if warning:
        st.warning(warning)
    samples = next((r["samples"] for r in reversed(metrics) if "samples" in r), None)
    if samples:
        st.caption("Latest sample responses")
        st.dataframe(pd.DataFrame(samples), hide_index=True, width="stretch")


def _show_notice(slot) -> None:
    """The last action's message, with a button to dismiss it."""
    notice = st.session_state.get("ctrl_notice")
    if notice:
        box, close = slot.columns([20, 1])
        (box.error if notice[0] == "error" else box.info)(notice[1])
        if close.button("✕", key="dismiss", help="dismiss this message"):
            st.session_state.pop("ctrl_notice", None)


live_view()
