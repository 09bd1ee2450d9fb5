"""The bundled default world's build: a byte-level BPE tokenizer and the tiny models trained on the generator.

The world is small enough to rebuild on a laptop CPU in minutes and rich enough that best-of-N has
something real to choose between. Its parts:

* ``reviews``: a generator of short movie-review sentences (positive, negative, mixed "X but Y",
  neutral, with intensifiers, downtoners, negation and exclamations) over a few hundred words;
* ``lexicon``: ``sentiment_intensity(text)``, the generator's ground truth, computed from the text
  itself, so it also scores any model sample (the "oracle" reward);
* here: a byte-level BPE tokenizer, a tiny GPT-2 reference policy and a tiny GPT-2 reward model that
  regresses the intensity, written by ``build_world`` in the ``save_pretrained`` layout.

Text conventions (the policy, the reward model and every caller rely on them):

* The tokenizer prepends ``<|bos|>`` itself (a template post-processor) and never appends EOS.
  The policy was trained on ``<|bos|> sentence <|eos|>``; the reward model on ``<|bos|> sentence``
  (pooled at the last token), i.e. exactly what ``tokenizer(text)`` returns.
* Prompts are review openings that end at a word boundary WITHOUT a trailing space
  ("The acting was"). The byte-level pre-tokenizer attaches a space to the word after it
  ("Ġsuperb"), so the tokens of a prompt are a prefix of the tokens of the full sentence, and the
  policy's continuation starts with a space: ``prompt + response`` is the review as written.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from infalign_core.lexicon import sentiment_intensity, sentiment_kind
from infalign_core.reviews import generate_reviews, is_well_formed, two_sided_openings, vocabulary

WORLD_DIR = Path(__file__).resolve().parent.parent / "assets" / "world"
POLICY_DIR = WORLD_DIR / "policy"
REWARD_DIR = WORLD_DIR / "reward"
PROMPTS_PATH = WORLD_DIR / "prompts.jsonl"

BOS_TOKEN = "<|bos|>"
EOS_TOKEN = "<|eos|>"
PAD_TOKEN = "<|pad|>"

# --- building the world ----------------------------------------------------------


@dataclass
class BuildConfig:
    """Sizes and step counts of one build; ``quick`` shrinks everything to seconds for tests."""

    corpus_size: int = 120_000  # policy training sentences (duplicates kept: they are the distribution)
    val_size: int = 3_000  # fresh sentences for the policy's validation loss
    reward_size: int = 60_000  # sentences drawn for the reward model (deduplicated, then split)
    reward_heldout_fraction: float = 0.1
    n_layer: int = 2
    n_embd: int = 128
    n_head: int = 4
    n_positions: int = 64
    policy_steps: int = 2_400  # validation loss is within ~0.01 of its plateau by then
    policy_batch: int = 64
    policy_lr: float = 2e-3
    reward_steps: int = 1_500
    reward_batch: int = 64
    reward_lr: float = 2e-3
    n_prompts: int = 600
    eval_prompt_fraction: float = 0.2
    n_eval_samples: int = 600  # policy samples drawn to measure well-formedness and sentiment mix
    max_new_tokens: int = 40

    @classmethod
    def quick(cls) -> BuildConfig:
        """A reduced build: small corpus, few steps (seconds on a CPU)."""
        return cls(
            corpus_size=3_000,
            val_size=300,
            reward_size=3_000,
            policy_steps=100,
            reward_steps=150,
            n_prompts=60,
            n_eval_samples=60,
        )


def _train_tokenizer(texts: Sequence[str], n_positions: int):
    """A byte-level BPE trained on the corpus; it stops when every frequent word is one token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=8192,  # an upper bound only: merges run out first on a corpus this small
        min_frequency=2,
        special_tokens=[BOS_TOKEN, EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    bos_id = tokenizer.token_to_id(BOS_TOKEN)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A", pair=f"{BOS_TOKEN} $A {BOS_TOKEN} $B", special_tokens=[(BOS_TOKEN, bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=n_positions,
        clean_up_tokenization_spaces=False,
    )


