"""Win-rate and KL estimators."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infalign_core import winrate
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
