"""The arena page's "any inference procedure" view after an evaluation (AppTest)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from infalign_core import runs
from infalign_core.models import BUNDLED

PAGE = str(Path(__file__).resolve().parent.parent / "app_pages" / "arena.py")


@pytest.mark.skipif(not BUNDLED["policy"].is_dir(), reason="the bundled world is not built")
@pytest.mark.slow
def test_a_procedures_win_rate_is_shown_on_its_theory_curve_and_a_bad_spec_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv(runs.RUNS_ENV_VAR, str(tmp_path / "runs"))
    at = AppTest.from_file(PAGE, default_timeout=180).run()
    at.number_input(key="n").set_value(2)
    at.number_input(key="k").set_value(8)
    at.number_input(key="num_prompts").set_value(8)
    at.number_input(key="batch").set_value(8)
    at.button(key="evaluate").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    values = {m.label: float(m.value) for m in at.metric}
    assert abs(values["mix:0.5:2 win rate"] - 0.5) < 0.2  # the reference against itself
    for spec in ("soft:2:0.1", "reject:0.5:3", "poisson:1"):
        at = at.text_input(key="arena_procedure").set_value(spec).run()
        assert not at.exception and not at.error, (spec, [e.value for e in at.error])
        assert f"{spec} win rate" in {m.label for m in at.metric}
    at = at.text_input(key="arena_procedure").set_value("beam:2").run()
    assert any("unknown procedure" in e.value for e in at.error)
    at = at.text_input(key="arena_procedure").set_value("bon:16").run()
    assert any("K = 8" in e.value for e in at.error)