def _save_tokenizer(tokenizer, folder: Path) -> None:
    """Save, then name the class explicitly so transformers 4.5x (which lacks "TokenizersBackend") loads it."""
    tokenizer.save_pretrained(folder)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("backend", None)
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _gpt2_config(cfg: BuildConfig, tokenizer, **extra):
    """The tiny GPT-2 shape shared by policy and reward model (no dropout: the data never repeats much)."""
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=cfg.n_positions,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )


def _pad(rows: Sequence[Sequence[int]], pad_id: int):
    """Right-pad token rows into (input_ids, attention_mask) tensors."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


def _lr_at(step: int, total: int, peak: float) -> float:
    """Linear warm-up over 5 % of the steps, then cosine decay to a tenth of the peak."""
    warmup = max(1, total // 20)
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))


def _policy_loss(model, rows, pad_id: int) -> tuple[float, int]:
    """Summed next-token loss (nats) and token count of rows, without gradients."""
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(rows), 256):
            ids, mask = _pad(rows[start : start + 256], pad_id)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
            targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="sum"
            )
            total += float(loss)
            count += int((targets != -100).sum())
    return total, count


def _fit(
    model,
    rows,
    batch_loss,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    log,
    progress: Callable[[int, float], str],
    logs: int,
):
    """AdamW with warm-up and cosine decay on random batches of ``rows``; returns the training losses.

    ``batch_loss(batch)`` is the loss of a batch given as row indices; ``progress(step, mean_loss)``
    words a log line, and ``logs`` of them are logged over the run.
    """
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    losses = []
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, steps, lr)
        loss = batch_loss(torch.randint(len(rows), (batch_size,), generator=generator).tolist())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % max(1, steps // logs) == 0:
            recent = losses[-50:]
            log(progress(step + 1, sum(recent) / len(recent)))
    model.eval()
    return losses


def _fit_summary(losses: list[float], started: float, steps: int, batch_size: int, loss_name: str) -> dict:
    """Seconds, steps, batch and the mean loss over the first and the last 5 % of the steps."""
    head = losses[: max(1, len(losses) // 20)]
    tail = losses[-max(1, len(losses) // 20) :]
    return {
        "train_seconds": round(time.perf_counter() - started, 1),
        "steps": steps,
        "batch_size": batch_size,
        f"train_{loss_name}_first": round(sum(head) / len(head), 4),
        f"train_{loss_name}_last": round(sum(tail) / len(tail), 4),
    }


def _train_policy(cfg: BuildConfig, tokenizer, train_texts, val_texts, seed: int, log) -> tuple[object, dict]:
    """Train the reference policy on ``<|bos|> sentence <|eos|>``; return it and its training metrics."""
    import torch
    from transformers import GPT2LMHeadModel

    torch.manual_seed(seed)
    model = GPT2LMHeadModel(_gpt2_config(cfg, tokenizer))
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    train_rows = [[*r, eos] for r in tokenizer(list(train_texts))["input_ids"]]
    val_rows = [[*r, eos] for r in tokenizer(list(val_texts))["input_ids"]]
    total, count = _policy_loss(model, val_rows, pad)
    initial_val = total / count

    def batch_loss(batch):
        ids, mask = _pad([train_rows[i] for i in batch], pad)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
        targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    started = time.perf_counter()
    losses = _fit(
        model,
        train_rows,
        batch_loss,
        steps=cfg.policy_steps,
        batch_size=cfg.policy_batch,
        lr=cfg.policy_lr,
        seed=seed,
        log=log,
        progress=lambda step, loss: f"policy step {step}/{cfg.policy_steps}: train loss {loss:.3f}",
        logs=10,
    )
    total, count = _policy_loss(model, val_rows, pad)
    return model, {
        **_fit_summary(losses, started, cfg.policy_steps, cfg.policy_batch, "loss"),
        "val_loss_initial": round(initial_val, 4),
        "val_loss": round(total / count, 4),
        "val_tokens": count,
    }


def _sample_continuations(model, tokenizer, prompts: Sequence[str], max_new_tokens: int, seed: int):
    """One sampled continuation per prompt (temperature 1, no top-k/top-p); returns (texts, finished)."""
    import torch

    torch.manual_seed(seed)
    encoded = tokenizer(list(prompts))["input_ids"]
    by_length: dict[int, list[int]] = {}
    for i, row in enumerate(encoded):
        by_length.setdefault(len(row), []).append(i)
    texts, finished = [""] * len(prompts), [False] * len(prompts)
    eos = tokenizer.eos_token_id
    with torch.no_grad():
        for indices in by_length.values():  # equal lengths need no padding
            for start in range(0, len(indices), 256):
                chunk = indices[start : start + 256]
                ids = torch.tensor([encoded[i] for i in chunk])
                out = model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    do_sample=True,
                    top_k=0,
                    top_p=1.0,
                    temperature=1.0,
                    max_new_tokens=max_new_tokens,
                    eos_token_id=eos,
                    pad_token_id=tokenizer.pad_token_id,
                )[:, ids.shape[1] :].tolist()
                for i, row in zip(chunk, out):
                    done = eos in row
                    row = row[: row.index(eos)] if done else row
                    texts[i] = tokenizer.decode(row, skip_special_tokens=True)
                    finished[i] = done
    return texts, finished


def _sample_report(prompts: Sequence[str], responses: Sequence[str], finished: Sequence[bool]) -> dict:
    """Fraction of well-formed samples and their sentiment mix by the oracle."""
    full = [p + r for p, r in zip(prompts, responses)]
    ok = [f and is_well_formed(t) for t, f in zip(full, finished)]
    kinds = [sentiment_kind(t) for t in full]
    n = len(full)
    return {
        "n": n,
        "well_formed": round(sum(ok) / n, 4),
        "finished": round(sum(finished) / n, 4),
        **{f"frac_{k}": round(kinds.count(k) / n, 4) for k in ("positive", "negative", "mixed", "neutral")},
        "distinct": round(len(set(full)) / n, 4),
    }


def _train_reward(cfg: BuildConfig, tokenizer, texts, labels, seed: int, log) -> tuple[object, dict]:
    """Regress the sentiment intensity with a tiny GPT-2 sequence classifier (MSE, pooled at the last token)."""
    import torch
    from transformers import GPT2ForSequenceClassification

    torch.manual_seed(seed)
    model = GPT2ForSequenceClassification(
        _gpt2_config(cfg, tokenizer, num_labels=1, problem_type="regression")
    )
    rows = tokenizer(list(texts))["input_ids"]
    targets = torch.tensor(labels, dtype=torch.float32)

    def batch_loss(batch):
        ids, mask = _pad([rows[i] for i in batch], tokenizer.pad_token_id)
        predicted = model(input_ids=ids, attention_mask=mask).logits[:, 0]
        return torch.nn.functional.mse_loss(predicted, targets[batch])

    started = time.perf_counter()
    losses = _fit(
        model,
        rows,
        batch_loss,
        steps=cfg.reward_steps,
        batch_size=cfg.reward_batch,
        lr=cfg.reward_lr,
        seed=seed,
        log=log,
        progress=lambda step, mse: f"reward step {step}/{cfg.reward_steps}: train mse {mse:.4f}",
        logs=5,
    )
    return model, _fit_summary(losses, started, cfg.reward_steps, cfg.reward_batch, "mse")


def score_texts(model, tokenizer, texts: Sequence[str], batch_size: int = 256):
    """The reward model's scalar score of each full text, as a float64 numpy array."""
    import numpy as np
    import torch

    scores = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            rows = tokenizer(list(texts[start : start + batch_size]))["input_ids"]
            ids, mask = _pad(rows, tokenizer.pad_token_id)
            scores.append(model(input_ids=ids, attention_mask=mask).logits[:, 0].double().numpy())
    return np.concatenate(scores) if scores else np.zeros(0)


