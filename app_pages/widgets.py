"""Widgets several pages share (not a page: app.py does not list it): models, prompt rendering, prompt sources, run options."""

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from app_pages import cached
from infalign_core import classroom, data
from infalign_core.chat import ChatFormat
from infalign_core.errors import InfAlignError
from infalign_core.models import describe_size
from infalign_core.text import literal

SOURCES = ["Bundled", "Upload a file", "Hugging Face dataset"]
UPLOAD_TYPES = ["jsonl", "ndjson", "json", "csv", "tsv", "txt", "parquet"]


def chat_controls(key: str, help_texts: dict | None = None) -> ChatFormat:
    """Completion-mode switch and system prompt; returns how prompts are rendered."""
    help_texts = help_texts or {}
    left, right = st.columns([1, 2])
    completion = left.toggle(
        "Completion mode",
        False,
        key=f"{key}_completion",
        help=help_texts.get("completion_mode")
        or "Off: prompts go through each model's chat template (when it has one). On: the raw text.",
    )
    system = right.text_input(
        "System prompt (chat templates only)",
        "",
        key=f"{key}_system",
        disabled=completion,
        help=help_texts.get("system_prompt"),
    )
    return ChatFormat(
        completion=completion, system_prompt=(system.strip() or None) if not completion else None
    )


def show_rendered(prompt: str, rendered: str | None) -> None:
    """What the policy was conditioned on, when the chat template changed the prompt."""
    if rendered is not None and rendered != prompt:
        with st.expander("Rendered prompt: exactly what the policy saw"):
            st.code(rendered, language=None, wrap_lines=True)


def choose_prompts(key: str):
    """Prompt-source widgets; returns a PromptSet or None (errors are shown).

    A file with several text columns and no usual prompt column makes the user choose one: the
    page does not guess. HH-style files (chosen/rejected dialogues) need no column.
    """
    kind = st.radio("Prompts", SOURCES, horizontal=True, key=f"{key}_source")
    if kind == "Bundled":
        split = st.selectbox("Split", ["all", "train", "eval"], index=1, key=f"{key}_split")
        result = cached.prompts("bundled", None, None if split == "all" else split, None)
    elif kind == "Upload a file":
        upload = st.file_uploader(
            "JSONL, JSON, CSV, TSV, TXT or Parquet, up to 20 MB", type=UPLOAD_TYPES, key=f"{key}_upload"
        )
        if upload is None:
            return None
        payload = upload.getvalue()
        try:
            choices = data.needs_column_choice(payload, filename=upload.name)
        except InfAlignError as err:
            st.error(literal(err))
            return None
        column = None
        if choices:
            column = st.selectbox(
                "Which column holds the prompts?", choices, index=None, placeholder="choose a column",
                key=f"{key}_column",
            )  # fmt: skip
            if column is None:
                st.info(f"{literal(upload.name)} has several text columns; choose the one with the prompts.")
                return None
        result = cached.prompts(payload, column, None, upload.name)
    else:
        name = st.text_input("Dataset id, preset or folder", "", key=f"{key}_name", help=_preset_help())
        cols = st.columns(3)
        split = cols[0].text_input("Split", "", key=f"{key}_hub_split", placeholder="train")
        subset = cols[1].text_input("Subset / data_dir", "", key=f"{key}_subset", placeholder="helpful-base")
        column = cols[2].text_input("Column (empty: HH or 'prompt')", "", key=f"{key}_hub_column")
        if not name.strip():
            return None
        result = cached.prompts(
            name.strip(), column.strip() or None, split.strip() or None, None, subset.strip() or None
        )
    if isinstance(result, str):
        st.error(literal(result))
        return None
    for notice in result.notices:
        st.info(literal(notice))
    return result


def _preset_help() -> str:
    """The prompt presets, for a help tooltip."""
    return "Presets: " + "; ".join(
        f"{p.name} = {p.dataset}{f' ({p.subset})' if p.subset else ''}, {p.mode}-of-N — {p.size}"
        for p in data.PROMPT_PRESETS.values()
    )


def run_options(help_texts: dict) -> dict:
    """CTRLConfig fields for real models: prompt subset, chat rendering, LoRA, gradient checkpointing."""
    subset = st.text_input(
        "Prompt subset / data_dir", "", help=help_texts["prompt_subset"], key="ctrl_prompt_subset"
    )
    chat = chat_controls("ctrl", help_texts)
    left, right = st.columns(2)
    lora = left.number_input("LoRA rank (0 = train all weights)", 0, 1024, 0, help=help_texts["lora_rank"])
    checkpointing = right.checkbox(
        "Gradient checkpointing", False, help=help_texts["gradient_checkpointing"], key="ctrl_checkpointing"
    )
    return {
        "prompt_subset": subset.strip() or None,
        "completion_mode": chat.completion,
        "system_prompt": chat.system_prompt,
        "lora_rank": int(lora) or None,
        "gradient_checkpointing": bool(checkpointing),
    }


def trainer_options(help_texts: dict) -> dict:
    """CTRLConfig's update rule and KL controller (the levers of issue 17), defaulting to the recommended run's."""
    from infalign_core import ctrl

    default = ctrl.recommended_config()
    left, right = st.columns(2)
    algorithm = left.selectbox(
        "Update rule", ctrl.ALGORITHMS, ctrl.ALGORITHMS.index(default.algorithm), help=help_texts["algorithm"]
    )
    controller = right.selectbox(
        "KL controller",
        ctrl.KL_CONTROLLERS,
        ctrl.KL_CONTROLLERS.index(default.kl_controller),
        help=help_texts["kl_controller"],
    )
    return {"algorithm": algorithm, "kl_controller": controller}


def show_model(title: str, loaded) -> None:
    """Parameter count, size, device and load time of a loaded model, plus its notes."""
    st.markdown(f"**{title}** · `{loaded.source}`")
    cols = st.columns(5)
    cols[0].metric("Parameters", f"{loaded.num_parameters / 1e6:.2f} M")
    cols[1].metric("Size", describe_size(loaded.size_bytes))
    cols[2].metric("Device", str(loaded.device))
    cols[3].metric("Dtype", str(loaded.dtype).removeprefix("torch."))
    cols[4].metric("Load time", f"{loaded.load_seconds:.2f} s")
    for note in loaded.notes:
        st.info(note)


def session_id() -> str | None:
    """This browser session's id: classroom mode caps the trainings each session runs."""
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else None


def classroom_mode() -> bool:
    """Whether this server runs in classroom mode (INFALIGN_CLASSROOM=1): remote code then stays off."""
    return classroom.enabled()


def following(slot, kind: str, label: str, suggestion, key: str, source: str, **kwargs):
    """A widget (``slot.<kind>``) whose value follows `suggestion` until the user edits it.

    A fixed key alone keeps the first default for ever (switching the preset kept best-of-4's t
    for a worst-of-4 run); a key per suggestion forgets an edit. So the last suggestion is
    remembered: while the widget still holds it, a new one replaces it; once the user has changed
    it, the value is theirs and a caption says how it differs from `source`'s suggestion.
    """
    remembered = f"_suggested_{key}"
    if key not in st.session_state or st.session_state[key] == st.session_state.get(remembered):
        st.session_state[key] = suggestion
    st.session_state[remembered] = suggestion
    value = getattr(slot, kind)(label, key=key, **kwargs)
    if value != suggestion:
        shown = f"{suggestion:g}" if isinstance(suggestion, float) else str(suggestion)
        slot.caption(f"{label} = {value} is your value; {source} suggests {shown}.")
    return value
