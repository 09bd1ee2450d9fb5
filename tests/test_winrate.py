"""Win-rate estimators, KL estimates, challenger loading and the arena loop."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infalign_core import winrate
from infalign_core.cli import main as cli_main
from infalign_core.errors import InfAlignError


def brute_force(a: np.ndarray, b: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Average of 1{pick(A) > pick(B)} + ½·1{=} over every pair of N-subsets, per prompt."""
    pick = max if mode == "best" else min
    out = []
    for row_a, row_b in zip(a, b):
        scores = [
            (pick(sa) > pick(sb)) + 0.5 * (pick(sa) == pick(sb))
            for sa in itertools.combinations(row_a, n)
            for sb in itertools.combinations(row_b, n)
        ]
        out.append(np.mean(scores))
    return np.array(out)


# --- the estimators -------------------------------------------------------------------------


def test_order_statistic_weights_are_the_binomial_probabilities():
    from math import comb

    k, n = 7, 3
    best = winrate.order_statistic_weights(k, n, "best")
    expected = [comb(j - 1, n - 1) / comb(k, n) for j in range(1, k + 1)]
    np.testing.assert_allclose(best, expected, rtol=1e-12)
    np.testing.assert_allclose(winrate.order_statistic_weights(k, n, "worst"), expected[::-1], rtol=1e-12)
    assert winrate.order_statistic_weights(400, 64).sum() == pytest.approx(1.0)


@pytest.mark.parametrize("mode", ["best", "worst"])
def test_unbiased_estimator_matches_brute_force_enumeration_with_ties(mode):
    rng = np.random.default_rng(0)
    for _ in range(25):
        k_a, k_b = rng.integers(1, 7, size=2)
        n = int(rng.integers(1, min(k_a, k_b) + 1))
        a = rng.integers(0, 4, size=(3, k_a)).astype(float)  # few distinct values: many ties
        b = rng.integers(0, 4, size=(3, k_b)).astype(float)
        np.testing.assert_allclose(
            winrate.per_prompt_win_rates(a, b, n, mode), brute_force(a, b, n, mode), atol=1e-12
        )


def test_reference_against_itself_gives_one_half_within_its_interval():
    rng = np.random.default_rng(1)
    estimate = winrate.estimate_win_rates(rng.normal(size=(200, 16)), rng.normal(size=(200, 16)), 4)
    for name in winrate.METRICS:
        value = getattr(estimate, name)
        assert getattr(estimate, f"{name}_ci_low") <= 0.5 <= getattr(estimate, f"{name}_ci_high")
        assert abs(value - 0.5) < 0.05


def test_a_challenger_that_always_scores_higher_wins_every_time():
    rng = np.random.default_rng(2)
    reference = rng.normal(size=(10, 8))
    estimate = winrate.estimate_win_rates(reference + 100.0, reference, 4)
    assert estimate.standard_win_rate == estimate.bon_win_rate == estimate.won_win_rate == 1.0
    assert estimate.bon_win_rate_ci_low == estimate.bon_win_rate_ci_high == 1.0


def test_all_equal_rewards_count_half_exactly():
    same = np.ones((5, 6))
    for n in (1, 3, 6):
        for mode in ("best", "worst"):
            assert winrate.win_rate(same, same, n, mode) == 0.5


def test_n_equal_one_is_the_standard_pairwise_win_rate():
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 5, size=(4, 7)).astype(float), rng.integers(0, 5, size=(4, 9)).astype(float)
    pairwise = ((a[:, :, None] > b[:, None, :]) + 0.5 * (a[:, :, None] == b[:, None, :])).mean(axis=(1, 2))
    np.testing.assert_allclose(winrate.per_prompt_win_rates(a, b, 1, "best"), pairwise)
    np.testing.assert_allclose(winrate.per_prompt_win_rates(a, b, 1, "worst"), pairwise)


rewards = st.integers(1, 5).flatmap(
    lambda k: st.lists(
        st.lists(st.sampled_from([-1.0, 0.0, 0.5, 2.0]), min_size=k, max_size=k), min_size=1, max_size=4
    )
)


@settings(max_examples=60, deadline=None)
@given(a=rewards, b=rewards, n=st.integers(1, 5), mode=st.sampled_from(["best", "worst"]))
def test_win_rates_lie_in_unit_interval_and_are_symmetric(a, b, n, mode):
    a, b = np.array(a), np.array(b)
    rows = min(len(a), len(b))
    a, b = a[:rows], b[:rows]
    n = min(n, a.shape[1], b.shape[1])
    forward = winrate.per_prompt_win_rates(a, b, n, mode)
    backward = winrate.per_prompt_win_rates(b, a, n, mode)
    assert np.all((forward >= 0) & (forward <= 1))
    np.testing.assert_allclose(forward + backward, 1.0, atol=1e-12)


