"""The Calibration page, driven through Streamlit's AppTest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).resolve().parents[1] / "app_pages" / "calibration.py")
PROMPTS = ["the movie was", "this film is", "the acting", "the ending felt"]


def _upload(at: AppTest, name: str, payload: bytes) -> AppTest:
    at.run().radio(key="calibration_source").set_value("Upload a file").run()
    at.file_uploader[0].set_value((name, payload, "application/octet-stream"))
    return at.run()


def test_page_renders_with_its_controls():
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert at.title[0].value == "Reward calibration"
    assert at.button[0].label == "Build reference banks"
    assert at.select_slider(key="calibration_m").value == 32


def test_bad_upload_shows_an_error_not_a_traceback():
    at = _upload(AppTest.from_file(PAGE, default_timeout=60), "p.jsonl", b'{"prompt": "ok"}\n{oops}\n')
    assert not at.exception
    assert any("Line 2 of p.jsonl is not valid JSON" in e.value for e in at.error)
    assert at.button[0].disabled  # nothing to build from


def test_saved_dataset_folder_is_a_prompt_source(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"text": PROMPTS, "id": [1, 2, 3, 4]}).save_to_disk(str(tmp_path / "ds"))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.radio(key="calibration_source").set_value("Hugging Face dataset").run()
    at.text_input[0].set_value(str(tmp_path / "ds")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.number_input[0].max == len(PROMPTS)
    assert not at.button[0].disabled


@pytest.mark.slow
def test_building_a_small_bank_shows_the_charts_and_the_table(tiny_world, tmp_path, monkeypatch):
    monkeypatch.setenv("INFALIGN_CACHE_DIR", str(tmp_path))
    payload = "\n".join(json.dumps({"prompt": p}) for p in PROMPTS).encode()
    at = _upload(AppTest.from_file(PAGE, default_timeout=120), "p.jsonl", payload)
    at.select_slider(key="calibration_m").set_value(8)
    at.select_slider(key="calibration_heldout").set_value(8)
    at.text_input(key="calibration_policy").set_value(str(tiny_world.policy))
    at.text_input(key="calibration_reward").set_value(str(tiny_world.reward))
    at.run()
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert [m.value for m in at.metric][:2] == ["4", "8"]
    assert len(at.get("plotly_chart")) == 4  # distributions, ECDF, error curve, KL by spread
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == len(PROMPTS)
    assert at.get("download_button")
    assert len(list(tmp_path.glob("bank-*.json"))) == 2  # the bank and its held-out samples, both complete


def test_the_model_boxes_follow_the_models_page_until_edited():
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["policy_source"] = "first-policy"
    at.run()
    assert at.text_input(key="calibration_policy").value == "first-policy"
    at.session_state["policy_source"] = "second-policy"  # a later choice on the Models page
    at.run()
    assert at.text_input(key="calibration_policy").value == "second-policy"
    at.text_input(key="calibration_policy").set_value("my-folder").run()
    at.session_state["policy_source"] = "third-policy"
    at.run()
    assert at.text_input(key="calibration_policy").value == "my-folder"
    assert "is your value; the Models page suggests third-policy" in " ".join(c.value for c in at.caption)