def _agreement(scores, truth) -> dict:
    """Spearman correlation with the truth, and sign accuracy on texts whose truth is not ~0."""
    import numpy as np
    from scipy.stats import spearmanr

    scores, truth = np.asarray(scores, float), np.asarray(truth, float)
    judged = np.abs(truth) > 0.1
    rho = float(spearmanr(scores, truth).statistic) if len(truth) > 1 else float("nan")
    return {
        "n": len(truth),
        "spearman": round(rho, 4) if math.isfinite(rho) else None,  # None: too few or constant scores
        "sign_accuracy": round(float(np.mean(np.sign(scores[judged]) == np.sign(truth[judged]))), 4),
    }


def _reward_report(model, tokenizer, texts: Sequence[str]) -> dict:
    """Held-out agreement of the reward model (and of VADER, as a lesson) with the true intensity."""
    import numpy as np
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    truth = np.array([sentiment_intensity(t) for t in texts])
    mixed = np.array([sentiment_kind(t) == "mixed" for t in texts])
    scores = score_texts(model, tokenizer, texts)
    vader = SentimentIntensityAnalyzer()
    vader_scores = np.array([vader.polarity_scores(t)["compound"] for t in texts])
    judged = np.abs(truth) > 0.1
    report = {
        "heldout": _agreement(scores, truth),
        "heldout_mixed": _agreement(scores[mixed], truth[mixed]),
        "rmse": round(float(np.sqrt(np.mean((scores - truth) ** 2))), 4),
        "vader_heldout": _agreement(vader_scores, truth),
        "vader_heldout_mixed": _agreement(vader_scores[mixed], truth[mixed]),
        # VADER's lexicon lacks many review words (tedious, riveting, forgettable): it scores 0
        "vader_zero_fraction": round(float(np.mean(vader_scores[judged] == 0)), 4),
    }
    return report


