"""What a Transforms chart sends: only the points the eye needs, as float32 typed arrays."""

from __future__ import annotations

import base64
import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from infalign_core.figures import transforms as tf

PAGES = Path(__file__).resolve().parents[1] / "app_pages"


def _decode(spec: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(spec["bdata"]), dtype=spec["dtype"])


def _unit(values: np.ndarray) -> np.ndarray:
    return (values - values.min()) / ((values.max() - values.min()) or 1.0)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["exp", "sin", "step", "noise"]),
    steepness=st.floats(0.1, 60.0),
    count=st.integers(3, 800),
)
def test_every_dropped_point_lies_within_the_tolerance_of_the_segment_that_replaces_it(
    kind, steepness, count
):
    x = np.linspace(0.0, 1.0, count)
    y = {
        "exp": np.exp(steepness * x),
        "sin": np.sin(steepness * x),
        "step": np.tanh(steepness * (x - 0.5)),
        "noise": np.random.default_rng(count).normal(size=count),
    }[kind]
    kept = tf.thin(x, y)
    assert kept[0] == 0 and kept[-1] == count - 1 and np.all(np.diff(kept) > 0)
    px, py = _unit(x), _unit(y)
    for first, last in itertools.pairwise(kept):
        dx, dy = px[last] - px[first], py[last] - py[first]
        inner = np.arange(first + 1, last)
        distance = np.abs(dy * (px[inner] - px[first]) - dx * (py[inner] - py[first])) / np.hypot(dx, dy)
        assert np.all(distance <= tf.THIN_TOLERANCE + 1e-12)


def test_smooth_curves_keep_a_fraction_of_their_points():
    x = np.linspace(0.0, 1.0, 501)
    assert len(tf.thin(x, np.exp(10 * x))) < 100


def test_line_arrays_travel_as_typed_arrays_that_decode_to_the_same_numbers():
    x = np.linspace(0.0, 1.0, 401)
    curves = [
        {
            "name": "exp",
            "label": "exp",
            "u": x,
            "phi": np.exp(30 * x),
            "normalised": np.expm1(3 * x) / np.expm1(3),
        }
    ]
    (trace,) = tf.transform_curves_figure(curves).to_dict()["data"]
    u, y, phi = (_decode(trace[key]) for key in ("x", "y", "customdata"))
    index = np.abs(x[None, :] - u[:, None]).argmin(axis=1)
    np.testing.assert_allclose(u, x[index], rtol=1e-6)
    np.testing.assert_allclose(y, curves[0]["normalised"][index], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(phi, curves[0]["phi"][index], rtol=1e-6)


def test_a_log_axis_is_thinned_in_log_scale_and_keeps_its_small_values():
    x = np.linspace(0.0, 1.0, 401)
    density = np.exp(40 * (x - 1))  # 4e-18 … 1: linear thinning would flatten the left end to one segment
    fig = tf.density_figure([{"name": "exp", "label": "exp", "u": x, "density": density}], log_y=True)
    kept = _decode(fig.to_dict()["data"][1]["y"])
    assert kept.min() == pytest.approx(density.min(), rel=1e-5)
    assert len(kept) == 2  # a straight line in log scale needs its two ends only


def test_a_kl_slider_step_on_transforms_sends_under_60_kb_of_charts():
    at = AppTest.from_file(str(PAGES / "transforms.py"), default_timeout=300).run()
    at.slider(key="kl").set_value(0.55).run()
    assert not at.exception, at.exception
    sent = sum(len(chart.proto.spec) for chart in at.get("plotly_chart"))
    assert 0 < sent < 60_000, sent
