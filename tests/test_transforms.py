"""Properties of the reward transforms Φ."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infalign_core.errors import InfAlignError
from infalign_core.transforms import MAX_T, Transform, exp_best, exp_worst, make_transform

U = np.linspace(0.0, 1.0, 1001)


@pytest.mark.parametrize("fn", [exp_best, exp_worst])
@given(t=st.floats(0.0, MAX_T))
@settings(max_examples=60, deadline=None)
def test_exponentials_are_normalised_increasing_and_finite(fn, t):
    phi = fn(U, t)
    assert np.all(np.isfinite(phi))
    assert phi[0] == pytest.approx(0.0, abs=1e-12) and phi[-1] == pytest.approx(1.0, rel=1e-12)
    assert np.all(np.diff(phi) >= -1e-15)


def test_exponentials_match_their_textbook_forms():
    t = 3.0
    assert np.allclose(exp_best(U, t), (np.exp(t * U) - 1) / (np.exp(t) - 1))
    assert np.allclose(exp_worst(U, t), (1 - np.exp(-t * U)) / (1 - np.exp(-t)))


def test_worst_of_n_exponential_is_an_affine_map_of_minus_exp():
    # The paper's WoN transform is −e^{−t·u}; ours is the same up to a positive affine map.
    t = 7.0
    raw = -np.exp(-t * U)
    normalised = (raw - raw[0]) / (raw[-1] - raw[0])
    assert np.allclose(exp_worst(U, t), normalised)


def test_small_t_recovers_identity():
    assert np.allclose(exp_best(U, 1e-9), U, atol=1e-8)
    assert np.allclose(exp_worst(U, 0.0), U)


def test_best_exponential_is_convex_and_worst_is_concave():
    assert np.all(np.diff(exp_best(U, 5.0), 2) > 0)
    assert np.all(np.diff(exp_worst(U, 5.0), 2) < 0)


def test_log_transform_is_minus_inf_at_zero():
    phi = Transform("log")(np.array([0.0, 1.0]))
    assert phi[0] == -np.inf and phi[1] == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "cubic"}, "unknown transform"),
        ({"name": "exp"}, "needs t"),
        ({"name": "exp", "t": -1.0}, "≥ 0"),
        ({"name": "exp", "t": 501.0}, "at most"),
        ({"name": "exp", "t": float("nan")}, "finite"),
        ({"name": "identity", "mode": "median"}, "mode"),
        ({"name": "optimal"}, "optimal_transform"),
    ],
)
def test_bad_transform_parameters_raise_clear_errors(kwargs, message):
    with pytest.raises(InfAlignError, match=message):
        make_transform(**kwargs)
