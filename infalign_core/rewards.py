"""Reward functions behind one interface: r(x, y) for prompt x and response y.

Every reward scores the full text the policy produced, prompt + response, and returns one
finite float64 per pair. Sources: a sequence-classification reward model (one label's logit
or probability), the VADER lexicon, the bundled world's ground-truth intensity (``oracle``),
or any Python callable.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Sequence
from contextlib import contextmanager

import numpy as np
import torch

from infalign_core.chat import (
    ChatFormat,
    is_dialogue,
    prompt_text,
    render_conversation,
    rendering_key,
    uses_template,
)
from infalign_core.errors import InfAlignError
from infalign_core.models import (
    LoadedRewardModel,
    OutOfMemory,
    halve_batch,
    load_reward_model,
    memory_errors,
)
from infalign_core.reward_base import RewardFunction

# --- a sequence-classification reward model --------------------------------------------------


def resolve_label(labels: Sequence[str], label: int | str | None, source: str) -> int | None:
    """Index of the chosen label; None for a one-output (scalar) reward model."""
    if len(labels) == 1:
        if label not in (None, 0, labels[0]):
            raise InfAlignError(f"{source} has a single output ({labels[0]}); leave the label unset.")
        return None
    listing = ", ".join(f"{i}={name}" for i, name in enumerate(labels))
    if label is None or label == "":
        raise InfAlignError(
            f"{source} has {len(labels)} labels ({listing}): choose which one is the reward "
            "(e.g. --label POSITIVE)."
        )
    if isinstance(label, str) and not label.strip().lstrip("-").isdigit():
        wanted = label.strip().lower()
        for i, name in enumerate(labels):
            if name.lower() == wanted:
                return i
        raise InfAlignError(f"{source} has no label {label!r}; its labels are {listing}.")
    index = int(label)
    if not 0 <= index < len(labels):
        raise InfAlignError(f"Label index {index} is out of range for {source}; its labels are {listing}.")
    return index


class SequenceClassifierReward(RewardFunction):
    """A reward model's output: the score itself (one output) or one label's logit or probability."""

    def __init__(
        self,
        loaded: LoadedRewardModel,
        label: int | str | None = None,
        *,
        probability: bool = False,
        batch_size: int = 64,
        chat: ChatFormat | None = None,
    ):
        self.loaded = loaded
        self.chat = chat or ChatFormat()
        self.notes = []
        self.label_index = resolve_label(loaded.labels, label, loaded.source)
        self.probability = bool(probability and self.label_index is not None)
        self.batch_size = int(batch_size)
        head = "" if self.label_index is None else f":{loaded.labels[self.label_index]}"
        kind = ":prob" if self.probability else ""
        self.name = f"{loaded.source}{head}{kind}"
        tok = loaded.tokenizer
        self.rendering = rendering_key(tok, self.chat)
        # Template-less scoring keeps the old fingerprint, so banks built before templates stay valid.
        rendered = "" if self.rendering["template"] is None else f":chat={_short_hash(self.rendering)}"
        self.fingerprint = f"rm:{loaded.fingerprint}{head}{kind}{rendered}"
        limits = [
            v
            for v in (
                getattr(tok, "model_max_length", None),
                getattr(loaded.model.config, "n_positions", None),
                getattr(loaded.model.config, "max_position_embeddings", None),
            )
            if isinstance(v, int) and 0 < v < 1_000_000
        ]
        self.max_length = min(limits) if limits else 512

    def with_chat(self, chat: ChatFormat | None) -> SequenceClassifierReward:
        """The same model, label and batch size, scoring conversations rendered as ``chat`` says."""
        return SequenceClassifierReward(
            self.loaded, self.label_index, probability=self.probability, batch_size=self.batch_size, chat=chat
        )

    def _score_pairs(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        """The conversation through the reward tokenizer's template, else prompt + response text."""
        tok = self.loaded.tokenizer
        if uses_template(tok, self.chat):
            texts = [render_conversation(tok, p, r, self.chat) for p, r in zip(prompts, responses)]
            return self._score_texts(texts, special_tokens=False)
        if not self.chat.completion and not self.notes and any(is_dialogue(p) for p in prompts):
            self.notes.append(
                f"The reward model {self.loaded.source} has no chat template: it scores the dialogue "
                "as plain prompt + response text."
            )
        return self._score_texts([prompt_text(p) + r for p, r in zip(prompts, responses)])

    def _score_texts(self, texts: list[str], special_tokens: bool = True) -> np.ndarray:
        out, start = [], 0
        while start < len(texts):
            chunk = texts[start : start + self.batch_size]
            try:
                with memory_errors(f"scoring with {self.name} (lower the batch size)"):
                    out.append(self._score_batch(chunk, special_tokens))
            except OutOfMemory:
                if self.batch_size == 1:
                    raise
                self.batch_size = halve_batch(self.batch_size, f"scoring with {self.name}", self.notes)
                continue
            start += len(chunk)
        return np.concatenate(out)

    def _score_batch(self, texts: list[str], special_tokens: bool) -> np.ndarray:
        """Scores of one batch of texts."""
        model, tok = self.loaded.model, self.loaded.tokenizer
        # Always right-padded, whatever the tokenizer's own padding_side: GPT-2-style
        # classifiers number positions 0.. from the left edge whatever the mask says;
        # encoder classifiers expect right padding anyway.
        batch = tok(
            texts, padding=True, padding_side="right", add_special_tokens=special_tokens, return_tensors="pt"
        )
        self._check_length(batch["input_ids"].shape[1], texts[0])
        with torch.inference_mode(), _pool_at_last_real_token(model, batch):
            logits = model(**batch.to(self.loaded.device)).logits.float()
        if self.label_index is None:
            values = logits[:, 0]
        elif self.probability:
            values = torch.softmax(logits, -1)[:, self.label_index]
        else:
            values = logits[:, self.label_index]
        return values.double().cpu().numpy()

    def _check_length(self, width: int, example: str) -> None:
        """Refuse texts longer than the model's positions: truncating would cut the response off."""
        if width > self.max_length:
            raise InfAlignError(
                f"A prompt + response has {width} tokens, more than the {self.max_length} the reward "
                f"model {self.loaded.source} reads (e.g. {example[:50]!r}). Lower max_new_tokens, "
                "shorten the prompts, or use a reward model with a longer context."
            )


