"""The sampler draws what ``model.generate`` draws, batched or alone; log-probs match by hand."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.stats import chi2_contingency

from infalign_core import sampling
from infalign_core.errors import InfAlignError
from infalign_core.models import BUNDLED, load_policy
from infalign_core.sampling import Samples, sample, sequence_logprobs
from infalign_core.sampling_settings import SamplingSettings

PROMPTS = ["the movie was", "this", "the acting felt really", "the plot seemed very"]


def _generate(policy, prompts, max_new_tokens, **kwargs) -> list[list[int]]:
    """Continuations from model.generate, one prompt at a time, EOS and padding cut."""
    tok = policy.tokenizer
    out = []
    for prompt in prompts:
        ids = tok([prompt], return_tensors="pt")
        with torch.no_grad():
            full = policy.model.generate(
                **ids, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id, **kwargs
            )
        row = full[0, ids["input_ids"].shape[1] :].tolist()
        out.append(row[: row.index(tok.eos_token_id)] if tok.eos_token_id in row else row)
    return out


@pytest.fixture
def generic_only(monkeypatch):
    """Force the generic (any Hugging Face causal LM) decoding path."""
    monkeypatch.setattr(sampling, "_supports_fast_path", lambda model: False)


def test_greedy_equals_generate_greedy(tiny_policy):
    ours = sample(tiny_policy, PROMPTS, 1, sampling=SamplingSettings(temperature=0.0, max_new_tokens=16))
    assert ours.response_ids == _generate(tiny_policy, PROMPTS, 16, do_sample=False)


def test_prompts_of_different_lengths_in_one_batch_continue_as_they_would_alone(tiny_policy):
    together = sample(tiny_policy, PROMPTS, 3, sampling=SamplingSettings(temperature=0.0, max_new_tokens=20))
    for i, prompt in enumerate(PROMPTS):
        alone = sample(
            tiny_policy, [prompt], 1, sampling=SamplingSettings(temperature=0.0, max_new_tokens=20)
        )
        assert together.response_ids[3 * i : 3 * i + 3] == alone.response_ids * 3


def test_fast_and_generic_paths_agree_token_for_token(tiny_policy, monkeypatch):
    # Greedy over many rows of mixed lengths, so rows finish at different steps and the fast
    # path drops finished rows from its batch mid-way; seeded sampling on a short horizon.
    greedy = sample(
        tiny_policy, PROMPTS * 8, 2, sampling=SamplingSettings(temperature=0.0, max_new_tokens=24)
    )
    sampled = sample(
        tiny_policy,
        PROMPTS,
        4,
        sampling=SamplingSettings(temperature=1.0, max_new_tokens=3, seed=5, top_p=0.9),
    )
    monkeypatch.setattr(sampling, "_supports_fast_path", lambda model: False)
    assert (
        sample(
            tiny_policy, PROMPTS * 8, 2, sampling=SamplingSettings(temperature=0.0, max_new_tokens=24)
        ).response_ids
        == greedy.response_ids
    )
    again = sample(
        tiny_policy,
        PROMPTS,
        4,
        sampling=SamplingSettings(temperature=1.0, max_new_tokens=3, seed=5, top_p=0.9),
    )
    assert again.response_ids == sampled.response_ids


def test_same_seed_same_samples_other_seed_other_samples(tiny_policy):
    first = sample(tiny_policy, PROMPTS, 8, sampling=SamplingSettings(seed=3))
    assert (
        sample(tiny_policy, PROMPTS, 8, sampling=SamplingSettings(seed=3)).response_ids == first.response_ids
    )
    assert (
        sample(tiny_policy, PROMPTS, 8, sampling=SamplingSettings(seed=4)).response_ids != first.response_ids
    )


def test_vanishing_top_p_keeps_only_the_top_token(tiny_policy):
    greedy = sample(tiny_policy, PROMPTS, 1, sampling=SamplingSettings(temperature=0.0, max_new_tokens=12))
    nucleus = sample(
        tiny_policy,
        PROMPTS,
        1,
        sampling=SamplingSettings(temperature=1.0, top_p=1e-6, max_new_tokens=12, seed=9),
    )
    assert nucleus.response_ids == greedy.response_ids


def _merge_rare(a: np.ndarray, b: np.ndarray, minimum: int = 10) -> np.ndarray:
    """A 2 × K contingency table with categories rarer than ``minimum`` pooled into one."""
    keys = sorted(set(a) | set(b))
    counts = np.array([[np.sum(a == k) for k in keys], [np.sum(b == k) for k in keys]])
    common = counts.sum(0) >= minimum
    table = counts[:, common]
    if (~common).any():
        table = np.column_stack([table, counts[:, ~common].sum(1)])
    return table


@pytest.mark.slow
@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (1.0, 0.9), (0.7, 1.0)])
def test_first_token_and_length_distributions_match_generate(tiny_policy, temperature, top_p):
    prompt, n, horizon = "the movie was", 1500, 12
    ours = sample(
        tiny_policy,
        [prompt],
        n,
        sampling=SamplingSettings(temperature=temperature, top_p=top_p, max_new_tokens=horizon, seed=1),
    )
    tok = tiny_policy.tokenizer
    ids = tok([prompt] * 500, return_tensors="pt")
    torch.manual_seed(1)
    theirs = []
    with torch.no_grad():
        for _ in range(n // 500):
            out = tiny_policy.model.generate(
                **ids, do_sample=True, temperature=temperature, top_p=top_p, top_k=0,
                max_new_tokens=horizon, pad_token_id=tok.pad_token_id,
            )  # fmt: skip
            theirs.extend(out[:, ids["input_ids"].shape[1] :].tolist())
    eos = tok.eos_token_id
    their_lengths = np.array([row.index(eos) if eos in row else horizon for row in theirs])
    their_first = np.array([row[0] for row in theirs])
    our_lengths = np.array([len(r) for r in ours.response_ids])
    our_first = np.array([(r[0] if r else eos) for r in ours.response_ids])
    for mine, reference in [(our_first, their_first), (our_lengths, their_lengths)]:
        table = _merge_rare(mine, reference)
        assert table.shape[1] >= 2, "the test needs a distribution with more than one outcome"
        assert chi2_contingency(table).pvalue > 1e-3


def test_samples_are_grouped_by_prompt_and_decode_to_the_full_text(tiny_policy):
    s = sample(tiny_policy, PROMPTS, 5, sampling=SamplingSettings(max_new_tokens=16, seed=2))
    assert isinstance(s, Samples) and len(s) == 20
    np.testing.assert_array_equal(s.prompt_index, np.repeat(np.arange(4), 5))
    tok = tiny_policy.tokenizer
    for prompt, response, ids, done in zip(s.row_prompts(), s.responses, s.response_ids, s.finished):
        assert tok.eos_token_id not in ids
        assert done == (len(ids) < 16) or done
        assert tok.decode(tok(prompt)["input_ids"] + ids, skip_special_tokens=True) == prompt + response
    assert s.finished.any()


def test_progress_is_reported_and_a_stop_keeps_whole_prompts(tiny_policy):
    calls = []
    sample(
        tiny_policy,
        PROMPTS,
        3,
        sampling=SamplingSettings(batch_size=5),
        progress=lambda d, t: calls.append((d, t)),
    )
    assert calls == [(5, 12), (10, 12), (12, 12)]
    polls = iter([False, True])
    stopped = sample(
        tiny_policy, PROMPTS, 3, sampling=SamplingSettings(batch_size=4), should_stop=lambda: next(polls)
    )
    # Two batches of 4 rows ran (8 rows); only the two whole prompts (6 rows) are kept.
    assert stopped.prompts == PROMPTS[:2] and len(stopped) == 6
    assert len(stopped.response_ids) == len(stopped.finished) == 6


def test_bad_settings_and_too_long_prompts_are_refused(tiny_policy):
    with pytest.raises(InfAlignError, match="temperature"):
        sample(tiny_policy, PROMPTS, 2, sampling=SamplingSettings(temperature=-1))
    with pytest.raises(InfAlignError, match="top_p"):
        sample(tiny_policy, PROMPTS, 2, sampling=SamplingSettings(top_p=0))
    with pytest.raises(InfAlignError, match="n must be"):
        sample(tiny_policy, PROMPTS, 0)
    with pytest.raises(InfAlignError, match="exceeds the 64 positions"):
        sample(tiny_policy, ["the movie was very good " * 8], 1, sampling=SamplingSettings(max_new_tokens=24))


def test_sequence_logprobs_match_a_manual_teacher_forced_sum(tiny_policy):
    s = sample(tiny_policy, PROMPTS, 2, sampling=SamplingSettings(max_new_tokens=10, seed=4))
    got = sequence_logprobs(
        tiny_policy.model, tiny_policy.tokenizer, s.row_prompts(), s.response_ids, finished=s.finished
    )
    tok = tiny_policy.tokenizer
    for k, (prompt, ids, done) in enumerate(zip(s.row_prompts(), s.response_ids, s.finished)):
        prompt_ids = tok(prompt)["input_ids"]
        full = prompt_ids + ids + ([tok.eos_token_id] if done else [])
        with torch.no_grad():
            logp = torch.log_softmax(tiny_policy.model(torch.tensor([full])).logits[0].double(), -1)
        manual = sum(logp[j - 1, full[j]].item() for j in range(len(prompt_ids), len(full)))
        assert got[k].item() == pytest.approx(manual, abs=1e-4)


def test_sequence_logprobs_keep_the_graph_when_asked(tiny_policy):
    ids = [[5, 6, 7], [8]]
    value = sequence_logprobs(tiny_policy.model, tiny_policy.tokenizer, PROMPTS[:2], ids, with_grad=True)
    assert value.requires_grad
    value.sum().backward()
    assert tiny_policy.model.lm_head.weight.grad is not None
    tiny_policy.model.zero_grad(set_to_none=True)
    plain = sequence_logprobs(tiny_policy.model, tiny_policy.tokenizer, PROMPTS[:2], ids)
    assert not plain.requires_grad
    torch.testing.assert_close(plain, value.detach())


def test_generic_path_handles_prompts_and_eos_like_the_fast_one(tiny_policy, generic_only):
    s = sample(tiny_policy, PROMPTS, 2, sampling=SamplingSettings(temperature=0.0, max_new_tokens=16))
    assert s.response_ids[::2] == _generate(tiny_policy, PROMPTS, 16, do_sample=False)


@pytest.mark.skipif(
    not (BUNDLED["policy"] / "config.json").is_file(), reason="the bundled world is not built yet"
)
def test_bundled_policy_samples_reviews_greedy_like_generate():
    policy = load_policy("default", device="cpu")
    prompts = ["The acting was", "I expected"]
    ours = sample(policy, prompts, 1, sampling=SamplingSettings(temperature=0.0, max_new_tokens=20))
    assert ours.response_ids == _generate(policy, prompts, 20, do_sample=False)
    s = sample(policy, prompts, 16, sampling=SamplingSettings(max_new_tokens=24, seed=0))
    # Continuations start at a word boundary: a space or punctuation ("I expected, ...").
    assert s.finished.mean() > 0.5 and all(r and not r[0].isalnum() for r in s.responses)


# --- the `sample` command ---------------------------------------------------------


def test_cli_sample_json_lists_text_and_reward_best_first(tiny_world, capsys):
    from infalign_core import cli

    argv = ["sample", "--prompt", "the movie was", "--n", "6", "--policy", str(tiny_world.policy)]
    assert cli.main([*argv, "--reward", str(tiny_world.reward), "--seed", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(rows) == 6 and all({"text", "reward"} <= set(row) for row in rows)
    assert [r["reward"] for r in rows] == sorted((r["reward"] for r in rows), reverse=True)
    assert cli.main([*argv, "--reward", "vader", "--seed", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 7 and lines[1].split()[0] == "1"


@pytest.mark.slow
def test_cli_sample_bad_input_is_one_line_and_exit_status_2(tiny_world, tmp_path):
    argv = [sys.executable, "-m", "infalign_core", "sample", "--prompt", "hi", "--n", "2"]
    bad = subprocess.run([*argv, "--policy", str(tmp_path / "nope")], capture_output=True, text=True)
    assert bad.returncode == 2
    assert (
        bad.stderr.strip().startswith("error: Folder not found") and len(bad.stderr.strip().splitlines()) == 1
    )
    two = [*argv, "--policy", str(tiny_world.policy), "--reward", str(tiny_world.reward_two_labels)]
    result = subprocess.run(two, capture_output=True, text=True)
    assert result.returncode == 2 and "POSITIVE" in result.stderr.splitlines()[-1]


def test_a_non_gpt2_model_takes_the_generic_path_and_matches_generate(tiny_world, tmp_path):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tiny_world.policy)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=tok.eos_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    policy = load_policy(str(tmp_path), device="cpu")
    assert not sampling._supports_fast_path(policy.model)
    ours = sample(policy, PROMPTS, 2, sampling=SamplingSettings(temperature=0.0, max_new_tokens=10))
    assert ours.response_ids[::2] == _generate(policy, PROMPTS, 10, do_sample=False)
    logp = sequence_logprobs(policy.model, tok, ours.row_prompts(), ours.response_ids, finished=ours.finished)
    assert torch.isfinite(logp).all() and (logp <= 0).all()


def test_running_out_of_memory_at_every_batch_size_says_to_lower_the_batch(tiny_policy, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(sampling, "_sample_batch_fast", boom)
    with pytest.raises(InfAlignError, match="Not enough memory for sampling with batch_size=1 "):
        sample(tiny_policy, PROMPTS, 2)


def test_out_of_memory_halves_the_batch_says_so_once_and_keeps_every_sample(tiny_policy, monkeypatch):
    real = sampling._sample_batch_fast
    sizes = []

    def tight(model, prompt_rows, row_owner, *args):
        sizes.append(len(row_owner))
        if len(row_owner) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, prompt_rows, row_owner, *args)

    monkeypatch.setattr(sampling, "_sample_batch_fast", tight)
    monkeypatch.setattr(tiny_policy, "notes", [])  # the shared fixture keeps its own notes
    out = sample(tiny_policy, PROMPTS, 4, sampling=SamplingSettings(batch_size=16))
    assert len(out) == 4 * len(PROMPTS) and sorted(out.prompt_index) == list(out.prompt_index)
    assert sizes[:3] == [16, 8, 4] and max(sizes[3:]) <= 3  # halved, then never tried larger again
    assert len(out.notes) == 1 and "halved to 2 rows" in out.notes[0]
    assert tiny_policy.notes == out.notes  # also where the model's notes are shown


def test_sampling_a_model_in_training_mode_uses_eval_mode_and_restores_it(tiny_policy):
    expected = sample(tiny_policy, PROMPTS, 2, sampling=SamplingSettings(seed=1)).response_ids
    tiny_policy.model.train()
    try:
        assert sample(tiny_policy, PROMPTS, 2, sampling=SamplingSettings(seed=1)).response_ids == expected
        assert tiny_policy.model.training
    finally:
        tiny_policy.model.eval()


def test_sampling_under_bf16_autocast_runs_and_stays_in_vocabulary(tiny_policy):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        s = sample(tiny_policy, PROMPTS, 4, sampling=SamplingSettings(max_new_tokens=8, seed=0))
    vocab = tiny_policy.model.config.vocab_size
    assert len(s) == 16 and all(0 <= t < vocab for ids in s.response_ids for t in ids)
