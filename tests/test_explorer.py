"""The theory pages' computations (explorer) and figures, checked against the engine and closed forms."""

import json

import numpy as np
import pytest

from infalign_core import explorer, figures, optimal, procedures, theory
from infalign_core.errors import InfAlignError
from infalign_core.transforms import Transform


@pytest.mark.parametrize(
    "phi",
    [
        Transform("identity"),
        Transform("log"),
        Transform("exp", 30.0, "best"),
        Transform("exp", 30.0, "worst"),
    ],
)
def test_transform_curve_is_rescaled_to_the_unit_interval_and_increasing(phi):
    curve = explorer.transform_curve(phi)
    assert np.all(np.isfinite(curve["normalised"]))
    assert curve["normalised"].min() == pytest.approx(0.0)
    assert curve["normalised"].max() == pytest.approx(1.0)
    assert np.all(np.diff(curve["normalised"]) >= 0)


def test_transform_curve_drops_the_log_transforms_minus_infinity():
    curve = explorer.transform_curve(Transform("log"), count=101)
    assert curve["u"][0] > 0 and len(curve["u"]) == 100


@pytest.mark.parametrize("name", ["identity", "log", "exp", "optimal"])
def test_resolve_transform_spends_exactly_the_kl_budget(name):
    resolved = explorer.resolve_transform(name, n=4, mode="best", t=10.0 if name == "exp" else None, kl=0.5)
    assert resolved.point.kl == pytest.approx(0.5, rel=1e-6)
    assert resolved.win_rate == resolved.point.bon_win_rate


def test_resolve_transform_at_beta_matches_the_engine():
    resolved = explorer.resolve_transform("exp", n=8, mode="worst", t=5.0, beta=0.3)
    expected = theory.evaluate(Transform("exp", 5.0, "worst"), 0.3, 8)
    assert resolved.point == expected
    assert resolved.win_rate == expected.won_win_rate


def test_resolve_exp_without_t_uses_the_best_t_for_n_and_kl():
    resolved = explorer.resolve_transform("exp", n=4, mode="best", kl=0.5)
    choice = procedures.best_exponential_t(procedures.of_n(4, "best"), 0.5, t_range=explorer.BEST_T_RANGE)
    assert resolved.phi.t == pytest.approx(choice.t)
    assert resolved.win_rate == pytest.approx(choice.win_rate, abs=1e-9)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"beta": None, "kl": None},
        {"beta": 0.2, "kl": 0.5},
        {"beta": 1e4, "kl": None},
        {"beta": 0.2, "kl": None, "name": "exp"},  # best t needs a KL budget
        {"beta": None, "kl": 7.5},  # beyond the identity's reach for β ≥ 1e-3
    ],
)
def test_bad_choices_raise_an_actionable_infalign_error(kwargs):
    name = kwargs.pop("name", "identity")
    with pytest.raises(InfAlignError):
        explorer.resolve_transform(name, n=4, **kwargs)


