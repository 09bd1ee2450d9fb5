"""Batched sampling with a KV cache, and sequence log-probs of given responses (for KL).

Two decoding paths give the same distribution as ``model.generate``:

* a fast path for GPT-2 (the bundled world's architecture) that runs the blocks against a
  preallocated key/value cache it manages itself: for a 2-layer, 128-wide model, per-token
  Python overhead, not arithmetic, is the cost, so the step does as few torch calls as it can;
* a generic path for any Hugging Face causal LM through its own ``forward`` and cache.

Prompts are left-padded with position ids counted from each prompt's first real token, so a
prompt gives the same continuation alone or in a batch of longer ones.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from infalign_core.chat import ChatFormat, encode_prompt, prompt_text, render_prompt, uses_template
from infalign_core.errors import InfAlignError
from infalign_core.models import LoadedPolicy, OutOfMemory, halve_batch, memory_errors
from infalign_core.sampling_settings import DEFAULT_SAMPLING, SamplingSettings

_ALL_FINISHED_EVERY = 4  # steps between the one host sync that ends a batch early


@dataclass
class Samples:
    """n responses per prompt; the rows of prompt i are contiguous (prompt_index is sorted)."""

    prompts: list[str]
    prompt_index: np.ndarray
    responses: list[str]
    response_ids: list[list[int]]
    finished: np.ndarray
    rendered_prompts: list[str] | None = None  # the exact text the policy saw, per prompt
    notes: list[str] = field(default_factory=list)  # e.g. a batch halved after running out of memory

    def __len__(self) -> int:
        return len(self.responses)

    def row_prompts(self) -> list[str]:
        """The prompt of every response row (prompts repeated as prompt_index says)."""
        return [self.prompts[i] for i in self.prompt_index]


# --- tokens -------------------------------------------------------------------


def encode_prompts(tokenizer, prompts: Sequence[str], chat: ChatFormat | None = None) -> list[list[int]]:
    """Token ids of each prompt as the policy sees it: through its chat template if it has one."""
    if uses_template(tokenizer, chat):
        encoded = [encode_prompt(tokenizer, p, chat) for p in prompts]
    else:
        encoded = tokenizer([prompt_text(p) for p in prompts], add_special_tokens=True)["input_ids"]
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    out = []
    for text, ids in zip(prompts, encoded):
        if not ids:
            if start is None:
                raise InfAlignError(
                    f"Prompt {text!r} has no tokens and the tokenizer has no BOS/EOS to start from."
                )
            ids = [start]  # an empty prompt means "start of text"
        out.append(list(ids))
    return out


def eos_token_ids(model, tokenizer) -> list[int]:
    """Every token id that ends a response: the tokenizer's EOS and the generation config's."""
    ids = set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (tokenizer.eos_token_id, gen_eos):
        if value is None:
            continue
        ids.update([value] if isinstance(value, int) else list(value))
    return sorted(ids)


def _left_pad(rows: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids and a 0/1 attention mask."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row) :] = torch.as_tensor(row, dtype=torch.long)
            mask[i, width - len(row) :] = 1
    return ids.to(device), mask.to(device)


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids counted from each row's first real token (0 on the padding)."""
    return (mask.cumsum(-1) - 1).clamp_min_(0)


