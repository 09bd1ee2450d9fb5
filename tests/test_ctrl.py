"""The CTRL trainer: config validation and round trip, RLOO, win-rate estimates, β control, a short run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infalign_core import ctrl
from infalign_core.ctrl import CTRLConfig
from infalign_core.errors import InfAlignError


def make_run_world(root):
    """An untrained 2-layer GPT-2 with a small BPE tokenizer and six prompts (plumbing, not learning)."""
    import torch
    from conftest import _train_tokenizer, tiny_corpus, tiny_gpt2_config
    from transformers import GPT2LMHeadModel

    tokenizer = _train_tokenizer(tiny_corpus(200), pad=True)
    config = tiny_gpt2_config(tokenizer, n_positions=48, n_embd=32)
    torch.manual_seed(0)
    policy = root / "policy"
    GPT2LMHeadModel(config).save_pretrained(policy)
    tokenizer.save_pretrained(policy)
    prompts = root / "prompts.jsonl"
    words = ["the movie", "this film", "the plot", "the acting", "the ending", "the music"]
    prompts.write_text("".join(json.dumps({"prompt": w}) + "\n" for w in words))
    return policy, prompts


def small_config(policy, prompts, cache_dir, **overrides) -> CTRLConfig:
    """A CPU run small enough for a test: 4 prompts × k = 4 per step, 12 tokens, m = 8."""
    base = dict(
        policy=str(policy),
        prompts=str(prompts),
        reward="oracle",
        num_prompts=6,
        m=8,
        k=4,
        prompts_per_step=4,
        max_new_tokens=12,
        steps=4,
        device="cpu",
        checkpoint_every=2,
        cache_dir=str(cache_dir),
        transform="exp",
        t=8.0,
        beta=0.1,
        learning_rate=1e-3,
    )
    return CTRLConfig(**{**base, **overrides})


@pytest.fixture(scope="module")
def run_world(tmp_path_factory):
    """Folders of the tiny policy and prompts."""
    return make_run_world(tmp_path_factory.mktemp("ctrl_world"))


# --- the config -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("beta", 0.0, "beta must be a number > 0"),
        ("beta", -1.0, "beta must be a number > 0"),
        ("k", 1, "k must be an integer ≥ 2"),
        ("learning_rate", 0.0, "learning_rate must be > 0"),
        ("transform", "cubic", "unknown transform 'cubic'"),
        ("steps", 0, "steps must be an integer ≥ 1"),
        ("mode", "median", "mode must be 'best' or 'worst'"),
        ("kl_target", -0.5, "kl_target must be > 0"),
        ("t", float("nan"), "t must be a number in"),
        ("prompts_per_step", 100, "cannot exceed num_prompts"),
        ("device", "tpu", "device must be one of"),
    ],
)
def test_bad_config_fields_are_rejected_with_the_field_name(field, value, message):
    with pytest.raises(InfAlignError, match=message):
        CTRLConfig(**{field: value}).validate()


def test_every_config_field_has_help_text():
    assert all(help_texts.strip() for help_texts in ctrl.help_texts().values())


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_config_round_trips_through_json_and_yaml(tmp_path, suffix):
    config = CTRLConfig(transform="optimal", n=8, mode="worst", beta=0.2, kl_target=0.4, reference="x")
    path = tmp_path / f"c{suffix}"
    config.save(path)
    assert CTRLConfig.load(path) == config


def test_unknown_config_keys_are_named():
    with pytest.raises(InfAlignError, match=r"unknown config field.*betta"):
        CTRLConfig.from_dict({"betta": 0.1})


def test_exp_t_defaults_to_the_theorys_best_t():
    from infalign_core.theory import best_exponential_t

    resolved = CTRLConfig(transform="exp", n=4, t=None).resolved()
    assert resolved.t == pytest.approx(best_exponential_t(4, 0.5).t, rel=1e-3)


def test_presets_are_valid_configs():
    for fields in ctrl.PRESETS.values():
        CTRLConfig(**fields).validate()


# --- the pieces of the loop ---------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 6), st.integers(1, 5), st.integers(0, 10_000))
def test_rloo_advantage_is_reward_minus_mean_of_the_others(k, groups, seed):
    rewards = np.random.default_rng(seed).normal(size=groups * k)
    adv = ctrl.rloo_advantages(rewards, k)
    for g in range(groups):
        for i in range(k):
            others = np.delete(rewards[g * k : (g + 1) * k], i)
            assert adv[g * k + i] == pytest.approx(rewards[g * k + i] - others.mean())
    np.testing.assert_allclose(adv.reshape(-1, k).sum(axis=1), 0.0, atol=1e-12)  # zero mean per prompt


def test_empirical_win_rates_of_reference_samples_are_one_half():
    u = np.random.default_rng(0).uniform(size=200_000)
    bon, won = ctrl.empirical_win_rates(u, 4)
    assert bon == pytest.approx(0.5, abs=0.005) and won == pytest.approx(0.5, abs=0.005)


def test_empirical_win_rates_match_the_theory_for_the_bon_policy():
    # The best-of-n policy's calibrated reward is the max of n uniforms; its BoN win rate is n/(n+1).
    u = np.random.default_rng(1).uniform(size=(200_000, 3)).max(axis=1)
    bon, won = ctrl.empirical_win_rates(u, 4)
    assert bon == pytest.approx(3 / 4, abs=0.005) and won > 0.5


def test_empirical_win_rates_at_the_extremes():
    assert ctrl.empirical_win_rates(np.ones(10), 4) == pytest.approx((1.0, 1.0))
    assert ctrl.empirical_win_rates(np.zeros(10), 4) == pytest.approx((0.0, 0.0))


def test_adaptive_beta_moves_toward_the_kl_target_and_is_clipped():
    assert ctrl.adapt_beta(0.1, 1.0, 0.5, 64, 640) == pytest.approx(0.1 * (1 + 0.2 * 0.1))
    assert ctrl.adapt_beta(0.1, 0.45, 0.5, 64, 640) == pytest.approx(0.1 * (1 - 0.1 * 0.1))
    assert ctrl.adapt_beta(0.1, 0.5, 0.5, 64, 640) == pytest.approx(0.1)


def test_log_transform_is_finite_when_a_response_is_below_the_whole_bank():
    phi = ctrl.make_phi(CTRLConfig(transform="log", m=16), beta=0.1)
    assert np.all(np.isfinite(phi(np.array([0.0, 0.5, 1.0]))))


def test_raw_transform_means_no_phi():
    assert ctrl.make_phi(CTRLConfig(transform="raw"), beta=0.1) is None


# --- a short run --------------------------------------------------------------------------------


@pytest.mark.slow
def test_short_run_writes_metrics_every_step_and_a_loadable_checkpoint(run_world, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    policy, prompts = run_world
    config = small_config(policy, prompts, tmp_path / "cache", steps=3, kl_target=0.3)
    seen = []
    result = ctrl.train(config, tmp_path / "run", on_metrics=seen.append)
    rows = ctrl.read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2, 3] == [r["step"] for r in seen]
    for key in (
        "reward/raw",
        "reward/calibrated",
        "reward/transformed",
        "kl/k1",
        "kl/k3",
        "kl/beta",
        "policy/entropy",
        "policy/response_length",
        "time/step",
        "winrate/standard",
        "winrate/bon",
        "winrate/won",
    ):
        assert all(math.isfinite(r[key]) for r in rows), key
    assert rows[0]["kl/k1"] == pytest.approx(0.0, abs=1e-4)  # policy = reference before the first update
    assert 0.0 <= rows[-1]["reward/calibrated"] <= 1.0
    assert rows[1]["kl/beta"] != rows[0]["kl/beta"]  # the KL controller moved β
    model = AutoModelForCausalLM.from_pretrained(result["checkpoint"], use_safetensors=True)
    state = torch.load(f"{result['checkpoint']}/{ctrl.TRAINER_STATE}", weights_only=True)
    assert state["step"] == 3 and model.config.n_layer == 2


@pytest.mark.slow
def test_a_stop_request_ends_the_run_early_with_a_checkpoint(run_world, tmp_path):
    policy, prompts = run_world
    config = small_config(policy, prompts, tmp_path / "cache", steps=50)
    result = ctrl.train(
        config, tmp_path / "run", should_stop=lambda: len(ctrl.read_metrics(tmp_path / "run")) >= 2
    )
    assert result["stopped"] and result["step"] == 2
    assert ctrl.checkpoint_path(tmp_path / "run") is not None


@pytest.mark.slow
def test_resume_continues_from_the_checkpoint_without_duplicate_steps(run_world, tmp_path):
    policy, prompts = run_world
    run = tmp_path / "run"
    ctrl.train(small_config(policy, prompts, tmp_path / "cache", steps=2), run)
    # A crash after steps 3 and 4 logged metrics but before their checkpoint was written:
    with open(run / ctrl.METRICS_FILE, "a") as f:
        f.write(json.dumps({"step": 3}) + "\n" + json.dumps({"step": 4}) + '\n{"step": 5, "torn')
    result = ctrl.train(small_config(policy, prompts, tmp_path / "cache", steps=5), run, resume=True)
    assert [r["step"] for r in ctrl.read_metrics(run)] == [1, 2, 3, 4, 5]
    assert result["step"] == 5


def test_saturation_warning_names_when_samples_outscore_the_whole_bank():
    rows = [{"step": s, "reward/above_bank": 0.1} for s in range(1, 21)]
    assert ctrl.saturation_warning(rows) is None
    rows += [{"step": s, "reward/above_bank": 0.8} for s in range(21, 41)]
    message = ctrl.saturation_warning(rows)
    assert message is not None and "step 21" in message and "80%" in message
    assert ctrl.saturation_warning(rows[:5]) is None  # too few steps to say
