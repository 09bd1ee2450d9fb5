"""What about a loaded model changes what it computes: the identities cache keys are made of.

A policy's samples depend on its weights and config (its fingerprint), dtype, tokenizer, generation
config and how it sees each prompt; a reward's scores on its fingerprint, dtype, tokenizer and
rendering. The calibration bank's key and the judge's cache key are built from these.
"""

from __future__ import annotations

import hashlib
import json


def policy_identity(policy) -> dict:
    """What about the reference policy changes its samples; one entry per ingredient of the bank key.

    Weights and config (the fingerprint), the dtype it runs in, its tokenizer (how prompts are
    encoded and responses decoded), its generation config (the EOS ids where sampling stops) and
    how it saw each prompt (chat template, system prompt, completion mode). A new ingredient is
    one more entry here.
    """
    model = getattr(policy, "model", None)
    return {
        "fingerprint": str(policy.fingerprint),
        "dtype": str(getattr(policy, "dtype", "")),
        "tokenizer_sha256": tokenizer_sha256(getattr(policy, "tokenizer", None)),
        "generation_config_sha256": generation_config_sha256(model),
        "rendering": _policy_rendering(policy),
    }


def reward_identity(reward_fn) -> dict:
    """What about the reward changes its scores: fingerprint (weights, config, label), dtype, tokenizer, rendering."""
    loaded = getattr(reward_fn, "loaded", None)  # a reward model; VADER, the oracle and callables have none
    return {
        "fingerprint": str(reward_fn.fingerprint),
        "dtype": str(getattr(loaded, "dtype", "")),
        "tokenizer_sha256": tokenizer_sha256(getattr(loaded, "tokenizer", None)),
        "rendering": getattr(reward_fn, "rendering", None),
    }


def tokenizer_sha256(tokenizer) -> str:
    """sha256 of what a tokenizer does ('' for none): its full serialisation and special tokens.

    A fast tokenizer's JSON holds the vocabulary, merges, normaliser and added tokens (the
    content of tokenizer.json, vocab and merges files); the special tokens and padding side
    come from tokenizer_config.json and special_tokens_map.json.
    """
    if tokenizer is None:
        return ""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # The serialisation also holds the padding and truncation a call last switched on
        # (tokenizer(..., padding=True, truncation=True) sets them on the backend): call state,
        # not what the tokenizer does. Left in, the first scoring call changed the key and every
        # later build missed the cache.
        state = json.loads(backend.to_str())
        state.pop("padding", None)
        state.pop("truncation", None)
        body = json.dumps(state, sort_keys=True)
    else:
        body = json.dumps(tokenizer.get_vocab(), sort_keys=True)
    extra = {
        "special_tokens": getattr(tokenizer, "special_tokens_map", {}),
        "padding_side": getattr(tokenizer, "padding_side", None),
        "class": type(tokenizer).__name__,
    }
    material = body + json.dumps(extra, sort_keys=True, default=str)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def generation_config_sha256(model) -> str:
    """sha256 of a model's generation config as loaded from generation_config.json ('' for none).

    The transformers version it was written with is left out: it changes nothing the sampler uses.
    """
    config = getattr(model, "generation_config", None)
    if config is None:
        return ""
    fields = {k: v for k, v in config.to_diff_dict().items() if k != "transformers_version"}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _policy_rendering(policy) -> dict | None:
    """The policy side of the key's rendering entry (None for objects without a tokenizer)."""
    from infalign_core.chat import rendering_key

    tokenizer = getattr(policy, "tokenizer", None)
    return None if tokenizer is None else rendering_key(tokenizer, getattr(policy, "chat", None))
