"""The KL the reward sees: the exact rank-level ceiling of a bank, and the estimator that reads it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from infalign_core import calibration, procedures, theory
from infalign_core.errors import InfAlignError
from infalign_core.transforms import Transform


def tilted_samples(phi, beta: float, size, seed) -> np.ndarray:
    """Draws from g ∝ e^{Φ/β} on [0, 1] by inverting the engine's CDF at its nodes."""
    policy = theory.aligned_policy(phi, beta)
    u = np.concatenate([[0.0], policy.grid.u.ravel(), [1.0]])
    cdf = np.maximum.accumulate(np.concatenate([[0.0], policy.cdf[0].ravel(), [1.0]]))
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return np.interp(rng.random(size), cdf, u)


def ranked_against_banks(u: np.ndarray, m: int, rng) -> np.ndarray:
    """Mid-rank of each u among m fresh reference rewards (uniform in calibrated space), one bank per row."""
    bank = rng.random((*u.shape[:-1], m))
    return (bank[..., None, :] < u[..., :, None]).sum(axis=-1) / m


def best_exp(n: int, kl: float, mode: str) -> Transform:
    """The exponential Φ at the theory's best t for N at a KL budget (identity for N = 1)."""
    if n == 1:
        return Transform("identity")
    return Transform("exp", procedures.best_exponential_t(procedures.of_n(n, mode), kl).t, mode)


# --- the ceiling --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "mode", "kl", "share_64", "share_256"),
    [
        (4, "best", 0.5, 0.90, 0.97),
        (4, "best", 1.0, 0.87, 0.96),
        (16, "best", 1.0, 0.55, 0.78),
        (16, "best", 2.0, 0.48, 0.69),
        (4, "worst", 0.5, 0.94, 0.98),
        (16, "worst", 1.0, 0.94, 0.98),
    ],
)
def test_rank_level_ceiling_reproduces_the_share_a_bank_lets_the_reward_see(n, mode, kl, share_64, share_256):
    phi = best_exp(n, kl, mode)
    assert theory.visible_kl_ceiling(phi, kl, 64) / kl == pytest.approx(share_64, abs=0.005)
    assert theory.visible_kl_ceiling(phi, kl, 256) / kl == pytest.approx(share_256, abs=0.005)


def test_rank_level_law_matches_direct_quadrature_of_the_binomial_kernel():
    phi, beta, m = Transform("exp", 12.0, "best"), 0.05, 64
    law = theory.rank_level_law(phi, beta, m)[0]
    z = integrate.quad(lambda u: np.exp(phi(np.array(u)) / beta), 0, 1, limit=400, epsabs=0)[0]
    for j in (0, 10, 40, 63, 64):
        direct = integrate.quad(
            lambda u, j=j: np.exp(phi(np.array(u)) / beta) * stats.binom.pmf(j, m, u),
            0,
            1,
            limit=400,
            epsabs=0,
        )[0]
        assert law[j] == pytest.approx(direct / z, rel=1e-7)


def test_rank_level_law_of_one_bank_sample_is_the_standard_win_rate():
    phi, beta = Transform("identity"), 0.3
    law = theory.rank_level_law(phi, beta, 1)[0]
    assert law[1] == pytest.approx(theory.evaluate(phi, beta, 1).standard_win_rate, abs=1e-12)


def test_reference_sees_no_kl_and_every_level_is_equally_likely():
    law = theory.rank_level_law(Transform("identity"), 1e3, 16)[0]
    np.testing.assert_allclose(law, 1 / 17, rtol=1e-3)


def test_rank_level_kl_grows_with_the_bank_towards_the_continuous_kl():
    phi, beta = Transform("exp", 12.0, "best"), 0.1  # about 1 nat
    continuous = theory.aligned_policy(phi, beta).kl[0]
    ceilings = [float(theory.rank_level_kl(phi, beta, m)[0]) for m in (1, 4, 16, 64, 256, 1024, 4096)]
    assert np.all(np.diff(ceilings) > 0)  # a bank of m is a bank of 2m thinned: data processing
    assert ceilings[-1] < continuous
    assert ceilings[-1] == pytest.approx(continuous, rel=0.01)


def test_rank_level_kl_is_vectorised_over_beta():
    phi, betas = Transform("exp", 6.0, "worst"), [0.05, 0.2, 1.0]
    together = theory.rank_level_kl(phi, betas, 32)
    apart = [float(theory.rank_level_kl(phi, b, 32)[0]) for b in betas]
    np.testing.assert_allclose(together, apart, rtol=1e-9)


def test_ceiling_refuses_a_bad_bank_size_or_kl():
    with pytest.raises(InfAlignError, match="bank size"):
        theory.rank_level_kl(Transform("identity"), 0.5, 0)
    with pytest.raises(InfAlignError, match="bank size"):
        theory.rank_level_kl(Transform("identity"), 0.5, 2.5)
    with pytest.raises(InfAlignError, match="finite"):
        theory.visible_kl_ceiling(Transform("identity"), float("nan"), 64)
    assert theory.visible_kl_ceiling(Transform("identity"), 0.0, 64) == 0.0


# --- the estimator ------------------------------------------------------------------------------

DENSITIES = [
    (n, mode, kl)
    for n, mode in [(1, "best"), (4, "best"), (4, "worst"), (16, "best"), (16, "worst")]
    for kl in (0.1, 0.5, 2.0)
]


