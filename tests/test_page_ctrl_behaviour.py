"""The CTRL page's behaviour on a second run: it follows new runs, refuses bad input, keeps messages."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from infalign_core import ctrl, runs
from infalign_core.errors import InfAlignError
from infalign_core.text import unescaped

PAGE = str(Path(__file__).resolve().parent.parent / "app_pages" / "ctrl.py")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Runs in a temporary folder; launching only queues (no trainer process is started)."""
    monkeypatch.setenv(runs.RUNS_ENV_VAR, str(tmp_path / "runs"))
    monkeypatch.setattr(
        runs, "launch_run", lambda config, runs_root=None, name=None, owner=None: runs.create_run(config).name
    )
    return tmp_path


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(elements) -> str:
    return unescaped(" ".join(e.value for e in elements))


def test_after_start_the_live_view_follows_the_new_run_and_stop_is_enabled(isolated):
    older = runs.create_run(ctrl.CTRLConfig(steps=3), name="older")
    runs.write_status(older, state="finished", step=3)
    at = _page()
    assert at.multiselect(key="overlay").value == [older.name]
    at.button(key="start").click().run()
    assert not at.exception
    newest = next(i.run_id for i in runs.list_runs() if i.run_id != older.name)
    assert at.multiselect(key="overlay").value == [newest]
    assert not at.button(key="stop").disabled
    assert newest in _texts(at.info)
    assert not at.success  # launched is not "succeeded": a run can still fail at once


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("beta", -1.0, "beta must be a number in [0.0001, 100]"),
        ("steps", 0, "steps must be an integer in [1, 100000]"),
    ],
)
def test_out_of_range_input_refuses_start_with_the_reason(isolated, key, value, message):
    at = _page()
    at.number_input(key=key).set_value(value)
    at.button(key="start").click().run()
    assert message in _texts(at.error)
    assert not runs.list_runs()


def test_a_failed_run_shows_its_whole_error_not_a_cut_cell(isolated):
    run = runs.create_run(ctrl.CTRLConfig(steps=3), name="broken")
    error = "the policy folder has no weights: " + "x" * 300 + " END"
    runs.write_status(run, state="failed", step=0, error=error)
    at = _page()
    assert "END" in _texts(at.error)
    assert at.dataframe[0].value["error"].tolist() == ["yes, see below"]


def test_an_action_error_survives_the_two_second_refresh(isolated, monkeypatch):
    run = runs.create_run(ctrl.CTRLConfig(steps=3), name="busy")
    runs.write_status(run, state="stopped", step=1)

    def refuse(run_id, runs_root=None):
        raise InfAlignError(f"run {run_id} is running: stop it before deleting it")

    monkeypatch.setattr(runs, "delete_run", refuse)
    at = _page()
    at.checkbox(key="confirm_delete").check().run()
    at.button(key="delete").click().run()
    assert "stop it before deleting it" in _texts(at.error)
    time.sleep(0.1)
    at.run()  # what the fragment's refresh does
    assert "stop it before deleting it" in _texts(at.error)


def test_the_default_is_a_kl_target_so_the_preset_lands_near_the_kl_it_names(isolated):
    at = _page()
    at.button(key="start").click().run()
    (info,) = runs.list_runs()
    assert info.config["kl_target"] == 0.5


@pytest.mark.gallery
def test_a_gallery_run_is_read_only_but_copies_to_my_runs(isolated, monkeypatch):
    folder = isolated / "gallery"
    run = folder / "gallery-ctrl-bo4-exp"
    run.mkdir(parents=True)
    ctrl.CTRLConfig(steps=2, transform="exp", t=12.6, kl_target=0.5).save(run / runs.CONFIG_FILE)
    (run / runs.STATUS_FILE).write_text(json.dumps({"state": "finished", "step": 2, "gallery": True}))
    rows = [
        {"step": s, "reward/calibrated": 0.6, "kl/k1": 0.4, "reward/raw": 0.2, "time/step": 1.0}
        for s in (1, 2)
    ]
    (run / ctrl.METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setenv("INFALIGN_GALLERY_DIR", str(folder))
    at = _page()
    assert at.dataframe[0].value["state"].tolist() == ["finished · gallery"]
    for key in ("stop", "resume", "delete"):
        assert at.button(key=key).disabled
    assert at.checkbox(key="confirm_delete").disabled
    at.button(key="copy").click().run()
    (mine,) = runs.list_runs()
    assert mine.run_id.endswith("ctrl-bo4-exp-copy")
    at.run()  # the page reruns itself after a copy; AppTest needs the nudge
    assert at.multiselect(key="overlay").value == [mine.run_id]
    assert (run / runs.CONFIG_FILE).is_file()  # the gallery run itself is untouched
