"""Judge rewards: rubric validation, answer parsing, the unscored path, the cache and tiny chat judges."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from infalign_core import rubrics
from infalign_core.errors import InfAlignError
from infalign_core.judge import JudgeReward, judge_spec, load_judge_reward, split_spec
from infalign_core.sampling_settings import SamplingSettings

HAB = rubrics.load_rubric("ask_clarifying_questions")
HELP = rubrics.load_rubric("helpfulness")


# --- rubrics ----------------------------------------------------------------------------------------


def test_every_preset_rubric_loads_and_hab_has_all_six_dimensions():
    names = rubrics.preset_names()
    assert set(rubrics.HAB_DIMENSIONS) | {"helpfulness"} <= set(names)
    for name in names:
        rubric = rubrics.load_rubric(name)
        assert rubric.name == name and rubric.description
        if name in rubrics.HAB_DIMENSIONS:
            assert rubric.answer == "deductions" and len(rubric.deductions) >= 3
            assert "2509.08494" in rubric.source


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- just a list", "mapping"),
        ("name: x\ntitle: t\ndescription: d\nanswer: stars", "answer must be one of"),
        ("name: x\ntitle: t\ndescription: d\nanswer: deductions", "non-empty deductions"),
        ("name: x\ntitle: t\ndescription: d\nscale: 0", "scale must be"),
        ("name: x\ntitle: t\ndescription: d\ncolour: red", "unknown field"),
        ("name: x\ntitle: t\ndescription: ''", "description"),
        (
            "name: x\ntitle: t\ndescription: d\ndeductions:\n  - {id: a, points: 1, text: t}",
            "capital letter",
        ),
        (
            "name: x\ntitle: t\ndescription: d\ndeductions:\n  - {id: A, points: 11, text: t}",
            "points",
        ),
        ("name: [unclosed", "not valid YAML"),
    ],
)
def test_a_bad_user_rubric_is_refused_with_a_message_naming_the_problem(tmp_path, text, message):
    path = tmp_path / "mine.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InfAlignError, match=message):
        rubrics.load_rubric(str(path))


def test_a_missing_rubric_names_the_presets():
    with pytest.raises(InfAlignError, match="helpfulness"):
        rubrics.load_rubric("no-such-rubric")


def test_a_user_rubric_file_loads(tmp_path):
    path = tmp_path / "brevity.yaml"
    path.write_text("name: brevity\ntitle: Brevity\ndescription: Short replies.\nanswer: score\nscale: 5\n")
    rubric = rubrics.load_rubric(str(path))
    assert rubric.scale == 5 and rubrics.parse_answer(rubric, "SCORE: 4") == pytest.approx(0.8)


# --- parsing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("The reply asks nothing.\nDEDUCTIONS: A", 0.3),
        ("Reasoning...\nDEDUCTIONS: A, B", 0.0),  # 7 + 4 > 10: floored at 0
        ("fine\nDEDUCTIONS: C, E", 0.7),
        ("great reply\nDEDUCTIONS: none", 1.0),
        ("**DEDUCTIONS:** b", 0.6),  # markdown and lower case
        ("DEDUCTIONS: A\nthen changed its mind\nDEDUCTIONS: D", 0.8),  # the last line counts
        ("DEDUCTIONS: C, C", 0.8),  # a letter counts once
    ],
)
def test_deduction_answers_parse_to_the_rubric_score(answer, expected):
    assert rubrics.parse_answer(HAB, answer) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [("ok\nSCORE: 7", 0.7), ("SCORE: 10/10", 1.0), ("SCORE: 0", 0.0), ("Score: 8.5.", 0.85)],
)
def test_score_answers_parse_to_the_rubric_score(answer, expected):
    assert rubrics.parse_answer(HELP, answer) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("rubric", "answer"),
    [
        (HAB, ""),  # empty
        (HAB, "   \n "),
        (HAB, "I think it is fine."),  # no final line
        (HAB, "DEDUCTIONS: Z"),  # not a letter of the rubric
        (HAB, "DEDUCTIONS: A and then B"),  # malformed list
        (HAB, "DEDUCTIONS:"),
        (HELP, "SCORE: 11"),  # out of range
        (HELP, "SCORE: -1"),
        (HELP, "SCORE: 7/5"),  # another scale
        (HELP, "SCORE: seven"),
        (HELP, "The score is 7"),
        (HELP, None),
    ],
)
def test_malformed_empty_or_out_of_range_answers_are_unparseable_not_zero(rubric, answer):
    assert rubrics.parse_answer(rubric, answer) is None


def test_the_judge_prompt_carries_rubric_conversation_response_and_format():
    text = rubrics.judge_prompt(HAB, "\n\nHuman: plan my trip\n\nAssistant:", "Go to Rome.")
    assert "Ask Clarifying Questions" in text and "[user] plan my trip" in text and "Go to Rome." in text
    assert "A (-7)" in text and text.rstrip().endswith("separated by commas, or none.")
    assert "nothing after it" in rubrics.judge_prompt(HAB, "x", "y", reminder=True)


def test_spec_strings_round_trip():
    assert split_spec(judge_spec("helpfulness", "/m/judge")) == ("helpfulness", "/m/judge")
    assert split_spec("judge:helpfulness") == ("helpfulness", None)


# --- the judge reward with a scripted judge (no model) ------------------------------------------------


class _ScriptedPolicy:
    """Just what JudgeReward's identity needs; the answers come from a patched ``_ask``."""

    fingerprint = "scripted"
    dtype = "float32"
    tokenizer = None
    model = None
    source = "scripted"


