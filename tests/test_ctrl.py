"""The CTRL trainer: config validation and round trip, RLOO, win-rate estimates, β control, a short run."""

from __future__ import annotations

import dataclasses
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
        ("beta", 0.0, r"beta must be a number in \[0.0001, 100\]"),
        ("beta", -1.0, "beta must be a number in"),
        ("k", 1, "k must be an integer in .*leave-one-out needs two samples"),
        ("learning_rate", 0.0, "learning_rate must be a number in"),
        ("transform", "cubic", "unknown transform 'cubic'"),
        ("steps", 0, "steps must be an integer in"),
        ("mode", "median", "mode must be 'best' or 'worst'"),
        ("kl_target", -0.5, "kl_target must be a number in"),
        ("t", float("nan"), "t must be a number in"),
        ("prompts_per_step", 100, "cannot exceed num_prompts"),
        ("device", "tpu", "device must be one of"),
        ("kl_penalty", "both", "kl_penalty must be 'reward' or 'loss'"),
        ("learning_rate", 1e9, r"learning_rate must be a number in \[1e-08, 0.1\]"),
        ("kl_target", 1e9, r"kl_target must be a number in \[0.001, 20\] nats"),
        ("beta", 1e9, "beta must be a number in"),
        ("t", 501.0, r"t must be a number in \[0, 500\]"),
        ("steps", 10**9, "steps must be an integer in"),
        ("k", 10**6, "k must be an integer in"),
        ("m", 10**9, "m must be an integer in"),
        ("num_prompts", 10**9, "num_prompts must be an integer in"),
        ("prompts_per_step", 10**5, "prompts_per_step must be an integer in"),
        ("n", 2000, r"n must be an integer in \[1, 1024\]"),
    ],
)
def test_bad_config_fields_are_rejected_with_the_field_name(field, value, message):
    with pytest.raises(InfAlignError, match=message):
        CTRLConfig(**{field: value}).validate()


