"""Real Hugging Face architectures on tiny random models: sampling, log-probs, a CTRL step, rewards, arena."""

from __future__ import annotations

import json

import arch_zoo as zoo
import numpy as np
import pytest
import torch

from infalign_core import arena, challengers, ctrl, sampling
from infalign_core.chat import COMPLETION, render_prompt
from infalign_core.errors import InfAlignError
from infalign_core.models import load_policy
from infalign_core.rewards import load_reward
from infalign_core.sampling_settings import SamplingSettings

PROMPTS = [
    "how do i help",
    "what is the plot",
    "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: why\n\nAssistant:",
]
POLICIES = [f"policy-{a}" for a in zoo.CAUSAL_ARCHS]
REWARDS = ["reward-llama", "reward-gpt_neox", "reward-gemma", "reward-phi3"]


@pytest.fixture(scope="module")
def policies(arch_zoo):
    return {name: load_policy(str(arch_zoo[name]), device="cpu") for name in POLICIES}


@pytest.mark.parametrize("name", POLICIES)
def test_generic_sampler_is_seeded_and_conditions_on_the_rendered_prompt(policies, name):
    policy = policies[name]
    first = sampling.sample(policy, PROMPTS, 3, sampling=SamplingSettings(max_new_tokens=6, seed=1))
    again = sampling.sample(policy, PROMPTS, 3, sampling=SamplingSettings(max_new_tokens=6, seed=1))
    assert first.response_ids == again.response_ids and len(first) == 9
    assert first.rendered_prompts == [render_prompt(policy.tokenizer, p, policy.chat) for p in PROMPTS]
    if name != "policy-gpt_neox":  # the one base model without a template
        assert first.rendered_prompts[0].endswith("\n") and "<|im_start|>" in first.rendered_prompts[0]


@pytest.mark.parametrize("name", POLICIES)
def test_greedy_generic_sampler_matches_generate(policies, name):
    """One prompt at a time, so generate's own padding does not enter."""
    policy = policies[name]
    ours = sampling.sample(
        policy, PROMPTS[:2], 2, sampling=SamplingSettings(max_new_tokens=6, temperature=0.0)
    )
    for i, prompt in enumerate(PROMPTS[:2]):
        ids = torch.tensor([sampling.encode_prompts(policy.tokenizer, [prompt], policy.chat)[0]])
        out = policy.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=6,
            pad_token_id=policy.tokenizer.pad_token_id,
        )[0, ids.shape[1] :].tolist()
        eos = set(sampling.eos_token_ids(policy.model, policy.tokenizer))
        cut = next((k for k, t in enumerate(out) if t in eos), len(out))
        assert ours.response_ids[2 * i] == out[:cut] == ours.response_ids[2 * i + 1]


@pytest.mark.parametrize("name", POLICIES)
def test_sequence_logprobs_are_the_same_alone_and_in_a_padded_batch(policies, name):
    policy = policies[name]
    samples = sampling.sample(policy, PROMPTS, 2, sampling=SamplingSettings(max_new_tokens=5, seed=3))
    batched = sampling.sequence_logprobs(
        policy.model, policy.tokenizer, samples.row_prompts(), samples.response_ids, finished=samples.finished
    )
    alone = torch.cat(
        [
            sampling.sequence_logprobs(policy.model, policy.tokenizer, [p], [r], finished=[f], batch_size=1)
            for p, r, f in zip(samples.row_prompts(), samples.response_ids, samples.finished)
        ]
    )
    assert torch.allclose(batched, alone, atol=2e-4)
    assert torch.all(batched < 0)


def test_eos_lists_from_generation_config_end_responses(policies):
    policy = policies["policy-llama"]
    assert set(sampling.eos_token_ids(policy.model, policy.tokenizer)) == {zoo.EOS, zoo.IM_END}


def test_llama_without_pad_token_pads_with_eos_and_says_so(policies):
    policy = policies["policy-llama"]
    assert policy.tokenizer.pad_token_id == zoo.EOS
    assert any("no pad token" in note for note in policy.notes)