def _forward_parameters(model):
    """The keyword arguments a model's forward takes (a peft wrapper's are its base model's)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inspect.signature(base.forward).parameters


def _max_positions(model) -> int | None:
    """The longest sequence the model's position embeddings allow, if it says."""
    cfg = model.config
    for name in ("n_positions", "max_position_embeddings"):
        value = getattr(cfg, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


# --- choosing the next token ----------------------------------------------------


def _inverse_cdf(weights: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Draw index i with probability weights[i] / sum(weights), one uniform per row.

    One cumsum and a binary search instead of torch.multinomial's exponential race, which
    draws a random number per vocabulary entry and costs more than the whole model at this size.
    """
    # fp32 sums are exact enough for small vocabularies; large ones on a GPU sum in fp64 (cheap there).
    wide = weights.shape[-1] > 8192 and weights.device.type == "cuda"
    cdf = weights.cumsum(-1, dtype=torch.float64 if wide else weights.dtype)
    total = cdf[:, -1:].contiguous()
    u = torch.rand(total.shape, generator=gen, device=cdf.device, dtype=cdf.dtype)
    drawn = torch.searchsorted(cdf, u * total, right=True)
    # u * total can round up to total; the last entry with positive weight is then the draw.
    last = torch.searchsorted(cdf, total, right=False)
    return torch.minimum(drawn, last).squeeze(-1)


def _descending_order(logits: torch.Tensor) -> torch.Tensor:
    """Indices sorting each row descending (numpy's vectorised argsort is several times faster on CPU)."""
    if logits.device.type == "cpu":
        return torch.from_numpy(np.argsort(-logits.numpy(), axis=-1))
    return logits.argsort(-1, descending=True)


def _next_tokens(
    logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator
) -> torch.Tensor:
    """Sample one token per row from softmax(logits / temperature) restricted to the top-p nucleus."""
    if temperature == 0.0:
        return logits.max(-1).indices  # first maximum, as argmax, but cheaper on CPU
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    if top_p >= 1.0:
        return _inverse_cdf((logits - logits.amax(-1, keepdim=True)).exp_(), gen)
    # Nucleus as generate defines it: keep a token if the mass strictly above it is < top_p.
    order = _descending_order(logits)
    probs = torch.softmax(logits.gather(-1, order), -1)
    mass_above = probs.cumsum(-1).sub_(probs)
    probs.masked_fill_(mass_above >= top_p, 0.0)
    choice = _inverse_cdf(probs, gen)
    return order.gather(-1, choice[:, None]).squeeze(-1)


# --- the GPT-2 fast path ----------------------------------------------------------


def _supports_fast_path(model) -> bool:
    """GPT-2 LM heads without cross-attention: the architecture the fast step below implements."""
    if type(model).__name__ != "GPT2LMHeadModel" or getattr(model.config, "add_cross_attention", False):
        return False
    if getattr(model, "is_loaded_in_8bit", False) or getattr(model, "is_loaded_in_4bit", False):
        return False
    return hasattr(model, "transformer") and hasattr(model, "lm_head")


class _GPT2Decoder:
    """GPT-2's blocks, re-driven with as few torch calls per token as possible.

    The key/value cache (layer × batch × head × slot × head_dim) is allocated once for the
    whole batch; a token step writes one slot per layer and attends to slots 0..slot with an
    additive mask (0 or -inf) that hides the left padding. Weights are the model's own.
    """

    def __init__(self, model, batch: int, length: int):
        tr, cfg = model.transformer, model.config
        self.heads = cfg.n_head
        self.head_dim = cfg.n_embd // cfg.n_head
        self.width = cfg.n_embd
        self.eps = cfg.layer_norm_epsilon
        self.layers = [
            (
                (b.ln_1.weight, b.ln_1.bias),
                (b.attn.c_attn.weight, b.attn.c_attn.bias),
                (b.attn.c_proj.weight, b.attn.c_proj.bias),
                (b.ln_2.weight, b.ln_2.bias),
                (b.mlp.c_fc.weight, b.mlp.c_fc.bias),
                (b.mlp.c_proj.weight, b.mlp.c_proj.bias),
                b.attn.scaling,
            )
            for b in tr.h
        ]
        self.wte, self.wpe = tr.wte.weight, tr.wpe.weight
        self.ln_f = (tr.ln_f.weight, tr.ln_f.bias)
        self.lm_head = model.lm_head
        tanh_gelu = cfg.activation_function in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")
        act = tr.h[0].mlp.act
        self.act = (lambda x: F.gelu(x, approximate="tanh")) if tanh_gelu else act
        shape = (len(self.layers), batch, self.heads, length, self.head_dim)
        self.keys = torch.empty(shape, dtype=self.wte.dtype, device=self.wte.device)
        self.values = torch.empty(shape, dtype=self.wte.dtype, device=self.wte.device)

    def _mlp(self, h: torch.Tensor, layer) -> torch.Tensor:
        """h + MLP(ln_2(h)) on a 2-D (rows × width) hidden state."""
        _, _, _, ln_2, fc, proj, _ = layer
        x = F.layer_norm(h, (self.width,), ln_2[0], ln_2[1], self.eps)
        x = self.act(torch.addmm(fc[1], x, fc[0]))
        return torch.addmm(proj[1], x, proj[0]).add_(h)

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        """Next-token logits from last hidden states (rows × width)."""
        return self.lm_head(F.layer_norm(h, (self.width,), self.ln_f[0], self.ln_f[1], self.eps))

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Run left-padded prompts (rows × P), filling cache slots 0..P-1 of the first rows."""
        rows, length = ids.shape
        allowed = (
            torch.ones(length, length, dtype=torch.bool, device=ids.device).tril_()[None]
            & mask.bool()[:, None]
        )
        # Padding queries see no real key; letting them see themselves keeps softmax finite.
        allowed |= torch.eye(length, dtype=torch.bool, device=ids.device)
        allowed = allowed[:, None]
        h = (F.embedding(ids, self.wte) + F.embedding(positions, self.wpe)).view(rows * length, self.width)
        for index, layer in enumerate(self.layers):
            ln_1, attn, proj, *_, scale = layer
            x = F.layer_norm(h, (self.width,), ln_1[0], ln_1[1], self.eps)
            qkv = torch.addmm(attn[1], x, attn[0]).view(rows, length, 3, self.heads, self.head_dim)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
            self.keys[index, :rows, :, :length] = k
            self.values[index, :rows, :, :length] = v
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=scale)
            h = torch.addmm(proj[1], out.transpose(1, 2).reshape(rows * length, self.width), proj[0]).add_(h)
            h = self._mlp(h, layer)
        return self._logits(h.view(rows, length, self.width)[:, -1])

    def expand(self, owner: torch.Tensor, prompt_len: int) -> None:
        """Copy the prefilled cache of each distinct prompt to the rows sampling from it."""
        self.keys[:, :, :, :prompt_len] = self.keys[:, owner, :, :prompt_len].clone()
        self.values[:, :, :, :prompt_len] = self.values[:, owner, :, :prompt_len].clone()

    def step(
        self, tokens: torch.Tensor, positions: torch.Tensor, slot: int, bias: torch.Tensor
    ) -> torch.Tensor:
        """Feed one token per row at cache slot ``slot``; ``bias``: rows × 1 × 1 × (slot+1), 0 or -inf."""
        rows = tokens.shape[0]
        h = F.embedding(tokens, self.wte).add_(F.embedding(positions, self.wpe))
        for index, layer in enumerate(self.layers):
            ln_1, attn, proj, *_, scale = layer
            x = F.layer_norm(h, (self.width,), ln_1[0], ln_1[1], self.eps)
            qkv = torch.addmm(attn[1], x, attn[0]).view(rows, 3, self.heads, self.head_dim)
            keys, values = self.keys[index], self.values[index]
            keys[:, :, slot] = qkv[:, 1]
            values[:, :, slot] = qkv[:, 2]
            scores = torch.matmul(qkv[:, 0].unsqueeze(2), keys[:, :, : slot + 1].transpose(-1, -2))
            weights = torch.softmax(scores.mul_(scale).add_(bias), -1)
            out = torch.matmul(weights, values[:, :, : slot + 1]).view(rows, self.width)
            h = torch.addmm(proj[1], out, proj[0]).add_(h)
            h = self._mlp(h, layer)
        return self._logits(h)

    def compact(self, keep: torch.Tensor) -> None:
        """Drop finished rows from the cache so later steps only pay for rows still writing."""
        self.keys = self.keys[:, keep]
        self.values = self.values[:, keep]


@torch.inference_mode()
def _sample_batch_fast(
    model, prompt_rows, row_owner, pad_id, eos_ids, sampling: SamplingSettings, gen
) -> torch.Tensor:
    """Sample len(row_owner) rows (row r continues prompt_rows[row_owner[r]]) on the fast path."""
    max_new_tokens = sampling.max_new_tokens
    device = model.lm_head.weight.device
    ids, mask = _left_pad(prompt_rows, pad_id, device)
    prompt_len, batch = ids.shape[1], len(row_owner)
    decoder = _GPT2Decoder(model, batch, prompt_len + max_new_tokens)
    positions = _positions(mask)
    # Each distinct prompt is run once; its cache is then copied to its n sampling rows.
    prompt_logits = decoder.prefill(ids, mask, positions)
    owner = torch.as_tensor(row_owner, dtype=torch.long, device=device)
    decoder.expand(owner, prompt_len)
    state = {
        "bias": torch.zeros(
            (batch, 1, 1, prompt_len + max_new_tokens), dtype=decoder.wte.dtype, device=device
        ),
        "position": positions[owner, -1] + 1,
    }
    state["bias"][:, 0, 0, :prompt_len].masked_fill_(mask[owner] == 0, float("-inf"))

    def step_fn(tokens: torch.Tensor, step: int) -> torch.Tensor:
        slot = prompt_len + step
        return decoder.step(tokens, state["position"] + step, slot, state["bias"][..., : slot + 1])

    def compact_fn(keep: torch.Tensor) -> None:
        decoder.compact(keep)
        state["bias"], state["position"] = state["bias"][keep], state["position"][keep]

    return _sampling_loop(step_fn, prompt_logits[owner], pad_id, eos_ids, sampling, gen, compact_fn)


def _sampling_loop(
    step_fn, logits, pad_id, eos_ids, sampling: SamplingSettings, gen, compact_fn=None
) -> torch.Tensor:
    """Draw tokens until every row has emitted EOS or max_new_tokens; returns rows × max_new_tokens.

    After EOS a row emits pad. Every few steps one host sync checks how many rows are done: all
    done ends the batch; at least half done (when ``compact_fn`` is given) drops them from the batch.
    """
    max_new_tokens, temperature, top_p = sampling.max_new_tokens, sampling.temperature, sampling.top_p
    device = logits.device
    batch = logits.shape[0]
    out = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=device)
    rows = None  # original row of each active row, once compacted
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    eos = torch.as_tensor(eos_ids, dtype=torch.long, device=device)
    single_eos = eos_ids[0] if len(eos_ids) == 1 else None
    for step in range(max_new_tokens):
        tokens = _next_tokens(logits, temperature, top_p, gen).masked_fill_(finished, pad_id)
        if rows is None:
            out[:, step] = tokens
        else:
            out[rows, step] = tokens
        if step + 1 == max_new_tokens:
            break
        if len(eos_ids):
            finished |= (tokens == single_eos) if single_eos is not None else torch.isin(tokens, eos)
            if (step + 1) % _ALL_FINISHED_EVERY == 0:
                done = int(finished.sum())
                if done == finished.numel():
                    break
                if compact_fn is not None and 2 * done >= finished.numel():
                    keep = (~finished).nonzero().squeeze(1)
                    compact_fn(keep)
                    rows = keep if rows is None else rows[keep]
                    tokens, finished = tokens[keep], finished[keep]
        logits = step_fn(tokens, step)
    return out


# --- the generic path ---------------------------------------------------------------


@torch.inference_mode()
def _sample_batch_generic(
    model, prompt_rows, row_owner, pad_id, eos_ids, sampling: SamplingSettings, gen
) -> torch.Tensor:
    """Sample through the model's own forward and KV cache (any Hugging Face causal LM).

    Each distinct prompt is prefilled once (last position's logits only) and its cache copied
    to the rows sampling from it; rows that have finished are dropped from the batch.
    """
    max_new_tokens = sampling.max_new_tokens
    device = next(model.parameters()).device
    params = _forward_parameters(model)
    takes_positions, takes_keep = "position_ids" in params, "logits_to_keep" in params
    owner = torch.as_tensor(list(row_owner), dtype=torch.long, device=device)
    ids, mask = _left_pad(prompt_rows, pad_id, device)
    prompt_len = ids.shape[1]
    positions = _positions(mask)
    extra = {"position_ids": positions} if takes_positions else {}
    if takes_keep:
        extra["logits_to_keep"] = 1
    out = model(input_ids=ids, attention_mask=mask, use_cache=True, **extra)
    past, logits = out.past_key_values, out.logits[:, -1]
    if hasattr(past, "reorder_cache"):
        past.reorder_cache(owner)  # index_select per layer: prompt i's cache to each of its rows
    else:  # a cache format without row selection: prefill every row instead
        extra = {"position_ids": positions[owner]} if takes_positions else {}
        past = model(
            input_ids=ids[owner], attention_mask=mask[owner], use_cache=True, **extra
        ).past_key_values
    full_mask = torch.ones((len(owner), prompt_len + max_new_tokens), dtype=mask.dtype, device=device)
    full_mask[:, :prompt_len] = mask[owner]
    state = {"past": past, "mask": full_mask, "position": positions[owner, -1] + 1}
    logits = logits[owner]

    def step_fn(tokens, step):
        kwargs = {"position_ids": (state["position"] + step)[:, None]} if takes_positions else {}
        result = model(
            input_ids=tokens[:, None],
            attention_mask=state["mask"][:, : prompt_len + step + 1],
            past_key_values=state["past"],
            use_cache=True,
            **kwargs,
        )
        state["past"] = result.past_key_values
        return result.logits[:, -1]

    compact_fn = None
    if hasattr(past, "batch_select_indices"):

        def compact_fn(keep: torch.Tensor) -> None:
            state["past"].batch_select_indices(keep)
            state["mask"], state["position"] = state["mask"][keep], state["position"][keep]

    return _sampling_loop(step_fn, logits, pad_id, eos_ids, sampling, gen, compact_fn)


# --- public API -----------------------------------------------------------------------


def _decode_responses(tokenizer, prompt_ids: list[int], rows: list[list[int]]) -> list[str]:
    """Decoded continuations, cut from the decoded full text so spacing is what the full text shows."""
    prefix = tokenizer.decode(prompt_ids, skip_special_tokens=True)
    fulls = tokenizer.batch_decode([prompt_ids + r for r in rows], skip_special_tokens=True)
    alone = None
    out = []
    for k, full in enumerate(fulls):
        if full.startswith(prefix):
            out.append(full[len(prefix) :])
        else:
            alone = alone or tokenizer.batch_decode(rows, skip_special_tokens=True)
            out.append(alone[k])
    return out


def sample(
    policy: LoadedPolicy,
    prompts: Sequence[str],
    n: int,
    sampling: SamplingSettings = DEFAULT_SAMPLING,
    *,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Samples:
    """Sample n responses per prompt as ``sampling`` says (temperature 0 = greedy), seeded, batched."""
    prompts = [str(p) for p in prompts]
    if int(n) < 1:
        raise InfAlignError(f"n must be >= 1, got {n}.")
    sampling = sampling.checked()
    max_new_tokens, temperature = sampling.max_new_tokens, sampling.temperature
    if not prompts:
        raise InfAlignError("No prompts to sample from.")
    if any(not p.strip() for p in prompts):
        raise InfAlignError("A prompt is empty: type the text the policy should continue or answer.")
    model, tokenizer = policy.model, policy.tokenizer
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        raise InfAlignError("The policy's tokenizer has no pad token; load it with models.load_policy.")
    eos_ids = eos_token_ids(model, tokenizer)
    chat = getattr(policy, "chat", None)
    prompt_ids = encode_prompts(tokenizer, prompts, chat)
    limit = _max_positions(model)
    longest = max(map(len, prompt_ids))
    if limit is not None and longest + max_new_tokens > limit:
        raise InfAlignError(
            f"The longest prompt has {longest} tokens; with max_new_tokens={max_new_tokens} that exceeds "
            f"the {limit} positions this policy handles. Shorten the prompt or lower max_new_tokens."
        )
    run_batch = _sample_batch_fast if _supports_fast_path(model) else _sample_batch_generic
    gen = torch.Generator(device=policy.device).manual_seed(int(sampling.seed))
    total = len(prompts) * n
    owners = np.repeat(np.arange(len(prompts)), n)
    tokens: list[torch.Tensor] = []
    done = 0
    was_training = model.training
    model.eval()  # samples come from the policy itself, never a dropout-perturbed copy
    notes: list[str] = []
    if temperature == 0 and n > 1:  # greedy decoding is deterministic: say so, not N "samples"
        notes.append(
            f"Temperature 0 is greedy decoding: deterministic, so all {n} responses to a prompt are "
            "the same (best-of-N = worst-of-N). Raise the temperature for N different samples."
        )
    batch_size = int(sampling.batch_size)
    try:
        while done < total:
            if should_stop is not None and done and should_stop():
                break
            chunk = owners[done : done + batch_size]
            unique, local_owner = np.unique(chunk, return_inverse=True)
            try:
                with memory_errors(f"sampling with batch_size={batch_size} (lower it)"):
                    out = run_batch(
                        model,
                        [prompt_ids[i] for i in unique],
                        local_owner.tolist(),
                        pad_id,
                        eos_ids,
                        sampling,
                        gen,
                    )
            except OutOfMemory:
                if batch_size == 1:
                    raise
                # Said in the samples' notes and where the model's own notes show (pages, CLI).
                shown = [policy.notes] if isinstance(getattr(policy, "notes", None), list) else []
                batch_size = halve_batch(batch_size, "sampling", notes, *shown)
                continue
            tokens.append(out.cpu())
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    finally:
        model.train(was_training)
    complete = (done // n) * n  # a stop mid-prompt keeps only whole prompts
    all_tokens = torch.cat(tokens)[:complete] if tokens else torch.zeros((0, 1), dtype=torch.long)
    eos_set = set(eos_ids)
    response_ids: list[list[int]] = []
    finished_rows: list[bool] = []
    for row in all_tokens.tolist():
        cut = next((k for k, t in enumerate(row) if t in eos_set), len(row))
        response_ids.append(row[:cut])
        finished_rows.append(cut < len(row))
    kept_prompts = prompts[: complete // n]
    responses: list[str] = []
    for i in range(len(kept_prompts)):
        responses.extend(_decode_responses(tokenizer, prompt_ids[i], response_ids[i * n : (i + 1) * n]))
    return Samples(
        prompts=kept_prompts,
        prompt_index=owners[:complete].copy(),
        responses=responses,
        response_ids=response_ids,
        finished=np.asarray(finished_rows, dtype=bool),
        rendered_prompts=[render_prompt(tokenizer, p, chat) for p in kept_prompts],
        notes=notes,
    )


def sequence_logprobs(
    model,
    tokenizer,
    prompts: Sequence[str],
    response_ids: Sequence[Sequence[int]],
    *,
    finished: Sequence[bool] | np.ndarray | None = None,
    batch_size: int = 64,
    with_grad: bool = False,
    temperature: float = 1.0,
    chat: ChatFormat | None = None,
) -> torch.Tensor:
    """Sum of log p_T(response tokens | prompt) per row (+ the EOS where finished), by teacher forcing.

    p_T is the distribution sampled at ``temperature``: log-softmax(logits / T) per token (as
    ``sample`` draws), so a KL on these is that of what was sampled. ``prompts[k]`` is the prompt
    of row k, rendered as ``chat`` says (as ``sample`` rendered it). With ``with_grad`` the result keeps the graph (for a
    policy-gradient loss); otherwise it runs under inference mode. Returns float32 on the model's device.
    """
    if len(prompts) != len(response_ids):
        raise InfAlignError(
            f"{len(prompts)} prompts but {len(response_ids)} responses: give one prompt per response."
        )
    if finished is not None and len(finished) != len(response_ids):
        raise InfAlignError("finished must have one entry per response.")
    if not math.isfinite(temperature) or temperature <= 0:
        raise InfAlignError(
            f"log-probs need a temperature > 0 (greedy decoding has no density), got {temperature}."
        )
    device = next(model.parameters()).device
    if not len(prompts):
        return torch.zeros(0, device=device)
    eos_ids = eos_token_ids(model, tokenizer)
    if finished is not None and np.any(finished) and not eos_ids:
        raise InfAlignError("Responses are marked finished but the model has no EOS token.")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos_ids[0] if eos_ids else 0)
    prompt_ids = encode_prompts(tokenizer, prompts, chat)
    limit = _max_positions(model)
    ends = finished if finished is not None else [False] * len(response_ids)
    longest = max(len(p) + len(r) + bool(e) for p, r, e in zip(prompt_ids, response_ids, ends))
    if limit is not None and longest > limit:
        raise InfAlignError(
            f"A prompt + response has {longest} tokens, more than the model's {limit} positions."
        )
    takes_positions = "position_ids" in _forward_parameters(model)
    takes_keep = "logits_to_keep" in _forward_parameters(model)
    results = []
    context = torch.enable_grad() if with_grad else torch.inference_mode()
    with context:
        for start in range(0, len(prompts), batch_size):
            stop = min(start + batch_size, len(prompts))
            targets = []
            for k in range(start, stop):
                resp = list(response_ids[k])
                if finished is not None and finished[k]:
                    resp.append(eos_ids[0])
                targets.append(resp)
            width = max(1, max(map(len, targets)))
            ids, mask = _left_pad([p + t for p, t in zip(prompt_ids[start:stop], targets)], pad_id, device)
            kwargs = {"position_ids": _positions(mask)} if takes_positions else {}
            if takes_keep:
                kwargs["logits_to_keep"] = width + 1
            logits = model(input_ids=ids, attention_mask=mask, **kwargs).logits[:, -(width + 1) : -1]
            # Row k's response fills its last len(targets[k]) positions (sequences are right-aligned).
            target = ids[:, -width:]
            lengths = torch.as_tensor([len(t) for t in targets], device=device)
            valid = torch.arange(width, device=device)[None, :] >= (width - lengths)[:, None]
            logits = logits.float() if temperature == 1.0 else logits.float() / float(temperature)
            logp = torch.log_softmax(logits, -1).gather(-1, target[..., None]).squeeze(-1)
            results.append(torch.where(valid, logp, 0.0).sum(-1))
    return torch.cat(results)
