"""CTRL runs: configure, start, stop and resume runs; live curves; overlay runs to compare them."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages import widgets
from infalign_core import ctrl, runs
from infalign_core.errors import InfAlignError
from infalign_core.figures import ctrl as ctrl_figures

st.title("CTRL runs")
st.caption(
    "Calibrate the reward against reference samples, transform it with Φ for the inference procedure "
    "you care about, and run KL-regularised RL (leave-one-out policy gradient). Each run is its own "
    "process: it survives page reloads; Stop checkpoints it, Resume continues from the checkpoint."
)
help_texts = ctrl.help_texts()

# --- the form ------------------------------------------------------------------------------
with st.expander("New run", expanded=True):
    preset_name = st.selectbox("Preset", list(ctrl.PRESETS), index=2, key="preset")
    preset = {**ctrl.CTRLConfig().to_dict(), **ctrl.PRESETS[preset_name]}
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
    n = left.number_input("N", 1, 1024, int(preset["n"]), help=help_texts["n"], key="n")
    kl_target = mid.number_input(
        "KL target (0 = fixed β)", 0.0, 20.0, 0.0, 0.05, help=help_texts["kl_target"], key="kl_target"
    )
    beta = mid.number_input(
        "β",
        0.001,
        100.0,
        float(preset["beta"]),
        0.01,
        format="%.3f",
        help=help_texts["beta"],
        key=f"beta-{preset_name}",
    )
    t_value = None
    if transform == "exp":
        from infalign_core.theory import best_exponential_t

        suggested = best_exponential_t(int(n), kl_target or 0.5, mode)
        t_value = mid.number_input("t", 0.0, 500.0, round(suggested.t, 2), help=help_texts["t"], key="t")
        mid.caption(f"Theory's best t for {mode}-of-{n} at KL {kl_target or 0.5:g}: {suggested.t:.2f}")
    steps = right.number_input("Steps", 1, 100_000, 100, help=help_texts["steps"], key="steps")
    k = right.number_input("k (samples per prompt)", 2, 256, 8, help=help_texts["k"], key="k")
    prompts_per_step = right.number_input(
        "Prompts per step", 1, 1024, 8, help=help_texts["prompts_per_step"], key="prompts_per_step"
    )
    learning_rate = right.number_input(
        "Learning rate", 1e-7, 1.0, 2e-4, format="%.1e", help=help_texts["learning_rate"], key="learning_rate"
    )
    with st.popover("Models, prompts and sampling"):
        policy = st.text_input("Policy", "default", help=help_texts["policy"], key="policy")
        reward = st.text_input("Reward", "default", help=help_texts["reward"], key="reward")
        prompts = st.text_input("Prompts", "bundled", help=help_texts["prompts"], key="prompts")
        num_prompts = st.number_input("Prompts used", 1, 100_000, 64, key="num_prompts")
        m = st.number_input("m (reference samples per prompt)", 1, 4096, 64, key="m")
        max_new_tokens = st.number_input("Max new tokens", 1, 512, 24, key="max_new_tokens")
        device = st.selectbox("Device", ctrl.DEVICES, key="device")
        seed = st.number_input("Seed", 0, 2**31 - 1, 0, key="seed")
        options = widgets.run_options(help_texts)
    if st.button("Start", type="primary", key="start"):
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
            kl_target=float(kl_target) or None,
            k=int(k),
            prompts_per_step=int(prompts_per_step),
            learning_rate=float(learning_rate),
            steps=int(steps),
            max_new_tokens=int(max_new_tokens),
            device=device,
            seed=int(seed),
            **options,
        )
        try:
            run_id = runs.launch_run(config)
            st.session_state["selected_runs"] = [run_id, *st.session_state.get("selected_runs", [])][:4]
            st.success(f"Started run {run_id} (it queues if another run holds the device).")
        except InfAlignError as err:
            st.error(str(err))


# --- live view ------------------------------------------------------------------------------
@st.fragment(run_every=2)
def live_view() -> None:
    infos = runs.list_runs()
    if not infos:
        st.info("No runs yet: pick a preset and press Start.")
        return
    st.dataframe(ctrl_figures.runs_table(infos), hide_index=True, width="stretch")
    ids = [i.run_id for i in infos]
    default = [r for r in st.session_state.get("selected_runs", []) if r in ids] or ids[:1]
    selected = st.multiselect(
        "Runs to show (overlay several to compare)", ids, default=default, key="overlay"
    )
    if not selected:
        return
    focus = next(i for i in infos if i.run_id == selected[0])
    metrics = ctrl.read_metrics(focus.path)
    total = int(focus.config.get("steps") or 1)
    done = metrics[-1]["step"] if metrics else 0
    step_time = sum(r["time/step"] for r in metrics[-10:]) / max(1, len(metrics[-10:]))
    eta = f", about {step_time * (total - done):.0f} s left" if focus.state == "running" and metrics else ""
    st.progress(min(1.0, done / total), text=f"{focus.run_id}: {focus.state}, step {done}/{total}{eta}")
    buttons = st.columns(4)
    if buttons[0].button("Stop", disabled=focus.state not in ("running", "queued"), key="stop"):
        runs.stop_run(focus.run_id)
        st.toast(f"Stopping {focus.run_id}: it checkpoints first.")
    if buttons[1].button(
        "Resume", disabled=focus.state not in ("stopped", "interrupted", "failed"), key="resume"
    ):
        try:
            runs.resume_run(focus.run_id)
        except InfAlignError as err:
            st.error(str(err))
    confirm = buttons[3].checkbox("Really delete", key="confirm_delete")
    if buttons[2].button("Delete", disabled=not confirm, key="delete"):
        try:
            runs.delete_run(focus.run_id)
            st.toast(f"Deleted {focus.run_id}.")
        except InfAlignError as err:
            st.error(str(err))
    if focus.status.get("error"):
        st.error(focus.status["error"])
    st.plotly_chart(ctrl_figures.curves_figure(selected))
    st.caption(
        "The best-of-N curve ranks each step's k samples per prompt against that prompt's m bank "
        "rewards (all N-subsets, ties ½): unbiased for the reference, but it scores the policy against "
        "the same bank it trains on, so it is optimistic for a trained policy. The arena's fresh "
        "samples are the real measurement. The dotted KL is the KL of the step's pooled calibrated "
        "rewards against the bank's uniform law (10 bins, Miller–Madow corrected): the part of the "
        "sequence KL the reward can see. By data processing it is at most the sequence KL; the rest "
        "changes the text without changing its rank."
    )
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


live_view()