@pytest.mark.slow
@pytest.mark.parametrize(("n", "mode", "kl"), DENSITIES)
def test_visible_kl_reads_the_rank_level_ceiling_at_the_arenas_sample_size(n, mode, kl):
    # The arena: 32 prompts × 64 samples, each prompt's samples ranked against its own 64 reference rewards.
    phi, m, repeats = best_exp(n, kl, mode), 64, 300
    beta = theory.beta_for_kl(phi, kl)
    ceiling = float(theory.rank_level_kl(phi, beta, m)[0])
    rng = np.random.default_rng(17)
    calibrated = ranked_against_banks(tilted_samples(phi, beta, (repeats, 32, 64), rng), m, rng)
    estimates = np.array([calibration.calibrated_kl(c, m=m) for c in calibrated])
    # Mean of 300 repeats: its own noise is under 1.2 % of the ceiling, so this bounds the bias at ~5 %.
    assert estimates.mean() == pytest.approx(ceiling, rel=0.05)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("n", "mode", "kl"), [(4, "best", 0.5), (4, "worst", 0.5), (16, "best", 2.0), (1, "best", 0.1)]
)
def test_per_step_visible_kl_is_nearly_unbiased_and_its_stderr_is_honest(n, mode, kl):
    # A training step: 8 prompts × k = 8 against banks of 64, so 64 samples in 15 bins of levels.
    phi, m, repeats = best_exp(n, kl, mode), 64, 1000
    beta = theory.beta_for_kl(phi, kl)
    ceiling = float(theory.rank_level_kl(phi, beta, m)[0])
    rng = np.random.default_rng(5)
    calibrated = ranked_against_banks(tilted_samples(phi, beta, (repeats, 8, 8), rng), m, rng)
    results = [calibration.visible_kl(c, m=m) for c in calibrated]
    values = np.array([r.value for r in results])
    assert abs(values.mean() - ceiling) < 0.1 * ceiling + 3 * values.std() / np.sqrt(repeats)
    assert np.mean([r.stderr for r in results]) == pytest.approx(values.std(), rel=0.2)


def test_visible_kl_reads_zero_on_average_at_the_reference():
    rng = np.random.default_rng(0)
    for shape in [(200, 32, 64), (2000, 8, 8)]:
        calibrated = ranked_against_banks(rng.random(shape), 64, rng)
        values = np.array([calibration.calibrated_kl(c, m=64) for c in calibrated])
        assert abs(values.mean()) < 3 * values.std() / np.sqrt(shape[0]) + 1e-3


def test_jackknife_over_prompts_removes_the_shared_bank_bias_a_flat_count_keeps():
    # Samples of one prompt share a bank: pooled flat, the plug-in's correction misses half the bias.
    rng = np.random.default_rng(1)
    calibrated = ranked_against_banks(rng.random((200, 32, 64)), 64, rng)
    by_prompt = np.mean([calibration.calibrated_kl(c, m=64) for c in calibrated])
    flat = np.mean([calibration.calibrated_kl(c.ravel(), m=64) for c in calibrated])
    assert flat > 0.01 and abs(by_prompt) < 0.004


def test_continuous_calibrated_kl_of_tilted_samples_matches_the_theorys_exact_kl():
    phi, beta = Transform("exp", 8.0, "best"), 0.3
    exact = theory.evaluate(phi, beta, 4).kl
    u = tilted_samples(phi, beta, 400_000, seed=3)
    # 40 bins lose less than 0.005 nats to binning for this smooth density; the rest is noise.
    assert calibration.calibrated_kl(u, bins=40) == pytest.approx(exact, abs=0.01)
    assert calibration.calibrated_kl(u, bins=10) <= exact + 0.005  # coarser bins see less (data processing)


def test_level_bins_keep_the_end_levels_single_and_use_every_level_with_enough_samples():
    edges = calibration.level_bins(64, 64)
    assert edges[0] == 0 and edges[-1] == 65 and np.all(np.diff(edges) > 0)
    assert list(edges[:3]) == [0, 1, 2] and list(edges[-3:]) == [63, 64, 65]
    assert np.diff(edges).max() == 8
    np.testing.assert_array_equal(calibration.level_bins(64, 2048), np.arange(66))
    np.testing.assert_array_equal(calibration.level_bins(1, 4), [0, 1, 2])


def test_calibrated_kl_refuses_values_outside_the_unit_interval_and_bad_bins():
    with pytest.raises(InfAlignError, match=r"in \[0, 1\]"):
        calibration.calibrated_kl([0.2, 1.5])
    with pytest.raises(InfAlignError, match="bins"):
        calibration.calibrated_kl([0.2, 0.5], bins=1)
    with pytest.raises(InfAlignError, match="at least one"):
        calibration.calibrated_kl([])
    with pytest.raises(InfAlignError, match="NaN"):
        calibration.calibrated_kl([0.2, float("nan")], m=4)
    with pytest.raises(InfAlignError, match="bank size"):
        calibration.calibrated_kl([0.2, 0.5], m=0)


@pytest.mark.slow
def test_the_arenas_reward_visible_kl_reads_the_ceiling_from_raw_rewards():
    # Raw rewards on any increasing scale: the arena ranks each prompt's challenger samples among its K.
    from infalign_core.arena_kl import reward_visible_kl

    phi, kl, repeats = best_exp(4, 0.5, "best"), 0.5, 100
    beta = theory.beta_for_kl(phi, kl)
    rng = np.random.default_rng(11)
    readings = []
    for _ in range(repeats):
        ours = np.exp(3.0 * tilted_samples(phi, beta, (32, 64), rng))  # an increasing map of u
        theirs = np.exp(3.0 * rng.random((32, 64)))
        readings.append(reward_visible_kl(ours, theirs))
    assert np.mean(readings) == pytest.approx(float(theory.rank_level_kl(phi, beta, 64)[0]), rel=0.05)
