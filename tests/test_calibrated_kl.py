"""The KL the reward sees: binned, Miller–Madow corrected, against the theory engine's exact KL."""

from __future__ import annotations

import numpy as np
import pytest

from infalign_core import calibration, theory
from infalign_core.errors import InfAlignError
from infalign_core.transforms import Transform


def tilted_samples(phi, beta: float, size: int, seed: int) -> np.ndarray:
    """Draws from g ∝ e^{Φ/β} on [0, 1] by inverting its CDF on a fine grid (independent of the estimator)."""
    grid = np.linspace(0.0, 1.0, 200_001)
    log_g = np.asarray(phi(grid), dtype=np.float64) / beta
    g = np.exp(log_g - log_g.max())
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (g[1:] + g[:-1]) * np.diff(grid))])
    return np.interp(np.random.default_rng(seed).random(size), cdf / cdf[-1], grid)


@pytest.mark.parametrize(
    ("phi", "beta"),
    [
        (Transform("identity"), 0.5),
        (Transform("exp", 8.0, "best"), 0.3),
        (Transform("exp", 6.0, "worst"), 0.4),
    ],
)
def test_calibrated_kl_of_tilted_samples_matches_the_theorys_exact_kl(phi, beta):
    exact = theory.evaluate(phi, beta, 4).kl
    u = tilted_samples(phi, beta, 400_000, seed=3)
    # 40 bins lose less than 0.005 nats to binning for these smooth densities; the rest is noise.
    assert calibration.calibrated_kl(u, bins=40) == pytest.approx(exact, abs=0.01)
    assert calibration.calibrated_kl(u, bins=10) <= exact + 0.005  # coarser bins see less (data processing)


def test_miller_madow_removes_the_plug_in_bias_at_the_reference():
    rng = np.random.default_rng(0)
    m, samples, bins = 64, 64, 10
    # The reference ranked against a bank of m: C uniform on the 65 levels j/m, 10 bins of whole levels.
    edges = (np.arange(bins + 1) * (m + 1)) // bins
    reference = np.diff(edges) / (m + 1)
    corrected, plug_in, correction = [], [], []
    for _ in range(4000):
        level = rng.integers(0, m + 1, samples)
        mass = np.bincount(np.searchsorted(edges, level, side="right") - 1, minlength=bins) / samples
        seen = mass > 0
        plug_in.append(np.sum(mass[seen] * np.log(mass[seen] / reference[seen])))
        correction.append((seen.sum() - 1) / (2 * samples))
        corrected.append(calibration.calibrated_kl(level / m, m=m, bins=bins))
    assert np.mean(plug_in) > 0.05  # the plain plug-in sees a KL that is not there
    assert abs(np.mean(corrected)) < 0.005
    np.testing.assert_allclose(np.array(plug_in) - np.array(corrected), correction, atol=1e-12)


def test_calibrated_kl_refuses_values_outside_the_unit_interval_and_bad_bins():
    with pytest.raises(InfAlignError, match=r"in \[0, 1\]"):
        calibration.calibrated_kl([0.2, 1.5])
    with pytest.raises(InfAlignError, match="bins"):
        calibration.calibrated_kl([0.2, 0.5], bins=1)
    with pytest.raises(InfAlignError, match="at least one"):
        calibration.calibrated_kl([])