@contextmanager
def _pool_at_last_real_token(model, batch):
    """Make a decoder classifier pool each row's last real token, even when that token is the pad id.

    Decoder heads pool the rightmost token that differs from ``config.pad_token_id``; when the pad
    token doubles as EOS (a Llama tokenizer given one) and a chat template ends the text with it,
    that skips the real last token. The padding is then rewritten to an id absent from the batch.
    """
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    pad_id = getattr(config, "pad_token_id", None)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    real = ids[mask.bool()]
    if pad_id is None or not bool((real == pad_id).any()):
        yield
        return
    present = torch.zeros(max(int(ids.max()) + 2, model.config.vocab_size), dtype=torch.bool)
    present[real] = True
    spare = int((~present).nonzero()[0])
    if spare >= model.config.vocab_size:
        yield  # every id occurs: nothing safer to pad with
        return
    batch["input_ids"] = ids.masked_fill(mask == 0, spare)
    config.pad_token_id = spare
    try:
        yield
    finally:
        config.pad_token_id = pad_id


def _short_hash(value) -> str:
    """A short stable digest of a JSON-able value."""
    import json

    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]


# --- lexicons and oracles ---------------------------------------------------------------------


class VaderReward(RewardFunction):
    """The VADER lexicon's compound sentiment score in [-1, 1]."""

    name = "vader"

    def __init__(self):
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError:
            raise InfAlignError(
                "VADER needs the vaderSentiment package: pip install vaderSentiment."
            ) from None
        import vaderSentiment

        self._analyzer = SentimentIntensityAnalyzer()
        self.fingerprint = f"vader:{getattr(vaderSentiment, '__version__', '3.3.2')}"

    def _score_texts(self, texts: list[str]) -> np.ndarray:
        return np.array([self._analyzer.polarity_scores(t)["compound"] for t in texts], dtype=np.float64)


