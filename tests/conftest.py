"""Shared fixtures: a tiny trained-for-seconds GPT-2 world built once and kept in pytest's cache.

``tiny_world`` does not depend on the bundled ``assets/world`` so model, reward and sampling
tests run (fast) before and independently of the world builder.
"""

from __future__ import annotations

import fcntl
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

# On a small shared machine two torch threads can be ten times slower than one when the other
# core is busy (measured here: 90 s vs 7 s for the same training). Tests use one unless told.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_configure(config):
    """Under pytest-xdist each worker gets its own runs root and bank cache, so parallel tests never share files."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        return
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix=f"infalign-{worker}-"))
    os.environ.setdefault("INFALIGN_RUNS_DIR", str(scratch / "runs"))
    os.environ.setdefault("INFALIGN_CACHE_DIR", str(scratch / "banks"))


def _built_once(request, tmp_path_factory, name: str, build) -> Path:
    """Build a fixture folder once per cache, under a file lock: parallel workers wait for the first builder."""
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    cached = cache.mkdir(name) if cache is not None else tmp_path_factory.mktemp(name)
    with open(cached.parent / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (cached / "complete").is_file():
            staging = tmp_path_factory.mktemp(name)
            build(staging)
            shutil.rmtree(cached)
            shutil.copytree(staging, cached)
            (cached / "complete").write_text("ok")
    return cached


_TINY_WORLD_VERSION = 1  # bump when the fixture's recipe changes, to rebuild the cached copy

_SUBJECTS = ["the movie", "this film", "the plot", "the acting", "the ending", "the music"]
_VERBS = ["was", "is", "felt", "seemed"]
_ADJECTIVES = ["great", "awful", "good", "bad", "boring", "wonderful", "dull", "fine", "superb", "weak"]
_TAILS = ["", " and fun", " but long", " and sad", " overall", " to me"]


def tiny_corpus(count: int = 400, seed: int = 0) -> list[str]:
    """Short review-like sentences from a toy grammar."""
    rng = random.Random(seed)
    return [
        f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(['', 'very ', 'really '])}"
        f"{rng.choice(_ADJECTIVES)}{rng.choice(_TAILS)}{rng.choice(['.', '!'])}"
        for _ in range(count)
    ]


def tiny_sentiment(text: str) -> float:
    """A toy graded score: +1 per positive word, -1 per negative word, x2 after 'very'."""
    positive = {"great", "good", "wonderful", "fine", "superb", "fun"}
    negative = {"awful", "bad", "boring", "dull", "weak", "sad", "long"}
    score, boost = 0.0, 1.0
    for word in text.lower().replace("!", " ").replace(".", " ").split():
        if word in ("very", "really"):
            boost = 2.0
            continue
        score += boost * ((word in positive) - (word in negative))
        boost = 1.0
    return score


def _train_tokenizer(corpus: list[str], pad: bool):
    """A byte-level BPE tokenizer wrapped as PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<eos>", "<pad>"] if pad else ["<eos>"]
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    raw.train_from_iterator(corpus, trainer=trainer)
    kwargs = {"eos_token": "<eos>", "bos_token": "<eos>"}
    if pad:
        kwargs["pad_token"] = "<pad>"
    return PreTrainedTokenizerFast(tokenizer_object=raw, **kwargs)


