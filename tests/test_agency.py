"""HumanAgencyBench: the fixture through datasets, HAB prompts, agency scores under best/worst-of-N, judge agreement."""

from __future__ import annotations

import itertools
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from infalign_core import agency, data, hab
from infalign_core.errors import InfAlignError
from infalign_core.reward_base import RewardFunction
from infalign_core.rubrics import HAB_DIMENSIONS


def test_the_fixture_loads_through_datasets_one_row_per_test_and_dimension():
    tests = hab.load_tests("hab-fixture")
    assert len(tests) == 12 and {t.dimension for t in tests} == set(HAB_DIMENSIONS)
    assert len({(t.dimension, t.prompt) for t in tests}) == 12  # 2 subject models per test, each test once
    picked = hab.load_tests("hab-fixture:Encourage Learning,correct_misinformation", limit=1)
    assert sorted(t.dimension for t in picked) == ["correct_misinformation", "encourage_learning"]


def test_hab_prompts_work_wherever_prompts_are_read():
    prompts = data.load_prompts("hab-fixture:defer_important_decisions").prompts
    assert len(prompts) == 2 and "startup" in prompts[0]
    assert len(data.load_prompts("hab-fixture", limit=5).prompts) == 5


def test_a_downloaded_copy_is_read_from_the_environment_variable(tmp_path, monkeypatch):
    copy = tmp_path / "hab"
    copy.mkdir()
    shutil.copy(hab.FIXTURE_EVALUATIONS, copy / "evaluations.parquet")
    monkeypatch.setenv("INFALIGN_HAB_DATA", str(copy))
    assert len(hab.load_tests("hab:maintain_social_boundaries")) == 2
    monkeypatch.setenv("INFALIGN_HAB_DATA", str(tmp_path / "missing"))
    with pytest.raises(InfAlignError, match="huggingface-cli download"):
        hab.load_tests("hab")


def test_the_hub_unreachable_says_how_to_fetch_the_real_data(monkeypatch):
    monkeypatch.delenv("INFALIGN_HAB_DATA", raising=False)
    from infalign_core import models

    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(models, "_endpoint_reachable", lambda timeout=3.0: False)
    with pytest.raises(InfAlignError, match=r"HumanAgencyBench_Evaluation_Results.*huggingface-cli download"):
        hab.load_tests("hab")


@pytest.mark.parametrize("bad", ["hab:curiosity", "habx", "hab-fixture:ask"])
def test_unknown_sources_and_dimensions_are_refused(bad):
    with pytest.raises(InfAlignError, match=r"HAB|dimension"):
        hab.load_tests(bad)


def test_a_copy_without_the_expected_columns_names_what_is_missing(tmp_path, monkeypatch):
    import datasets

    path = tmp_path / "evaluations.parquet"
    datasets.Dataset.from_list([{"topic": "x", "text": "y"}]).to_parquet(str(path))
    monkeypatch.setenv("INFALIGN_HAB_DATA", str(path))
    with pytest.raises(InfAlignError, match=r"no dimension column .*dim"):
        hab.load_tests("hab")


def _brute_force(scores, selection, n, mode):
    """The pick's expected score over every N-subset, ties in the selection broken uniformly at random."""
    total, count = 0.0, 0
    for subset in itertools.combinations(range(len(scores)), n):
        values = [selection[i] for i in subset]
        target = max(values) if mode == "best" else min(values)
        tied = [scores[i] for i in subset if selection[i] == target]
        total, count = total + sum(tied) / len(tied), count + 1
    return total / count


@pytest.mark.parametrize("mode", ["best", "worst"])
@pytest.mark.parametrize("seed", range(5))
def test_the_picked_score_is_the_exact_average_over_all_n_subsets_with_ties_shared(mode, seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 11, 7) / 10
    selection = rng.integers(0, 4, 7).astype(float)  # many ties
    got = agency.selected_score(scores, selection, 3, mode)
    assert got == pytest.approx(_brute_force(scores, selection, 3, mode))


def test_unscored_answers_are_left_out_of_a_test():
    scores = np.array([1.0, np.nan, 0.0, 0.5])
    selection = np.array([3.0, 9.0, 1.0, np.nan])
    assert agency.selected_score(scores, selection, 1, "best") == pytest.approx(0.5)  # mean of the 2 usable
    assert agency.selected_score(scores, selection, 2, "best") == pytest.approx(1.0)
    assert np.isnan(agency.selected_score(scores, selection, 3, "best"))


class _Scripted(RewardFunction):
    """A stand-in judge: a fixed function of the response text."""

    def __init__(self, name, fn):
        self.name, self.fingerprint, self._fn = name, name, fn

    def _score_pairs(self, prompts, responses):
        return np.array([self._fn(r) for r in responses], dtype=np.float64)


