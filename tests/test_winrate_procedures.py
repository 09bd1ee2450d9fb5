"""Arena estimators for any inference procedure, against enumeration and against the theory."""

import itertools

import numpy as np
import pytest
from scipy import stats

from infalign_core import procedures, winrate
from infalign_core.errors import InfAlignError
from infalign_core.transforms import Transform


def parse(spec):
    return procedures.parse_procedure(spec)


def brute_force(a, b, n_a, n_b):
    """Average over every n_a-subset of a and n_b-subset of b of 1{max > max} + ½·1{=}."""
    wins = [
        (max(x) > max(y)) + 0.5 * (max(x) == max(y))
        for x in itertools.combinations(a, n_a)
        for y in itertools.combinations(b, n_b)
    ]
    return np.mean(wins)


@pytest.mark.parametrize(("n_a", "n_b"), [(1, 3), (3, 1), (2, 4), (4, 4)])
def test_different_n_per_side_matches_enumeration_with_ties(n_a, n_b):
    rng = np.random.default_rng(n_a * 10 + n_b)
    a, b = rng.integers(0, 5, (3, 6)).astype(float), rng.integers(0, 5, (3, 7)).astype(float)
    ours = winrate.weighted_win_rates(
        a, b, winrate.order_statistic_weights(6, n_a), winrate.order_statistic_weights(7, n_b)
    )
    assert np.allclose(ours, [brute_force(a[i], b[i], n_a, n_b) for i in range(3)], atol=1e-12)


def test_mixture_estimate_is_the_bilinear_sum_of_its_parts():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.3, 1, (20, 8)), rng.normal(0, 1, (20, 8))
    p, n = 0.3, 4
    ours = winrate.estimate_procedure_win_rate(a, b, parse(f"mix:{p}:{n}")).win_rate
    parts = {
        (i, j): winrate.weighted_win_rates(
            a, b, winrate.order_statistic_weights(8, i), winrate.order_statistic_weights(8, j)
        ).mean()
        for i in (1, n)
        for j in (1, n)
    }
    weight = {1: 1 - p, n: p}
    assert ours == pytest.approx(sum(weight[i] * weight[j] * w for (i, j), w in parts.items()), abs=1e-12)


def aligned_samples(phi, beta, shape, rng):
    """Calibrated rewards drawn from the aligned density g ∝ e^{Φ/β} (the reference's are uniform)."""
    grid = np.linspace(0, 1, 400_001)
    g = np.exp((phi(grid) - phi(grid).max()) / beta)
    cdf = np.concatenate([[0], np.cumsum(0.5 * (g[1:] + g[:-1]) * np.diff(grid))])
    return np.interp(rng.random(shape), cdf / cdf[-1], grid)


@pytest.mark.parametrize("spec", ["mix:0.5:4", "poisson:2", "won:3", "soft:4:0.1", "reject:0.7:4"])
def test_estimate_lands_on_the_procedures_theory_value(spec):
    # Rewards are the calibrated rewards themselves, so the theory's number is the truth.
    proc, phi, beta = parse(spec), Transform("exp", 6.0, "best"), 0.5
    rng = np.random.default_rng(7)
    a = aligned_samples(phi, beta, (3000, 16), rng)
    b = rng.random((3000, 16))
    estimate = winrate.estimate_procedure_win_rate(
        a, b, proc, challenger_calibrated=a, reference_calibrated=b, draws=200, resamples=200
    )
    truth = procedures.procedure_win_rate(phi, beta, proc)
    half_width = 0.5 * (estimate.ci_high - estimate.ci_low)
    assert abs(estimate.win_rate - truth) <= 2.5 * half_width / 1.96 + estimate.bias_bound
    assert estimate.ci_low < estimate.win_rate < estimate.ci_high


def test_poisson_truncation_reports_its_mass_and_bounds_its_bias():
    proc, phi, beta = parse("poisson:6"), Transform("exp", 6.0, "best"), 0.5
    rng = np.random.default_rng(3)
    k = 5
    a, b = aligned_samples(phi, beta, (4000, k), rng), rng.random((4000, k))
    estimate = winrate.estimate_procedure_win_rate(a, b, proc, resamples=200)
    assert estimate.method == "truncated"
    assert estimate.truncated_mass == pytest.approx(stats.poisson.sf(k - 1, 6.0), rel=1e-9)
    assert estimate.bias_bound == pytest.approx(1 - (1 - estimate.truncated_mass) ** 2)
    truth = procedures.procedure_win_rate(phi, beta, proc)
    assert abs(estimate.win_rate - truth) <= estimate.bias_bound + 0.02
    exact = winrate.estimate_procedure_win_rate(a, b, parse("poisson:0.5"), resamples=200)
    assert exact.method == "truncated" and exact.truncated_mass < 1e-3


def test_reference_against_itself_is_a_half_for_every_procedure():
    rng = np.random.default_rng(5)
    a, b = rng.random((4000, 8)), rng.random((4000, 8))
    for spec in ("mix:0.5:8", "poisson:1", "soft:4:0.2", "reject:0.5:3"):
        est = winrate.estimate_procedure_win_rate(
            a, b, parse(spec), challenger_calibrated=a, reference_calibrated=b, draws=100, resamples=200
        )
        assert est.ci_low - est.bias_bound <= 0.5 <= est.ci_high + est.bias_bound, spec


def test_bad_inputs_are_refused():
    a = np.zeros((3, 4))
    with pytest.raises(InfAlignError, match="K = 4"):
        winrate.estimate_procedure_win_rate(a, a, parse("bon:8"))
    with pytest.raises(InfAlignError, match="calibrated"):
        winrate.estimate_procedure_win_rate(a, a, parse("soft:2:0.1"))
    with pytest.raises(InfAlignError, match="theory numbers only"):
        winrate.estimate_procedure_win_rate(a, a, parse("expr:x**2"))
    with pytest.raises(InfAlignError, match="same prompts"):
        winrate.estimate_procedure_win_rate(a, np.zeros((2, 4)), parse("bon:2"))
