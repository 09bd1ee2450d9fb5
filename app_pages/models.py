"""Models: choose the reference policy and the reward, then sample N responses and rank them."""

import streamlit as st

from app_pages import cached, widgets
from app_pages.models_parts import DEFAULTS, LEXICONS, source_picker, world_prompt
from infalign_core.errors import InfAlignError
from infalign_core.figures import models as models_figures
from infalign_core.models import PRESETS
from infalign_core.rewards import SequenceClassifierReward
from infalign_core.sampling_settings import SamplingSettings
from infalign_core.text import literal

st.title("Models")
st.markdown(
    "The reference policy π_ref writes responses; the reward model r scores prompt + response. "
    "The bundled tiny world (a 2-layer GPT-2 trained on generated movie reviews and a reward model "
    "that regresses their sentiment intensity) works offline; presets and hub ids need internet."
)
for key, value in DEFAULTS.items():
    st.session_state.setdefault(key, value)
st.session_state.setdefault("trust_remote_code", False)

policy_names = {"default": "Bundled tiny world (default)"}
policy_names |= {name: f"{p.policy} ({p.policy_size})" for name, p in PRESETS.items()}
reward_names = {"default": "Bundled reward model (default)", **LEXICONS}
reward_names |= {name: f"{p.reward} ({p.reward_size})" for name, p in PRESETS.items()}

with st.form("model_choice"):
    left, right = st.columns(2)
    with left:
        policy_choice = source_picker(
            "Reference policy",
            ["default", *PRESETS],
            policy_names,
            "policy",
            st.session_state.policy_source,
        )
    with right:
        reward_choice = source_picker(
            "Reward",
            ["default", *LEXICONS, *PRESETS],
            reward_names,
            "reward",
            st.session_state.reward_source,
        )
    devices = ["auto", "cpu", "cuda", "mps"]
    device = st.radio("Device", devices, index=devices.index(st.session_state.model_device), horizontal=True)
    trust = st.checkbox(
        "Trust remote code (runs Python shipped with a hub model; only for authors you trust)",
        value=st.session_state.trust_remote_code,
        disabled=widgets.classroom_mode(),  # a classroom server never runs a model's own code
    )
    submitted = st.form_submit_button("Load models", type="primary")

if submitted:
    try:  # load first, switch after: a failure keeps the models that were working
        cached.policy(policy_choice, device, trust)
        if reward_choice not in LEXICONS:
            cached.reward_model(reward_choice, device, trust)
    except InfAlignError as err:
        st.error(literal(err))  # word for word the CLI's message
        st.caption("Still using the models loaded before.")
    else:
        if reward_choice != st.session_state.reward_source:
            st.session_state.reward_label = ""
        if (policy_choice, reward_choice) != (st.session_state.policy_source, st.session_state.reward_source):
            st.session_state.pop("models_samples", None)  # they came from the models replaced now
        st.session_state.update(
            policy_source=policy_choice,
            reward_source=reward_choice,
            model_device=device,
            trust_remote_code=trust,
        )

try:
    active = (st.session_state.model_device, st.session_state.trust_remote_code)
    policy = cached.policy(st.session_state.policy_source, *active)
    reward_source = st.session_state.reward_source
    rm = None if reward_source in LEXICONS else cached.reward_model(reward_source, *active)
except InfAlignError as err:
    st.error(literal(err))
    st.stop()

reward_fn = cached.reward(reward_source) if rm is None else None
if rm is not None and len(rm.labels) > 1:
    preset_label = PRESETS[reward_source].reward_label if reward_source in PRESETS else None
    current = st.session_state.reward_label or preset_label
    label_col, kind_col = st.columns(2)
    label = label_col.selectbox(
        f"Which of the reward model's {len(rm.labels)} labels is the reward?",
        rm.labels,
        index=rm.labels.index(current) if current in rm.labels else None,
        placeholder="choose a label",
    )
    probability = kind_col.radio("Reward value", ["logit", "probability"], horizontal=True) == "probability"
    st.session_state.reward_label = label or ""
    if label is None:
        st.info("Choose the label whose logit (or probability) is the reward to sample and score.")
    else:
        reward_fn = SequenceClassifierReward(rm, label, probability=probability)
