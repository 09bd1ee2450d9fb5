"""Log-probs at the sampling temperature: the KL the trainer and the arena report is KL(π_T‖π_ref,T).

On the tiny GPT-2 with a two-token horizon the exact KL of the tempered sequence distributions is a
sum over the first token and, for each first token, the second: an enumeration written here from
the model's raw logits, independent of the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from infalign_core import arena, arena_kl, arena_results, ctrl, sampling
from infalign_core.errors import InfAlignError
from infalign_core.sampling_settings import SamplingSettings
from infalign_core.winrate import kl_from_logprobs

PROMPT = "the movie"
HORIZON = 2


@pytest.fixture(scope="module")
def perturbed_reference(tiny_world):
    """The tiny policy with Gaussian noise on every weight: a reference the policy differs from."""
    import torch

    from infalign_core.models import load_policy

    reference = load_policy(str(tiny_world.policy), device="cpu")
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for parameter in reference.model.parameters():
            parameter.add_(0.02 * torch.randn(parameter.shape, generator=generator))
    return reference


def exact_kl(policy, reference, prompt: str, temperature: float) -> float:
    """KL(π_T‖π_ref,T) over every response of at most HORIZON tokens (a first-token EOS ends it)."""
    import torch

    ids = sampling.encode_prompts(policy.tokenizer, [prompt])[0]
    eos = sampling.eos_token_ids(policy.model, policy.tokenizer)
    vocab = policy.model.config.vocab_size

    def next_logp(model, rows: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            logits = model(input_ids=rows, attention_mask=torch.ones_like(rows)).logits[:, -1].double()
        return torch.log_softmax(logits / temperature, -1)

    first = torch.tensor([ids])
    p1, q1 = next_logp(policy.model, first)[0], next_logp(reference.model, first)[0]
    total = float((p1.exp() * (p1 - q1)).sum())
    continuing = [v for v in range(vocab) if v not in eos]
    rows = torch.tensor([[*ids, v] for v in continuing])
    p2, q2 = next_logp(policy.model, rows), next_logp(reference.model, rows)
    second = (p2.exp() * (p2 - q2)).sum(-1)
    return total + float((p1[continuing].exp() * second).sum())


@pytest.mark.parametrize("temperature", [0.5, 1.0, 1.5])
def test_the_kl_of_tempered_samples_matches_exact_enumeration(tiny_policy, perturbed_reference, temperature):
    exact = exact_kl(tiny_policy, perturbed_reference, PROMPT, temperature)
    samples = sampling.sample(
        tiny_policy,
        [PROMPT],
        4000,
        sampling=SamplingSettings(max_new_tokens=HORIZON, temperature=temperature, seed=11),
    )
    log_pi, log_ref = arena_kl.sample_logprobs(
        tiny_policy, perturbed_reference, samples, temperature=temperature
    )
    estimate = kl_from_logprobs(log_pi, log_ref)
    assert estimate.k1 == pytest.approx(exact, abs=4 * estimate.k1_stderr + 1e-3)
    assert estimate.k3 == pytest.approx(exact, abs=4 * estimate.k3_stderr + 1e-3)
    # The trainer's teacher-forced log-probs are the same numbers, token by token.
    eos = sampling.eos_token_ids(tiny_policy.model, tiny_policy.tokenizer)
    targets = [[*r, eos[0]] if done else list(r) for r, done in zip(samples.response_ids, samples.finished)]
    prompt_ids = sampling.encode_prompts(tiny_policy.tokenizer, [PROMPT]) * len(targets)
    pad = tiny_policy.tokenizer.pad_token_id
    logp, _, _ = ctrl.token_logprobs(tiny_policy.model, prompt_ids, targets, pad, temperature)
    ref_logp, _, _ = ctrl.token_logprobs(perturbed_reference.model, prompt_ids, targets, pad, temperature)
    np.testing.assert_allclose(logp.detach().sum(-1).numpy(), log_pi, atol=1e-4)
    np.testing.assert_allclose(ref_logp.detach().sum(-1).numpy(), log_ref, atol=1e-4)
    if temperature != 1.0:  # the test sees the old bug: untempered log-probs give another KL
        plain = kl_from_logprobs(*arena_kl.sample_logprobs(tiny_policy, perturbed_reference, samples))
        assert abs(plain.k1 - exact) > 5 * estimate.k1_stderr


def test_log_probs_need_a_positive_temperature(tiny_policy):
    with pytest.raises(InfAlignError, match="temperature > 0"):
        sampling.sequence_logprobs(tiny_policy.model, tiny_policy.tokenizer, ["a"], [[5]], temperature=0.0)


def test_the_arena_refuses_the_kl_below_top_p_one_and_says_why(tiny_policy):
    from infalign_core.rewards import callable_reward

    reward_fn = callable_reward(lambda prompt, response: float(len(response)), "length")
    state = arena.run_to_end(
        tiny_policy,
        tiny_policy,
        reward_fn,
        [PROMPT, "this film"],
        sampling=SamplingSettings(max_new_tokens=4, top_p=0.9),
        n=2,
        k=4,
    )
    assert state.kl is None and "infinite KL" in state.kl_note and state.estimate is not None
    record = arena_results.arena_record(
        state, {"n": 2}, {"transform": "exp", "t": 5.0, "mode": "best", "n": 2}
    )
    assert "k1" not in record["kl"] and "theory" not in record and "top-p" in record["kl_note"]
    with pytest.raises(InfAlignError, match="top-p must be in"):
        arena.run_to_end(
            tiny_policy, tiny_policy, reward_fn, [PROMPT], sampling=SamplingSettings(top_p=1.5), n=1, k=1
        )
