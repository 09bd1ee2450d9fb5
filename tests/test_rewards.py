"""Rewards behind one interface: reward models (any padding), VADER, the oracle and callables."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from infalign_core import models
from infalign_core.errors import InfAlignError
from infalign_core.reward_base import RewardFunction
from infalign_core.rewards import (
    SequenceClassifierReward,
    callable_reward,
    load_reward,
)

PROMPTS = ["the movie was", "this film", "the acting felt really", "ok"]
RESPONSES = [" great!", " was very dull and long.", " superb", ""]


def _one_at_a_time(loaded, texts):
    """Each text scored alone: no padding at all, the reference for batched scoring."""
    with torch.no_grad():
        return np.array(
            [
                loaded.model(**loaded.tokenizer(t, return_tensors="pt")).logits[0].double().numpy()
                for t in texts
            ]
        )


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_batched_reward_model_scores_equal_unpadded_scores(tiny_world, padding_side):
    reward = load_reward(str(tiny_world.reward), device="cpu")
    reward.loaded.tokenizer.padding_side = padding_side
    texts = [p + r for p, r in zip(PROMPTS, RESPONSES)]
    expected = _one_at_a_time(reward.loaded, texts)[:, 0]
    np.testing.assert_allclose(reward.score(PROMPTS, RESPONSES), expected, rtol=1e-5, atol=1e-5)


def test_reward_is_float64_one_per_pair_and_named(tiny_world):
    reward = load_reward(str(tiny_world.reward), device="cpu")
    values = reward.score(PROMPTS, RESPONSES)
    assert isinstance(reward, RewardFunction)
    assert values.dtype == np.float64 and values.shape == (4,)
    assert reward.fingerprint.startswith("rm:") and reward.name


def test_multi_label_model_without_a_label_lists_the_labels(tiny_world):
    with pytest.raises(InfAlignError, match=r"2 labels \(0=NEGATIVE, 1=POSITIVE\)"):
        load_reward(str(tiny_world.reward_two_labels), device="cpu")


def test_label_by_name_or_index_selects_that_logit_and_probability_is_softmax(tiny_world):
    loaded = models.load_reward_model(str(tiny_world.reward_two_labels), device="cpu")
    logits = _one_at_a_time(loaded, [p + r for p, r in zip(PROMPTS, RESPONSES)])
    by_name = SequenceClassifierReward(loaded, "positive").score(PROMPTS, RESPONSES)
    by_index = SequenceClassifierReward(loaded, 1).score(PROMPTS, RESPONSES)
    np.testing.assert_allclose(by_name, logits[:, 1], atol=1e-5)
    np.testing.assert_allclose(by_index, by_name)
    prob = SequenceClassifierReward(loaded, "NEGATIVE", probability=True).score(PROMPTS, RESPONSES)
    expected = np.exp(logits[:, 0]) / np.exp(logits).sum(1)
    np.testing.assert_allclose(prob, expected, atol=1e-5)
    assert SequenceClassifierReward(loaded, 1).fingerprint != SequenceClassifierReward(loaded, 0).fingerprint


def test_unknown_label_is_refused_with_the_label_list(tiny_world):
    with pytest.raises(InfAlignError, match=r"no label 'NEUTRAL'.*0=NEGATIVE"):
        load_reward(str(tiny_world.reward_two_labels), label="NEUTRAL", device="cpu")
    with pytest.raises(InfAlignError, match="out of range"):
        load_reward(str(tiny_world.reward_two_labels), label=5, device="cpu")


def test_vader_reward_is_the_compound_score():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    values = load_reward("vader").score(PROMPTS, RESPONSES)
    expected = [analyzer.polarity_scores(p + r)["compound"] for p, r in zip(PROMPTS, RESPONSES)]
    np.testing.assert_allclose(values, expected)
    assert values[0] > 0 > values[1]


def test_oracle_reward_is_the_world_sentiment_intensity():
    lexicon = pytest.importorskip("infalign_core.lexicon")
    reward = load_reward("oracle")
    expected = [lexicon.sentiment_intensity(p + r) for p, r in zip(PROMPTS, RESPONSES)]
    np.testing.assert_allclose(reward.score(PROMPTS, RESPONSES), expected)
    assert reward.fingerprint.startswith("oracle:")


def test_callable_reward_scores_each_pair_and_batched_callables_score_lists():
    per_pair = callable_reward(lambda prompt, response: len(response), "length")
    np.testing.assert_array_equal(per_pair.score(PROMPTS, RESPONSES), [len(r) for r in RESPONSES])
    batched = callable_reward(lambda ps, rs: [len(p) for p in ps], "prompt length", batched=True)
    np.testing.assert_array_equal(batched.score(PROMPTS, RESPONSES), [len(p) for p in PROMPTS])
    assert per_pair.fingerprint != batched.fingerprint


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_reward_raises_naming_the_input(bad):
    reward = callable_reward(lambda p, r: bad if "dull" in r else 1.0, "flaky")
    with pytest.raises(InfAlignError, match=r"'flaky' gave .* for input 1: 'this film was very dull"):
        reward.score(PROMPTS, RESPONSES)


def test_callable_that_raises_is_reported_with_the_input():
    reward = callable_reward(lambda p, r: 1 / len(r), "inverse length")
    with pytest.raises(InfAlignError, match=r"failed on input 3.*ZeroDivisionError"):
        reward.score(PROMPTS, RESPONSES)


def test_mismatched_prompt_and_response_counts_are_refused():
    with pytest.raises(InfAlignError, match="2 prompts but 1 responses"):
        load_reward("vader").score(["a", "b"], ["c"])
    assert load_reward("vader").score([], []).shape == (0,)


def test_preset_reward_offline_fails_with_a_hint(monkeypatch):
    monkeypatch.setattr(models, "_endpoint_reachable", lambda timeout=3.0: False)
    with pytest.raises(InfAlignError, match="bundled default"):
        load_reward("gpt2-sentiment")


@pytest.mark.skipif(
    not (models.BUNDLED["reward"] / "config.json").is_file(),
    reason="the bundled world has not been built yet",
)
def test_bundled_reward_model_orders_reviews_like_the_oracle():
    from scipy.stats import spearmanr

    lexicon = pytest.importorskip("infalign_core.lexicon")
    reward = load_reward("default", device="cpu")
    prompts = ["The movie was"] * 6
    responses = [
        " absolutely wonderful!",
        " good.",
        " fine.",
        " dull.",
        " terrible.",
        " awful and boring!",
    ]
    values = reward.score(prompts, responses)
    truth = [lexicon.sentiment_intensity(p + r) for p, r in zip(prompts, responses)]
    assert spearmanr(values, truth).statistic > 0.7
