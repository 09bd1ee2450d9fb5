"""Pages with real-architecture models: rendered prompts, completion mode, column choice, run options."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from infalign_core import runs

PAGES = Path(__file__).resolve().parents[1] / "app_pages"
HH = {
    "chosen": "\n\nHuman: What is good?\n\nAssistant: Tea.",
    "rejected": "\n\nHuman: What is good?\n\nAssistant: No.",
}


def _models_page(arch_zoo) -> AppTest:
    at = AppTest.from_file(str(PAGES / "models.py"), default_timeout=90)
    at.session_state["policy_source"] = str(arch_zoo["policy-qwen2"])
    at.session_state["reward_source"] = str(arch_zoo["reward-llama"])
    return at.run()


def _sample(at: AppTest) -> AppTest:
    at.text_input(key="models_prompt").set_value("how do i help")
    at.slider(key="models_n").set_value(3)
    next(b for b in at.button if b.label == "Sample and score").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def test_models_page_shows_the_prompt_the_chat_template_rendered(arch_zoo):
    at = _sample(_models_page(arch_zoo))
    prompt, rendered = at.session_state["models_rendered"]
    assert prompt == "how do i help" and rendered.endswith("<|im_start|>assistant\n")
    assert any(e.label.startswith("Rendered prompt") for e in at.expander)
    assert any("<|im_start|>user\nhow do i help" in c.value for c in at.code)


def test_models_page_completion_mode_conditions_on_the_raw_prompt(arch_zoo):
    at = _models_page(arch_zoo)
    at.toggle(key="models_completion").set_value(True)
    at = _sample(at)
    assert at.session_state["models_rendered"] == ("how do i help", "how do i help")
    assert not any(e.label.startswith("Rendered prompt") for e in at.expander)


def _upload(name: str, payload: bytes) -> AppTest:
    at = AppTest.from_file(str(PAGES / "calibration.py"), default_timeout=60).run()
    at.radio(key="calibration_source").set_value("Upload a file").run()
    at.file_uploader[0].set_value((name, payload, "application/octet-stream"))
    return at.run()


def test_calibration_page_asks_which_of_several_text_columns_holds_the_prompts():
    payload = "\n".join(json.dumps({"question_a": f"a{i}", "question_b": f"b{i}"}) for i in range(3)).encode()
    at = _upload("pairs.jsonl", payload)
    assert not at.exception and not at.error
    picker = at.selectbox(key="calibration_column")
    assert picker.options == ["question_a", "question_b"] and picker.value is None  # no guess
    assert at.button[0].disabled
    picker.set_value("question_b").run()
    assert not at.exception and not at.error and not at.button[0].disabled
    assert at.number_input[0].max == 3


def test_calibration_page_reads_hh_dialogues_without_a_column():
    at = _upload("hh.jsonl", (json.dumps(HH) + "\n").encode())
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert not [s for s in at.selectbox if s.key == "calibration_column"]
    assert not at.button[0].disabled


def test_ctrl_page_passes_chat_lora_and_checkpointing_options_to_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv(runs.RUNS_ENV_VAR, str(tmp_path / "runs"))
    started = []
    monkeypatch.setattr(runs, "launch_run", lambda config, **_: started.append(config) or "run-1")
    at = AppTest.from_file(str(PAGES / "ctrl.py"), default_timeout=60).run()
    at.toggle(key="ctrl_completion").set_value(True)
    at.text_input(key="ctrl_prompt_subset").set_value("harmless-base")
    at.checkbox(key="ctrl_checkpointing").check()
    next(n for n in at.number_input if n.label.startswith("LoRA rank")).set_value(8)
    at.button(key="start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (config,) = started
    assert config.completion_mode and config.prompt_subset == "harmless-base"
    assert config.lora_rank == 8 and config.gradient_checkpointing
