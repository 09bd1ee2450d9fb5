"""Rendering prompts and conversations: a model's own chat template, or plain text.

A prompt is a string or a list of messages (``{"role": ..., "content": ...}``). A string in
Anthropic HH's transcript form ("\\n\\nHuman: … \\n\\nAssistant:") is a multi-turn dialogue;
any other string is one user turn. Prompts travel through the library as strings (banks,
runs and exports key on them), so a list of messages is stored as that transcript form.

* The policy is conditioned on ``render_prompt``: the messages (after an optional system
  prompt) through the policy tokenizer's chat template with ``add_generation_prompt``, or the
  prompt text itself when the tokenizer has no template or completion mode is on.
* The reward model scores ``render_conversation``: the messages plus the assistant response
  through the reward tokenizer's own template, or prompt + response text otherwise.

A rendered template already carries its BOS, so it is tokenized with ``add_special_tokens=False``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from infalign_core.errors import InfAlignError

ROLES = ("system", "user", "assistant")
_TURN = re.compile(r"\n\n(Human|Assistant|System): ?")
_HH_ROLES = {"Human": "user", "Assistant": "assistant", "System": "system"}
_HH_NAMES = {v: k for k, v in _HH_ROLES.items()}


@dataclass(frozen=True)
class ChatFormat:
    """How prompts are shown to the models: chat templates (unless completion mode) and a system prompt."""

    completion: bool = False
    system_prompt: str | None = None

    def describe(self) -> str:
        """One line for the UI and logs."""
        if self.completion:
            return "completion mode (no chat templates)"
        return "chat templates" + (" with a system prompt" if self.system_prompt else "")


COMPLETION = ChatFormat(completion=True)


# --- messages -----------------------------------------------------------------------------


def is_dialogue(text: str) -> bool:
    """Whether a string is an HH-style transcript ("\\n\\nHuman: …")."""
    return (
        isinstance(text, str) and _TURN.match(text if text.startswith("\n\n") else "\n\n" + text) is not None
    )


def parse_dialogue(text: str) -> list[dict]:
    """An HH transcript as messages; a trailing empty "Assistant:" turn (the reply slot) is dropped."""
    body = text if text.startswith("\n\n") else "\n\n" + text
    parts = _TURN.split(body)
    if parts[0].strip():
        raise InfAlignError(
            f"Text before the first 'Human:' turn in {text[:60]!r}; it is not an HH dialogue."
        )
    messages = [
        {"role": _HH_ROLES[name], "content": content.strip()}
        for name, content in zip(parts[1::2], parts[2::2])
    ]
    if messages and messages[-1]["role"] == "assistant" and not messages[-1]["content"]:
        messages.pop()
    return messages


def to_messages(prompt: str | Sequence[dict]) -> list[dict]:
    """A prompt as a list of messages: an HH transcript parsed, another string as one user turn."""
    if isinstance(prompt, str):
        return parse_dialogue(prompt) if is_dialogue(prompt) else [{"role": "user", "content": prompt}]
    messages = []
    for i, message in enumerate(prompt):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise InfAlignError(f'Message {i} must be an object like {{"role": "user", "content": "..."}}.')
        role = message.get("role")
        if role not in ROLES:
            raise InfAlignError(f"Message {i} has role {role!r}; use one of {', '.join(ROLES)}.")
        messages.append({"role": role, "content": message["content"]})
    if not messages:
        raise InfAlignError("A prompt given as messages needs at least one message.")
    return messages


def prompt_text(prompt: str | Sequence[dict], *, transcript: bool = False) -> str:
    """The string form a prompt travels in: itself, or a list of messages as an HH transcript.

    A single user turn stays plain text unless ``transcript`` (HH prompts keep their form, which
    is what a base model sees in completion mode).
    """
    if isinstance(prompt, str):
        return prompt
    messages = to_messages(prompt)
    if len(messages) == 1 and messages[0]["role"] == "user" and not transcript:
        return messages[0]["content"]
    turns = "".join(f"\n\n{_HH_NAMES[m['role']]}: {m['content']}" for m in messages)
    return turns + ("\n\nAssistant:" if messages[-1]["role"] != "assistant" else "")


def check_prompt_dialogue(messages: list[dict], where: str) -> None:
    """A dialogue prompt must end on a user turn, waiting for the assistant's reply."""
    if not messages or messages[-1]["role"] != "user":
        raise InfAlignError(
            f"{where} does not end on a user turn (its last turn is "
            f"{messages[-1]['role'] if messages else 'missing'}); give the dialogue up to the reply."
        )