def _scripted(tmp_path, answers_by_call, rubric=HELP, **kwargs):
    """A JudgeReward whose n-th judging pass returns answers_by_call[n] (a function of the judge prompts)."""
    reward = JudgeReward(_ScriptedPolicy(), rubric, cache_dir=tmp_path, **kwargs)
    calls = []

    def ask(texts, temperature):
        calls.append((list(texts), temperature))
        return [answers_by_call[min(len(calls) - 1, len(answers_by_call) - 1)](t) for t in texts]

    reward._ask = ask
    return reward, calls


def test_an_unparseable_answer_is_retried_once_at_temperature_0_then_left_unscored(tmp_path):
    first = lambda t: "SCORE: 9" if "good reply" in t else "no idea"  # noqa: E731
    second = lambda t: "SCORE: 4" if "fixable" in t else "still no idea"  # noqa: E731
    reward, calls = _scripted(tmp_path, [first, second], temperature=0.7)
    values = reward.score(["p", "p", "p"], ["good reply", "fixable reply", "hopeless reply"])
    assert values[0] == pytest.approx(0.9) and values[1] == pytest.approx(0.4)
    assert math.isnan(values[2])  # unscored: NaN, never 0
    assert [temperature for _, temperature in calls] == [0.7, 0.0]
    assert len(calls[1][0]) == 2 and all("nothing after it" in t for t in calls[1][0])
    assert reward.counts["unscored"] == 1 and "1 of 3" in reward.unscored_note()


def test_cached_scores_are_not_judged_again_and_unscored_ones_stay_unscored(tmp_path):
    answer = lambda t: "SCORE: 6" if "<<<\na\n>>>" in t else "??"  # noqa: E731
    reward, _calls = _scripted(tmp_path, [answer])
    first = reward.score(["p", "p"], ["a", "b"])
    again, calls_again = _scripted(tmp_path, [lambda t: pytest.fail("judged a cached pair")])
    second = again.score(["p", "p"], ["a", "b"])
    np.testing.assert_array_equal(first, second)  # NaN == NaN for assert_array_equal
    assert first[0] == pytest.approx(0.6) and math.isnan(first[1])
    assert again.counts["cached"] == 2 and not calls_again


def test_a_pair_seen_twice_in_one_batch_is_judged_once(tmp_path):
    reward, calls = _scripted(tmp_path, [lambda t: "SCORE: 5"])
    reward.score(["p"] * 4, ["x", "x", "y", "x"])
    assert len(calls[0][0]) == 2