def test_a_yaml_config_out_of_range_gets_the_same_one_line_message(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("learning_rate: 1.0e+9\n", encoding="utf-8")
    with pytest.raises(InfAlignError, match=r"^learning_rate must be a number in \[1e-08, 0.1\]"):
        CTRLConfig.load(path).validate()


def test_a_kl_target_beyond_the_exponentials_reach_is_refused_with_the_reachable_range():
    with pytest.raises(InfAlignError, match=r"reaches at most 12.\d+ nats .*choose a budget in \(0, 12"):
        CTRLConfig(transform="exp", kl_target=12.6).resolved()
    with pytest.raises(InfAlignError, match=r"worst-of-N reaches at most 5.\d+ nats"):
        CTRLConfig(transform="exp", mode="worst", kl_target=7.0).resolved()


def test_help_texts_state_each_numeric_fields_accepted_range():
    assert "accepted: 1e-08 to 0.1" in ctrl.help_texts()["learning_rate"]


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
    from infalign_core.procedures import best_exponential_t, of_n

    resolved = CTRLConfig(transform="exp", n=4, t=None).resolved()
    assert resolved.t == pytest.approx(best_exponential_t(of_n(4), 0.5).t, rel=1e-3)


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


@pytest.mark.parametrize(("m", "n"), [(m, n) for m in (4, 16, 64) for n in (2, 4, 16) if n <= m])
def test_the_untrained_reference_against_its_own_bank_wins_one_half(m, n):
    rng = np.random.default_rng(m * 100 + n)
    k = max(n, 8)
    # Many steps of a few prompts, as the trainer logs them: each step's number is unbiased,
    # so their mean is 0.5 within noise (the old continuous formula read 0.686 at m = N = 4).
    steps = [
        ctrl.bank_win_rates(rng.normal(size=(8, k)), np.sort(rng.normal(size=(8, m)), axis=1), n)
        for _ in range(2000)
    ]
    bon, won = np.mean(steps, axis=0)
    # 16 000 prompts: the standard error is at most 0.5/√16 000 ≈ 0.004, so 0.02 is five of them.
    assert bon == pytest.approx(0.5, abs=0.02) and won == pytest.approx(0.5, abs=0.02)


def test_bank_win_rates_count_ties_half_and_see_a_sure_win():
    bank = np.zeros((3, 8))
    assert ctrl.bank_win_rates(np.zeros((3, 4)), bank, 4) == (0.5, 0.5)  # a reward that cannot rank
    assert ctrl.bank_win_rates(np.ones((3, 4)), bank, 4) == (1.0, 1.0)


@pytest.mark.parametrize(("k", "m", "names"), [(2, 64, "set k"), (8, 2, "set m"), (2, 2, "set k and m")])
def test_no_estimate_below_n_and_the_reason_names_the_setting(k, m, names):
    rng = np.random.default_rng(0)
    assert ctrl.bank_win_rates(rng.normal(size=(4, k)), rng.normal(size=(4, m)), 4) is None
    reason = ctrl.bank_win_rate_gap(k, m, 4)
    assert names in reason and "at least 4" in reason
    assert ctrl.bank_win_rate_gap(4, 4, 4) is None


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
def test_a_run_with_k_below_n_logs_no_best_of_n_number_and_says_why(run_world, tmp_path):
    policy, prompts = run_world
    config = small_config(policy, prompts, tmp_path / "cache", steps=1, n=8)
    seen = []
    ctrl.train(config, on_metrics=seen.append)
    [row] = seen
    assert row["winrate/bon"] is None and row["winrate/won"] is None
    assert "set k to at least 8" in row["winrate/missing"]
    assert math.isfinite(row["winrate/standard"])


def test_the_optimal_phi_is_re_solved_once_beta_moves_past_the_tolerance():
    config = CTRLConfig(transform="optimal", n=4)
    tol = ctrl.PHI_BETA_TOLERANCE
    assert ctrl.phi_beta(config, None, 0.1) == 0.1
    assert ctrl.phi_beta(config, 0.1, 0.1 * (1 + 0.9 * tol)) == 0.1
    assert ctrl.phi_beta(config, 0.1, 0.1 / (1 + 0.9 * tol)) == 0.1
    assert ctrl.phi_beta(config, 0.1, 0.1 * (1 + 1.1 * tol)) == pytest.approx(0.1 * (1 + 1.1 * tol))
    assert ctrl.phi_beta(config, 0.1, 0.1 / (1 + 1.1 * tol)) == pytest.approx(0.1 / (1 + 1.1 * tol))
    assert ctrl.phi_beta(CTRLConfig(transform="exp"), 0.1, 0.5) is None  # Φ does not depend on β
    phi = ctrl.make_phi(config, 0.1)
    assert phi.beta == pytest.approx(0.1) and ctrl.make_phi(config, 0.1) is phi  # solved once, cached


def optimal_config(policy, prompts, cache_dir, **overrides) -> CTRLConfig:
    """An optimal-Φ run whose adaptive β moves by up to 20 % a step (horizon = one batch)."""
    base = dict(transform="optimal", t=None, kl_target=0.05, kl_horizon=16, beta=0.2, learning_rate=3e-3)
    return small_config(policy, prompts, cache_dir, **{**base, **overrides})


@pytest.mark.slow
def test_a_resumed_optimal_run_reproduces_the_uninterrupted_one_and_phi_follows_beta(run_world, tmp_path):
    policy, prompts = run_world
    config = optimal_config(policy, prompts, tmp_path / "cache", steps=4, checkpoint_every=10)
    ctrl.train(config, tmp_path / "whole")
    whole = ctrl.read_metrics(tmp_path / "whole")
    ctrl.train(
        config, tmp_path / "split", should_stop=lambda: len(ctrl.read_metrics(tmp_path / "split")) >= 2
    )
    ctrl.train(config, tmp_path / "split", resume=True)
    split = ctrl.read_metrics(tmp_path / "split")

    def strip(rows):
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]

    assert [r["step"] for r in split] == [1, 2, 3, 4]
    assert strip(split) == strip(whole)  # same seed, same metrics, Φ included
    betas = [r["kl/beta"] for r in whole]
    assert len(set(betas)) == 4  # the controller moved β every step...
    for row in whole:  # ...and Φ stayed optimal within the tolerance of the β the step used
        assert abs(math.log(row["phi/beta"] / row["kl/beta"])) <= math.log1p(ctrl.PHI_BETA_TOLERANCE) + 1e-12
    assert len({r["phi/beta"] for r in whole}) > 1
    checkpoint = ctrl.checkpoint_path(tmp_path / "whole")
    assert ctrl.trained_phi_beta(checkpoint) == whole[-1]["phi/beta"]