elif rm is not None:
    reward_fn = SequenceClassifierReward(rm)

st.session_state.loaded_models = {
    "policy": models_figures.model_summary(policy),
    "reward": models_figures.model_summary(rm) if rm is not None else LEXICONS[reward_source],
}
widgets.show_model("Reference policy", policy)
if rm is not None:
    widgets.show_model("Reward model", rm)
else:
    st.markdown(f"**Reward** · {LEXICONS[reward_source]} (no model to load)")

st.subheader("Sample N responses: a first taste of best-of-N and worst-of-N")
limit = getattr(policy.model.config, "n_positions", None) or getattr(
    policy.model.config, "max_position_embeddings", 256
)
with st.form("sampling"):
    typed = st.text_input("Prompt (text, or an HH dialogue)", "The acting was", key="models_prompt")
    prompt = world_prompt(typed, st.session_state.policy_source == "default")
    chat = widgets.chat_controls("models")
    cols = st.columns(4)
    n = cols[0].slider("N responses", 1, 64, 16, key="models_n")
    temperature = cols[1].slider("Temperature", 0.0, 2.0, 1.0, 0.05, key="models_temperature")
    max_new_tokens = cols[2].slider("Max new tokens", 1, max(1, min(128, limit - 8)), min(24, limit - 8))
    seed = cols[3].number_input("Seed", value=0, step=1, key="models_seed")  # checked below, with a message
    go_sample = st.form_submit_button("Sample and score", type="primary", disabled=reward_fn is None)

if go_sample and reward_fn is not None:
    from infalign_core.sampling import sample

    try:
        if not 0 <= seed <= 2**31 - 1:
            raise InfAlignError(f"the seed must be an integer in [0, {2**31 - 1}], got {seed}")
        with st.spinner("Sampling…"):
            settings = SamplingSettings(
                max_new_tokens=int(max_new_tokens), temperature=temperature, seed=int(seed)
            )
            samples = sample(cached.with_chat(policy, chat), [prompt], int(n), settings)
            if isinstance(reward_fn, SequenceClassifierReward):  # scored through the same rendering
                reward_fn = reward_fn.with_chat(chat)
            rewards = reward_fn.score(samples.row_prompts(), samples.responses)
    except InfAlignError as err:
        st.error(literal(err))
        st.session_state.pop("models_samples", None)  # no stale results under a new error
        st.session_state.pop("models_rendered", None)
    else:
        st.session_state.models_samples = models_figures.ranked_samples(prompt, samples, rewards)
        st.session_state.models_rendered = (prompt, samples.rendered_prompts[0])
        for note in [*samples.notes, *reward_fn.notes]:
            st.info(note)

table = st.session_state.get("models_samples")
widgets.show_rendered(*st.session_state.get("models_rendered", ("", None)))
if table is not None and len(table):
    best, worst = table.iloc[0], table.iloc[-1]
    cols = st.columns(3)
    cols[0].metric("Best-of-N reward", f"{best.reward:.3f}")
    cols[1].metric("Mean reward (one sample)", f"{table.reward.mean():.3f}")
    cols[2].metric("Worst-of-N reward", f"{worst.reward:.3f}")
    st.markdown(
        f":green[**Best of {len(table)}**] {literal(best.review)}  \n"
        f":red[**Worst of {len(table)}**] {literal(worst.review)}"
    )

    st.dataframe(
        models_figures.styled_samples(table),
        hide_index=True,
        height=min(36 * (len(table) + 1) + 3, 620),  # short lists whole, so the red row shows
    )
    st.plotly_chart(models_figures.rewards_strip_figure(table))
    st.caption(
        "Best-of-N keeps the green sample, worst-of-N the red one. Their rewards move with N even for the "
        "same policy, which is why InfAlign aligns for the decoding procedure, not the single sample."
    )
