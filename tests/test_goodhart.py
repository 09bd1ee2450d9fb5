"""Goodhart on the bundled world: the weak proxy, its over-optimisation curves, the Tour step and its chart."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from infalign_core import goodhart, proxy, tour
from infalign_core.models import BUNDLED

ROOT = Path(__file__).resolve().parents[1]
needs_world = pytest.mark.skipif(
    not (BUNDLED["policy"].is_dir() and proxy.PROXY_DIR.is_dir()), reason="the bundled world is not built"
)


def test_the_naive_lexicon_ignores_negation_and_intensity():
    assert proxy.naive_lexicon_score("The film was not great.") == 1.0  # the oracle calls it negative
    assert proxy.naive_lexicon_score("okay, fine and watchable") == 3.0  # three mild words beat one superb
    assert proxy.naive_lexicon_score("breathtaking") == 1.0


def test_best_of_n_kl_is_the_closed_form():
    assert goodhart.bon_kl(1) == 0.0
    assert goodhart.bon_kl(4) == pytest.approx(math.log(4) - 0.75)


@needs_world
def test_the_shipped_proxy_is_a_small_safetensors_model_weaker_than_the_learned_reward():
    files = {p.name for p in proxy.PROXY_DIR.iterdir()}
    assert "model.safetensors" in files and not files & {"pytorch_model.bin"}
    metrics = json.loads((proxy.PROXY_DIR / "proxy.json").read_text())
    assert metrics["labels"] <= 1024
    assert metrics["heldout_vs_oracle"]["spearman"] < metrics["learned_reward_vs_oracle"]["spearman"] - 0.1
    assert sum(p.stat().st_size for p in proxy.PROXY_DIR.iterdir()) < 2_000_000


@needs_world
def test_under_best_of_n_the_weak_proxy_and_the_oracle_part_ways_at_high_kl():
    from infalign_core import data
    from infalign_core.models import load_policy
    from infalign_core.rewards import OracleReward, load_reward

    prompts = data.load_prompts("bundled", split="eval", limit=12).prompts
    reference = load_policy("default", device="cpu")
    points = goodhart.bon_curve(
        reference, load_reward("proxy", device="cpu"), OracleReward(), prompts, ns=(1, 64), k=64, m=32
    )
    low, high = points
    assert abs(low["proxy_win_rate"] - low["oracle_win_rate"]) < 0.08  # n = 1 is the reference itself
    assert high["proxy_win_rate"] - high["oracle_win_rate"] > 0.05  # at 3.2 nats the proxy is over-optimised
    assert high["kl"] == pytest.approx(goodhart.bon_kl(64))


@needs_world
@pytest.mark.slow
def test_a_training_curve_measures_each_checkpoint_under_both_rewards():
    from infalign_core import data

    prompts = data.load_prompts("bundled", split="eval", limit=4).prompts
    points = goodhart.training_curve(
        "calibrated RLHF",
        steps=2,
        every=1,
        eval_prompts=prompts,
        k_eval=4,
        num_prompts=8,
        prompts_per_step=4,
        m=8,
    )
    assert [p["step"] for p in points] == [0, 1, 2]
    assert points[0]["kl"] == pytest.approx(0.0, abs=1e-6)
    for p in points:
        assert 0 <= p["proxy_win_rate"] <= 1 and 0 <= p["oracle_win_rate"] <= 1


def _fake_results(path: Path, oracle_end: float) -> None:
    curves = {
        "best-of-n (reference)": [
            {"n": 1, "kl": 0.0, "proxy_win_rate": 0.5, "oracle_win_rate": 0.5},
            {"n": 64, "kl": 3.17, "proxy_win_rate": 0.98, "oracle_win_rate": oracle_end},
        ],
        "raw-reward RLHF": [
            {"step": 0, "kl": 0.0, "proxy_win_rate": 0.5, "oracle_win_rate": 0.5},
            {"step": 30, "kl": 2.0, "proxy_win_rate": 0.9, "oracle_win_rate": oracle_end},
        ],
    }
    path.write_text(json.dumps({"curves": curves, "summary": goodhart.robustness_summary(curves)}))


@pytest.mark.parametrize(
    ("oracle_end", "expected"),
    [(0.6, "the proxy's keeps rising, the oracle's falls behind"), (0.97, "they rise together")],
)
def test_the_tour_answer_follows_the_curves_not_a_typed_value(tmp_path, monkeypatch, oracle_end, expected):
    _fake_results(tmp_path / "curves.json", oracle_end)
    monkeypatch.setattr(goodhart, "RESULTS_PATH", tmp_path / "curves.json")
    step = next(s for s in tour.load_steps() if s.answer == "goodhart_curve")
    result = tour.reveal(step)
    assert result.correct == expected and result.correct in tour.choices_of(step)
    assert result.figure is not None and result.table


def test_the_robustness_summary_reads_peak_and_final_oracle_win_rates():
    curves = {
        "m": [
            {"step": 0, "kl": 0.0, "proxy_win_rate": 0.5, "oracle_win_rate": 0.5},
            {"step": 1, "kl": 1.0, "proxy_win_rate": 0.7, "oracle_win_rate": 0.65},
            {"step": 2, "kl": 2.0, "proxy_win_rate": 0.9, "oracle_win_rate": 0.6},
        ]
    }
    summary = goodhart.robustness_summary(curves)["m"]
    assert summary["peak_oracle_win_rate"] == 0.65 and summary["peak_kl"] == 1.0
    assert summary["final_gap"] == pytest.approx(0.3)


def test_the_goodhart_chart_draws_proxy_solid_and_oracle_dashed(tmp_path):
    from infalign_core.figures.goodhart import goodhart_figure

    _fake_results(tmp_path / "c.json", 0.6)
    fig = goodhart_figure(json.loads((tmp_path / "c.json").read_text())["curves"])
    names = [t.name for t in fig.data]
    assert "raw-reward RLHF · proxy" in names and "raw-reward RLHF · oracle" in names
    dashes = {t.name: t.line.dash for t in fig.data}
    assert dashes["raw-reward RLHF · oracle"] == "dash" and dashes["raw-reward RLHF · proxy"] == "solid"


@pytest.mark.skipif(not goodhart.RESULTS_PATH.is_file(), reason="the Goodhart curves are not built")
def test_the_tour_page_reveals_the_goodhart_chart():
    at = AppTest.from_file(str(ROOT / "app_pages" / "tour.py"), default_timeout=120).run()
    steps = tour.load_steps()
    number = next(i for i, s in enumerate(steps) if s.answer == "goodhart_curve")
    at.session_state["tour_step"] = number
    at.run()
    at.radio(key=f"tour_guess_{number}").set_value(tour.choices_of(steps[number])[1]).run()
    at.button(key=f"tour_reveal_{number}").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    spec = json.loads(charts[0].proto.spec)
    names = {trace["name"] for trace in spec["data"]}
    assert {"best-of-n (reference) · proxy", "best-of-n (reference) · oracle"} <= names
    assert np.isfinite([p for t in spec["data"] for p in t["y"] if isinstance(p, float)]).all()