def test_kl_as_a_loss_term_logs_the_same_metrics_and_pulls_toward_the_reference(run_world, tmp_path):
    from infalign_core.rewards import callable_reward

    policy, prompts = run_world
    final = {}
    for beta in (1e-3, 3.0):
        config = small_config(policy, prompts, tmp_path / "cache", steps=4, kl_penalty="loss")
        config = dataclasses.replace(config, beta=beta, learning_rate=1e-2)
        models = ctrl.load_models(config)  # a reward with signal: longer responses score higher
        models.reward_fn = callable_reward(lambda prompt, response: float(len(response)), "length")
        rows = []
        ctrl.train(config, on_metrics=rows.append, models=models)
        for row in rows:
            assert math.isfinite(row["kl/k1"]) and math.isfinite(row["kl/calibrated"])
        # Same seed, so the first step samples the same responses either way.
        final[beta] = rows[-1]["kl/k3"]
    assert final[3.0] < final[1e-3]


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


# --- training for an inference procedure ----------------------------------------------------------


def test_a_procedure_spec_is_checked_and_only_shapes_exp_and_optimal():
    with pytest.raises(InfAlignError, match="unknown procedure"):
        CTRLConfig(transform="optimal", procedure="beam:4").validate()
    with pytest.raises(InfAlignError, match="shapes only the exp"):
        CTRLConfig(transform="identity", procedure="poisson:3").validate()
    CTRLConfig(transform="optimal", procedure="poisson:3").validate()


def test_optimal_phi_for_a_procedure_is_that_procedures_optimum_at_beta_and_cached():
    from infalign_core import procedures

    config = CTRLConfig(transform="optimal", procedure="mix:0.5:4")
    phi = ctrl.make_phi(config, 0.2)
    assert phi.beta == pytest.approx(0.2) and ctrl.make_phi(config, 0.2) is phi
    direct = procedures.optimal_for_procedure(procedures.parse_procedure("mix:0.5:4"), beta=0.2)
    u = np.linspace(0, 1, 101)
    assert np.allclose(phi(u), direct(u), atol=1e-12)
    # bon:N as a procedure is the same Φ as transform=optimal with n=N.
    bon = ctrl.make_phi(CTRLConfig(transform="optimal", procedure="bon:4"), 0.2)
    assert np.allclose(bon(u), ctrl.make_phi(CTRLConfig(transform="optimal", n=4), 0.2)(u), atol=1e-12)


def test_exp_t_defaults_to_the_procedures_best_t():
    from infalign_core import procedures

    resolved = CTRLConfig(transform="exp", procedure="poisson:3", t=None, kl_target=0.5).resolved()
    best = procedures.best_exponential_t(procedures.parse_procedure("poisson:3"), 0.5)
    assert resolved.t == pytest.approx(best.t, rel=1e-3) and resolved.mode == best.mode


@pytest.mark.slow
def test_a_run_trains_for_a_procedures_optimal_phi(run_world, tmp_path):
    policy, prompts = run_world
    config = small_config(
        policy, prompts, tmp_path / "cache", steps=2, transform="optimal", t=None, procedure="poisson:2"
    )
    seen = []
    ctrl.train(config, tmp_path / "run", on_metrics=seen.append)
    assert len(seen) == 2 and all(math.isfinite(r["reward/transformed"]) for r in seen)
    assert seen[0]["phi/beta"] == pytest.approx(config.beta)  # the procedure's Φ, optimal at this β
