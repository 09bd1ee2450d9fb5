"""AppTest of the app frame, the landing page and the "Transforms & frontiers" page."""

import base64
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
TIMEOUT = 120


def _array(value) -> np.ndarray:
    """A trace array from a plotly spec: a list, or plotly's base64 typed array."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    return np.asarray(value, dtype=float)


def _chart(at: AppTest, alt: str) -> dict:
    """The plotly spec (data + layout) of the chart with this alt text."""
    matches = [c for c in at.get("plotly_chart") if c.proto.alt == alt]
    assert len(matches) == 1, f"expected one chart {alt!r}, found {len(matches)}"
    return json.loads(matches[0].proto.spec)


def _traces(at: AppTest, alt: str) -> dict[str, np.ndarray]:
    """Trace name -> y values of one chart."""
    return {trace["name"]: _array(trace["y"]) for trace in _chart(at, alt)["data"] if "y" in trace}


def _differs(a: np.ndarray, b: np.ndarray) -> bool:
    """Two traces are different data (different length, or values apart)."""
    return a.shape != b.shape or not np.allclose(a, b)


def _clean(at: AppTest) -> AppTest:
    """Fail on an uncaught exception in the script."""
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def transforms_page() -> AppTest:
    """The app opened on the Transforms & frontiers page."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    return _clean(at.switch_page("app_pages/transforms.py").run())


def test_home_renders_the_headline_and_links_without_importing_torch():
    # A fresh interpreter: other tests in this process may have imported torch already.
    script = textwrap.dedent(
        f"""
        import sys
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({APP!r}, default_timeout={TIMEOUT}).run()
        assert not at.exception, [e.value for e in at.exception]
        assert len(at.metric) == 3, at.metric
        assert "torch" not in sys.modules, "app.py or the home page imported torch"
        print("ok", [m.value for m in at.metric])
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ok" in result.stdout


def test_home_headline_shows_the_best_exponential_beating_calibrated_rlhf():
    at = _clean(AppTest.from_file(APP, default_timeout=TIMEOUT).run())
    values = [float(m.value.rstrip("%")) for m in at.metric]
    assert values[0] < values[1] <= values[2] + 1e-9
    assert "2412.19792" in " ".join(m.value for m in at.markdown)


def test_sidebar_says_no_model_is_needed_until_models_are_loaded():
    at = _clean(AppTest.from_file(APP, default_timeout=TIMEOUT).run())
    assert any("no language model loaded" in c.value for c in at.sidebar.caption)
    # A fresh AppTest: on AppTest reruns the frame's sidebar is not re-collected (the browser
    # test checks that it survives real reruns).
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["loaded_models"] = {"policy": "tiny GPT-2 (bundled)"}
    at = _clean(at.run())
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "tiny GPT-2 (bundled)" in captions and "no language model loaded" not in captions


@pytest.mark.slow
def test_transforms_page_draws_every_chart_and_no_error(transforms_page):
    alts = sorted(c.proto.alt for c in transforms_page.get("plotly_chart"))
    assert alts == sorted(
        [
            "transform curves",
            "aligned densities",
            "frontiers",
            "best t",
            "optimal vs exponential",
            "trade-off",
        ]
    )
    assert not transforms_page.error


def test_changing_t_changes_the_exponential_curve_and_its_frontier(transforms_page):
    before = _traces(transforms_page, "transform curves")
    frontier_before = _traces(transforms_page, "frontiers")
    after_page = _clean(transforms_page.select_slider(key="t").set_value(30).run())
    after = _traces(after_page, "transform curves")
    assert "exp (t=10)" in before and "exp (t=30)" in after
    assert _differs(before["exp (t=10)"], after["exp (t=30)"])
    assert np.array_equal(before["identity"], after["identity"])
    frontier_after = _traces(after_page, "frontiers")
    assert _differs(frontier_before["exp (t=10) · N=4"], frontier_after["exp (t=30) · N=4"])


@pytest.mark.slow
def test_changing_n_changes_the_optimal_transform_and_the_trade_off(transforms_page):
    before = _traces(transforms_page, "transform curves")["optimal (N=4)"]
    bars_before = _traces(transforms_page, "trade-off")
    at = _clean(transforms_page.number_input(key="n").set_value(8).run())
    after = _traces(at, "transform curves")["optimal (N=8)"]
    assert _differs(before, after)
    assert set(_traces(at, "trade-off")) == {"standard win rate", "best-of-8 win rate"}
    assert set(bars_before) == {"standard win rate", "best-of-4 win rate"}


def test_changing_the_kl_budget_changes_the_densities(transforms_page):
    before = _traces(transforms_page, "aligned densities")["identity"]
    at = _clean(transforms_page.slider(key="kl").set_value(1.0).run())
    after = _traces(at, "aligned densities")["identity"]
    assert after.max() > before.max()


@pytest.mark.slow
def test_holding_beta_fixed_changes_the_densities_with_beta(transforms_page):
    at = _clean(transforms_page.radio(key="hold").set_value("β").run())
    before = _traces(at, "aligned densities")["identity"]
    at = _clean(at.number_input(key="beta").set_value(0.1).run())
    after = _traces(at, "aligned densities")["identity"]
    assert after.max() > before.max()
    assert at.toggle(key="best_t").disabled


def test_best_t_toggle_replaces_t_by_the_best_t(transforms_page):
    at = _clean(transforms_page.toggle(key="best_t").set_value(True).run())
    names = set(_traces(at, "transform curves"))
    assert any(name.startswith("exp (best t=") for name in names), names
    assert at.select_slider(key="t").disabled


def test_worst_of_n_mode_renders(transforms_page):
    at = _clean(transforms_page.selectbox(key="procedure_kind").set_value("won").run())
    assert set(_traces(at, "trade-off")) == {"standard win rate", "worst-of-4 win rate"}


def test_a_kl_budget_beyond_reach_shows_an_error_not_an_exception(transforms_page):
    at = _clean(transforms_page.slider(key="kl").set_value(7.5).run())
    assert any("beyond" in e.value for e in at.error), [e.value for e in at.error]


def test_no_transform_selected_shows_a_warning(transforms_page):
    at = _clean(transforms_page.multiselect(key="names").set_value([]).run())
    assert at.warning and not at.get("plotly_chart")