# Reviews that any sane reward model must order: enthusiastic > lukewarm positive > negative.
ORDERING_PROBES = (
    "Honestly, the acting was absolutely breathtaking and the score was superb!",
    "The acting was fairly decent.",
    "The acting was dull and the plot was awful.",
)


def _model_card(kind: str, metrics: dict, cfg: BuildConfig, seed: int) -> str:
    """A short README.md for a built model: how it was built, on what data, and what the build measured."""
    policy, reward, tok = metrics["policy"], metrics["reward"], metrics["tokenizer"]
    shape = f"{cfg.n_layer} layers, {cfg.n_embd} wide, {cfg.n_head} heads, {cfg.n_positions} positions"
    common = (
        f"Built by `python -m infalign_core build-world --seed {seed}{' --quick' if metrics['quick'] else ''}` "
        f"(`infalign_core/world.py`) in {metrics['build_seconds']} s on "
        f"{metrics['environment']['torch_threads']} CPU threads (load average "
        f"{metrics['environment']['loadavg_before']} before, {metrics['environment']['loadavg_after']} after; "
        "the machine was shared). Data: reviews drawn from the "
        "world's generator (a few hundred words of movie-review vocabulary; positive, negative, mixed "
        '"X but Y" and neutral sentences with intensifiers, downtoners, negation and exclamations). '
        f"Tokenizer: byte-level BPE trained on that corpus, {tok['vocab_size']} tokens; it prepends "
        f"`{BOS_TOKEN}` itself. Prompts are openings without a trailing space; a continuation starts with "
        "a space, so prompt + response is the review as written.\n"
    )
    if kind == "policy":
        front = "---\nlibrary_name: transformers\npipeline_tag: text-generation\nlicense: mit\n---\n"
        body = (
            "# InfAlign Studio world: reference policy\n\n"
            f"A tiny GPT-2 (`GPT2LMHeadModel`, {shape}, {policy['num_parameters']:,} parameters, "
            f"{policy['size_bytes'] / 1e6:.1f} MB) trained on `{BOS_TOKEN} sentence {EOS_TOKEN}` "
            f"for {policy['steps']} steps of batch {policy['batch_size']}. It is the reference policy "
            "π_ref of the app: best-of-N, calibration and CTRL all sample from it.\n\n" + common + "\n"
            "| metric | value |\n| --- | --- |\n"
            f"| validation loss (nats/token) | {policy['val_loss']} (untrained: {policy['val_loss_initial']}) |\n"
            f"| well-formed unconditional samples | {policy['unconditional']['well_formed']:.1%} |\n"
            f"| well-formed prompt continuations | {policy['prompted']['well_formed']:.1%} |\n"
            f"| prompted samples positive / negative / mixed / neutral | "
            f"{policy['prompted']['frac_positive']:.0%} / {policy['prompted']['frac_negative']:.0%} / "
            f"{policy['prompted']['frac_mixed']:.0%} / {policy['prompted']['frac_neutral']:.0%} |\n\n"
            'Well-formed: ends with EOS within the token budget, ends with "." or "!", known words only. '
            "Sentiment by the oracle `infalign_core.lexicon.sentiment_intensity`.\n"
        )
    else:
        front = "---\nlibrary_name: transformers\npipeline_tag: text-classification\nlicense: mit\n---\n"
        body = (
            "# InfAlign Studio world: reward model\n\n"
            f"A tiny GPT-2 sequence classifier (`GPT2ForSequenceClassification`, {shape}, one output, "
            f"regression, {reward['num_parameters']:,} parameters, {reward['size_bytes'] / 1e6:.1f} MB) "
            "trained with mean squared error to predict the generator's graded sentiment intensity "
            '(about -3 to 3: word intensities times modifiers, the clause after "but" counting double, '
            '"!" amplifying). It scores the full text (prompt + response), pooled at its last token. '
            f"{reward['steps']} steps of batch {reward['batch_size']} on {reward['n_train']:,} distinct "
            f"sentences; {reward['heldout']['n']:,} held out.\n\n" + common + "\n"
            "| held-out metric | reward model | VADER |\n| --- | --- | --- |\n"
            f"| Spearman with true intensity | {reward['heldout']['spearman']} | {reward['vader_heldout']['spearman']} |\n"
            f"| sign accuracy | {reward['heldout']['sign_accuracy']:.1%} | {reward['vader_heldout']['sign_accuracy']:.1%} |\n"
            f"| Spearman, mixed sentences | {reward['heldout_mixed']['spearman']} | "
            f"{reward['vader_heldout_mixed']['spearman']} |\n"
            f"| sign accuracy, mixed sentences | {reward['heldout_mixed']['sign_accuracy']:.1%} | "
            f"{reward['vader_heldout_mixed']['sign_accuracy']:.1%} |\n"
            f"| RMSE | {reward['rmse']} | |\n\n"
            "VADER's lexicon calls genre words (horror, villain, killer, war) and horror praise (scary, "
            "terrifying) negative, and lacks many review words (it scores "
            f"{reward['vader_zero_fraction']:.0%} of the judged held-out sentences exactly 0); this world "
            "does not: two reward models, two different optima.\n"
        )
    return front + body