# --- templates ----------------------------------------------------------------------------


def has_chat_template(tokenizer) -> bool:
    """Whether the tokenizer ships a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def template_sha(tokenizer) -> str | None:
    """sha256 of the tokenizer's chat template (None without one): what a cache key records."""
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        return None
    text = template if isinstance(template, str) else repr(sorted(dict(template).items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def uses_template(tokenizer, chat: ChatFormat | None) -> bool:
    """Whether prompts for this tokenizer go through its chat template under ``chat``."""
    return not (chat or ChatFormat()).completion and has_chat_template(tokenizer)


def _apply(tokenizer, messages: list[dict], *, generation_prompt: bool, who: str) -> str:
    """apply_chat_template to text, any failure as one InfAlignError."""
    try:
        text = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )
    except (
        Exception
    ) as err:  # jinja's TemplateError, a template's raise_exception, bad roles: all unrenderable
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise InfAlignError(
            f"The {who}'s chat template failed to render {messages[-1]['content'][:40]!r}: {first}. "
            "Fix the template, drop the system prompt, or use completion mode."
        ) from None
    if not isinstance(text, str):
        raise InfAlignError(f"The {who}'s chat template returned {type(text).__name__}, not text.")
    return text


def render_prompt(tokenizer, prompt: str | Sequence[dict], chat: ChatFormat | None = None) -> str:
    """Exactly the text the policy is conditioned on (the template's generation prompt included)."""
    chat = chat or ChatFormat()
    if not uses_template(tokenizer, chat):
        return prompt_text(prompt)
    messages = to_messages(prompt)
    check_prompt_dialogue(messages, f"Prompt {prompt_text(prompt)[:40]!r}")
    if chat.system_prompt and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": chat.system_prompt}, *messages]
    return _apply(tokenizer, messages, generation_prompt=True, who="policy")


def encode_prompt(tokenizer, prompt: str | Sequence[dict], chat: ChatFormat | None = None) -> list[int]:
    """Token ids of the rendered prompt; a rendered template is not given a second BOS."""
    text = render_prompt(tokenizer, prompt, chat)
    return list(tokenizer(text, add_special_tokens=not uses_template(tokenizer, chat))["input_ids"])


def render_conversation(
    tokenizer, prompt: str | Sequence[dict], response: str, chat: ChatFormat | None = None
) -> str | None:
    """The prompt's messages plus the assistant response through the reward tokenizer's template.

    None when that tokenizer has no template or completion mode is on: the caller scores
    prompt + response text then.
    """
    chat = chat or ChatFormat()
    if not uses_template(tokenizer, chat):
        return None
    messages = to_messages(prompt)
    if chat.system_prompt and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": chat.system_prompt}, *messages]
    messages.append({"role": "assistant", "content": response.strip()})
    return _apply(tokenizer, messages, generation_prompt=False, who="reward model")


CHAT_FILE = "infalign_chat.json"  # beside a checkpoint: how the run rendered its prompts


def save_chat_format(folder, chat: ChatFormat | None) -> None:
    """Record in a model folder how its prompts were rendered, so it is evaluated the same way."""
    import json
    from pathlib import Path

    chat = chat or ChatFormat()
    data = {"completion": bool(chat.completion), "system_prompt": chat.system_prompt}
    (Path(folder) / CHAT_FILE).write_text(json.dumps(data), encoding="utf-8")


def saved_chat_format(folder) -> ChatFormat | None:
    """The rendering a model folder records (None when it records none or the record is unreadable)."""
    import json
    from pathlib import Path

    path = Path(folder) / CHAT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        system = data.get("system_prompt")
        return ChatFormat(
            completion=bool(data.get("completion")), system_prompt=system if isinstance(system, str) else None
        )
    except (OSError, ValueError, AttributeError):
        return None


def rendering_key(tokenizer, chat: ChatFormat | None) -> dict:
    """What a cache key records about how a model sees its prompts."""
    chat = chat or ChatFormat()
    return {
        "template": template_sha(tokenizer) if uses_template(tokenizer, chat) else None,
        "completion": bool(chat.completion),
        "system_prompt": chat.system_prompt if uses_template(tokenizer, chat) else None,
    }


__all__ = [
    "COMPLETION",
    "ChatFormat",
    "encode_prompt",
    "has_chat_template",
    "is_dialogue",
    "parse_dialogue",
    "prompt_text",
    "render_conversation",
    "render_prompt",
    "rendering_key",
    "to_messages",
]
