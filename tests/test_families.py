"""Cached families give the exact points the exact solvers give, at a fraction of the cost."""

import numpy as np
import plotly.graph_objects as go
import pytest

from infalign_core import explorer, families, figures, optimal, procedures, theory


@pytest.fixture(scope="module", params=["best", "worst"])
def optimal_family(request):
    return families.optimal_family(4, request.param)


@pytest.fixture(scope="module", params=["best", "worst"])
def exponential_family(request):
    return families.exponential_family((1, 4, 16), request.param)


@pytest.mark.parametrize("kl", [0.05, 0.37, 1.0, 2.5, 7.9])
def test_optimal_at_kl_from_the_family_matches_the_exact_solve(optimal_family, kl):
    fam = optimal_family.at_kl(kl)
    exact = optimal.optimal_transform_for_kl(4, kl, optimal_family.mode)
    assert fam.kl == pytest.approx(kl, rel=1e-5)
    assert fam.beta == pytest.approx(exact.beta, rel=1e-4)
    u = np.linspace(0, 1, 101)
    assert np.allclose(fam(u) / fam(u).max(), exact(u) / exact(u).max(), atol=1e-4)


def test_optimal_family_covers_small_and_large_budgets_densely(optimal_family):
    kls = np.exp(optimal_family.log_kl)
    assert kls[0] <= 0.02 and kls[-1] >= 7.5  # beyond it at_kl falls back to the exact solve
    inside = (kls >= 0.02) & (kls <= 8.5)
    close = (np.diff(optimal_family.log_kl[inside]) <= 0.1 + 1e-9) | (np.diff(kls[inside]) <= 0.02 + 1e-9)
    assert close.all()


@pytest.mark.parametrize("kl", [0.05, 0.5, 2.0])
@pytest.mark.parametrize("n", [1, 4, 16])
def test_best_t_from_the_family_loses_under_1e4_of_win_rate_to_the_exact_search(exponential_family, n, kl):
    mode = exponential_family.mode
    fam = exponential_family.best_t(n, kl)
    exact = procedures.best_exponential_t(procedures.of_n(n, mode), kl)
    assert fam.win_rate == pytest.approx(exact.win_rate, abs=1e-4)
    # and its numbers are the exact point of the t it names
    point = theory.evaluate(explorer.Transform("exp", fam.t, mode), fam.beta, n)
    assert point.kl == pytest.approx(kl, rel=1e-6)


def test_family_resolve_matches_the_exact_resolve(optimal_family, exponential_family):
    mode = optimal_family.mode
    for name in ("optimal", "exp", "identity"):
        fam = explorer.resolve_transform(
            name, n=4, mode=mode, kl=0.6, optimal_family=optimal_family, exponential_family=exponential_family
        )
        exact = explorer.resolve_transform(name, n=4, mode=mode, kl=0.6)
        assert fam.point.kl == pytest.approx(exact.point.kl, rel=1e-5)
        assert fam.win_rate == pytest.approx(
            exact.win_rate, abs=1e-4 if mode == exponential_family.mode else 1
        )


def test_best_t_rows_match_the_exact_table_columns(exponential_family):
    rows = families.best_t_rows(exponential_family, (1, 4, 16), 0.5)
    exact = explorer.best_t_table((1, 4, 16), 0.5, exponential_family.mode)
    assert [list(r) for r in rows] == [list(r) for r in exact]
    for row, ref in zip(rows, exact):
        assert row["win rate"] == pytest.approx(ref["win rate"], abs=1e-4)
        assert row["identity win rate"] == pytest.approx(ref["identity win rate"], abs=1e-12)


def test_theory_figures_are_valid_plotly_when_validated():
    # The page builds figures without validation for speed; validation here must accept them.
    r = {
        k: explorer.resolve_transform(k, n=4, kl=0.5, t=10.0 if k == "exp" else None)
        for k in ("identity", "exp")
    }
    curves = [{"name": k, "label": v.label, **explorer.transform_curve(v.phi)} for k, v in r.items()]
    dens = [
        {"name": k, "label": v.label, **theory.aligned_policy(v.phi, v.beta).curves(0)} for k, v in r.items()
    ]
    lines = figures.closed_form_frontier_lines("exp", "exp", 10.0, "best", (1, 4), np.geomspace(0.01, 10, 20))
    built = [
        figures.transform_curves_figure(curves),
        figures.density_figure(dens, log_y=True),
        figures.frontier_figure(lines, figures.bon_policy_series((2, 4), (1, 4), "worst"), 0.5),
        figures.best_t_figure(explorer.best_t_table((1, 4), 0.5)),
        figures.optimal_vs_exponential_figure(
            curves[0], curves[1], np.array([0.1, 0.5]), np.array([0.1, 0.2]), 0.5
        ),
        figures.tradeoff_figure(explorer.tradeoff(list(r.values())), "best-of-4 win rate"),
    ]
    for fig in built:
        go.Figure(fig.to_dict())  # raises on any invalid property


def test_a_family_holds_only_verified_shots_and_refuses_past_the_reachable_kl():
    from infalign_core.errors import InfAlignError

    family = families.optimal_family(64, "worst")
    edge_kl, _ = optimal.reachable(64, "worst")
    assert np.exp(family.log_kl[-1]) <= edge_kl * (1 + 1e-9)
    inside = family.at_kl(0.9 * edge_kl)
    assert theory.evaluate(inside, inside.beta, 64).kl == pytest.approx(0.9 * edge_kl, rel=1e-3)
    with pytest.raises(InfAlignError, match="nats"):
        family.at_kl(1.5)  # the ODE alone once claimed 1.5 nats here; its Φ really spends 0.58
