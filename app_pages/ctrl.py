"""CTRL runs: configure, start, stop and resume runs; live curves; overlay runs to compare them."""

import pandas as pd
import streamlit as st

from app_pages import linked, widgets
from infalign_core import ctrl, gallery, links, runs
from infalign_core.errors import InfAlignError
from infalign_core.figures import ctrl as ctrl_figures

st.title("CTRL runs")
st.caption(
    "Calibrate the reward against reference samples, transform it with Φ for your inference procedure, "
    "and run KL-regularised RL (leave-one-out policy gradient). Each run is its own process: it survives "
    "reloads; Stop checkpoints it, Resume continues. Gallery runs are finished examples: read-only, copyable."
)
help_texts = ctrl.help_texts()
linked.restore(links.CTRL, "ctrl")


def _notify(kind: str, text: str, follow: str | None = None) -> None:
    """Keep a message until the next action (a 2 s refresh must not wipe it); follow a run."""
    st.session_state["ctrl_notice"] = (kind, text)
    if follow:  # applied before the run selector is drawn next (a drawn widget's state is frozen)
        st.session_state["ctrl_follow"] = follow


# --- the form ------------------------------------------------------------------------------
# No min/max on the number boxes: a value out of range must reach Start and be refused there
# with the reason, not stay red in the box while Start silently uses the last valid one.
with st.expander("New run", expanded=True):
    preset_name = st.selectbox("Preset", list(ctrl.PRESETS), index=2, key="preset")
    preset = ctrl.recommended_config(**ctrl.PRESETS[preset_name]).to_dict()  # the recommended run
    left, mid, right = st.columns(3)
    transform = left.selectbox(
        "Transform Φ",
        ctrl.TRANSFORMS,
        index=ctrl.TRANSFORMS.index(preset["transform"]),
        help=help_texts["transform"],
        key=f"transform-{preset_name}",
    )
    mode = left.radio(
        "Mode", ctrl.MODES, index=ctrl.MODES.index(preset["mode"]), horizontal=True, key=f"mode-{preset_name}"
    )
    n = left.number_input("N", value=int(preset["n"]), step=1, help=help_texts["n"], key="n")
    kl_target = mid.number_input(
        "KL target (0 = fixed β)", value=float(preset["kl_target"] or 0), step=0.05, help=help_texts["kl_target"], key="kl_target"
    )  # fmt: skip
    beta = mid.number_input(
        "β",
        value=float(preset["beta"]),
        step=0.01,
        format="%.3f",
        help=help_texts["beta"],
        key=f"beta-{preset_name}",
    )
    t_value = None
    if transform == "exp":
        from app_pages.theory_cache import best_exponential_t

        budget = kl_target if 0 < kl_target <= 20 else ctrl.RECOMMENDED_RUN["kl_target"]
        suggested = best_exponential_t(int(n) if 1 <= n <= 1024 else 4, budget, mode)
        t_value = mid.number_input("t", value=round(suggested.t, 2), help=help_texts["t"], key="t")
        mid.caption(f"Theory's best t for {mode}-of-{n} at KL {budget:g}: {suggested.t:.2f}")
    steps = right.number_input("Steps", value=preset["steps"], step=1, help=help_texts["steps"], key="steps")
    k = right.number_input("k (samples per prompt)", value=preset["k"], step=1, help=help_texts["k"], key="k")
    prompts_per_step = right.number_input(
        "Prompts per step", value=preset["prompts_per_step"], step=1, help=help_texts["prompts_per_step"], key="prompts_per_step"
    )  # fmt: skip
    learning_rate = right.number_input(
        "Learning rate", value=preset["learning_rate"], format="%.1e", help=help_texts["learning_rate"], key="learning_rate"
    )  # fmt: skip
    with st.popover("Models, prompts and sampling"):
        policy = st.text_input("Policy", preset["policy"], help=help_texts["policy"], key="policy")
        reward = st.text_input("Reward", preset["reward"], help=help_texts["reward"], key="reward")
        prompts = st.text_input("Prompts", preset["prompts"], help=help_texts["prompts"], key="prompts")
        num_prompts = st.number_input("Prompts used", value=preset["num_prompts"], step=1, key="num_prompts")
        m = st.number_input("m (reference samples per prompt)", value=preset["m"], step=1, key="m")
        max_new_tokens = st.number_input("Max new tokens", value=preset["max_new_tokens"], step=1, key="max_new_tokens")  # fmt: skip
        device = st.selectbox("Device", ctrl.DEVICES, key="device")
        seed = st.number_input("Seed", value=preset["seed"], step=1, key="seed")
        options = widgets.run_options(help_texts)
    if st.button("Start", type="primary", key="start"):
        try:
            config = ctrl.CTRLConfig(
                policy=policy,
                reward=reward,
                prompts=prompts,
                num_prompts=int(num_prompts),
                m=int(m),
                transform=transform,
                t=t_value,
                mode=mode,
                n=int(n),
                beta=float(beta),
                kl_target=float(kl_target) if kl_target != 0 else None,
                k=int(k),
                prompts_per_step=int(prompts_per_step),
                learning_rate=float(learning_rate),
                steps=int(steps),
                max_new_tokens=int(max_new_tokens),
                device=device,
                seed=int(seed),
                **options,
            ).resolved()
            run_id = runs.launch_run(config, owner=widgets.session_id())
            _notify(
                "info", f"Launched run {run_id}, shown below (it queues while the device is busy).", run_id
            )
        except InfAlignError as err:
            _notify("error", f"Not started: {err}")


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
        _notify("error", str(err))


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
        st.error(f"{focus.run_id} failed: {focus.status['error']}")
    st.plotly_chart(ctrl_figures.curves_figure(selected))
    st.caption(ctrl_figures.CURVES_CAPTION)
    missing = next((r["winrate/missing"] for r in reversed(metrics) if r.get("winrate/missing")), None)
    if missing:
        st.info(f"{focus.run_id}: {missing}.")
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