def test_naive_one_subset_estimator_is_unbiased_but_noisier():
    rng = np.random.default_rng(4)
    unbiased, naive = [], []
    for trial in range(200):
        a, b = rng.normal(0.3, 1, size=(20, 8)), rng.normal(0, 1, size=(20, 8))
        unbiased.append(winrate.win_rate(a, b, 4))
        naive.append(winrate.naive_per_prompt_win_rates(a, b, 4, seed=trial).mean())
    assert abs(np.mean(naive) - np.mean(unbiased)) < 0.02
    assert np.var(naive) > 1.5 * np.var(unbiased)


def test_bootstrap_is_seeded_and_paired_difference_has_its_interval():
    values = np.random.default_rng(5).uniform(size=(2, 50))
    np.testing.assert_array_equal(
        winrate.bootstrap_interval(values, seed=3), winrate.bootstrap_interval(values, seed=3)
    )
    low, high = winrate.bootstrap_interval(values)
    assert low.shape == (2,) and np.all(low < values.mean(axis=1)) and np.all(values.mean(axis=1) < high)
    diff, low, high = winrate.paired_difference(values[0] + 0.2, values[0])
    assert diff == pytest.approx(0.2) and low == pytest.approx(0.2) and high == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("a", "b", "n", "message"),
    [
        (np.zeros((2, 3)), np.zeros((2, 3)), 4, "K ≥ N"),
        (np.zeros((2, 3)), np.zeros((2, 3)), 0, "at least 1"),
        (np.zeros((2, 3)), np.zeros((3, 3)), 1, "same prompts"),
        (np.zeros(3), np.zeros(3), 1, "[prompts, samples]"),
        (np.array([[0.0, np.nan]]), np.zeros((1, 2)), 1, "NaN"),
    ],
)
def test_bad_inputs_get_a_clear_message(a, b, n, message):
    with pytest.raises(InfAlignError, match=message.replace("[", r"\[").replace("]", r"\]")):
        winrate.estimate_win_rates(a, b, n)


# --- KL ---------------------------------------------------------------------------------------


def test_kl_estimates_are_zero_for_identical_log_probs_and_k1_is_the_mean_log_ratio():
    logp = np.random.default_rng(6).normal(size=40)
    same = winrate.kl_from_logprobs(logp, logp, np.repeat(np.arange(8), 5))
    assert same.k1 == same.k3 == 0.0 and same.num_prompts == 8
    shifted = winrate.kl_from_logprobs(logp + 0.3, logp)
    assert shifted.k1 == pytest.approx(0.3)
    assert shifted.k3 == pytest.approx(np.expm1(-0.3) + 0.3)
    with pytest.raises(InfAlignError, match="non-finite"):
        winrate.kl_from_logprobs([0.0, -np.inf], [0.0, 0.0])


# --- models, runs and the arena -----------------------------------------------------------


@pytest.fixture(scope="module")
def reward_fn():
    from conftest import tiny_sentiment

    from infalign_core.rewards import callable_reward

    return callable_reward(lambda prompt, response: tiny_sentiment(prompt + response), "tiny sentiment")


PROMPTS = ["the movie", "this film", "the plot", "the acting", "the ending", "the music"]


def test_reference_against_itself_in_the_arena_is_one_half_with_zero_kl(tiny_policy, reward_fn):
    states = list(
        winrate.run_arena(
            tiny_policy, tiny_policy, reward_fn, PROMPTS, n=2, k=6, max_new_tokens=8, prompts_per_batch=4
        )
    )
    assert [s.done for s in states] == [4, 6]
    final = states[-1]
    assert final.challenger_rewards.shape == final.reference_rewards.shape == (6, 6)
    for name in winrate.METRICS:
        assert getattr(final.estimate, f"{name}_ci_low") <= 0.5 <= getattr(final.estimate, f"{name}_ci_high")
    assert final.kl.k1 == pytest.approx(0.0, abs=1e-6) and final.kl.k3 == pytest.approx(0.0, abs=1e-6)
    [pick] = winrate.example_picks(final, 1)
    assert pick.winner in ("challenger", "reference", "tie") and pick.prompt == PROMPTS[0]


def test_arena_refuses_n_above_k(tiny_policy, reward_fn):
    with pytest.raises(InfAlignError, match="K ≥ N"):
        next(winrate.run_arena(tiny_policy, tiny_policy, reward_fn, PROMPTS, n=5, k=4))


def test_a_folder_that_is_not_a_causal_lm_is_refused_clearly(tiny_world):
    with pytest.raises(InfAlignError, match="not a causal language model"):
        winrate.load_challenger(str(tiny_world.reward), device="cpu")
    with pytest.raises(InfAlignError, match=r"config\.json"):
        winrate.load_challenger(str(tiny_world.empty), device="cpu")