def test_prompt_longer_than_the_positions_is_a_clear_message(arch_zoo):
    policy = load_policy(str(arch_zoo["policy-qwen2"]), device="cpu")
    with pytest.raises(InfAlignError, match="exceeds the 128 positions"):
        sampling.sample(policy, ["how do i help"], 1, sampling=SamplingSettings(max_new_tokens=200))
    reward = load_reward(str(arch_zoo["reward-llama"]), device="cpu")
    with pytest.raises(InfAlignError, match="more than the 128 the reward model"):
        reward.score(["how " * 80], [" help " * 80])


@pytest.mark.parametrize("name", [*REWARDS, "reward-qwen2-3labels", "reward-opt"])
def test_reward_scores_do_not_depend_on_padding_or_batch_company(arch_zoo, name):
    label = {"reward-qwen2-3labels": "helpful", "reward-opt": 1}.get(name)
    reward = load_reward(str(arch_zoo[name]), label=label, device="cpu")
    prompts = [PROMPTS[0], PROMPTS[2], "what"]
    responses = [" there", " a much longer response to pad the others " * 2, " ok<eos>"]
    together = reward.score(prompts, responses)
    alone = np.concatenate([reward.score([p], [r]) for p, r in zip(prompts, responses)])
    assert np.allclose(together, alone, atol=1e-5)


def test_a_response_ending_in_the_pad_token_is_pooled_at_its_real_last_token(arch_zoo):
    """Llama has no pad token, so EOS pads; a text ending in EOS must still be read through EOS."""
    reward = load_reward(str(arch_zoo["reward-llama"]), chat=COMPLETION, device="cpu")
    tok, model = reward.loaded.tokenizer, reward.loaded.model
    assert tok.pad_token_id == zoo.EOS
    ids = tok("what ok<eos>", return_tensors="pt")
    with torch.inference_mode():
        hidden = model.model(**ids).last_hidden_state[0, -1]
        expected = float(model.score(hidden)[0])
    assert reward.score(["what"], [" ok<eos>"])[0] == pytest.approx(expected, abs=1e-5)


def test_reward_with_template_scores_the_chat_conversation(arch_zoo):
    reward = load_reward(str(arch_zoo["reward-phi3"]), device="cpu")  # its tokenizer pads left
    completion = load_reward(str(arch_zoo["reward-phi3"]), chat=COMPLETION, device="cpu")
    assert reward.fingerprint != completion.fingerprint
    rendered = "<bos><|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n"
    expected = completion.score([rendered], [""])  # the same text, given raw
    assert reward.score(["hi"], [" yo"]) == pytest.approx(expected, abs=1e-5)


def test_template_less_reward_falls_back_to_text_and_says_so_once(arch_zoo):
    reward = load_reward(str(arch_zoo["reward-gpt_neox"]), device="cpu")
    reward.score(PROMPTS, [" a", " b", " c"])
    reward.score(PROMPTS, [" a", " b", " c"])
    assert len(reward.notes) == 1 and "no chat template" in reward.notes[0]


def test_reward_head_with_several_labels_needs_one_chosen(arch_zoo):
    with pytest.raises(InfAlignError, match=r"3 labels \(0=harmful, 1=helpful, 2=neutral\): choose"):
        load_reward(str(arch_zoo["reward-qwen2-3labels"]), device="cpu")
    chosen = load_reward(str(arch_zoo["reward-qwen2-3labels"]), label="helpful", device="cpu")
    assert chosen.label_index == 1


@pytest.mark.parametrize("name", POLICIES)
def test_one_ctrl_step_trains_every_architecture(arch_zoo, tmp_path, name):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    config = ctrl.CTRLConfig(
        policy=str(arch_zoo[name]),
        reward=str(arch_zoo["reward-llama"]),
        prompts=str(prompts),
        num_prompts=3,
        prompts_per_step=2,
        k=2,
        m=4,
        steps=1,
        max_new_tokens=4,
        device="cpu",
        cache_dir=str(tmp_path / "banks"),
    )
    models = ctrl.load_models(config)
    before = [p.detach().clone() for p in models.policy.model.parameters()]
    out = ctrl.train(config, models=models)
    after = list(models.policy.model.parameters())
    assert out["step"] == 1 and np.isfinite(out["loss/policy"])
    assert any(not torch.equal(a, b) for a, b in zip(before, after))


