"""Pieces of the Models page (not a page: app.py does not list it): source pickers, the world's prompts."""

import streamlit as st

from app_pages import cached

LEXICONS = {
    "vader": "VADER lexicon (compound score)",
    "oracle": "Oracle: the world's true sentiment intensity",
}
DEFAULTS = {
    "policy_source": "default",
    "reward_source": "default",
    "reward_label": "",
    "model_device": "auto",
}


def source_picker(label: str, options: list[str], names: dict[str, str], key: str, active: str) -> str:
    """A selectbox of known sources; a folder or hub id typed below it takes precedence."""
    index = options.index(active) if active in options else 0
    choice = st.selectbox(
        label, options, index=index, format_func=lambda o: names.get(o, o), key=f"{key}_choice"
    )
    typed = st.text_input(
        "… or a local folder / hub id (used when filled)",
        value="" if active in options else active,
        placeholder="path/to/saved_model or org/name",
        key=f"{key}_text",
    )
    return typed.strip() or choice


def world_prompt(typed: str, bundled_policy: bool) -> str:
    """The prompt to sample: a prompt the bundled world knows when one is chosen, else the typed one.

    The tiny world learnt only short movie-review openings; a prompt unlike them (a question, another
    topic) makes it collapse onto a few identical responses, so the page says so and offers its own.
    """
    if not bundled_policy:
        return typed
    known = cached.prompts("bundled", None, "eval", None)
    examples = [] if isinstance(known, str) else known.prompts[:40]
    chosen = st.selectbox(
        "… or a prompt the bundled world knows (used when chosen)",
        examples,
        index=None,
        placeholder="e.g. " + " · ".join(examples[:3]),
        key="models_world_prompt",
    )
    if chosen is None and examples and typed.strip() not in _all_world_prompts():
        st.caption(
            f"“{typed.strip()}” is not one of the world's {len(_all_world_prompts())} prompts: the tiny model "
            "learnt only short movie-review openings, and far from them its samples collapse onto a few "
            "identical responses. Pick one of its own above for a fair taste of best-of-N."
        )
    return chosen or typed


def _all_world_prompts() -> set[str]:
    """Every prompt of the bundled world (train and eval)."""
    known = cached.prompts("bundled", None, None, None)
    return set() if isinstance(known, str) else set(known.prompts)