def test_cache_keys_change_with_rubric_content_judge_prompt_and_response(tmp_path):
    base, _ = _scripted(tmp_path, [lambda t: "SCORE: 5"])
    key = base.item_key("p", "r")
    assert key == _scripted(tmp_path, [lambda t: ""])[0].item_key("p", "r")  # deterministic
    assert key != base.item_key("p2", "r") and key != base.item_key("p", "r2")
    assert key != _scripted(tmp_path, [lambda t: ""], rubric=HAB)[0].item_key("p", "r")
    assert key != _scripted(tmp_path, [lambda t: ""], temperature=0.5)[0].item_key("p", "r")
    edited = rubrics.rubric_from_dict(
        {"name": "helpfulness", "title": "Helpfulness", "description": "Different words.", "answer": "score"}
    )
    assert key != _scripted(tmp_path, [lambda t: ""], rubric=edited)[0].item_key("p", "r")
    other_judge = _ScriptedPolicy()
    other_judge.fingerprint = "another"
    assert key != JudgeReward(other_judge, HELP, cache_dir=tmp_path).item_key("p", "r")


def test_a_corrupt_cache_entry_is_rejudged_not_trusted(tmp_path):
    reward, _calls = _scripted(tmp_path, [lambda t: "SCORE: 3"])
    reward.score(["p"], ["r"])
    entry = next(tmp_path.rglob("*.json"))
    entry.write_text("{not json", encoding="utf-8")
    again, calls_again = _scripted(tmp_path, [lambda t: "SCORE: 3"])
    assert again.score(["p"], ["r"])[0] == pytest.approx(0.3) and calls_again
    assert json.loads(entry.read_text())["score"] == pytest.approx(0.3)
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temporary files


def test_a_judge_reward_without_a_model_says_to_give_one():
    with pytest.raises(InfAlignError, match="--judge MODEL"):
        load_judge_reward("judge:helpfulness")
    with pytest.raises(InfAlignError, match="no rubric"):
        load_judge_reward("judge:@x")


# --- tiny random chat judges: Llama with a chat template, and Qwen2 ------------------------------------


def _tiny_chat_model(root: Path, arch: str) -> Path:
    """A 2-layer random chat model with room for a judge prompt (2048 positions)."""
    import arch_zoo as zoo
    import torch
    import transformers as tf

    tok = zoo.tokenizer_for(arch)
    cfg = zoo._config(arch, len(tok), pad=tok.pad_token_id, max_positions=2048, labels=None)
    torch.manual_seed(7)
    model = tf.AutoModelForCausalLM.from_config(cfg)
    model.generation_config.eos_token_id = [zoo.EOS, zoo.IM_END]
    folder = root / f"judge-{arch}"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_a_tiny_chat_judge_batches_renders_through_its_template_and_reports_unscored(tmp_path, arch):
    from infalign_core.rewards import load_reward

    folder = _tiny_chat_model(tmp_path, arch)
    reward = load_reward(judge_spec("helpfulness", str(folder)), device="cpu")
    reward.max_new_tokens, reward.cache_dir = 6, tmp_path / "cache"
    seen = []
    original = reward._ask
    reward._ask = lambda texts, t: seen.append(len(texts)) or original(texts, t)
    values = reward.score(["How do I bake bread?", "What is 2+2?"], ["Use flour.", "4"])
    # A random model does not follow the format: both are retried once, then unscored (NaN, not 0).
    assert seen == [2, 2] and np.isnan(values).all()
    assert reward.name == "judge:helpfulness" and reward.fingerprint.startswith("judge:")
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 2
    assert "2 of 2" in reward.unscored_note()