@pytest.mark.parametrize("name", ["policy-llama", "policy-gemma", "policy-opt"])
def test_arena_runs_on_real_architectures(arch_zoo, policies, name):
    policy = policies[name]
    reward = load_reward(str(arch_zoo["reward-gemma"]), device="cpu")
    state = arena.run_to_end(
        policy, policy, reward, PROMPTS, sampling=SamplingSettings(max_new_tokens=4), n=2, k=2, resamples=50
    )
    assert state.done == len(PROMPTS)
    assert 0.0 <= state.estimate.bon_win_rate <= 1.0
    assert abs(state.kl.k1) < 1e-5  # the policy against itself


def test_trl_export_of_a_chat_policy_renders_prompts_as_ctrl_train_does(arch_zoo, tmp_path):
    from datasets import load_from_disk

    from infalign_core.integrations import trl as ctrl_trl

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    config = ctrl.CTRLConfig(
        policy=str(arch_zoo["policy-qwen2"]), reward=str(arch_zoo["reward-phi3"]), prompts=str(prompts),
        num_prompts=3, prompts_per_step=2, k=2, m=4, max_new_tokens=4, device="cpu",
        system_prompt="be brief", cache_dir=str(tmp_path / "banks"),
    )  # fmt: skip
    out = ctrl_trl.export_trl(config, tmp_path / "export", num_processes=1)
    models = ctrl.load_models(config)
    bank = ctrl.reference_bank(config, models.reference, models.reward_fn, ctrl.load_prompt_list(config))
    assert out.bank_key == bank.key and bank.cached  # the trainer reuses the export's banks
    rows = load_from_disk(str(tmp_path / "export" / ctrl_trl.DATASET_DIR))["prompt"]
    tok = models.policy.tokenizer
    for prompt, messages in zip(PROMPTS, rows):
        assert messages[0] == {"role": "system", "content": "be brief"}
        # What TRL's RLOOTrainer feeds the policy: the template applied to the messages, tokenized.
        trl_ids = tok.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        ours = sampling.encode_prompts(tok, [prompt], models.policy.chat)[0]
        assert list(trl_ids["input_ids"]) == ours
    reward = ctrl_trl.load_exported_reward(tmp_path / "export")
    as_trl = reward.score(
        rows[:1],
        [[{"role": "assistant", "content": "yo"}]],
        [bank.rewards[0]],
        bank_key=[bank.key],
        reward_fingerprint=[models.reward_fn.fingerprint],
    )
    direct = models.reward_fn.score(PROMPTS[:1], [" yo"])
    assert as_trl.raw == pytest.approx(direct)


def test_a_run_checkpoint_is_evaluated_with_the_rendering_it_was_trained_with(arch_zoo, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    config = ctrl.CTRLConfig(
        policy=str(arch_zoo["policy-qwen2"]), reward=str(arch_zoo["reward-phi3"]), prompts=str(prompts),
        num_prompts=3, prompts_per_step=2, k=2, m=4, steps=1, max_new_tokens=4, device="cpu",
        completion_mode=True, cache_dir=str(tmp_path / "banks"),
    )  # fmt: skip
    ctrl.train(config, tmp_path / "run")
    challenger, _ = challengers.load_challenger(str(tmp_path / "run" / "checkpoint"), device="cpu")
    assert challenger.chat == COMPLETION
    reference = load_policy(str(arch_zoo["policy-qwen2"]), device="cpu")
    reward = load_reward(str(arch_zoo["reward-phi3"]), device="cpu")
    assert reference.chat != COMPLETION
    aligned, aligned_reward = arena.same_rendering(challenger, reference, reward)
    assert aligned.chat == COMPLETION and aligned.model is reference.model
    assert aligned_reward.chat == COMPLETION and aligned_reward.fingerprint != reward.fingerprint
    state = arena.run_to_end(
        challenger,
        reference,
        reward,
        PROMPTS[:2],
        sampling=SamplingSettings(max_new_tokens=3),
        n=2,
        k=2,
        resamples=20,
    )
    assert state.done == 2
