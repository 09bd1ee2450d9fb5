"""Tiny random models of real Hugging Face architectures, built from configs and saved as safetensors.

Each causal LM and each reward head is 2 layers, 32 wide, over one small byte-level BPE
vocabulary; the tokenizers bring what real checkpoints bring: a chat template with its own
BOS (Llama-style, a tokenizer that also adds BOS), no pad token (Llama), a template that
refuses system prompts (Gemma), no template at all (GPT-NeoX), EOS lists in
generation_config, a left-padding tokenizer on a reward model.
"""

from __future__ import annotations

from pathlib import Path

CAUSAL_ARCHS = ("llama", "qwen2", "gpt_neox", "gemma", "phi3", "opt")
CHATML = (
    "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
GEMMA_LIKE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "<|im_start|>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>model\n{% endif %}"
)
SPECIALS = ["<eos>", "<pad>", "<bos>", "<|im_start|>", "<|im_end|>"]
EOS, PAD, BOS, IM_START, IM_END = range(5)


def corpus() -> list[str]:
    """Chat-like lines, enough for a small BPE vocabulary."""
    words = "the movie film plot was is great awful good bad human assistant how do i what why help".split()
    return [" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(8)) for i in range(200)]


def make_tokenizer(*, template: str | None, pad: bool, add_bos: bool, padding_side: str = "right"):
    """A byte-level BPE tokenizer with the chat specials; ``add_bos`` makes it prepend <bos> itself."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    raw.train_from_iterator(corpus(), trainer=trainer)
    if add_bos:
        raw.post_processor = processors.TemplateProcessing(
            single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", BOS)]
        )
    kwargs = {"eos_token": "<eos>", "bos_token": "<bos>", "padding_side": padding_side}
    if pad:
        kwargs["pad_token"] = "<pad>"
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, **kwargs)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    if template is not None:
        tok.chat_template = template
    return tok


def _config(arch: str, vocab: int, *, pad: int | None, max_positions: int, labels: int | None):
    """A 2-layer, 32-wide config of ``arch``."""
    import transformers as tf

    common = {
        "vocab_size": vocab,
        "bos_token_id": BOS,
        "eos_token_id": EOS,
        "pad_token_id": pad,
        "tie_word_embeddings": arch in ("gemma", "opt"),
    }
    if labels is not None:
        common["num_labels"] = labels
    if arch == "llama":
        cfg = tf.LlamaConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, max_position_embeddings=max_positions, **common,
        )  # fmt: skip
    elif arch == "qwen2":
        cfg = tf.Qwen2Config(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, max_position_embeddings=max_positions, **common,
        )  # fmt: skip
    elif arch == "gpt_neox":
        cfg = tf.GPTNeoXConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            max_position_embeddings=max_positions, **common,
        )  # fmt: skip
    elif arch == "gemma":
        cfg = tf.GemmaConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, head_dim=16, max_position_embeddings=max_positions, **common,
        )  # fmt: skip
    elif arch == "phi3":
        cfg = tf.Phi3Config(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, max_position_embeddings=max_positions,
            original_max_position_embeddings=max_positions, **common,
        )  # fmt: skip
    elif arch == "opt":
        cfg = tf.OPTConfig(
            hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=2, word_embed_proj_dim=32,
            max_position_embeddings=max_positions, **common,
        )  # fmt: skip
    else:
        raise ValueError(arch)
    if labels and labels > 1:
        cfg.id2label = {i: name for i, name in enumerate(["harmful", "helpful", "neutral"][:labels])}
        cfg.label2id = {v: k for k, v in cfg.id2label.items()}
    return cfg


def tokenizer_for(arch: str):
    """The tokenizer that arch's real checkpoints resemble."""
    if arch == "llama":  # no pad token; adds its own BOS; template carries BOS too
        return make_tokenizer(template=CHATML, pad=False, add_bos=True)
    if arch == "gemma":
        return make_tokenizer(template=GEMMA_LIKE, pad=True, add_bos=True)
    if arch == "gpt_neox":  # a base model: no chat template
        return make_tokenizer(template=None, pad=False, add_bos=False)
    return make_tokenizer(template=CHATML, pad=True, add_bos=False)


def build_zoo(root: Path, *, max_positions: int = 128) -> dict[str, Path]:
    """Write every tiny model under root; returns name → folder."""
    import torch
    import transformers as tf

    folders: dict[str, Path] = {}
    for index, arch in enumerate(CAUSAL_ARCHS):
        tok = tokenizer_for(arch)
        cfg = _config(arch, len(tok), pad=tok.pad_token_id, max_positions=max_positions, labels=None)
        torch.manual_seed(index)
        model = tf.AutoModelForCausalLM.from_config(cfg)
        folder = root / f"policy-{arch}"
        model.generation_config.eos_token_id = [EOS, IM_END]  # EOS lists, as chat checkpoints ship
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        folders[f"policy-{arch}"] = folder
    rewards = {
        "reward-llama": ("llama", 1, tokenizer_for("llama")),
        "reward-qwen2-3labels": ("qwen2", 3, make_tokenizer(template=CHATML, pad=True, add_bos=False)),
        "reward-gpt_neox": ("gpt_neox", 1, tokenizer_for("gpt_neox")),
        "reward-gemma": ("gemma", 1, make_tokenizer(template=CHATML, pad=True, add_bos=True)),
        "reward-phi3": (
            "phi3",
            1,
            make_tokenizer(template=CHATML, pad=True, add_bos=False, padding_side="left"),
        ),
        "reward-opt": ("opt", 2, make_tokenizer(template=None, pad=True, add_bos=False)),
    }
    for index, (name, (arch, labels, tok)) in enumerate(rewards.items()):
        cfg = _config(arch, len(tok), pad=tok.pad_token_id, max_positions=max_positions, labels=labels)
        torch.manual_seed(100 + index)
        model = tf.AutoModelForSequenceClassification.from_config(cfg)
        model.save_pretrained(folders.setdefault(name, root / name))
        tok.save_pretrained(root / name)
    return folders