def _folder_size(folder: Path) -> int:
    """Bytes of the safetensors weights in a folder."""
    return sum(p.stat().st_size for p in folder.glob("*.safetensors"))


def build_world(out_dir, *, quick: bool = False, seed: int = 0, log=print) -> dict:
    """Generate the corpus, train tokenizer, policy and reward model, write prompts; return the metrics.

    Writes ``policy/`` and ``reward/`` (``save_pretrained`` safetensors, tokenizer, model card),
    ``prompts.jsonl`` and ``world.json`` (metrics and seed) under ``out_dir``.
    """
    import platform

    import torch
    import transformers
    from transformers import GenerationConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the build logs its own progress; shard bars only add noise

    started, load_before = time.perf_counter(), _loadavg()
    cfg = BuildConfig.quick() if quick else BuildConfig()
    out = Path(out_dir)
    # Build beside the target and swap it in at the end: running trainers memory-map the old
    # safetensors, and overwriting them in place kills those processes with SIGBUS.
    staging = out.with_name(out.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    policy_dir, reward_dir = staging / "policy", staging / "reward"
    for folder in (policy_dir, reward_dir):
        folder.mkdir(parents=True, exist_ok=True)

    log(f"generating {cfg.corpus_size:,} reviews (seed {seed})")
    corpus = generate_reviews(cfg.corpus_size, seed=seed)
    val_texts = generate_reviews(cfg.val_size, seed=seed + 1)
    tokenizer = _train_tokenizer(corpus, cfg.n_positions)
    log(f"tokenizer: {len(tokenizer)} tokens over {len(vocabulary())} words")

    policy, policy_metrics = _train_policy(cfg, tokenizer, corpus, val_texts, seed, log)
    log(f"policy: val loss {policy_metrics['val_loss']} in {policy_metrics['train_seconds']} s")

    prompts = two_sided_openings(
        generate_reviews(max(100 * cfg.n_prompts, 20_000), seed=seed + 3), cfg.n_prompts
    )
    order = list(range(len(prompts)))
    random.Random(seed).shuffle(order)
    n_eval = round(cfg.eval_prompt_fraction * len(prompts))
    eval_ids = set(order[:n_eval])
    prompt_rows = [
        {"prompt": p, "split": "eval" if i in eval_ids else "train"} for i, p in enumerate(prompts)
    ]

    n_samples = cfg.n_eval_samples
    free, free_done = _sample_continuations(policy, tokenizer, [""] * n_samples, cfg.max_new_tokens, seed)
    sampled_prompts = [prompts[i % len(prompts)] for i in range(n_samples)]
    cont, cont_done = _sample_continuations(policy, tokenizer, sampled_prompts, cfg.max_new_tokens, seed + 1)
    policy_metrics["unconditional"] = _sample_report([""] * n_samples, free, free_done)
    policy_metrics["prompted"] = _sample_report(sampled_prompts, cont, cont_done)
    policy_metrics["examples"] = [p + r for p, r in zip(sampled_prompts[:8], cont[:8])]
    log(f"policy samples: {policy_metrics['unconditional']} / prompted {policy_metrics['prompted']}")

    distinct = sorted(set(generate_reviews(cfg.reward_size, seed=seed + 2)))
    random.Random(seed + 2).shuffle(distinct)
    n_heldout = round(cfg.reward_heldout_fraction * len(distinct))
    heldout, reward_train = distinct[:n_heldout], distinct[n_heldout:]
    labels = [sentiment_intensity(t) for t in reward_train]
    reward, reward_metrics = _train_reward(cfg, tokenizer, reward_train, labels, seed, log)
    reward_metrics["n_train"] = len(reward_train)
    reward_metrics.update(_reward_report(reward, tokenizer, heldout))
    probe_scores = score_texts(reward, tokenizer, ORDERING_PROBES)
    reward_metrics["ordering_probes"] = {t: round(float(s), 4) for t, s in zip(ORDERING_PROBES, probe_scores)}
    log(f"reward: {reward_metrics['heldout']} mixed {reward_metrics['heldout_mixed']}")

    policy.generation_config = GenerationConfig(
        do_sample=True,
        top_k=0,
        top_p=1.0,
        temperature=1.0,
        max_new_tokens=24,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    for model, folder in ((policy, policy_dir), (reward, reward_dir)):
        model.save_pretrained(folder, safe_serialization=True)
        _save_tokenizer(tokenizer, folder)
    for metrics_, model, folder in (
        (policy_metrics, policy, policy_dir),
        (reward_metrics, reward, reward_dir),
    ):
        metrics_["num_parameters"] = sum(p.numel() for p in model.parameters())
        metrics_["size_bytes"] = _folder_size(folder)
    with open(staging / "prompts.jsonl", "w") as f:
        for row in prompt_rows:
            f.write(json.dumps(row) + "\n")

    metrics = {
        "seed": seed,
        "quick": quick,
        "build_seconds": round(time.perf_counter() - started, 1),
        "config": asdict(cfg),
        "corpus": {
            "sentences": len(corpus),
            "distinct_sentences": len(set(corpus)),
            "words": len(vocabulary()),
        },
        "tokenizer": {"vocab_size": len(tokenizer)},
        "prompts": {"n": len(prompt_rows), "eval": n_eval, "train": len(prompt_rows) - n_eval},
        "policy": policy_metrics,
        "reward": reward_metrics,
        "environment": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "loadavg_before": load_before,
            "loadavg_after": _loadavg(),
        },
    }
    (policy_dir / "README.md").write_text(_model_card("policy", metrics, cfg, seed))
    (reward_dir / "README.md").write_text(_model_card("reward", metrics, cfg, seed))
    (staging / "world.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _replace_folder(staging, out)
    log(f"world written to {out} in {metrics['build_seconds']} s")
    return metrics


def _replace_folder(new: Path, target: Path) -> None:
    """Put ``new`` at ``target`` by renames, so open (memory-mapped) files of the old one stay valid."""
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _loadavg() -> str | None:
    """The 1/5/15-minute load average where the OS reports one (the CPU is often shared)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return None
