"""The Tour: questions come from data, answers are computed, each step renders quickly."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from infalign_core import runs, tour
from infalign_core.errors import InfAlignError

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
THEORY_STEPS = [i for i, s in enumerate(tour.load_steps()) if s.stage in ("calibrate", "transform")]


def test_the_tour_has_5_to_7_steps_through_every_stage_in_order():
    steps = tour.load_steps()
    assert 5 <= len(steps) <= 7
    stages = [s.stage for s in steps]
    assert set(stages) == set(tour.STAGES)
    assert stages == sorted(stages, key=tour.STAGES.index)


@pytest.mark.parametrize("number", THEORY_STEPS)
def test_each_theory_answer_is_one_of_its_choices_and_computed_in_under_2_s(number):
    step = tour.load_steps()[number]
    start = time.process_time()
    result = tour.reveal(step)
    assert time.process_time() - start < 2.0  # CPU time, so a busy machine does not fail it
    assert result.correct in tour.choices_of(step)
    assert result.summary


def test_answers_follow_the_theory_not_a_typed_value(monkeypatch):
    # If the exponential did not beat identity, the revealed winner would change with it.
    import infalign_core.explorer as explorer

    real = explorer.resolve_transform

    def swapped(name, **kwargs):
        return real({"exp": "identity", "identity": "exp"}.get(name, name), **kwargs)

    monkeypatch.setattr(explorer, "resolve_transform", swapped)
    assert tour.bon_transform_winner().correct == "identity (calibrated RLHF)"


def test_a_tour_file_with_an_unknown_answer_is_refused(tmp_path):
    bad = tmp_path / "tour.yaml"
    bad.write_text(
        "steps:\n  - {title: t, stage: arena, question: q, choices: [a, b], answer: nope, explain: e}\n"
    )
    with pytest.raises(InfAlignError, match="answer 'nope'"):
        tour.load_steps(bad)


def _fake_gallery(folder: Path, steps: int = 300) -> None:
    """Two evaluated gallery runs (arena records and configs: the tour reads nothing else)."""
    for run_id, won in (("gallery-ctrl-bo4-exp", 0.55), ("gallery-ctrl-wo4-exp", 0.71)):
        run = folder / run_id
        run.mkdir(parents=True)
        config = {"transform": "exp", "mode": "best", "n": 4, "t": 12.6, "steps": steps, "kl_target": 0.5}
        (run / runs.CONFIG_FILE).write_text(json.dumps(config))
        (run / runs.STATUS_FILE).write_text(json.dumps({"state": "finished", "gallery": True}))
        w = {"standard_win_rate": 0.6, "bon_win_rate": 0.7, "won_win_rate": won}
        w |= {f"{k}_ci_low": v - 0.03 for k, v in list(w.items())} | {
            f"{k}_ci_high": v + 0.03 for k, v in list(w.items())
        }
        record = {"settings": {"n": 4, "k": 64}, "num_prompts_done": 32, "win_rates": w, "kl": {"k1": 0.5}}
        record["theory"] = {"bon_win_rate": 0.75, "won_win_rate": 0.8}
        record["run"] = {"transform": "exp", "t": 12.6, "mode": "best", "n": 4}
        (run / "arena.json").write_text(json.dumps([record]))


@pytest.mark.gallery
def test_gallery_answers_come_from_the_gallerys_arena_records(tmp_path, monkeypatch):
    monkeypatch.setenv("INFALIGN_GALLERY_DIR", str(tmp_path))
    _fake_gallery(tmp_path)
    assert tour.best_worst_of_4().correct == "CTRL worst-of-4 (exp)"
    assert tour.gallery_vs_theory().correct == "below the curve"  # 0.7 [0.67, 0.73] against 0.75


@pytest.mark.gallery
def test_the_worst_of_4_verdict_puts_the_exact_optimum_at_the_runs_kl_beside_each_run(tmp_path, monkeypatch):
    monkeypatch.setenv("INFALIGN_GALLERY_DIR", str(tmp_path))
    _fake_gallery(tmp_path)
    for run_id, optimum in (("gallery-ctrl-bo4-exp", 0.66), ("gallery-ctrl-wo4-exp", 0.93)):
        path = tmp_path / run_id / "arena.json"
        (record,) = json.loads(path.read_text())
        record["theory"]["won_win_rate"] = optimum
        path.write_text(json.dumps([record]))
    reveal = tour.best_worst_of_4()
    assert "would reach 0.930" in reveal.summary
    assert sorted(row["theory worst-of-4 (run's Φ at its KL)"] for row in reveal.table) == [0.66, 0.93]


def test_an_empty_gallery_says_how_to_build_it():
    with pytest.raises(InfAlignError, match="make gallery"):
        tour.best_worst_of_4()


def test_the_tour_page_is_next_after_home_and_reveals_after_a_prediction():
    at = AppTest.from_file(APP, default_timeout=120).run()
    pages = [link.proto.label for link in at.get("page_link")]
    assert pages  # Home lists the path through the app, the Tour first
    at.switch_page("app_pages/tour.py").run()
    assert not at.exception
    assert at.button(key="tour_reveal_0").disabled  # no guess yet
    at.radio(key="tour_guess_0").set_value("piled up near 1").run()
    at.button(key="tour_reveal_0").click().run()
    assert any("the answer is **flat" in w.value for w in at.warning)
    assert len(at.get("plotly_chart")) == 1
    at.button(key="tour_next").click().run()
    assert "Which transform wins best-of-4" in " ".join(h.value for h in at.subheader)


def test_the_app_lists_the_tour_right_after_home():
    source = (ROOT / "app.py").read_text()
    assert (
        source.index('"app_pages/home.py"')
        < source.index('"app_pages/tour.py"')
        < source.index('"app_pages/transforms.py"')
    )


@pytest.mark.parametrize("steps", [77, 300])
def test_step_5_states_the_gallery_runs_steps_read_from_its_config(tmp_path, monkeypatch, steps):
    monkeypatch.setenv("INFALIGN_GALLERY_DIR", str(tmp_path))
    _fake_gallery(tmp_path, steps=steps)
    step = next(s for s in tour.load_steps() if s.answer == "gallery_vs_theory")
    assert f"trained {steps} steps with a 0.5-nat KL target" in tour.question_of(step)


def test_step_5_draws_the_run_on_its_theory_curve(tmp_path, monkeypatch):
    monkeypatch.setenv("INFALIGN_GALLERY_DIR", str(tmp_path))
    _fake_gallery(tmp_path)
    reveal = tour.gallery_vs_theory()
    names = [trace.name for trace in reveal.figure.data]
    assert any("theory" in name for name in names) and any("measured" in name for name in names)
    assert list(reveal.figure.data[1].y) == [0.7]


def test_step_6_asks_about_worst_of_4_and_shows_worst_of_4_theory(tmp_path, monkeypatch):
    monkeypatch.setenv("INFALIGN_GALLERY_DIR", str(tmp_path))
    _fake_gallery(tmp_path)
    row = tour.best_worst_of_4().table[0]
    assert "theory worst-of-4 (run's Φ at its KL)" in row and not any("theory best" in key for key in row)
    assert row["theory worst-of-4 (run's Φ at its KL)"] == 0.8


def test_step_1_bars_are_equal_in_expectation_and_the_noise_is_stated():
    reveal = tour.calibrated_histogram()
    bars, line = reveal.figure.data
    [band] = reveal.figure.layout.shapes
    assert len(set(line.y)) == 1 and "sampling noise" in reveal.summary
    assert sum(bars.y) == 12 * 64  # every held-out reply is in a bar
    assert band.y0 < line.y[0] < band.y1 and band.layer == "below"


def test_coming_back_to_a_revealed_step_keeps_the_committed_guess_and_its_verdict():
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("app_pages/tour.py").run()
    at.radio(key="tour_guess_0").set_value("piled up near 1").run()
    at.button(key="tour_reveal_0").click().run()
    at.button(key="tour_next").click().run()
    at.button(key="tour_back").click().run()
    assert at.radio(key="tour_guess_0").value == "piled up near 1"
    assert at.radio(key="tour_guess_0").disabled  # no second guess after seeing the answer
    assert any("(you said piled up near 1)" in w.value for w in at.warning)
    assert not at.success


def test_a_step_not_yet_revealed_shows_no_verdict_at_the_first_pick():
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("app_pages/tour.py").run()
    at.button(key="tour_next").click().run()
    at.button(key="tour_back").click().run()
    at.radio(key="tour_guess_0").set_value("piled up near 1").run()
    assert not at.warning and not at.success
