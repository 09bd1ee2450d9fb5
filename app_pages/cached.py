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


# --- the arena ----------------------------------------------------------------------------------


def weights_version(source: str) -> float:
    """Newest weight file's mtime: a cache key that changes when a run writes a new checkpoint."""
    from pathlib import Path

    from infalign_core.models import BUNDLED

    path = BUNDLED["policy"] if source == "default" else Path(source)
    files = list(path.glob("*.safetensors")) if path.is_dir() else []
    return max((f.stat().st_mtime for f in files), default=0.0)


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def arena_model(source: str, version: float):
    """A policy, loaded once per source and weights version (a running run's checkpoint changes)."""
    from infalign_core.models import load_policy

    return load_policy(source)


@st.cache_data(max_entries=32, show_spinner=False)
def theory_curve(transform, t, mode, n, phi_beta=None, run_n=None, procedure=None) -> dict | None:
    """The theory's curve at N for a run's transform (the optimal Φ it trained on, if recorded; cached)."""
    from infalign_core.figures import arena as arena_figures

    return arena_figures.default_theory_curve(transform, t, mode, n, phi_beta, run_n, procedure)