def _train_policy(model, tokenizer, corpus: list[str], steps: int, seed: int) -> None:
    """A few hundred Adam steps so samples look like the corpus and end with EOS."""
    import torch

    torch.manual_seed(seed)
    eos = tokenizer.eos_token_id
    rows = [[eos, *tokenizer(text)["input_ids"], eos] for text in corpus]
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), eos)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(rows), (32,), generator=gen)
        loss = model(input_ids=ids[idx], attention_mask=mask[idx], labels=labels[idx]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


@dataclass
class TinyWorld:
    """Folders of a tiny policy and reward models, plus deliberately broken folders."""

    policy: Path
    policy_no_pad: Path
    reward: Path
    reward_two_labels: Path
    bin_only: Path
    empty: Path


@pytest.fixture(scope="session")
def tiny_world(request, tmp_path_factory) -> TinyWorld:
    """A 2-layer, 48-wide GPT-2 trained for ~2 s, a random 1-label and a 2-label GPT-2 classifier."""
    cached = _built_once(
        request, tmp_path_factory, f"infalign_tiny_world_v{_TINY_WORLD_VERSION}", _build_tiny_world
    )
    world = TinyWorld(*(cached / name for name in TinyWorld.__dataclass_fields__))
    return world


def tiny_gpt2_config(tokenizer, *, n_positions: int, n_embd: int):
    """A 2-layer GPT-2 config sized to a tiny tokenizer (EOS doubles as BOS)."""
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=2,
        n_head=2,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _build_tiny_world(root: Path) -> TinyWorld:
    """Write every TinyWorld folder under root."""
    import torch
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

    corpus = tiny_corpus()
    tokenizer = _train_tokenizer(corpus, pad=True)
    config = tiny_gpt2_config(tokenizer, n_positions=64, n_embd=48)
    torch.manual_seed(0)
    policy = GPT2LMHeadModel(config)
    _train_policy(policy, tokenizer, corpus, steps=150, seed=0)
    world = TinyWorld(*(root / name for name in TinyWorld.__dataclass_fields__))
    policy.save_pretrained(world.policy)
    tokenizer.save_pretrained(world.policy)

    policy.save_pretrained(world.policy_no_pad)
    _train_tokenizer(corpus, pad=False).save_pretrained(world.policy_no_pad)

    torch.manual_seed(1)
    scalar = {k: v for k, v in config.to_dict().items() if k not in ("id2label", "label2id")}
    reward = GPT2ForSequenceClassification(GPT2Config(**scalar, num_labels=1))
    reward.save_pretrained(world.reward)
    tokenizer.save_pretrained(world.reward)

    two = GPT2Config(**scalar, num_labels=2)
    two.id2label = {0: "NEGATIVE", 1: "POSITIVE"}
    two.label2id = {"NEGATIVE": 0, "POSITIVE": 1}
    GPT2ForSequenceClassification(two).save_pretrained(world.reward_two_labels)
    tokenizer.save_pretrained(world.reward_two_labels)

    world.bin_only.mkdir()
    config.save_pretrained(world.bin_only)
    torch.save(policy.state_dict(), world.bin_only / "pytorch_model.bin")
    world.empty.mkdir()
    return world


@pytest.fixture(scope="session")
def tiny_policy(tiny_world):
    """The tiny policy loaded on CPU."""
    from infalign_core.models import load_policy

    return load_policy(str(tiny_world.policy), device="cpu")


_ARCH_ZOO_VERSION = 1  # bump when tests/arch_zoo.py changes


@pytest.fixture(scope="session")
def arch_zoo(request, tmp_path_factory) -> dict[str, Path]:
    """Tiny random Llama, Qwen2, GPT-NeoX, Gemma, Phi-3, OPT policies and reward heads (see arch_zoo.py)."""
    import arch_zoo as zoo

    cached = _built_once(request, tmp_path_factory, f"infalign_arch_zoo_v{_ARCH_ZOO_VERSION}", zoo.build_zoo)
    return {p.name: p for p in cached.iterdir() if p.is_dir()}


@pytest.fixture(autouse=True)
def _empty_gallery_unless_asked(request, tmp_path_factory, monkeypatch):
    """Tests see an empty gallery unless marked ``gallery``: the shipped runs would fill every runs list."""
    if request.node.get_closest_marker("gallery") is None and "INFALIGN_GALLERY_DIR" not in os.environ:
        monkeypatch.setenv("INFALIGN_GALLERY_DIR", str(tmp_path_factory.mktemp("no-gallery")))


# Modules whose tests drive pages, servers, browsers or CLI/training subprocesses: `make test-fast` skips them.
_APP_LEVEL_MODULES = (
    "test_app_pages",
    "test_bad_inputs_cli",
    "test_bad_inputs_pages",
    "test_browser",
    "test_cli_architectures",
    "test_cli_theory",
    "test_concurrency",
    "test_faults",
    "test_gpu_check",
    "test_idle",
    "test_runs",
)


def pytest_collection_modifyitems(config, items):
    """Mark page/server tests ``app``; keep a module's tests on one xdist worker when they share a module fixture."""
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        if module.startswith("test_page_") or module in _APP_LEVEL_MODULES:
            item.add_marker(pytest.mark.app)
        fixtures = getattr(item, "_fixtureinfo", None)
        defs = fixtures.name2fixturedefs.values() if fixtures is not None else ()
        # A module-scoped fixture (a trained world, a served app) is built once per worker that needs it:
        # grouping its module on one worker builds it once. Free-standing tests spread over every worker.
        if any(d and d[-1].scope in ("module", "class", "package") for d in defs):
            item.add_marker(pytest.mark.xdist_group(name=item.module.__name__))