@pytest.mark.parametrize("mode", ["best", "worst"])
def test_optimal_frontier_points_are_exact_optima(mode):
    frontier = procedures.optimal_frontier(procedures.of_n(4, mode), kl_max=2.0, count=6)
    assert np.all(np.diff(frontier.kl) > 0) and frontier.kl.max() >= 1.5
    assert np.all(np.diff(frontier.win_rate) > -1e-9)
    for i in (1, len(frontier.kl) // 2):
        solved = optimal.optimal_transform(4, float(frontier.beta[i]), mode)
        point = theory.evaluate(solved, solved.beta, 4)
        assert point.kl == pytest.approx(frontier.kl[i], rel=1e-5)
        assert explorer.inference_win_rate(point, mode) == pytest.approx(frontier.win_rate[i], abs=1e-6)


def test_optimal_frontier_for_n_equal_one_is_the_identity_closed_form():
    frontier = procedures.optimal_frontier(procedures.of_n(1, "best"), kl_max=1.0, count=4)
    lam = 1.0 / frontier.beta
    assert np.allclose(frontier.win_rate, 1.0 / (1.0 - np.exp(-lam)) - 1.0 / lam, atol=1e-6)


@pytest.mark.slow
def test_optimal_transform_is_never_below_the_best_exponential_at_equal_kl():
    gap = procedures.optimal_gap(procedures.of_n(4, "best"), kl_max=1.5, count=4)
    finite = np.isfinite(gap.gap)
    assert finite.sum() >= 3
    assert np.all(gap.gap[finite] > -1e-5)
    assert np.max(gap.gap[finite]) < 0.01  # the exponential is near-optimal (THEORY.md)


def test_best_t_table_t_grows_with_n_and_beats_calibrated_rlhf():
    rows = explorer.best_t_table([2, 8, 32], 0.5, "best")
    ts = [row["best t"] for row in rows]
    assert ts == sorted(ts)
    assert all(row["gain (points)"] > 0 for row in rows)
    assert all(
        row["win rate"] >= procedures.best_exponential_t(procedures.of_n(row["N"]), 0.5).win_rate - 1e-9
        for row in rows
    )
    assert all(row["note"] == "" for row in rows)


def test_best_t_table_flags_a_best_t_at_the_upper_limit():
    (row,) = explorer.best_t_table([256], 0.5, "best")
    assert row["best t"] == pytest.approx(explorer.BEST_T_RANGE[1], rel=1e-3) and "capped" in row["note"]


def test_best_t_table_keeps_a_row_with_a_note_when_the_budget_is_out_of_reach():
    rows = explorer.best_t_table([4], 40.0, "best")
    assert np.isnan(rows[0]["best t"]) and "KL budget" in rows[0]["note"]


def test_tradeoff_calibrated_rlhf_wins_the_standard_win_rate_and_loses_best_of_n():
    resolved = [explorer.resolve_transform(name, n=4, kl=0.5) for name in ("identity", "exp", "optimal")]
    rows = explorer.tradeoff(resolved)
    standard = [row["standard win rate"] for row in rows]
    bon = [row["best-of-4 win rate"] for row in rows]
    assert standard[0] == max(standard) and bon[0] == min(bon)


def test_headline_orders_identity_below_exponential_below_optimal():
    rates = explorer.headline(n=4, kl=0.5)
    assert rates["identity"] < rates["best exponential"] <= rates["optimal"] + 1e-9
    assert rates["best exponential"] - rates["identity"] > 0.05


@pytest.mark.parametrize("mode", ["best", "worst"])
def test_bon_policy_points_match_the_closed_form(mode):
    points = explorer.bon_policy_points([2, 4, 16], n_eval=1, mode=mode)
    n = points["n"]
    assert np.allclose(points["kl"], np.log(n) - (n - 1) / n)
    assert np.allclose(points["win_rate"], n / (n + 1), atol=1e-9)


def test_frontier_figure_keeps_points_inside_the_axis_and_serialises():
    frontier = theory.frontier(Transform("identity"), theory.default_betas(50), (1, 4))
    lines = [
        {
            "name": "identity",
            "label": "identity",
            "n": m,
            "n_index": i,
            "kl": frontier.kl,
            "beta": frontier.beta,
            "win_rate": frontier.bon_win_rate[i],
        }
        for i, m in enumerate(frontier.ns)
    ]
    points = [{**explorer.bon_policy_points([2, 4, 1024], 4), "n_eval": 4}]
    fig = figures.frontier_figure(lines, points, kl_marker=0.5, kl_axis=2.0)
    assert len(fig.data) == 3
    assert max(max(trace.x) for trace in fig.data) <= 2.1
    assert list(fig.data[2].customdata) == [2, 4]  # best-of-1024 lies beyond the axis
    assert json.loads(fig.to_json())["layout"]["xaxis"]["range"] == [0.0, 2.0]


def test_tradeoff_figure_has_one_bar_group_per_win_rate():
    rows = [{"transform": "a", "standard win rate": 0.7, "best-of-4 win rate": 0.8}]
    fig = figures.tradeoff_figure(rows, "best-of-4 win rate")
    assert [trace.name for trace in fig.data] == ["standard win rate", "best-of-4 win rate"]


def test_the_best_t_reads_the_same_on_every_page():
    """Transforms showed 12.7, the Tour 12.6 and CTRL 12.63 for one t: one rounding, from one function."""
    from infalign_core import procedures, tour
    from infalign_core.transforms import Transform, t_label

    choice = procedures.best_exponential_t(procedures.of_n(4, "best"), 0.5)
    shown = t_label(choice.t)
    assert shown == f"{round(choice.t, 2):g}" and choice.label == shown
    assert f"best t={shown} for N=4" in explorer.resolve_transform("exp", n=4, kl=0.5).label
    assert f"t={shown}" in Transform("exp", choice.t, "best").label
    assert f"best t={shown}" in tour.bon_transform_winner().summary
