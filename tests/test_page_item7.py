"""The UI bugs a new user hit (issue #12, item 7) on Home, Calibration, Models and the frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from infalign_core.errors import InfAlignError
from infalign_core.figures import calibration as calibration_figures
from infalign_core.models import BUNDLED

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
needs_world = pytest.mark.skipif(not BUNDLED["policy"].is_dir(), reason="the bundled world is not built")


def test_home_path_through_the_app_includes_the_arena_and_the_tour():
    at = AppTest.from_file(APP, default_timeout=120).run()
    links = " ".join(str(link.proto.label) for link in at.get("page_link"))
    assert "Best-of-N arena" in links and "Tour" in links


def test_the_sidebars_loaded_models_survive_a_page_that_calls_st_stop():
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("app_pages/calibration.py").run()  # stops early: no banks built yet
    assert not at.exception
    assert any("Loaded models" in c.value for c in at.sidebar.caption)


def test_log_axis_ticks_read_as_numbers_not_leading_digits():
    ticks = calibration_figures.log_ticks([0.013, 0.04, 0.11, 0.3])
    assert ticks == [0.01, 0.02, 0.05, 0.1, 0.2]
    assert [f"{t:g}" for t in ticks] == ["0.01", "0.02", "0.05", "0.1", "0.2"]


def test_the_raw_kl_note_says_when_a_small_beta_saturates_every_prompt():
    table = pd.DataFrame(
        {
            "kl_raw": [3.46, 3.45, 3.4],
            "kl_calibrated": [1.3, 1.3, 1.3],
            "iqr": [1, 2, 3],
            "prompt": list("abc"),
        }
    )
    assert "ceiling log m" in calibration_figures.kl_note(table, 0.01, 32)
    spread = pd.DataFrame(
        {"kl_raw": [0.19, 0.5, 0.99], "kl_calibrated": [0.04] * 3, "iqr": [1, 2, 3], "prompt": list("abc")}
    )
    note = calibration_figures.kl_note(spread, 1.0, 32)
    assert "ceiling" not in note and "factor 5.21" in note
    fig = calibration_figures.kl_figure(spread, 1.0)
    assert fig.layout.yaxis.type == "log" and list(fig.layout.yaxis.tickvals)


@needs_world
@pytest.mark.slow
def test_calibration_builds_with_the_model_boxes_empty_in_session_state(tmp_path, monkeypatch):
    monkeypatch.setenv("INFALIGN_CACHE_DIR", str(tmp_path / "cache"))
    at = AppTest.from_file(str(ROOT / "app_pages" / "calibration.py"), default_timeout=180)
    at.session_state["calibration_policy"] = ""  # what a user saw after an upload
    at.run()
    at.number_input[0].set_value(1)
    at.select_slider(key="calibration_m").set_value(4)
    at.select_slider(key="calibration_heldout").set_value(4)
    at.button[0].click().run()
    assert not at.exception
    assert not [e.value for e in at.error if "No policy" in e.value]
    assert "calibration" in at.session_state


@needs_world
@pytest.mark.slow
def test_a_sampling_error_on_models_clears_the_stale_results(monkeypatch):
    import infalign_core.sampling as sampling

    at = AppTest.from_file(str(ROOT / "app_pages" / "models.py"), default_timeout=180).run()
    at.slider(key="models_n").set_value(2)
    at.button[1].click().run()  # the sampling form's submit
    assert not at.exception and len(at.dataframe) == 1

    def broken(*args, **kwargs):
        raise InfAlignError("the prompt is longer than the model's context")

    monkeypatch.setattr(sampling, "sample", broken)
    at.button[1].click().run()
    assert any("longer than the model's context" in e.value for e in at.error)
    assert len(at.dataframe) == 0


def test_log_ticks_of_nothing_is_empty():
    assert calibration_figures.log_ticks(np.array([np.nan, -1.0])) == []


def test_the_per_prompt_kl_points_are_not_joined_across_unrelated_prompts():
    spread = pd.DataFrame(
        {"kl_raw": [0.19, 0.5, 0.99], "kl_calibrated": [0.04] * 3, "iqr": [1, 2, 3], "prompt": list("abc")}
    )
    fig = calibration_figures.kl_figure(spread, 1.0)
    per_prompt = [trace for trace in fig.data if len(trace.x) == 3]
    assert {trace.name for trace in per_prompt} == {"raw reward", "calibrated reward"}
    assert all(trace.mode == "markers" for trace in per_prompt)
