"""The trainer's levers: the PI KL controller, the tilted weights of distillation, and their runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_ctrl import run_world, small_config  # noqa: F401 (the module fixture is reused)

from infalign_core import ctrl
from infalign_core.errors import InfAlignError


def plant(controller_step, gain: float, power: float, rate: float, seed: int, steps: int = 300):
    """A lagging policy: its KL relaxes toward gain·target·(β₀/β)^power after a 20-step dead time, read with 20 % noise (a 64-sample step)."""
    rng = np.random.default_rng(seed)
    beta, kl, path = 1.0, 0.0, []
    for step in range(steps):
        if step >= 20:
            kl += rate * (gain * 0.5 * (1.0 / beta) ** power - kl)
        path.append(kl)
        beta = controller_step(max(0.0, kl * (1 + 0.2 * rng.standard_normal())), beta)
    return np.array(path)


@pytest.mark.parametrize("gain", [0.3, 0.6, 1.0, 1.5, 2.5])
@pytest.mark.parametrize("power", [1.0, 2.0])
@pytest.mark.parametrize("rate", [0.02, 0.05])
def test_the_pi_controller_lands_within_ten_percent_without_overshooting_to_twice_the_target(
    gain, power, rate
):
    for seed in range(3):
        pi = ctrl.PIController(beta0=1.0, target=0.5)
        path = plant(lambda kl, beta, pi=pi: pi.update(kl), gain, power, rate, seed)
        assert path.max() < 2 * 0.5
        assert abs(path[-20:].mean() - 0.5) <= 0.1 * 0.5


def test_the_proportional_controller_on_the_same_plant_overshoots_more_than_pi():
    def proportional(kl, beta):
        return ctrl.adapt_beta(beta, kl, 0.5, 64, 1000)

    pi = ctrl.PIController(beta0=1.0, target=0.5)
    worst_p = plant(proportional, 2.5, 2.0, 0.04, 0).max()
    worst_pi = plant(lambda kl, beta: pi.update(kl), 2.5, 2.0, 0.04, 0).max()
    assert worst_pi < worst_p


def test_the_pi_controller_does_not_cut_beta_while_the_policy_still_lags():
    pi = ctrl.PIController(beta0=0.2, target=0.5, warmup=60)
    betas = [pi.update(0.01) for _ in range(59)]
    assert betas == [0.2] * 59 and not pi.armed
    assert pi.update(0.01) < 0.2 and pi.armed  # armed after the warm-up: a stuck KL lowers β
    high = ctrl.PIController(beta0=0.2, target=0.5)
    assert high.update(0.9) > 0.2  # above the target β rises at once, armed or not


def test_the_pi_controllers_state_round_trips_so_a_resume_continues_the_same_betas():
    first = ctrl.PIController(beta0=0.1, target=0.5)
    kls = np.linspace(0.0, 0.8, 40)
    for kl in kls[:20]:
        first.update(kl)
    second = ctrl.PIController(beta0=0.1, target=0.5)
    second.load(first.state())
    assert [first.update(kl) for kl in kls[20:]] == [second.update(kl) for kl in kls[20:]]


@pytest.mark.parametrize("k", [2, 8, 64])
def test_tilted_weights_normalise_within_each_prompt(k):
    rng = np.random.default_rng(k)
    phi = rng.uniform(0, 1, size=5 * k)
    weights = ctrl.tilted_weights(phi, 0.05, k).reshape(5, k)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert np.all(weights >= 0)
    # Within a prompt a higher Φ gets a higher weight, by exactly e^{ΔΦ/β}.
    row, values = weights[0], phi[:k]
    i, j = np.argmax(values), np.argmin(values)
    assert row[i] / row[j] == pytest.approx(math.exp((values[i] - values[j]) / 0.05))


@pytest.mark.parametrize(("k", "rtol"), [(1024, 0.03), (64, 0.1)])
def test_tilted_weights_on_reference_samples_reproduce_the_tilted_optimum_of_an_enumerable_toy(k, rtol):
    """Outcomes 0..5 with a reference law and Φ: weighted counts of reference draws → π_ref·e^{Φ/β}/Z.

    Self-normalised within k draws, the estimate is consistent as k grows (its bias is O(1/k)).
    """
    rng = np.random.default_rng(0)
    reference = np.array([0.3, 0.25, 0.2, 0.12, 0.08, 0.05])
    phi_of = np.array([0.0, 0.1, 0.3, 0.5, 0.8, 1.0])
    beta, prompts = 0.25, 400_000 // k
    draws = rng.choice(6, p=reference, size=prompts * k)
    weights = ctrl.tilted_weights(phi_of[draws], beta, k)
    fitted = np.bincount(draws, weights=weights, minlength=6) / prompts
    optimum = reference * np.exp(phi_of / beta)
    optimum /= optimum.sum()
    np.testing.assert_allclose(fitted, optimum, rtol=rtol)


def test_unknown_algorithm_and_controller_are_named():
    with pytest.raises(InfAlignError, match="algorithm"):
        ctrl.CTRLConfig(algorithm="ppo").validate()
    with pytest.raises(InfAlignError, match="kl_controller"):
        ctrl.CTRLConfig(kl_controller="bang-bang").validate()


def test_distil_rloo_distils_the_first_half_then_runs_rloo():
    config = ctrl.CTRLConfig(algorithm="distil-rloo", steps=10)
    assert [bool(ctrl.distils_at(config, s)) for s in range(1, 11)] == [True] * 5 + [False] * 5
    assert not ctrl.distils_at(ctrl.CTRLConfig(steps=10), 1)
    assert ctrl.distils_at(ctrl.CTRLConfig(algorithm="distil", steps=10), 10)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["rloo", "distil", "distil-rloo"])
def test_a_resumed_run_with_the_pi_controller_reproduces_the_uninterrupted_one(
    run_world,  # noqa: F811
    tmp_path,
    algorithm,
):
    policy, prompts = run_world
    config = small_config(
        policy, prompts, tmp_path / "cache", steps=4, checkpoint_every=10, algorithm=algorithm,
        kl_controller="pi", kl_target=0.01,
    )  # fmt: skip
    ctrl.train(config, tmp_path / "whole")
    whole = ctrl.read_metrics(tmp_path / "whole")
    ctrl.train(
        config, tmp_path / "split", should_stop=lambda: len(ctrl.read_metrics(tmp_path / "split")) >= 2
    )
    ctrl.train(config, tmp_path / "split", resume=True)
    split = ctrl.read_metrics(tmp_path / "split")

    def strip(rows):
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]

    assert [r["step"] for r in split] == [1, 2, 3, 4]
    assert strip(split) == strip(whole)
    distilled = [r for r in whole if "distil/ess" in r]
    assert len(distilled) == {"rloo": 0, "distil": 4, "distil-rloo": 2}[algorithm]
    for row in distilled:
        assert 1.0 <= row["distil/ess"] <= config.k and math.isfinite(row["kl/k1"])
