"""Every arena result under several rewards: the NaN-aware estimator, --eval-reward, the arena page and the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from infalign_core import eval_rewards
from infalign_core.errors import InfAlignError
from infalign_core.models import BUNDLED
from infalign_core.winrate import estimate_scored_win_rates, estimate_win_rates, tie_share

needs_world = pytest.mark.skipif(not BUNDLED["policy"].is_dir(), reason="the bundled world is not built")
PAGE = str(Path(__file__).resolve().parent.parent / "app_pages" / "arena.py")


def test_without_unscored_samples_the_scored_estimator_is_the_plain_one():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.3, 1, (20, 8)), rng.normal(0, 1, (20, 8))
    plain = estimate_win_rates(a, b, 4, seed=1)
    scored, extras = estimate_scored_win_rates(a, b, 4, seed=1)
    assert scored.as_dict() == plain.as_dict()
    assert extras == {"tie_share": 0.0, "unscored_share": 0.0, "prompts_left_out": 0}


def test_unscored_samples_are_left_out_not_counted_as_zero():
    a = np.array([[0.9, 0.9, np.nan], [0.9, np.nan, np.nan]])
    b = np.array([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]])
    estimate, extras = estimate_scored_win_rates(a, b, 2, resamples=50)
    # Prompt 2 has one scored challenger sample (< N = 2): left out; prompt 1 wins every comparison.
    assert extras["prompts_left_out"] == 1 and estimate.num_prompts == 1
    assert estimate.standard_win_rate == 1.0 and estimate.bon_win_rate == 1.0
    assert extras["unscored_share"] == pytest.approx(3 / 12)
    # Counted as 0, the unscored sample would lose and drag the win rate down.
    assert estimate_win_rates(np.nan_to_num(a[:1]), b[:1], 1).standard_win_rate == pytest.approx(2 / 3)
    with pytest.raises(InfAlignError, match="no prompt has N = 3 scored samples"):
        estimate_scored_win_rates(a, b, 3)


def test_tie_share_counts_equal_pairs_per_prompt():
    a = np.array([[1.0, 2.0], [0.0, 0.0]])
    b = np.array([[1.0, 3.0], [0.0, np.nan]])
    assert tie_share(a, b) == pytest.approx((1 / 4 + 1.0) / 2)


def test_judge_specs_take_the_judge_model_and_others_pass_through():
    assert eval_rewards.with_judge("judge:helpfulness", "/m") == "judge:helpfulness@/m"
    assert eval_rewards.with_judge("judge:helpfulness@/a", "/m") == "judge:helpfulness@/a"
    assert eval_rewards.with_judge("oracle", "/m") == "oracle"


def test_the_table_marks_the_trained_reward_and_shows_ties_and_unscored():
    result = {key: 0.5 for key in ("standard_win_rate", "bon_win_rate", "won_win_rate")} | {
        f"{k}_{e}": 0.4
        for k in ("standard_win_rate", "bon_win_rate", "won_win_rate")
        for e in ("ci_low", "ci_high")
    }
    rows = eval_rewards.table_rows(
        "default",
        {**result, "tie_share": 0.1, "unscored_share": 0.0},
        {"oracle": {**result, "tie_share": None, "unscored_share": 0.02}},
        4,
    )
    assert rows[0]["reward"] == "default (trained on)" and rows[1]["reward"] == "oracle"
    assert rows[0]["ties"] == "10.0 %" and rows[1]["ties"] == "—" and rows[1]["unscored"] == "2.0 %"
    assert "best-of-4" in rows[0]


@needs_world
@pytest.mark.gallery
def test_winrate_eval_reward_json_gives_each_reward_three_win_rates_with_intervals(capsys):
    from infalign_core.cli import main

    args = ["winrate", "--policy", "gallery-ctrl-bo4-exp", "--n", "4", "--k", "16", "--num-prompts", "24"]
    assert (
        main([*args, "--eval-reward", "oracle", "--eval-reward", "vader", "--resamples", "200", "--json"])
        == 0
    )
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(out["eval_rewards"]) == {"oracle", "vader"}
    for result in out["eval_rewards"].values():
        assert set(eval_rewards.RESULT_KEYS) <= set(result)
        for name in ("standard_win_rate", "bon_win_rate", "won_win_rate"):
            assert result[f"{name}_ci_low"] <= result[name] <= result[f"{name}_ci_high"]
    # The bundled learned reward agrees with the world's oracle within noise on a gallery run.
    oracle = out["eval_rewards"]["oracle"]
    for name in ("standard_win_rate", "bon_win_rate", "won_win_rate"):
        assert abs(out[name] - oracle[name]) < 0.05, name
    assert out["tie_share"] is not None and out["unscored_share"] == 0.0


@needs_world
def test_a_judge_eval_reward_without_a_judge_model_is_refused(capsys):
    from infalign_core.cli import main

    args = ["winrate", "--policy", "reference", "--n", "1", "--k", "2", "--num-prompts", "2"]
    assert main([*args, "--eval-reward", "judge:helpfulness"]) == 2
    assert "--judge MODEL" in capsys.readouterr().err
    assert main([*args, "--judge", "x"]) == 2
    assert "needs a judge reward" in capsys.readouterr().err


@needs_world
@pytest.mark.slow
def test_the_arena_page_shows_win_rates_under_other_rewards(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from infalign_core import runs

    monkeypatch.setenv(runs.RUNS_ENV_VAR, str(tmp_path / "runs"))
    at = AppTest.from_file(PAGE, default_timeout=180).run()
    at.number_input(key="n").set_value(2)
    at.number_input(key="k").set_value(4)
    at.number_input(key="num_prompts").set_value(4)
    at.multiselect(key="eval_rewards").set_value(["oracle", "vader"])
    at.button(key="evaluate").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(h.value == "Under other rewards" for h in at.subheader)
    table = next(df.value for df in at.dataframe if "reward" in df.value.columns)
    assert list(table["reward"]) == ["default (trained on)", "oracle", "vader"]


def test_the_report_carries_the_win_rates_under_other_rewards(tmp_path):
    from infalign_core import report

    result = {k: 0.6 for k in ("standard_win_rate", "bon_win_rate", "won_win_rate")}
    result |= {f"{k}_{e}": 0.5 + 0.2 * (e == "ci_high") for k in list(result) for e in ("ci_low", "ci_high")}
    record = {
        "settings": {"n": 4, "k": 8},
        "win_rates": result,
        "tie_share": 0.01,
        "unscored_share": 0.0,
        "eval_rewards": {
            "trained_on": "default",
            "oracle": {**result, "tie_share": 0.02, "unscored_share": 0.0},
        },
    }
    html = report._eval_rewards_html(tmp_path, record)
    assert "Under other rewards" in html and "default (trained on)" in html and "oracle" in html
    assert "2.0 %" in html  # the oracle's tie share
    assert report._eval_rewards_html(tmp_path, {**record, "eval_rewards": None}) == ""
