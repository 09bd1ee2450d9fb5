"""Calibration: per-prompt reference banks, and why calibrated rewards are comparable where raw ones are not."""

import streamlit as st

from app_pages import cached, widgets
from infalign_core import calibration
from infalign_core.errors import InfAlignError
from infalign_core.figures import calibration as calibration_figures
from infalign_core.sampling_settings import SamplingSettings
from infalign_core.text import literal

M_CHOICES = (4, 8, 16, 32, 64, 128, 256)
# This page's model widgets, each with (the Models page's session key, fallback).
MODEL_KEYS = {
    "calibration_policy": ("policy_source", "default"),
    "calibration_reward": ("reward_source", "default"),
    "calibration_label": ("reward_label", ""),
}


def _set_cancelled(value: bool) -> None:
    """Button callback: the flag the running build's should_stop polls."""
    st.session_state["calibration_cancelled"] = value


st.title("Reward calibration")
st.markdown(
    "A reward model's raw scores are not comparable across prompts: one prompt's replies may all score "
    "between 2 and 3, another's between −5 and 5. The **calibrated reward** C(x, y) replaces the score by "
    "its rank among m reference replies to the same prompt (ties count half): the share of reference "
    "replies y beats. For fresh reference replies C is Uniform[0, 1] on every prompt, whatever the "
    "reward model, and no increasing transformation of the reward changes it."
)

left, right = st.columns(2)
with left:
    prompt_set = widgets.choose_prompts("calibration")
with right:
    count = len(prompt_set) if prompt_set else 1
    num_prompts = st.number_input("Number of prompts", 1, max(1, count), min(16, count))
    m = st.select_slider("Reference samples per prompt m", M_CHOICES, value=32, key="calibration_m")
    heldout = st.select_slider(
        "Held-out samples per prompt (for the checks)", M_CHOICES, 32, key="calibration_heldout"
    )
    with st.expander("Sampling and models"):
        sampling = SamplingSettings(
            max_new_tokens=int(st.number_input("Max new tokens", 1, 512, 24)),
            temperature=float(st.number_input("Temperature", 0.05, 5.0, 1.0, step=0.1)),
            top_p=float(st.number_input("Top-p", 0.05, 1.0, 1.0, step=0.05)),
            seed=int(st.number_input("Seed", 0, 2**31 - 1, 0)),
        )
        labels = ("Reference policy (default, a preset, a folder or a hub id)", "Reward (default, vader, "
                  "oracle, a folder or a hub id)", "Reward label (for multi-label reward models)")  # fmt: skip
        # The boxes follow the Models page's choice until edited (a later choice there reaches them);
        # an empty one falls back to it, so what Build uses never depends on this expander being opened.
        models_choice = {key: st.session_state.get(page_key) or default for key, (page_key, default) in MODEL_KEYS.items()}  # fmt: skip
        sources = {
            key: widgets.following(
                st, "text_input", label, models_choice[key], key, "the Models page"
            ).strip()
            or models_choice[key]
            for key, label in zip(MODEL_KEYS, labels)
        }
        chat = widgets.chat_controls("calibration")


# A Cancel click ends the running script at its next progress update (Streamlit reruns on any
# click) and its callback sets the flag that should_stop polls; either way nothing half-built is
# stored, because a bank is written only once complete.
if st.button(
    "Build reference banks",
    type="primary",
    disabled=prompt_set is None,
    on_click=_set_cancelled,
    args=(False,),
):
    stop_slot = st.empty()
    stop_slot.button("Cancel", on_click=_set_cancelled, args=(True,))
    bar = st.progress(0.0, text="Loading models…")
    try:
        # Device and remote-code trust as chosen on the Models page.
        active = (
            st.session_state.get("model_device", "auto"),
            st.session_state.get("trust_remote_code", False),
        )
        policy = cached.with_chat(cached.policy(sources["calibration_policy"], *active), chat)
        reward_fn = cached.reward(
            sources["calibration_reward"],
            sources["calibration_label"],
            *active,
            chat.completion,
            chat.system_prompt or "",
        )
        st.session_state["calibration"] = calibration.calibrate(
            policy,
            reward_fn,
            prompt_set.prompts[: int(num_prompts)],
            int(m),
            sampling,
            heldout=int(heldout),
            progress=lambda done, total, stage: bar.progress(done / total, text=f"{stage}: {done}/{total}"),
            should_stop=lambda: bool(st.session_state.get("calibration_cancelled")),
        )
    except calibration.CalibrationCancelled as err:
        st.warning(literal(err))
    except InfAlignError as err:
        st.error(literal(err))
    finally:
        bar.empty()
        stop_slot.empty()
