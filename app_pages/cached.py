"""Model loaders shared by the pages, cached once per process (not a page: app.py does not list it).

One cache for every page means a model loaded on Models is the one Calibration uses.
"""

import streamlit as st


def _device(device: str) -> str | None:
    """The pages' "auto" is the loaders' None (pick the best available)."""
    return None if device == "auto" else device


@st.cache_resource(show_spinner="Loading the policy…", max_entries=4)
def policy(source: str, device: str = "auto", trust_remote_code: bool = False):
    """A policy, loaded once per source, device and remote-code choice."""
    from infalign_core.models import load_policy

    return load_policy(source, device=_device(device), trust_remote_code=trust_remote_code)


@st.cache_resource(show_spinner="Loading the reward model…", max_entries=4)
def reward_model(source: str, device: str = "auto", trust_remote_code: bool = False):
    """A sequence-classification reward model, loaded once per source."""
    from infalign_core.models import load_reward_model

    return load_reward_model(source, device=_device(device), trust_remote_code=trust_remote_code)


@st.cache_resource(show_spinner="Loading the reward…", max_entries=4)
def reward(
    source: str,
    label: str = "",
    device: str = "auto",
    trust_remote_code: bool = False,
    completion: bool = False,
    system_prompt: str = "",
):
    """A reward function (model, lexicon or callable) behind the one scoring interface."""
    from infalign_core.chat import ChatFormat
    from infalign_core.rewards import load_reward

    return load_reward(
        source,
        label=label or None,
        device=_device(device),
        trust_remote_code=trust_remote_code,
        chat=ChatFormat(completion=completion, system_prompt=system_prompt or None),
    )


def with_chat(policy, chat):
    """The cached policy seen through another prompt rendering (the weights are shared, not copied)."""
    import dataclasses

    return dataclasses.replace(policy, chat=chat)


@st.cache_data(show_spinner="Reading prompts…", max_entries=8)
def prompts(source, column, split, filename, subset=None):
    """PromptSet for a source (bytes for uploads), or the error message (so a bad file is cached too)."""
    from infalign_core import data
    from infalign_core.errors import InfAlignError

    try:
        return data.load_prompts(source, column=column, split=split, filename=filename, subset=subset)
    except InfAlignError as err:
        return str(err)
