"""The optimal transform: a fixed point, checked against an independent solver and the theory's laws."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infalign_core import optimal, procedures, theory
from infalign_core.errors import InfAlignError


def fixed_point_iteration(n, beta, mode, points=20001, damping=0.5, steps=400):
    """Damped fixed-point iteration Φ ← ∫ Φ'(G_Φ) on a uniform grid: slow, but independent."""
    u = np.linspace(0.0, 1.0, points)
    lam = 1.0 / beta

    def cumtrapz(f):
        return np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(u))])

    phi = u.copy()
    for _ in range(steps):
        g = np.exp(lam * (phi - phi.max()))
        cdf = cumtrapz(g)
        cdf /= cdf[-1]
        if mode == "best":
            slope = n * n * u ** (n - 1) * cdf ** (n - 1)
        else:
            slope = n * n * (1 - u) ** (n - 1) * (1 - cdf) ** (n - 1)
        phi = (1 - damping) * phi + damping * cumtrapz(slope)
    return u, phi


@pytest.mark.parametrize(("n", "beta"), [(2, 1.0), (3, 0.5), (4, 1.0)])
@pytest.mark.parametrize("mode", ["best", "worst"])
def test_matches_an_independent_fixed_point_iteration_to_1e4(n, beta, mode):
    u, expected = fixed_point_iteration(n, beta, mode)
    solved = optimal.optimal_transform(n, beta, mode)
    assert solved.beta == pytest.approx(beta, rel=1e-8)
    assert np.max(np.abs(solved(u) - expected)) < 1e-4


@pytest.mark.parametrize("mode", ["best", "worst"])
def test_n_equal_one_is_the_identity(mode):
    solved = optimal.optimal_transform(1, 0.3, mode)
    u = np.linspace(0, 1, 101)
    assert np.allclose(solved(u), u, atol=1e-9)


@pytest.mark.parametrize("mode", ["best", "worst"])
@pytest.mark.parametrize(("n", "beta"), [(4, 0.2), (64, 0.01), (1024, 1e-3), (8, 1e3)])
def test_solution_is_consistent_with_the_engine(n, beta, mode):
    # The ODE's own KL (carried as an extra state) must agree with the quadrature engine's.
    solved = optimal.optimal_transform(n, beta, mode)
    point = theory.evaluate(solved, solved.beta, n)
    assert point.kl == pytest.approx(solved.kl, rel=1e-6, abs=1e-10)
    phi = solved(np.linspace(0, 1, 201))
    assert phi[0] == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.diff(phi) >= -1e-12)


@pytest.mark.parametrize("mode", ["best", "worst"])
def test_small_kl_optimum_behaves_like_u_to_the_2n_minus_1(mode):
    # THEORY.md: at small KL Φ ∝ u^{2N−1} (worst-of-N: mirrored). Compare shapes normalised to Φ(1) = 1.
    n = 3
    solved = optimal.optimal_transform(n, 1e3, mode)
    u = np.linspace(0, 1, 101)
    shape = solved(u) / solved(np.array([1.0]))[0]
    expected = u ** (2 * n - 1) if mode == "best" else 1 - (1 - u) ** (2 * n - 1)
    assert np.max(np.abs(shape - expected)) < 1e-3


@given(n=st.integers(2, 32), kl=st.floats(0.05, 1.5), mode=st.sampled_from(["best", "worst"]))
@settings(max_examples=8, deadline=None)
def test_optimal_is_never_below_the_best_exponential_at_equal_kl(n, kl, mode):
    if kl > optimal.reachable(n, mode)[0]:  # past the verified edge the solver must refuse, not guess
        with pytest.raises(InfAlignError, match="nats"):
            optimal.optimal_transform_for_kl(n, kl, mode)
        return
    solved = optimal.optimal_transform_for_kl(n, kl, mode)
    assert solved.kl == pytest.approx(kl, rel=1e-6)
    point = theory.evaluate(solved, solved.beta, n)
    ours = point.bon_win_rate if mode == "best" else point.won_win_rate
    try:
        best_exp = procedures.best_exponential_t(procedures.of_n(n, mode), kl).win_rate
    except (InfAlignError, ValueError):
        return  # no exponential reaches this KL: nothing to compare with
    assert ours >= best_exp - 1e-7