class OracleReward(RewardFunction):
    """The bundled world's ground-truth sentiment intensity (the generator's own score)."""

    name = "oracle"

    def __init__(self):
        from infalign_core import lexicon

        self._score = lexicon.sentiment_intensity
        source = inspect.getsourcefile(lexicon)
        digest = hashlib.sha256(open(source, "rb").read()).hexdigest()[:16] if source else "unknown"
        self.fingerprint = f"oracle:{digest}"

    def _score_texts(self, texts: list[str]) -> np.ndarray:
        return np.array([self._score(t) for t in texts], dtype=np.float64)


class CallableReward(RewardFunction):
    """A user's function ``fn(prompt, response) -> float`` (or, batched, lists -> array)."""

    def __init__(self, fn: Callable, name: str, *, batched: bool = False):
        if not callable(fn):
            raise InfAlignError(f"Reward {name!r} is not callable.")
        self._fn = fn
        self.batched = batched
        self.name = name
        try:
            code = inspect.getsource(fn)
        except (OSError, TypeError):
            code = getattr(fn, "__qualname__", repr(fn))
        self.fingerprint = f"callable:{name}:{hashlib.sha256(code.encode()).hexdigest()[:16]}"

    def _score_pairs(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        if self.batched:
            try:
                return np.asarray(self._fn(prompts, responses), dtype=np.float64)
            except InfAlignError:
                raise
            except Exception as err:
                raise InfAlignError(f"Reward {self.name!r} failed: {type(err).__name__}: {err}") from None
        values = np.empty(len(prompts), dtype=np.float64)
        for i, (prompt, response) in enumerate(zip(prompts, responses)):
            try:
                values[i] = float(self._fn(prompt, response))
            except InfAlignError:
                raise
            except Exception as err:
                raise InfAlignError(
                    f"Reward {self.name!r} failed on input {i} ({(prompt + response)[:60]!r}): "
                    f"{type(err).__name__}: {err}"
                ) from None
        return values


def callable_reward(fn: Callable, name: str, *, batched: bool = False) -> RewardFunction:
    """Wrap ``fn(prompt, response) -> float`` (or ``fn(prompts, responses) -> array`` if batched)."""
    return CallableReward(fn, name, batched=batched)


# --- one entry point ------------------------------------------------------------------------------


def load_reward(
    source: str = "default",
    *,
    label: int | str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = False,
    probability: bool = False,
    batch_size: int = 64,
    chat: ChatFormat | None = None,
    judge: str | None = None,
) -> RewardFunction:
    """A reward by name: "default", "vader", "oracle", "proxy", ``judge:RUBRIC`` (with ``judge``), a preset, a folder or a hub id."""
    key = (source or "").strip()
    if key.startswith("judge:"):
        from infalign_core.judge import load_judge_reward

        return load_judge_reward(
            key, judge=judge, device=device, dtype=dtype, trust_remote_code=trust_remote_code
        )
    if key.lower() == "vader":
        return VaderReward()
    if key.lower() == "oracle":
        return OracleReward()
    if key.lower() == "proxy":  # the world's deliberately weak reward (infalign_core.proxy)
        from infalign_core.proxy import PROXY_DIR

        if not PROXY_DIR.is_dir():
            raise InfAlignError(
                f"The weak proxy reward is missing at {PROXY_DIR}; rebuild it with make proxy."
            )
        reward = load_reward(str(PROXY_DIR), device=device, dtype=dtype, batch_size=batch_size, chat=chat)
        reward.name = "proxy"
        return reward
    from infalign_core.models import PRESETS

    if key in PRESETS and label is None:
        label = PRESETS[key].reward_label
    loaded = load_reward_model(key, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
    return SequenceClassifierReward(loaded, label, probability=probability, batch_size=batch_size, chat=chat)


__all__ = [
    "CallableReward",
    "OracleReward",
    "RewardFunction",
    "SequenceClassifierReward",
    "VaderReward",
    "callable_reward",
    "load_reward",
    "resolve_label",
]
