"""The calibrated-space engine against closed forms, adaptive quadrature and its own laws."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate

from infalign_core import procedures, theory
from infalign_core.errors import InfAlignError
from infalign_core.transforms import Transform

IDENTITY, LOG = Transform("identity"), Transform("log")


def identity_closed_form(beta):
    """KL and W₁ of the identity transform, written stably for large λ."""
    lam = 1.0 / beta
    log_one_minus = np.log(-np.expm1(-lam))  # log(1 − e^{−λ})
    kl = np.log(lam) - lam - log_one_minus + lam / (-np.expm1(-lam)) - 1.0
    return kl, 1.0 / (-np.expm1(-lam)) - 1.0 / lam


@pytest.mark.parametrize("beta", [1e-3, 0.01, 0.1, 0.5, 1.0, 10.0, 1e3])
def test_identity_matches_closed_form(beta):
    kl, w1 = identity_closed_form(beta)
    point = theory.evaluate(IDENTITY, beta, 1)
    assert point.kl == pytest.approx(kl, abs=1e-9)
    assert point.standard_win_rate == pytest.approx(w1, abs=1e-9)


@pytest.mark.parametrize("n", [2, 3, 4, 16, 100, 1024])
def test_log_transform_at_beta_one_over_n_minus_one_is_the_best_of_n_policy(n):
    point = theory.evaluate(LOG, 1.0 / (n - 1), 1)
    assert point.kl == pytest.approx(np.log(n) - (n - 1) / n, abs=1e-9)
    assert point.standard_win_rate == pytest.approx(n / (n + 1), abs=1e-9)
    reference = theory.bon_policy_point(n)
    assert reference.kl == pytest.approx(point.kl, abs=1e-9)


@pytest.mark.parametrize("beta", [0.05, 0.3, 2.0])
@pytest.mark.parametrize("n", [1, 2, 8, 64, 1024])
def test_log_family_bon_win_rate_equals_standard_win_rate_for_every_n(beta, n):
    point = theory.evaluate(LOG, beta, n)
    assert point.bon_win_rate == pytest.approx(point.standard_win_rate, abs=1e-9)


@pytest.mark.parametrize(
    "phi",
    [IDENTITY, LOG, Transform("exp", 12.0, "best"), Transform("exp", 8.0, "worst")],
    ids=lambda p: p.label,
)
@pytest.mark.parametrize("beta", [0.01, 0.2, 5.0])
def test_n_equal_one_reduces_bon_and_won_to_the_standard_win_rate(phi, beta):
    point = theory.evaluate(phi, beta, 1)
    assert point.bon_win_rate == pytest.approx(point.standard_win_rate, abs=1e-10)
    assert point.won_win_rate == pytest.approx(point.standard_win_rate, abs=1e-10)


def quadrature(phi, beta, n):
    """KL, W₁, BoN and WoN by scipy's adaptive quadrature (the slow independent check)."""
    lam = 1.0 / beta
    top = lam * phi(np.array([1.0]))[0]

    def f(u):
        return np.exp(lam * phi(np.array([u]))[0] - top)

    quad = dict(limit=400, epsabs=1e-13, epsrel=1e-12)
    z = integrate.quad(f, 0, 1, **quad)[0]

    def g(u):
        return f(u) / z

    def cdf(u):
        return integrate.quad(g, 0, u, **quad)[0]

    kl = integrate.quad(lambda u: g(u) * np.log(g(u)) if g(u) > 0 else 0.0, 0, 1, **quad)[0]
    w1 = integrate.quad(lambda u: u * g(u), 0, 1, **quad)[0]
    bon = 1 - integrate.quad(lambda u: cdf(u) ** n * n * u ** (n - 1), 0, 1, limit=200)[0]
    won = integrate.quad(lambda u: (1 - cdf(u)) ** n * n * (1 - u) ** (n - 1), 0, 1, limit=200)[0]
    return np.array([kl, w1, bon, won])


@pytest.mark.parametrize(
    ("phi", "beta", "n"),
    [
        (Transform("exp", 12.0, "best"), 0.1, 4),
        (Transform("exp", 5.0, "worst"), 0.2, 4),
        (Transform("exp", 30.0, "best"), 0.05, 16),
        (Transform("exp", 3.0, "worst"), 1.0, 8),
        (LOG, 0.5, 3),
        (IDENTITY, 0.05, 2),
    ],
    ids=str,
)
def test_matches_adaptive_quadrature_to_1e6(phi, beta, n):
    point = theory.evaluate(phi, beta, n)
    ours = np.array([point.kl, point.standard_win_rate, point.bon_win_rate, point.won_win_rate])
    assert np.allclose(ours, quadrature(phi, beta, n), atol=1e-6, rtol=0)


