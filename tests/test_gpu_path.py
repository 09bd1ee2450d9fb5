"""The GPU path, tested on CPU: out-of-memory halving, gradient checkpointing, LoRA, bf16."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from infalign_core import ctrl, sampling
from infalign_core.errors import InfAlignError
from infalign_core.models import checkpointed_layers, enable_gradient_checkpointing, load_policy
from infalign_core.rewards import load_reward
from infalign_core.sampling_settings import SamplingSettings

PROMPTS = ["how do i help", "what is the plot", "why"]


def _batch(policy, k=4, seed=0):
    """Prompt ids, targets and rewards for one step of k samples per prompt."""
    samples = sampling.sample(policy, PROMPTS, k, sampling=SamplingSettings(max_new_tokens=5, seed=seed))
    eos = sampling.eos_token_ids(policy.model, policy.tokenizer)
    targets = [[*r, eos[0]] if f else list(r) for r, f in zip(samples.response_ids, samples.finished)]
    ids = sampling.encode_prompts(policy.tokenizer, PROMPTS, policy.chat)
    rows = [ids[i] for i in samples.prompt_index]
    rewards = np.random.default_rng(seed).normal(size=len(rows))
    return rows, targets, rewards


def _step(model, reference, rows, targets, rewards, pad_id, **kwargs):
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    return ctrl.policy_gradient_step(
        model, reference, optimizer, rows, targets, pad_id, rewards, 0.1, 4, **kwargs
    )


@pytest.fixture()
def llama(arch_zoo):
    return load_policy(str(arch_zoo["policy-llama"]), device="cpu")


def test_micro_batched_step_takes_the_same_step_as_the_full_batch(llama):
    rows, targets, rewards = _batch(llama)
    pad = llama.tokenizer.pad_token_id
    reference = copy.deepcopy(llama.model)
    full_model, micro_model = copy.deepcopy(llama.model), copy.deepcopy(llama.model)
    full, _ = _step(full_model, reference, rows, targets, rewards, pad)
    micro, size = _step(micro_model, reference, rows, targets, rewards, pad, micro=5)
    assert size == 5
    assert np.allclose(full.kl_k1, micro.kl_k1, atol=1e-5) and full.loss == pytest.approx(
        micro.loss, abs=1e-5
    )
    for a, b in zip(full_model.parameters(), micro_model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_out_of_memory_in_a_training_step_halves_says_so_and_goes_on(llama, monkeypatch):
    rows, targets, rewards = _batch(llama)
    real = ctrl.token_logprobs

    def tight(model, prompt_ids, targets, pad_id, *rest):
        if len(targets) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return real(model, prompt_ids, targets, pad_id, *rest)

    monkeypatch.setattr(ctrl, "token_logprobs", tight)
    said = []
    model = copy.deepcopy(llama.model)
    stats, size = _step(
        model, llama.model, rows, targets, rewards, llama.tokenizer.pad_token_id, log=said.append
    )
    assert size == 3 and len(stats.kl_k1) == len(rows) and np.isfinite(stats.loss)
    assert len(said) == 2 and "micro-batches of 6" in said[0] and "of 3" in said[1]


def test_an_error_that_is_not_out_of_memory_is_not_swallowed(llama, monkeypatch):
    rows, targets, rewards = _batch(llama)

    def broken(*args):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(ctrl, "token_logprobs", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        _step(copy.deepcopy(llama.model), llama.model, rows, targets, rewards, llama.tokenizer.pad_token_id)


def test_reward_scoring_halves_its_batch_on_out_of_memory(arch_zoo, monkeypatch):
    reward = load_reward(str(arch_zoo["reward-llama"]), device="cpu", batch_size=8)
    expected = reward.score(PROMPTS * 3, [" a", " b", " c"] * 3)
    real = reward._score_batch

    def tight(texts, special_tokens):
        if len(texts) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return real(texts, special_tokens)

    monkeypatch.setattr(reward, "_score_batch", tight)
    assert np.allclose(reward.score(PROMPTS * 3, [" a", " b", " c"] * 3), expected, atol=1e-6)
    assert reward.batch_size == 2 and len(reward.notes) == 1 and "halved to 2 rows" in reward.notes[0]


def test_gradient_checkpointing_recomputes_layers_and_keeps_the_gradient(llama):
    rows, targets, _ = _batch(llama)
    pad = llama.tokenizer.pad_token_id

    def grads(model):
        model.zero_grad()
        with checkpointed_layers(model):
            logp, _, _ = ctrl.token_logprobs(model, rows, targets, pad)
        logp.sum().backward()
        return [p.grad.clone() for p in model.parameters()]

    plain = grads(llama.model)
    calls = []
    enable_gradient_checkpointing(llama)
    mlp = llama.model.model.layers[0].mlp
    forward = mlp.forward
    mlp.forward = lambda *a, **k: calls.append(1) or forward(*a, **k)  # hooks are muted in the recompute
    llama.model.eval()
    checkpointed = grads(llama.model)
    assert len(calls) == 2  # forward, then recomputed in the backward pass
    assert not llama.model.training  # dropout stayed off
    for a, b in zip(plain, checkpointed):
        assert torch.allclose(a, b, atol=1e-6)


def test_lora_run_trains_adapters_only_and_its_checkpoint_loads_merged(arch_zoo, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    config = ctrl.CTRLConfig(
        policy=str(arch_zoo["policy-qwen2"]),
        reward=str(arch_zoo["reward-llama"]),
        prompts=str(prompts),
        num_prompts=3,
        prompts_per_step=2,
        k=2,
        m=4,
        steps=2,
        max_new_tokens=4,
        device="cpu",
        lora_rank=4,
        gradient_checkpointing=True,
        learning_rate=5e-2,
        cache_dir=str(tmp_path / "banks"),
    )
    models = ctrl.load_models(config)
    base = {n: p.detach().clone() for n, p in models.policy.model.named_parameters() if "lora_" not in n}
    out = ctrl.train(config, tmp_path / "run", models=models)
    assert out["step"] == 2 and np.isfinite(out["loss/policy"])
    for name, p in models.policy.model.named_parameters():
        if "lora_" not in name:
            assert torch.equal(p, base[name]), name
    ckpt = tmp_path / "run" / "checkpoint"
    assert (ckpt / "adapter_config.json").is_file() and not (ckpt / "config.json").exists()
    merged = load_policy(str(ckpt), device="cpu")
    ids = torch.tensor([sampling.encode_prompts(merged.tokenizer, PROMPTS[:1], merged.chat)[0]])
    with torch.inference_mode():
        expected = models.policy.model(input_ids=ids).logits
        assert torch.allclose(merged.model(input_ids=ids).logits, expected, atol=1e-4)
    resumed = ctrl.train(ctrl.CTRLConfig(**{**config.to_dict(), "steps": 3}), tmp_path / "run", resume=True)
    assert resumed["step"] == 3


def test_bf16_autocast_step_runs_on_cpu_and_stays_close_to_fp32(llama):
    rows, targets, rewards = _batch(llama)
    pad = llama.tokenizer.pad_token_id
    fp32, _ = _step(copy.deepcopy(llama.model), llama.model, rows, targets, rewards, pad)
    bf16, _ = _step(copy.deepcopy(llama.model), llama.model, rows, targets, rewards, pad, bf16=True)
    assert np.all(np.isfinite(bf16.kl_k1)) and np.isfinite(bf16.loss)
    assert abs(bf16.loss - fp32.loss) < 0.5 * (abs(fp32.loss) + 1)


def test_bf16_policy_samples_and_scores_on_cpu(arch_zoo):
    policy = load_policy(str(arch_zoo["policy-gemma"]), device="cpu", dtype="bfloat16")
    assert next(policy.model.parameters()).dtype == torch.bfloat16
    samples = sampling.sample(policy, PROMPTS, 2, sampling=SamplingSettings(max_new_tokens=4))
    logp = sampling.sequence_logprobs(
        policy.model, policy.tokenizer, samples.row_prompts(), samples.response_ids
    )
    assert logp.dtype == torch.float32 and torch.all(torch.isfinite(logp))
    reward = load_reward(str(arch_zoo["reward-gemma"]), device="cpu", dtype="bfloat16")
    assert np.all(np.isfinite(reward.score(samples.row_prompts(), samples.responses)))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lora_rank", 0, "lora_rank must be an integer in"),
        ("completion_mode", "yes", "completion_mode must be true or false"),
        ("gradient_checkpointing", 1, "gradient_checkpointing must be true or false"),
    ],
)
def test_gpu_path_options_out_of_range_are_refused(field, value, message):
    with pytest.raises(InfAlignError, match=message):
        ctrl.CTRLConfig(**{field: value}).validate()


def test_micro_batched_step_with_the_kl_in_the_loss_takes_the_same_step_as_the_full_batch(llama):
    rows, targets, rewards = _batch(llama)
    pad = llama.tokenizer.pad_token_id
    reference = copy.deepcopy(llama.model)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():  # a reference the policy differs from, so the k3 term has a gradient
        for parameter in reference.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    full_model, micro_model = copy.deepcopy(llama.model), copy.deepcopy(llama.model)
    plain_model = copy.deepcopy(llama.model)
    full, _ = _step(full_model, reference, rows, targets, rewards, pad, kl_in_loss=True)
    micro, _ = _step(micro_model, reference, rows, targets, rewards, pad, micro=5, kl_in_loss=True)
    plain, _ = _step(plain_model, reference, rows, targets, rewards, pad)
    assert full.loss == pytest.approx(micro.loss, abs=1e-5) and full.loss != pytest.approx(plain.loss)
    for a, b in zip(full_model.parameters(), micro_model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_adapters_without_safetensors_are_refused(tmp_path):
    (tmp_path / "adapter_config.json").write_text('{"base_model_name_or_path": "x"}')
    (tmp_path / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(InfAlignError, match=r"without adapter_model\.safetensors"):
        load_policy(str(tmp_path), device="cpu")
