"""The bundled world's deliberately weak proxy reward, so that over-optimisation (Goodhart) can show.

The world's learned reward regresses the oracle's intensity on 54,000 reviews and agrees with it
almost exactly. The proxy is what a hurried team would build instead: a smaller classifier (one
layer, 64 wide) trained on only ``labels`` reference samples, labelled by a *naive lexicon* that
counts sentiment words by their sign alone — no intensities, no modifiers, no negation ("not
great" counts as praise), no "but". It ranks typical samples much like the oracle (Spearman
about 0.7) but is wrong in ways a policy pushed far from the reference can find.

Built reproducibly (fixed seeds) by ``build_proxy`` / ``make proxy`` into assets/world/proxy,
safetensors, loaded as the reward ``proxy`` through the same code as any reward model.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np

from infalign_core.errors import InfAlignError
from infalign_core.sampling_settings import SamplingSettings

PROXY_DIR = Path(__file__).resolve().parent.parent / "assets" / "world" / "proxy"
_TOKEN = re.compile(r"[a-z']+")


def naive_lexicon_score(text: str) -> float:
    """+1 per positive and −1 per negative lexicon word: the proxy's labels (negation, modifiers, "but" ignored)."""
    from infalign_core.lexicon import LEXICON

    return float(sum(np.sign(LEXICON.get(word, 0.0)) for word in _TOKEN.findall(text.lower())))


def build_proxy(
    out_dir: str | Path = PROXY_DIR,
    *,
    labels: int = 512,
    steps: int = 400,
    seed: int = 0,
    log=print,
) -> dict:
    """Sample ``labels`` reference reviews, label them with the naive lexicon, fit a 1-layer classifier, save it."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2ForSequenceClassification

    from infalign_core import data, world
    from infalign_core.lexicon import sentiment_intensity
    from infalign_core.models import load_policy
    from infalign_core.sampling import sample

    if int(labels) < 16 or int(steps) < 1:
        raise InfAlignError(f"The proxy needs at least 16 labels and 1 step, got {labels} and {steps}.")
    started = time.perf_counter()
    policy = load_policy("default", device="cpu")
    prompts = data.load_prompts("bundled", split="train").prompts
    rng = np.random.default_rng(seed)
    chosen = [prompts[i] for i in rng.choice(len(prompts), size=int(labels) // 4, replace=False)]
    drawn = sample(policy, chosen, 4, sampling=SamplingSettings(max_new_tokens=24, seed=seed))
    texts = [p + r for p, r in zip(drawn.row_prompts(), drawn.responses)]
    targets = torch.tensor([naive_lexicon_score(t) for t in texts], dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(world.REWARD_DIR))
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=64,
        n_embd=64,
        n_layer=1,
        n_head=2,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=1,
        problem_type="regression",
    )
    model = GPT2ForSequenceClassification(config)
    rows = tokenizer(texts)["input_ids"]

    def batch_loss(batch):
        ids, mask = world._pad([rows[i] for i in batch], tokenizer.pad_token_id)
        return torch.nn.functional.mse_loss(
            model(input_ids=ids, attention_mask=mask).logits[:, 0], targets[batch]
        )

    losses = world._fit(
        model, rows, batch_loss, steps=int(steps), batch_size=32, lr=3e-3, seed=seed, log=log,
        progress=lambda step, mse: f"proxy step {step}/{steps}: train mse {mse:.4f}", logs=4,
    )  # fmt: skip
    # Held-out agreement with the oracle, on fresh reference samples of the eval prompts.
    heldout_prompts = data.load_prompts("bundled", split="eval", limit=64).prompts
    fresh = sample(policy, heldout_prompts, 8, sampling=SamplingSettings(max_new_tokens=24, seed=seed + 1))
    fresh_texts = [p + r for p, r in zip(fresh.row_prompts(), fresh.responses)]
    proxy_scores = world.score_texts(model, tokenizer, fresh_texts)
    truth = np.array([sentiment_intensity(t) for t in fresh_texts])
    metrics = {
        "labels": len(texts),
        "steps": int(steps),
        "seed": int(seed),
        "train_mse_last": round(float(np.mean(losses[-20:])), 4),
        "heldout_vs_oracle": world._agreement(proxy_scores, truth),
        "learned_reward_vs_oracle": world._agreement(
            world.score_texts(
                GPT2ForSequenceClassification.from_pretrained(str(world.REWARD_DIR)).eval(),
                tokenizer,
                fresh_texts,
            ),
            truth,
        ),
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    out = Path(out_dir)
    staging = out.with_name(out.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    (staging / "proxy.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    (staging / "README.md").write_text(_card(metrics), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    log(f"proxy written to {out}: {json.dumps(metrics)}")
    return metrics


def _card(metrics: dict) -> str:
    """The proxy's model card."""
    ours, learned = metrics["heldout_vs_oracle"], metrics["learned_reward_vs_oracle"]
    return (
        "# The bundled world's weak proxy reward\n\n"
        "A deliberately weak reward model, for studying over-optimisation (Goodhart): a 1-layer, 64-wide GPT-2 "
        f"regressor trained on only {metrics['labels']} reference samples labelled by a naive lexicon (+1 per "
        "positive word, −1 per negative word; no intensities, modifiers, negation or 'but').\n\n"
        f"Held-out Spearman with the oracle: {ours['spearman']} (sign accuracy {ours['sign_accuracy']}); the "
        f"world's learned reward on the same samples: {learned['spearman']} ({learned['sign_accuracy']}).\n\n"
        "Rebuild: `make proxy` (`python -c 'from infalign_core.proxy import build_proxy; build_proxy()'`).\n"
    )


__all__ = ["PROXY_DIR", "build_proxy", "naive_lexicon_score"]