def test_sample_json_gives_null_for_a_response_the_judge_left_unscored(
    tmp_path, tiny_world, capsys, monkeypatch
):
    from infalign_core.cli import main

    judge = _tiny_chat_model(tmp_path, "qwen2")
    monkeypatch.setenv("INFALIGN_JUDGE_CACHE_DIR", str(tmp_path / "judge-cache"))
    args = ["sample", "--prompt", "the movie", "--n", "2", "--max-new-tokens", "3", "--device", "cpu"]
    code = main(
        [
            *args,
            "--policy",
            str(tiny_world.policy),
            "--reward",
            "judge:helpfulness",
            "--judge",
            str(judge),
            "--json",
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out.strip().splitlines()[-1])
    assert [row["reward"] for row in rows] == [None, None]
    assert "unscored" in captured.err
    assert main([*args, "--policy", str(tiny_world.policy), "--judge", str(judge)]) == 2
    assert "needs a judge reward" in capsys.readouterr().err


class _Abstaining:
    """A reward that abstains (NaN) on every other response of its first call, then scores everything."""

    name, fingerprint, may_abstain = "abstaining", "abstaining-v1", True

    def __init__(self):
        self.calls, self.notes = 0, []

    def score(self, prompts, responses):
        self.calls += 1
        out = np.array([float(len(r)) for r in responses])
        if self.calls == 1:
            out[::2] = np.nan
        return out


def test_a_bank_redraws_reference_samples_the_judge_left_unscored(tmp_path, tiny_world):
    from infalign_core.calibration import build_reference_bank
    from infalign_core.models import load_policy

    policy = load_policy(str(tiny_world.policy), device="cpu")
    reward = _Abstaining()
    bank = build_reference_bank(
        policy,
        reward,
        ["the movie", "the plot"],
        6,
        sampling=SamplingSettings(max_new_tokens=4),
        cache_dir=tmp_path,
    )
    assert bank.rewards.shape == (2, 6) and np.isfinite(bank.rewards).all()
    assert any("redrawn" in note for note in reward.notes)


def test_a_bank_refuses_a_judge_that_never_answers(tmp_path, tiny_world):
    from infalign_core.calibration import build_reference_bank
    from infalign_core.models import load_policy

    class Never(_Abstaining):
        def score(self, prompts, responses):
            return np.full(len(responses), np.nan)

    policy = load_policy(str(tiny_world.policy), device="cpu")
    with pytest.raises(InfAlignError, match="unscored even after 3 redraws"):
        build_reference_bank(
            policy, Never(), ["the movie"], 4, sampling=SamplingSettings(max_new_tokens=3), cache_dir=tmp_path
        )


def test_ctrl_gives_unscored_samples_their_groups_mean_so_they_push_neither_way():
    from infalign_core.ctrl import fill_unscored, rloo_advantages

    raw = np.array([0.2, np.nan, 0.6, 0.4, np.nan, np.nan, np.nan, np.nan])
    banks = np.array([[0.0, 1.0], [0.1, 0.3, 0.5][:2]])
    filled = fill_unscored(raw, 4, banks)
    assert filled[1] == pytest.approx(0.4) and np.isfinite(filled).all()
    assert rloo_advantages(filled, 4)[1] == pytest.approx(0.0)  # the unscored sample: no push
    assert (filled[4:] == 0.2).all() and np.allclose(rloo_advantages(filled, 4)[4:], 0.0)  # bank median


def test_the_trl_reward_gives_unscored_completions_their_prompts_mean():
    from infalign_core.integrations.trl import fill_unscored_by_prompt

    prompts = ["a", "a", "a", "b", "b"]
    raw = np.array([0.2, np.nan, 0.6, np.nan, np.nan])
    banks = np.array([[0.0, 1.0]] * 3 + [[0.1, 0.3]] * 2)
    filled = fill_unscored_by_prompt(prompts, raw, banks)
    assert filled[1] == pytest.approx(0.4) and filled[3] == filled[4] == pytest.approx(0.2)


def test_a_ctrl_run_with_a_judge_that_abstains_trains_and_logs_the_unscored_share(tmp_path):
    from test_ctrl import make_run_world, small_config

    from infalign_core import ctrl
    from infalign_core.reward_base import RewardFunction

    class Abstaining(RewardFunction):
        """Scores a response by its length; after the bank, it abstains on every other row."""

        name, fingerprint, may_abstain = "abstaining-judge", "abstaining-judge-v1", True

        def __init__(self):
            self.calls, self.notes = 0, []

        def _score_pairs(self, prompts, responses):
            self.calls += 1
            out = np.array([float(len(r)) for r in responses])
            if self.calls > 1:  # the bank is call 1
                out[1::2] = np.nan
            return out

    policy, prompts = make_run_world(tmp_path)
    config = small_config(policy, prompts, tmp_path / "cache", steps=2, checkpoint_every=100).resolved()
    base = ctrl.load_models(config)
    rows = []
    ctrl.train(config, models=ctrl.Models(base.policy, base.reference, Abstaining()), on_metrics=rows.append)
    assert [row["step"] for row in rows] == [1, 2]
    assert [row["reward/unscored"] for row in rows] == [0.5, 0.5], rows
    assert all(np.isfinite(row["reward/raw"]) for row in rows)