transforms = st.one_of(
    st.just(IDENTITY),
    st.just(LOG),
    st.builds(Transform, st.just("exp"), st.floats(0.0, 500.0), st.sampled_from(["best", "worst"])),
)
betas = st.floats(1e-3, 1e3)
ns = st.integers(1, 1024)


@given(phi=transforms, beta=betas, n=ns)
@settings(max_examples=80, deadline=None)
def test_everything_is_finite_and_in_range_over_the_whole_parameter_box(phi, beta, n):
    point = theory.evaluate(phi, beta, n)
    values = np.array([point.kl, point.standard_win_rate, point.bon_win_rate, point.won_win_rate])
    assert np.all(np.isfinite(values))
    assert point.kl >= 0
    assert 0.0 <= point.standard_win_rate <= 1.0
    assert 0.0 <= point.bon_win_rate <= 1.0 and 0.0 <= point.won_win_rate <= 1.0
    # Any increasing Φ tilts towards higher calibrated reward: never worse than the reference.
    assert point.standard_win_rate >= 0.5 - 1e-9


@given(phi=transforms, n=st.integers(1, 64))
@settings(max_examples=30, deadline=None)
def test_kl_decreases_and_win_rate_falls_as_beta_grows(phi, n):
    sweep = theory.frontier(phi, np.geomspace(1e-3, 1e3, 40), ns=(n,))
    assert np.all(np.diff(sweep.kl) <= 1e-12)
    assert np.all(np.diff(sweep.standard_win_rate) <= 1e-12)


def test_frontier_agrees_with_pointwise_evaluation():
    phi = Transform("exp", 10.0, "best")
    betas = np.geomspace(0.01, 10, 7)
    sweep = theory.frontier(phi, betas, ns=(1, 4, 32))
    for j, beta in enumerate(betas):
        for i, n in enumerate(sweep.ns):
            point = theory.evaluate(phi, beta, n)
            assert sweep.kl[j] == pytest.approx(point.kl, abs=1e-9)
            assert sweep.bon_win_rate[i, j] == pytest.approx(point.bon_win_rate, abs=1e-9)
            assert sweep.won_win_rate[i, j] == pytest.approx(point.won_win_rate, abs=1e-9)


@pytest.mark.parametrize(
    "phi", [IDENTITY, LOG, Transform("exp", 20.0, "best"), Transform("exp", 3.0, "worst")]
)
@pytest.mark.parametrize("kl", [0.01, 0.5, 2.0])
def test_beta_for_kl_inverts_kl(phi, kl):
    beta = theory.beta_for_kl(phi, kl)
    assert theory.evaluate(phi, beta, 1).kl == pytest.approx(kl, rel=1e-7, abs=1e-8)


def test_unreachable_kl_budget_says_so():
    with pytest.raises(InfAlignError, match="beyond this transform's reach"):
        theory.beta_for_kl(IDENTITY, 50.0)
    with pytest.raises(InfAlignError, match="> 0"):
        theory.beta_for_kl(IDENTITY, 0.0)


@pytest.mark.parametrize("beta", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_beta_is_rejected(beta):
    with pytest.raises(InfAlignError, match="β"):
        theory.evaluate(IDENTITY, beta, 1)


@pytest.mark.parametrize("n", [0, -3, 2.5, 1025])
def test_bad_n_is_rejected(n):
    with pytest.raises(InfAlignError, match="N must"):
        theory.evaluate(IDENTITY, 1.0, n)


def test_bon_policy_point_is_the_closed_form():
    point = theory.bon_policy_point(4, n_eval=4)
    assert point.kl == pytest.approx(np.log(4) - 0.75)
    assert point.standard_win_rate == pytest.approx(0.8) and point.bon_win_rate == pytest.approx(0.8)
    assert 0.5 < point.won_win_rate < 1.0
    assert theory.bon_policy_point(1).kl == 0.0


def test_best_exponential_t_beats_its_neighbours_at_equal_kl():
    choice = procedures.best_exponential_t(procedures.of_n(4, "best"), 0.5)
    for factor in (0.5, 2.0):
        phi = Transform("exp", choice.t * factor, "best")
        other = theory.evaluate(phi, theory.beta_for_kl(phi, 0.5), 4).bon_win_rate
        assert choice.win_rate >= other
    identity = theory.evaluate(IDENTITY, theory.beta_for_kl(IDENTITY, 0.5), 4).bon_win_rate
    assert choice.win_rate > identity + 0.01
