"""The arena page under AppTest: empty runs folder, the reference against itself, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from infalign_core import runs
from infalign_core.models import BUNDLED

PAGE = str(Path(__file__).resolve().parent.parent / "app_pages" / "arena.py")
needs_world = pytest.mark.skipif(not BUNDLED["policy"].is_dir(), reason="the bundled world is not built")


@pytest.fixture
def no_runs(tmp_path, monkeypatch):
    """An empty runs folder."""
    monkeypatch.setenv(runs.RUNS_ENV_VAR, str(tmp_path / "runs"))
    return tmp_path / "runs"


def test_page_renders_with_no_runs_and_says_what_to_do(no_runs):
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert any("No CTRL runs" in info.value for info in at.info)
    assert at.selectbox(key="challenger").value.startswith("reference")


def test_n_above_k_is_shown_as_an_error(no_runs):
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.number_input(key="n").set_value(8)
    at.number_input(key="k").set_value(4)
    at.button(key="evaluate").click().run()
    assert not at.exception
    assert any("K ≥ N" in error.value for error in at.error)


@needs_world
@pytest.mark.slow
def test_reference_against_itself_shows_about_one_half(no_runs):
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    at.number_input(key="n").set_value(2)
    at.number_input(key="k").set_value(8)
    at.number_input(key="num_prompts").set_value(8)
    at.number_input(key="batch").set_value(4)
    at.button(key="evaluate").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    values = {m.label: float(m.value) for m in at.metric}
    assert abs(values["best-of-N win rate"] - 0.5) < 0.2
    assert abs(values["standard win rate"] - 0.5) < 0.15
    assert values["KL(π‖π_ref), nats"] == pytest.approx(0.0, abs=1e-3)
    assert len(at.dataframe) == 2  # the evaluation is in the comparison table (setup, win rates)


@needs_world
@pytest.mark.slow
def test_a_runs_evaluation_is_saved_and_drawn_on_its_theory_curve(no_runs):
    import shutil

    run = no_runs / "20260101-000000-exp-abcd"
    shutil.copytree(BUNDLED["policy"], run / "checkpoint")
    (run / "checkpoint" / "trainer_state.pt").write_bytes(b"")
    config = {"transform": "exp", "t": 12.0, "mode": "best", "n": 2, "beta": 0.3, "policy": "default"}
    (run / "config.json").write_text(json.dumps(config))
    runs.write_status(run, state="finished", created=1.0)
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert at.selectbox(key="challenger").value.startswith(run.name)
    at.number_input(key="k").set_value(4)
    at.number_input(key="num_prompts").set_value(4)
    at.button(key="evaluate").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    [saved] = json.loads((run / "arena.json").read_text())
    assert saved["settings"]["n"] == 2 and "theory" in saved
    assert saved["kl"]["calibrated"] is not None and "theory_at_calibrated_kl" in saved
    fresh = AppTest.from_file(PAGE, default_timeout=60).run()  # a restart still shows it
    assert len(fresh.dataframe) == 2
    assert "KL seen (share)" in fresh.dataframe[0].value.columns
    fresh.radio(key="kl_place").set_value("KL the reward sees").run()  # the run placed at the other KL
    assert not fresh.exception
    [chart] = [c for c in fresh.get("plotly_chart") if "reward sees" in c.proto.spec][:1]
    assert chart is not None


@needs_world
@pytest.mark.slow
def test_the_exact_optimum_is_a_challenger_drawn_as_a_star_beside_the_runs(no_runs):
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    at.selectbox(key="challenger").set_value(
        next(o for o in at.selectbox(key="challenger").options if "optimum" in o)
    )
    at.run()
    at.number_input(key="n").set_value(2)
    at.number_input(key="k").set_value(8)
    at.number_input(key="num_prompts").set_value(4)
    at.number_input(key="optimum_kl").set_value(0.3)
    at.number_input(key="optimum_pool").set_value(32)
    at.button(key="evaluate").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    # 32 samples per prompt are too few for an ESS of 64: the page says so and names a pool that would do.
    assert any("would do" in w.value for w in at.warning)
    [record] = at.session_state["arena_results"].values()
    assert record["optimum"]["pool"] == 32 and "perfect trainer" in record["label"]
    assert record["kl"]["k1"] == pytest.approx(0.3, rel=0.1)
    assert record["theory"]["kl"] == pytest.approx(record["kl"]["k1"])
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    stars = [t for c in charts for t in c["data"] if t.get("marker", {}).get("symbol") == "star"]
    assert stars and "perfect trainer" in stars[0]["name"]
    # The stakeholder report carries the optimum even with no run chosen.
    at.button(key="build_report").click().run()
    html = at.session_state["arena_report"].decode()
    assert "The exact optimum π*" in html and "soft best-of-32" in html


def test_sampling_fields_follow_the_challengers_run_until_edited(no_runs):
    for name, temperature, tokens in (("20260101-000000-a", 0.7, 12), ("20260101-000001-b", 1.3, 20)):
        run = no_runs / name
        (run / "checkpoint").mkdir(parents=True)  # listed as a challenger; never loaded here
        (run / "checkpoint" / "trainer_state.pt").write_bytes(b"")
        config = {"transform": "identity", "n": 4, "temperature": temperature, "max_new_tokens": tokens}
        (run / "config.json").write_text(json.dumps(config))
        runs.write_status(run, state="finished", created=1.0)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    labels = {o.split(" ")[0]: o for o in at.selectbox(key="challenger").options if o.startswith("2026")}
    at.selectbox(key="challenger").set_value(labels["20260101-000000-a"]).run()
    assert (at.number_input(key="temperature").value, at.number_input(key="max_new_tokens").value) == (
        0.7,
        12,
    )
    at.selectbox(key="challenger").set_value(labels["20260101-000001-b"]).run()
    assert (at.number_input(key="temperature").value, at.number_input(key="max_new_tokens").value) == (
        1.3,
        20,
    )
    at.number_input(key="temperature").set_value(0.9).run()
    at.selectbox(key="challenger").set_value(labels["20260101-000000-a"]).run()
    assert at.number_input(key="temperature").value == 0.9  # the user's value stays, and says so
    assert at.number_input(key="max_new_tokens").value == 12
    assert "Temperature = 0.9 is your value" in " ".join(c.value for c in at.caption)
