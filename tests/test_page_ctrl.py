"""The CTRL page under AppTest: it starts a run as a subprocess and stops it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from test_ctrl import make_run_world

from infalign_core import ctrl, runs

PAGE = str(Path(__file__).resolve().parent.parent / "app_pages" / "ctrl.py")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Runs and bank caches in temporary folders, plus the tiny world."""
    monkeypatch.setenv(runs.RUNS_ENV_VAR, str(tmp_path / "runs"))
    monkeypatch.setenv("INFALIGN_CACHE_DIR", str(tmp_path / "cache"))
    return make_run_world(tmp_path)


def test_page_shows_the_form_and_no_runs(isolated):
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert any("No runs yet" in info.value for info in at.info)
    assert at.selectbox(key="preset").value == "CTRL for best-of-4"


def test_bad_input_is_shown_as_an_error_without_a_run(isolated, tmp_path):
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.text_input(key="prompts").set_value(str(tmp_path / "missing.jsonl"))
    at.button(key="start").click().run()
    assert at.error and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_page_starts_and_stops_a_run(isolated, tmp_path):
    policy, prompts = isolated
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.text_input(key="policy").set_value(str(policy))
    at.text_input(key="prompts").set_value(str(prompts))
    at.text_input(key="reward").set_value("oracle")
    at.number_input(key="num_prompts").set_value(6)
    at.number_input(key="m").set_value(8)
    at.number_input(key="max_new_tokens").set_value(12)
    at.number_input(key="k").set_value(4)
    at.number_input(key="prompts_per_step").set_value(4)
    at.number_input(key="steps").set_value(500)
    at.selectbox(key="device").set_value("cpu")
    at.button(key="start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    [info] = runs.list_runs()
    assert info.state == "running"
    deadline = time.monotonic() + 120
    while not ctrl.read_metrics(info.path) and time.monotonic() < deadline:
        time.sleep(0.2)
    at.run()
    assert "running" in at.dataframe[0].value["state"].tolist()
    at.button(key="stop").click().run()
    assert runs.wait_for(info.run_id, runs.FINAL, timeout=120)["state"] == "stopped"
    assert runs.has_checkpoint(info.path)


def test_a_run_without_a_best_of_n_estimate_says_why_and_which_setting_gives_one(isolated):
    import json

    config = ctrl.CTRLConfig(k=2, n=4, steps=2)
    run_dir = runs.create_run(config, name="short-k")
    reason = ctrl.bank_win_rate_gap(config.k, config.m, config.n)
    rows = [
        {"step": s, "reward/calibrated": 0.5, "kl/k1": 0.0, "reward/raw": 0.1, "time/step": 1.0}
        | {"winrate/bon": None, "winrate/won": None, "winrate/missing": reason}
        for s in (1, 2)
    ]
    (run_dir / ctrl.METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    runs.write_status(run_dir, state="finished", step=2)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert any("set k to at least 4" in info.value for info in at.info)
    assert any("optimistic for a trained policy" in caption.value for caption in at.caption)
