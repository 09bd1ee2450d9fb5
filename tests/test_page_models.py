"""The Models page, driven through Streamlit's AppTest."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from infalign_core.models import BUNDLED

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