def test_agency_scores_report_mean_stderr_and_the_best_of_n_change(tmp_path):
    import test_judge

    from infalign_core.models import load_policy

    policy = load_policy(str(test_judge._tiny_chat_model(tmp_path, "qwen2")), device="cpu")
    tests = hab.load_tests("hab-fixture:ask_clarifying_questions,encourage_learning")
    # Longer answers please the "helpfulness" selector but cost agency: best-of-N must lower the score.
    judge = _Scripted("judge:x", lambda r: 1.0 / (1 + len(r)))
    helpful = _Scripted("helpful", lambda r: float(len(r)))
    results = agency.agency_scores(
        policy, tests, lambda d: judge, n=2, k=4, select_reward=helpful, max_new_tokens=6, seed=1
    )
    assert [r.dimension for r in results] == ["ask_clarifying_questions", "encourage_learning"]
    for r in results:
        assert r.tests == 2 and 0 < r.mean <= 1 and r.stderr >= 0
        assert r.bon_mean <= r.mean <= r.won_mean
    lines = agency.change_lines(results, 2, "helpful")
    assert lines[0].startswith("best-of-2 on helpful: Ask Clarifying Questions ") and "→" in lines[0]


def test_judge_agreement_correlates_with_the_human_mean():
    annotations = hab.load_annotations("hab-fixture")
    assert annotations and all(0 <= a.human_mean <= 1 and a.raters == 3 for a in annotations)
    truth = {(a.prompt, a.response): a.human_mean for a in annotations}

    class Faithful(RewardFunction):
        name = fingerprint = "faithful"

        def _score_pairs(self, prompts, responses):
            return np.array([truth[(p, r)] for p, r in zip(prompts, responses)])

    results = agency.judge_agreement(annotations, lambda d: Faithful())
    assert {r.dimension for r in results} == set(HAB_DIMENSIONS)
    assert all(r.pearson == pytest.approx(1.0) and r.spearman == pytest.approx(1.0) for r in results)


def test_agency_and_judge_agreement_commands_run_on_the_fixture_with_a_tiny_judge(
    tmp_path, capsys, monkeypatch
):
    import test_judge

    from infalign_core.cli import main

    model = str(test_judge._tiny_chat_model(tmp_path, "llama"))
    monkeypatch.setenv("INFALIGN_JUDGE_CACHE_DIR", str(tmp_path / "cache"))
    common = ["--judge", model, "--device", "cpu", "--judge-max-new-tokens", "4", "--json"]
    args = [
        "agency",
        "--policy",
        model,
        "--prompts",
        "hab-fixture:correct_misinformation",
        "--n",
        "2",
        "--k",
        "2",
    ]
    assert main([*args, "--max-new-tokens", "4", *common]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    row = out["dimensions"]["correct_misinformation"]
    assert (
        out["select_reward"] == "judge:helpfulness" and row["unscored_share"] == 1.0 and row["mean"] is None
    )
    assert main(["judge-agreement", "--annotations", "hab-fixture:encourage_learning", *common]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["dimensions"]["encourage_learning"]["pearson"] is None  # a random judge answers nothing usable
    assert main([*args, "--k", "1", *common]) == 2
    assert "N = 2 needs" in capsys.readouterr().err


AGENCY_PAGE = str(Path(__file__).resolve().parent.parent / "app_pages" / "agency.py")


def test_the_agency_page_asks_for_models_then_scores_the_fixture(tmp_path, monkeypatch):
    import test_judge
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("INFALIGN_JUDGE_CACHE_DIR", str(tmp_path / "cache"))
    model = str(test_judge._tiny_chat_model(tmp_path, "qwen2"))
    at = AppTest.from_file(AGENCY_PAGE, default_timeout=180).run()
    at.button(key="agency_run").click().run()
    assert not at.exception and any("Give a policy and a judge" in e.value for e in at.error)
    at.text_input(key="agency_policy").set_value(model)
    at.text_input(key="agency_judge").set_value(model)
    at.multiselect(key="agency_dimensions").set_value(["Encourage Learning"])
    at.number_input(key="agency_n").set_value(2)
    at.number_input(key="agency_k").set_value(2)
    at.number_input(key="agency_tokens").set_value(4)
    at.number_input(key="agency_judge_tokens").set_value(4)
    at.button(key="agency_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(at.get("plotly_chart")) == 1 and len(at.dataframe) == 1
    assert any("unscored" in info.value for info in at.info)  # a random judge: said, not hidden
