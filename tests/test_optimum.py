"""The exact optimum π* ∝ π_ref·e^{Φ(C)/β}: sampled by tilted resampling, its yardstick, its CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from infalign_core import cli, optimum, theory
from infalign_core.errors import InfAlignError
from infalign_core.transforms import Transform


def test_tilted_resampling_draws_the_optimum_on_an_enumerable_reference():
    # Five responses with these reference probabilities and rewards; C(y) is exact: P(r < r(y)).
    p_ref = np.array([0.4, 0.3, 0.15, 0.1, 0.05])
    reward = np.array([0.1, 0.5, 0.2, 0.9, 0.7])
    order = np.argsort(reward)
    below = np.empty(5)
    below[order] = np.cumsum(p_ref[order]) - p_ref[order]
    c = below + 0.5 * p_ref  # mid-rank with ties: the pool holds each response many times
    phi, beta = Transform("identity"), 0.25
    pi_star = p_ref * np.exp(phi(c) / beta)
    pi_star /= pi_star.sum()
    rng = np.random.default_rng(2024)
    prompts, pool, k = 200, 2000, 50
    responses = rng.choice(5, size=(prompts, pool), p=p_ref)
    picks, weights = optimum.tilted_resample(reward[responses], phi, beta, k, rng)
    drawn = np.take_along_axis(responses, picks, axis=1)
    counts = np.bincount(drawn.ravel(), minlength=5)
    assert stats.chisquare(counts, pi_star * counts.sum()).pvalue > 0.001
    # The same draws against the reference itself are rejected outright (the test has power).
    assert stats.chisquare(counts, p_ref * counts.sum()).pvalue < 1e-12
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)


def test_pool_mid_ranks_are_uniform_and_ties_share_their_rank():
    ranks = optimum.pool_calibrated(np.array([[3.0, 1.0, 2.0, 4.0], [1.0, 1.0, 2.0, 2.0]]))
    np.testing.assert_allclose(ranks[0], [0.625, 0.125, 0.375, 0.875])
    np.testing.assert_allclose(ranks[1], [0.25, 0.25, 0.75, 0.75])


@pytest.mark.parametrize(
    ("transform", "n", "mode", "kl"), [("exp", 4, "worst", 0.386), ("identity", 4, "best", 0.5)]
)
def test_pools_kl_tends_to_the_theorys_and_its_ess_to_m_over_the_integral_of_g_squared(
    transform, n, mode, kl
):
    resolved = optimum.resolve_optimum(optimum.OptimumSpec(transform, n, mode, kl=kl))
    policy = theory.aligned_policy(resolved.phi, resolved.beta)
    mean_g_squared = float(policy.grid.integrate(policy.density**2)[0])
    for pool in (512, 4096):
        pool_kl, ess = optimum.pool_theory(resolved.phi, resolved.beta, pool)
        assert pool_kl == pytest.approx(kl, rel=2e-3)
        assert ess == pytest.approx(pool / mean_g_squared, rel=0.02)


def test_a_small_pool_for_a_large_budget_warns_and_names_a_pool_that_would_do():
    resolved = optimum.resolve_optimum(optimum.OptimumSpec("exp", 16, "best", kl=2.0))
    pool_kl, ess = optimum.pool_theory(resolved.phi, resolved.beta, 512)
    warning = optimum.ess_warning(resolved, 512, ess, pool_kl)
    needed = optimum.pool_needed(resolved.phi, resolved.beta, resolved.theory["kl"])
    assert f"M = {needed} per prompt would do" in warning and needed > 512
    assert optimum.pool_is_enough(resolved.phi, resolved.beta, needed, resolved.theory["kl"])
    fine = optimum.resolve_optimum(optimum.OptimumSpec("identity", 4, kl=0.5))
    assert optimum.ess_warning(fine, 512, *reversed(optimum.pool_theory(fine.phi, fine.beta, 512))) == ""


def test_resolved_optimum_matches_the_theory_command_and_describes_itself_as_a_run():
    resolved = optimum.resolve_optimum(optimum.OptimumSpec("exp", 4, "best", kl=0.5))
    assert resolved.theory["kl"] == pytest.approx(0.5, rel=1e-9)
    assert resolved.theory["bon_win_rate"] == pytest.approx(0.8727, abs=1e-4)
    config = resolved.run_config(512)
    assert config["t"] == pytest.approx(resolved.t) and config["optimum_pool"] == 512
    assert optimum.optimum_visible_kl(config, 0.5, 64) == pytest.approx(0.4496, abs=1e-3)


def test_optimum_visible_kl_is_none_without_a_theory_and_zero_at_the_reference():
    assert optimum.optimum_visible_kl({"transform": "raw"}, 0.5, 64) is None
    assert optimum.optimum_visible_kl({"transform": "identity"}, 0.0, 64) == 0.0
    assert optimum.optimum_visible_kl({"transform": "identity"}, float("nan"), 64) is None
    assert optimum.share_seen(0.3, {"transform": "identity"}, 0.5, 64) == pytest.approx(
        0.3 / 0.48305, rel=1e-3
    )


def test_bad_optimum_specs_and_pools_are_refused():
    with pytest.raises(InfAlignError, match="calibrated transform"):
        optimum.resolve_optimum(optimum.OptimumSpec("raw", kl=0.5))
    with pytest.raises(InfAlignError, match="t belongs"):
        optimum.resolve_optimum(optimum.OptimumSpec("identity", t=3.0, kl=0.5))
    with pytest.raises(InfAlignError, match="exactly one"):
        optimum.resolve_optimum(optimum.OptimumSpec("identity", kl=0.5, beta=0.2))
    for pool in (1, optimum.MAX_POOL + 1, 2.5, True):
        with pytest.raises(InfAlignError, match="pool M"):
            optimum.check_pool(pool)


# fmt: off
BAD_CLI = [
    (["--policy", "reference", "--optimum", "exp", "--kl", "0.5"], "one of them"),
    ([], "one of them"),
    (["--optimum", "exp"], "--kl"),
    (["--policy", "reference", "--kl", "0.5", "--pool", "64"], "only apply to --optimum"),
    (["--optimum", "exp", "--kl", "0.5", "--pool", "1"], "pool M"),
    (["--optimum", "exp", "--kl", "0.5", "--pool", "100000"], "pool M"),
    (["--optimum", "identity", "--t", "3", "--kl", "0.5"], "t belongs"),
    (["--optimum", "exp", "--t", "1", "--kl", "50"], "beyond"),
    (["--optimum", "exp", "--kl", "0.5", "--save"], "--save"),
    (["--optimum", "exp", "--kl", "0.5", "--procedure", "bogus:1"], "bogus"),
    (["--optimum", "exp", "--kl", "0.5", "--beta", "0.1"], "not allowed"),
    (["--optimum", "exp", "--kl", "nan"], "kl"),
    (["--optimum", "exp", "--kl", "0.5", "--mode", "sideways"], "mode"),
]
# fmt: on


@pytest.mark.parametrize(("flags", "phrase"), BAD_CLI)
def test_winrate_optimum_refuses_bad_values_with_one_error_line(flags, phrase, capsys):
    try:
        status = cli.main(["winrate", "--n", "2", "--k", "4", *flags])
    except SystemExit as exit_:
        status = exit_.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert status == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert phrase in lines[0], lines[0]


@pytest.mark.slow
def test_winrate_optimum_reads_the_theorys_win_rates_within_their_intervals_on_the_bundled_world(capsys):
    argv = ["winrate", "--optimum", "exp", "--mode", "worst", "--n", "4", "--k", "64", "--kl", "0.386"]
    status = cli.main([*argv, "--num-prompts", "16", "--pool", "256", "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert status == 0
    for name in ("standard_win_rate", "bon_win_rate", "won_win_rate"):
        assert out[f"{name}_ci_low"] <= out[f"theory_{name}"] <= out[f"{name}_ci_high"], name
    assert out["kl"] == pytest.approx(out["theory_kl"], rel=0.05)
    assert out["ess"] >= optimum.ESS_FLOOR and "warning" not in out
    # Through the K = 64 reference samples the optimum shows its own rank-level ceiling.
    assert out["kl_visible"] == pytest.approx(out["kl_visible_optimum"], abs=0.1)


def test_equivalent_kl_of_what_the_optimum_itself_shows_is_its_own_kl():
    config = {"transform": "exp", "t": 9.6778, "mode": "worst", "n": 4}
    for kl in (0.1, 0.386, 1.0):
        seen = optimum.optimum_visible_kl(config, kl, 64)
        assert optimum.equivalent_kl(config, seen, kl, 64) == pytest.approx(kl, rel=1e-4)
    # A run that shows half as much sits well left of its sequence KL, and nothing seen is KL 0.
    assert optimum.equivalent_kl(config, 0.5 * optimum.optimum_visible_kl(config, 0.5, 64), 0.5, 64) < 0.3
    assert optimum.equivalent_kl(config, -0.01, 0.5, 64) == 0.0
    assert optimum.equivalent_kl({"transform": "raw"}, 0.2, 0.5, 64) is None


def test_spec_for_run_sets_the_runs_own_transform_at_its_measured_kl():
    config = {"transform": "exp", "t": 9.6778, "mode": "worst", "n": 4, "procedure": None}
    spec = optimum.spec_for_run(config, 0.386)
    assert (spec.transform, spec.t, spec.mode, spec.n, spec.kl) == ("exp", 9.6778, "worst", 4, 0.386)
    resolved = optimum.resolve_optimum(spec)
    assert resolved.t == 9.6778 and resolved.theory["kl"] == pytest.approx(0.386)
    assert optimum.spec_for_run({"transform": "raw"}, 0.5) is None
    assert optimum.spec_for_run(config, 0.0) is None
