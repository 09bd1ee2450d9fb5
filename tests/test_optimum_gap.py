"""A run's distance to the exact optimum at its KL, and the split of its KL, in words."""

from __future__ import annotations

import json

import pytest

from infalign_core import optimum_gap, theory
from infalign_core.transforms import Transform

CONFIG = {"transform": "exp", "t": 10.0, "mode": "worst", "n": 4, "kl_target": 0.5}


def optimum_won(kl: float) -> float:
    phi = Transform("exp", 10.0, "worst")
    return theory.evaluate(phi, theory.beta_for_kl(phi, kl), 4).won_win_rate


def test_an_arena_record_is_compared_with_the_theorys_optimum_at_its_own_kl():
    record = {
        "kl": {"k1": 0.386, "calibrated": 0.162},
        "win_rates": {"won_win_rate": 0.793, "bon_win_rate": 0.5},
    }
    gap = optimum_gap.for_run(CONFIG, [], [record])
    assert gap.source == "arena" and gap.procedure == "worst-of-4"
    assert gap.optimum == pytest.approx(optimum_won(0.386))
    assert gap.gap == pytest.approx(0.793 - optimum_won(0.386))
    assert gap.share_seen == pytest.approx(0.162 / 0.386)
    text = gap.text()
    assert "0.39 nats" in text and f"{-gap.gap:.3f} short" in text and "42%" in text


def test_the_reward_visible_kl_is_read_against_what_the_optimum_shows_through_the_same_bank():
    from infalign_core.optimum import optimum_visible_kl

    record = {
        "settings": {"k": 64},
        "kl": {"k1": 0.4, "calibrated": 0.3},
        "win_rates": {"won_win_rate": 0.85},
    }
    gap = optimum_gap.for_run(CONFIG, [], [record])
    ceiling = optimum_visible_kl(CONFIG, 0.4, 64)
    assert 0 < ceiling < 0.4  # a bank of 64 cannot show all of the optimum's KL
    assert gap.optimum_seen == pytest.approx(ceiling)
    assert gap.share_of_optimum_seen == pytest.approx(0.3 / ceiling)
    assert f"{0.3 / ceiling:.0%} of what the reward could see" in gap.text()


def test_without_an_arena_record_the_last_training_steps_are_read():
    rows = [{"step": s, "kl/k1": 0.5, "winrate/won": 0.9, "kl/calibrated": 0.4} for s in range(1, 41)]
    gap = optimum_gap.for_run(CONFIG, rows, [])
    assert gap.source == "training" and gap.kl == pytest.approx(0.5)
    assert gap.optimum == pytest.approx(optimum_won(0.5)) and gap.share_seen == pytest.approx(0.8)
    assert "training steps" in gap.text()


def test_too_few_steps_or_a_raw_reward_run_give_no_reading():
    rows = [{"step": s, "kl/k1": 0.5, "winrate/won": 0.9} for s in range(1, 10)]
    assert optimum_gap.for_run(CONFIG, rows, []) is None
    raw = {"transform": "raw", "n": 4}
    record = {"kl": {"k1": 0.4}, "win_rates": {"bon_win_rate": 0.6}}
    assert optimum_gap.for_run(raw, [], [record]) is None


def test_a_best_of_n_run_is_judged_on_best_of_n_and_a_measurement_above_the_curve_is_called_noise():
    config = {"transform": "identity", "n": 4, "mode": "best"}
    record = {"kl": {"k1": 0.5}, "win_rates": {"bon_win_rate": 0.99}}
    gap = optimum_gap.for_run(config, [], [record])
    assert gap.procedure == "best-of-4" and gap.gap > 0 and "sampling noise" in gap.text()
    assert gap.share_seen is None and "sees" not in gap.text()


@pytest.mark.gallery
def test_the_report_puts_each_gallery_runs_exact_optimum_beside_its_measurement(monkeypatch):
    import html
    import json
    from pathlib import Path

    from infalign_core import arena_results, report

    shipped = Path(__file__).resolve().parents[1] / "assets" / "gallery"
    monkeypatch.setenv("INFALIGN_GALLERY_DIR", str(shipped))
    run_dir = shipped / "gallery-ctrl-wo4-exp"
    config = json.loads((run_dir / "config.json").read_text())
    record = report._best_record(run_dir)
    expected = optimum_gap.from_arena(config, record)
    assert expected is not None and arena_results.load_arena_results(run_dir)
    page = report.build_report(["gallery-ctrl-wo4-exp"])
    assert "Against the exact optimum" in page and html.escape(expected.text()) in page


@pytest.mark.gallery
def test_the_ctrl_page_states_the_recommended_runs_shortfall_from_the_gallerys_records(monkeypatch, tmp_path):
    from pathlib import Path

    from infalign_core.figures import ctrl as ctrl_figures

    shipped = Path(__file__).resolve().parents[1] / "assets" / "gallery"
    monkeypatch.setenv("INFALIGN_GALLERY_DIR", str(shipped))
    text = ctrl_figures.recommended_run_shortfall()
    for run_id in ("gallery-ctrl-wo4-exp", "gallery-ctrl-bo4-exp"):
        config = json.loads((shipped / run_id / "config.json").read_text())
        gap = optimum_gap.for_run(config, [], json.loads((shipped / run_id / "arena.json").read_text()))
        assert f"wins {gap.measured:.3f} of {gap.procedure} against the optimum's {gap.optimum:.3f}" in text
    monkeypatch.setenv("INFALIGN_GALLERY_DIR", str(tmp_path))  # no gallery: nothing is claimed
    assert ctrl_figures.recommended_run_shortfall() is None