def _fake_run(root, tiny_world, *, checkpoint: bool, transform: str = "exp"):
    import shutil

    run = root / f"run-{transform}"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"transform": transform, "t": 10.0, "mode": "best", "n": 4}))
    if checkpoint:
        shutil.copytree(tiny_world.policy, run / "checkpoint")
        (run / "checkpoint" / "trainer_state.pt").write_bytes(b"")
    return run


def test_a_run_folder_or_id_resolves_to_its_checkpoint(tmp_path, tiny_world):
    run = _fake_run(tmp_path, tiny_world, checkpoint=True)
    for source in (str(run), run.name, str(run / "checkpoint")):
        resolved = winrate.resolve_challenger(source, runs_root=tmp_path)
        assert resolved.model.endswith("checkpoint") and resolved.run_dir == run
        assert resolved.run_config["transform"] == "exp"
    assert winrate.resolve_challenger("reference").model == "default"


def test_a_run_without_checkpoint_says_to_wait(tmp_path, tiny_world):
    run = _fake_run(tmp_path, tiny_world, checkpoint=False)
    with pytest.raises(InfAlignError, match="no checkpoint yet"):
        winrate.resolve_challenger(str(run))


def test_theory_curve_and_point_for_a_run_and_none_for_raw():
    config = {"transform": "exp", "t": 12.0, "mode": "best", "n": 4}
    curve = winrate.theory_curve(config, 4)
    assert curve["kl"].size > 10 and np.all(np.diff(curve["bon_win_rate"]) * np.diff(curve["kl"]) >= -1e-9)
    point = winrate.theory_at_kl(config, 4, 0.5)
    assert point["kl"] == pytest.approx(0.5) and point["bon_win_rate"] == pytest.approx(0.8726, abs=1e-3)
    assert winrate.theory_curve({"transform": "raw"}, 4) is None
    assert winrate.theory_at_kl({"transform": "raw"}, 4, 0.5) is None


def test_arena_results_survive_as_json_and_replace_same_settings(tmp_path):
    first = {"settings": {"n": 4, "k": 8}, "win_rates": {"bon_win_rate": 0.6}}
    other = {"settings": {"n": 2, "k": 8}, "win_rates": {"bon_win_rate": 0.7}}
    winrate.save_arena_result(tmp_path, first)
    winrate.save_arena_result(tmp_path, other)
    winrate.save_arena_result(tmp_path, {**first, "win_rates": {"bon_win_rate": 0.65}})
    saved = winrate.load_arena_results(tmp_path)
    assert len(saved) == 2
    assert winrate.find_arena_result(tmp_path, {"n": 4, "k": 8})["win_rates"]["bon_win_rate"] == 0.65
    assert winrate.load_arena_results(tmp_path / "missing") == []


# --- command line -----------------------------------------------------------------------------


def test_cli_rejects_n_above_k(capsys):
    assert cli_main(["winrate", "--policy", "reference", "--n", "8", "--k", "4"]) == 2
    assert "raise K to at least" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_prints_win_rates_with_intervals_and_kl(tmp_path, tiny_world, capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    code = cli_main(
        [
            "winrate",
            "--policy",
            str(tiny_world.policy),
            "--reference",
            str(tiny_world.policy),
            "--reward",
            "oracle",
            "--prompts",
            str(prompts),
            "--n",
            "2",
            "--k",
            "4",
            "--num-prompts",
            "6",
            "--max-new-tokens",
            "8",
            "--device",
            "cpu",
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for name in winrate.METRICS:
        assert out[f"{name}_ci_low"] <= out[name] <= out[f"{name}_ci_high"]
    assert out["kl"] == pytest.approx(0.0, abs=1e-6) and out["num_prompts"] == 6


def test_cli_on_a_run_folder_uses_its_checkpoint_reference_and_reward_and_saves(tmp_path, tiny_world, capsys):
    run = _fake_run(tmp_path, tiny_world, checkpoint=True)
    config = json.loads((run / "config.json").read_text())
    config.update(policy=str(tiny_world.policy), reward="oracle", max_new_tokens=8)
    (run / "config.json").write_text(json.dumps(config))
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    args = ["winrate", "--policy", str(run), "--prompts", str(prompts), "--n", "2", "--k", "4"]
    assert cli_main([*args, "--num-prompts", "4", "--device", "cpu", "--save", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["policy"] == f"run {run.name}" and out["reward"] == "oracle"
    assert out["kl"] == pytest.approx(0.0, abs=1e-6)  # the checkpoint is the reference's weights
    assert out["theory_bon_win_rate"] == 0.5
    [saved] = winrate.load_arena_results(run)
    assert saved["win_rates"]["bon_win_rate"] == pytest.approx(out["bon_win_rate"])
