"""The Models page, driven through Streamlit's AppTest."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from infalign_core.models import BUNDLED
from infalign_core.text import unescaped

PAGE = str(Path(__file__).resolve().parents[1] / "app_pages" / "models.py")
WORLD_READY = (BUNDLED["policy"] / "config.json").is_file() and (BUNDLED["reward"] / "config.json").is_file()


def _button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def _page(policy: str | None = None, reward: str | None = None) -> AppTest:
    """The page with the active models preset in session state (as a previous load would leave them)."""
    at = AppTest.from_file(PAGE, default_timeout=90)
    if policy is not None:
        at.session_state["policy_source"] = policy
    if reward is not None:
        at.session_state["reward_source"] = reward
    return at.run()


@pytest.mark.skipif(not WORLD_READY, reason="the bundled world has not been built yet")
def test_page_renders_with_the_bundled_models_preselected():
    at = _page()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="policy_choice").value == "default"
    assert at.selectbox(key="reward_choice").value == "default"
    assert {m.label for m in at.metric} >= {"Parameters", "Size", "Device", "Load time"}
    assert set(at.session_state["loaded_models"]) == {"policy", "reward"}


def test_sampling_shows_n_rows_sorted_by_reward_best_and_worst_highlighted(tiny_world):
    at = _page(str(tiny_world.policy), str(tiny_world.reward))
    assert not at.exception, at.exception
    at.text_input(key="models_prompt").set_value("the movie was")
    at.slider(key="models_n").set_value(12)
    _button(at, "Sample and score").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    table = at.session_state["models_samples"]
    assert len(table) == 12
    assert list(table.reward) == sorted(table.reward, reverse=True)
    assert all(review.startswith("the movie was") for review in table.review)
    assert len(at.dataframe) == 1 and len(at.get("plotly_chart")) == 1
    labels = [m.label for m in at.metric]
    assert "Best-of-N reward" in labels and "Worst-of-N reward" in labels


def test_lexicon_reward_needs_no_model(tiny_world):
    at = _page(str(tiny_world.policy), "vader")
    _button(at, "Sample and score").click().run()
    assert not at.exception and not at.error
    assert len(at.session_state["models_samples"]) == 16


def test_a_bad_folder_shows_an_error_and_keeps_the_loaded_models(tiny_world, tmp_path):
    at = _page(str(tiny_world.policy), str(tiny_world.reward))
    at.text_input(key="policy_text").set_value(str(tmp_path / "no-such-model"))
    _button(at, "Load models").click().run()
    assert not at.exception, at.exception
    assert any("Folder not found" in e.value for e in at.error)
    assert at.session_state["policy_source"] == str(tiny_world.policy)
    assert {m.label for m in at.metric} >= {"Parameters", "Load time"}  # the old models still shown


def test_multi_label_reward_model_asks_which_label_before_sampling(tiny_world):
    at = _page(str(tiny_world.policy), str(tiny_world.reward_two_labels))
    assert not at.exception, at.exception
    picker = next(s for s in at.selectbox if "labels is the reward" in s.label)
    assert picker.options == ["NEGATIVE", "POSITIVE"] and picker.value is None
    assert _button(at, "Sample and score").disabled
    picker.set_value("POSITIVE").run()
    assert not _button(at, "Sample and score").disabled
    assert at.session_state["reward_label"] == "POSITIVE"


def test_a_typed_folder_is_loaded_and_becomes_the_active_policy(tiny_world):
    at = _page(reward="vader")
    at.text_input(key="policy_text").set_value(str(tiny_world.policy))
    _button(at, "Load models").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.session_state["policy_source"] == str(tiny_world.policy)
    assert at.session_state["loaded_models"]["policy"].startswith(str(tiny_world.policy))


def test_an_empty_prompt_is_refused_with_a_message_and_nothing_sampled(tiny_world):
    at = _page(str(tiny_world.policy), "vader")
    at.text_input(key="models_prompt").set_value("   ")
    _button(at, "Sample and score").click().run()
    assert not at.exception
    assert "prompt is empty" in " ".join(e.value for e in at.error)
    assert "models_samples" not in at.session_state


def test_temperature_zero_says_greedy_decoding_gives_n_identical_samples(tiny_world):
    at = _page(str(tiny_world.policy), "vader")
    at.slider(key="models_temperature").set_value(0.0)
    at.slider(key="models_n").set_value(4)
    _button(at, "Sample and score").click().run()
    assert not at.exception and not at.error
    assert len(set(at.session_state["models_samples"].review)) == 1
    assert "greedy decoding" in " ".join(i.value for i in at.info)


def test_an_out_of_range_seed_gets_a_message_not_a_red_box(tiny_world):
    at = _page(str(tiny_world.policy), "vader")
    at.number_input(key="models_seed").set_value(-5)
    _button(at, "Sample and score").click().run()
    assert not at.exception
    assert "seed must be an integer in [0," in unescaped(" ".join(e.value for e in at.error))


@pytest.mark.skipif(not WORLD_READY, reason="the bundled world has not been built yet")
def test_the_bundled_world_offers_its_own_prompts_and_flags_foreign_ones():
    at = _page()
    offered = at.selectbox(key="models_world_prompt")
    assert len(offered.options) >= 10
    at.text_input(key="models_prompt").set_value("What is the capital of France?")
    _button(at, "Sample and score").click().run()
    assert "is not one of the world's" in " ".join(c.value for c in at.caption)
    offered = at.selectbox(key="models_world_prompt")
    at.selectbox(key="models_world_prompt").set_value(offered.options[0])
    _button(at, "Sample and score").click().run()
    assert not at.exception
    assert all(r.startswith(offered.options[0]) for r in at.session_state["models_samples"].review)


def test_a_sample_with_markdown_characters_is_shown_literally(tiny_world):
    from infalign_core.text import literal

    at = _page(str(tiny_world.policy), "vader")
    at.text_input(key="models_prompt").set_value("x**3 and __import__")
    _button(at, "Sample and score").click().run()
    shown = " ".join(m.value for m in at.markdown)
    assert literal("x**3 and __import__") in shown