elif st.session_state.pop("calibration_cancelled", False):
    st.warning("Build cancelled: nothing was stored as complete. Banks finished earlier stay cached.")

result = st.session_state.get("calibration")
if result is None:
    st.info("Choose prompts and m, then build the banks. Banks are cached on disk, so a rebuild is instant.")
    st.stop()

bank, check = result.bank, result.uniformity
for notice in bank.notices:
    st.warning(notice)
cols = st.columns(4)
cols[0].metric("Prompts", bank.num_prompts)
cols[1].metric("m", bank.m)
cols[2].metric("KS distance", f"{check.ks_statistic:.3f}")
cols[3].metric("KS p-value", f"{check.ks_pvalue:.3f}")
st.caption(f"Bank: `{bank.path}` ({'reused from the cache' if bank.cached else 'built now'})")

st.subheader("Raw against calibrated rewards")
labels = [f"#{i}: {p}" for i, p in enumerate(bank.prompts)]
ids = list(range(bank.num_prompts))
shown = st.multiselect("Prompts to compare", ids, default=ids[:6], format_func=lambda i: labels[i][:60])
if shown:
    table = calibration.reward_distributions(bank, result.heldout_prompt_index, result.heldout_rewards, shown)
    st.plotly_chart(calibration_figures.distributions_figure(table), width="stretch")
st.caption(
    "Fresh reference replies, scored (left) and calibrated against each prompt's bank (right). Raw "
    "boxes differ from prompt to prompt in height and width; calibrated ones all spread over 0–1 around "
    "½ (not exactly: each box holds only a few dozen replies, and the bank itself is a sample)."
)

c1, c2 = st.columns(2)
with c1:
    st.subheader("Is C uniform?")
    st.plotly_chart(calibration_figures.ecdf_figure(check), width="stretch")
    verdict = "consistent with" if check.ks_pvalue >= 0.05 else "**not** consistent with"
    st.caption(
        f"ECDF of {check.num_samples} held-out calibrated rewards against the diagonal. KS distance "
        f"{check.ks_statistic:.3f}, p = {check.ks_pvalue:.3f}: {verdict} Uniform[0, 1]. With finite m, C "
        f"takes m + 1 values, so each is spread over its cell; the p-value comes from "
        f"{check.num_permutations} simulated banks, because replies to one prompt share a bank."
    )
with c2:
    st.subheader("Error as m grows")
    if bank.m >= 2:
        curve = calibration.calibration_error_curve(bank, result.heldout_prompt_index, result.heldout_rewards)
        st.plotly_chart(calibration_figures.error_figure(curve), width="stretch")
    st.caption(
        "C from m of the bank's replies against C from all of them. The estimate averages m win/lose "
        "indicators, so its variance is u(1−u)/m (solid line: with the correction for the bank being finite). "
        "Few reference samples cost accuracy: about a point of win rate at m ≈ 64, several at m = 4."
    )

st.subheader("Why raw rewards mislead")
# β = 1 by default: at small β the raw tilt picks each prompt's best reply (KL = log m everywhere).
beta = st.select_slider("β (KL coefficient)", (0.01, 0.03, 0.1, 0.3, 1.0, 3.0), value=1.0)
spread = calibration.raw_reward_spread(bank, beta=beta)
st.plotly_chart(calibration_figures.kl_figure(spread, beta), width="stretch")
st.caption(
    "The KL-regularised optimum tilts each prompt's reference replies by exp(r/β). With raw rewards, a "
    "prompt with a wide reward spread moves far from the reference and a narrow one hardly moves, for the "
    "same β. With calibrated rewards every prompt gets the same KL. "
    + calibration_figures.kl_note(spread, beta, bank.m)
)
st.dataframe(spread, width="stretch", hide_index=True)
csv_bytes = spread.to_csv(index=False).encode("utf-8")
st.download_button("Download per-prompt quantiles (CSV)", csv_bytes, "reward_quantiles.csv", "text/csv")