def test_bad_arguments_are_rejected():
    with pytest.raises(InfAlignError, match="β"):
        optimal.optimal_transform(4, 0.0)
    with pytest.raises(InfAlignError, match="β must lie"):
        optimal.optimal_transform(4, 1e-5)
    with pytest.raises(InfAlignError, match="N must"):
        optimal.optimal_transform(0, 1.0)
    with pytest.raises(InfAlignError, match="mode"):
        optimal.optimal_transform(4, 1.0, "median")
    with pytest.raises(InfAlignError, match="KL budget"):
        optimal.optimal_transform_for_kl(4, -1.0)


def test_theory_modules_import_without_a_circle():
    """theory, transforms and checks load without optimal: the solver sits above the engine that checks it."""
    import subprocess
    import sys

    code = (
        "import sys, infalign_core.theory, infalign_core.transforms;"
        "assert 'infalign_core.optimal' not in sys.modules, 'theory pulled in optimal'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@given(
    n=st.sampled_from([1, 2, 4, 16, 64, 256, 1024]),
    kl=st.floats(1e-3, 60.0),
    mode=st.sampled_from(["best", "worst"]),
)
@settings(max_examples=12, deadline=None)
def test_kl_budget_is_hit_as_the_engine_measures_it_or_refused_naming_the_range(n, kl, mode):
    # The returned Φ is evaluated independently (quadrature engine, not the ODE's own KL).
    try:
        solved = optimal.optimal_transform_for_kl(n, kl, mode)
    except InfAlignError as err:
        kl_max, _ = optimal.reachable(n, mode)
        assert f"{kl_max:.4g}" in str(err) and "reaches KL in" in str(err)
        assert kl > 0.99 * kl_max  # only budgets near or past the verified edge are refused
        return
    engine_kl = theory.evaluate(solved, solved.beta, n).kl
    assert engine_kl == pytest.approx(kl, rel=optimal.KL_TOLERANCE, abs=1e-12)


@given(
    n=st.sampled_from([2, 16, 64, 256, 1024]),
    beta=st.floats(1e-3, 1e3),
    mode=st.sampled_from(["best", "worst"]),
)
@settings(max_examples=8, deadline=None)
def test_beta_is_hit_with_an_engine_checked_kl_or_refused(n, beta, mode):
    try:
        solved = optimal.optimal_transform(n, beta, mode)
    except InfAlignError as err:
        assert "reaches KL in" in str(err)
        assert beta < 1.01 * optimal.reachable(n, mode)[1]
        return
    assert solved.beta == pytest.approx(beta, rel=optimal.KL_TOLERANCE)
    assert theory.evaluate(solved, solved.beta, n).kl == pytest.approx(
        solved.kl, rel=optimal.KL_TOLERANCE, abs=1e-12
    )


@pytest.mark.parametrize(
    ("n", "kl", "mode"),
    [(4, 50.0, "best"), (64, 1.5, "worst")],  # the audit's cases: KL 20.7 and a Φ whose real KL was 0.58
)
def test_the_audited_unreachable_budgets_are_refused(n, kl, mode):
    with pytest.raises(InfAlignError, match=r"reaches KL in \(0, "):
        optimal.optimal_transform_for_kl(n, kl, mode)


@pytest.mark.parametrize(("n", "mode"), [(64, "worst"), (256, "best"), (4, "best")])
def test_every_member_of_the_family_is_confirmed_by_the_engine(n, mode):
    family = optimal.optimal_transforms(n, mode, kl_max=3.0, count=8)
    assert family
    for phi in family:
        engine = theory.evaluate(phi, phi.beta, n).kl
        assert engine == pytest.approx(phi.kl, rel=optimal.KL_TOLERANCE, abs=1e-12)


def test_a_refusal_never_names_a_range_that_contains_the_refused_value(monkeypatch):
    """β = 0.001 at N = 64 once read "…i.e. β ≥ 9.96e-09": the refused value inside the stated range."""
    monkeypatch.setattr(optimal, "_solve_verified", lambda *args: None)  # the stiff shot fails
    kl_max, _ = optimal.reachable(64, "best")
    with pytest.raises(InfAlignError) as inside:
        optimal.optimal_transform(64, 0.001, "best")
    assert "could not verify β = 0.001" in str(inside.value) and "although" in str(inside.value)
    with pytest.raises(InfAlignError) as beyond:
        optimal.optimal_transform_for_kl(64, kl_max * 2, "best")
    assert "is beyond" in str(beyond.value) and "lower the KL budget" in str(beyond.value)
