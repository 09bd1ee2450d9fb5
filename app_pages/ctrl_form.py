"""The CTRL page's "New run" form (not a page: app.py does not list it).

Every field a preset or the theory sets follows the preset, N, mode and KL target until the user
edits it (widgets.following); a KL target the exponential cannot reach is refused in the form.
"""

import streamlit as st

from app_pages import theory_cache, widgets
from infalign_core import ctrl, theory
from infalign_core.errors import InfAlignError
from infalign_core.text import literal


def suggested_t(n, mode: str, kl_target) -> tuple[float | None, str | None]:
    """The theory's best t (rounded as every page shows it) for the form's N, mode and KL target, or why not."""
    try:
        budget = (
            float(kl_target) if kl_target else ctrl.RECOMMENDED_RUN["kl_target"]
        )  # fixed β: the usual budget
        return theory.rounded_t(theory_cache.best_exponential_t(int(n), budget, mode).t), None
    except (InfAlignError, TypeError, ValueError, OverflowError) as err:
        return None, str(err)


def new_run_form(help_texts: dict) -> tuple[dict, str | None]:
    """Draw the form; returns the CTRLConfig fields and a reason the run cannot start (or None)."""
    preset_name = st.selectbox("Preset", list(ctrl.PRESETS), index=2, key="preset")
    preset = ctrl.recommended_config(**ctrl.PRESETS[preset_name]).to_dict()  # the recommended run
    source = f"the preset “{preset_name}”"
    left, mid, right = st.columns(3)
    follow = widgets.following
    transform = follow(left, "selectbox", "Transform Φ", preset["transform"], "transform", source,
                       options=ctrl.TRANSFORMS, help=help_texts["transform"])  # fmt: skip
    mode = follow(left, "radio", "Mode", preset["mode"], "mode", source, options=ctrl.MODES, horizontal=True)
    n = follow(left, "number_input", "N", int(preset["n"]), "n", source, step=1, help=help_texts["n"])
    # A KL target by default: the preset's t is tuned for 0.5 nats, and a fixed β overshoots it.
    kl_target = follow(mid, "number_input", "KL target (0 = fixed β)", float(preset["kl_target"] or 0), "kl_target",
                       source, step=0.05, help=help_texts["kl_target"])  # fmt: skip
    beta = follow(mid, "number_input", "β", float(preset["beta"]), "beta", source, step=0.01,
                  format="%.3f", help=help_texts["beta"])  # fmt: skip
    t_value, problem = None, None
    if transform == "exp":
        suggestion, problem = suggested_t(n, mode, kl_target)
        where = f"theory (best t for {mode}-of-{n} at KL {kl_target or ctrl.RECOMMENDED_RUN['kl_target']:g})"
        if suggestion is None:
            mid.error(f"No t for this run: {literal(problem)}")
            t_value = mid.number_input("t", value=10.0, help=help_texts["t"], key="t_unsuggested")
        else:
            t_value = follow(mid, "number_input", "t", suggestion, "t", f"the {where}", help=help_texts["t"])
            if t_value == suggestion:
                mid.caption(f"t = {theory.t_label(suggestion)}: the {where}.")
    steps = follow(
        right, "number_input", "Steps", preset["steps"], "steps", source, step=1, help=help_texts["steps"]
    )
    k = follow(
        right,
        "number_input",
        "k (samples per prompt)",
        preset["k"],
        "k",
        source,
        step=1,
        help=help_texts["k"],
    )
    prompts_per_step = follow(
        right,
        "number_input",
        "Prompts per step",
        preset["prompts_per_step"],
        "prompts_per_step",
        source,
        step=1,
        help=help_texts["prompts_per_step"],
    )
    learning_rate = follow(
        right,
        "number_input",
        "Learning rate",
        preset["learning_rate"],
        "learning_rate",
        source,
        format="%.1e",
        help=help_texts["learning_rate"],
    )
    with st.popover("Models, prompts, sampling and trainer"):
        policy = st.text_input("Policy", preset["policy"], help=help_texts["policy"], key="policy")
        reward = st.text_input("Reward", preset["reward"], help=help_texts["reward"], key="reward")
        prompts = st.text_input("Prompts", preset["prompts"], help=help_texts["prompts"], key="prompts")
        num_prompts = st.number_input("Prompts used", value=preset["num_prompts"], step=1, key="num_prompts")
        m = st.number_input("m (reference samples per prompt)", value=preset["m"], step=1, key="m")
        max_new_tokens = st.number_input(
            "Max new tokens", value=preset["max_new_tokens"], step=1, key="max_new_tokens"
        )
        device = st.selectbox("Device", ctrl.DEVICES, key="device")
        seed = st.number_input("Seed", value=preset["seed"], step=1, key="seed")
        options = {**widgets.run_options(help_texts), **widgets.trainer_options(help_texts)}
    fields = dict(
        policy=policy, reward=reward, prompts=prompts, num_prompts=int(num_prompts), m=int(m),
        transform=transform, t=t_value, mode=mode, n=int(n), beta=float(beta),
        kl_target=float(kl_target) if kl_target != 0 else None, k=int(k),
        prompts_per_step=int(prompts_per_step), learning_rate=float(learning_rate), steps=int(steps),
        max_new_tokens=int(max_new_tokens), device=device, seed=int(seed), **options,
    )  # fmt: skip
    return fields, problem
