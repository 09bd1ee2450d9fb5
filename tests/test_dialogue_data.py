"""The paper's prompt sets offline: Anthropic HH dialogues and a TL;DR-style prompt column, in their hub schemas."""

from __future__ import annotations

import json

import pytest

from infalign_core import data
from infalign_core.chat import parse_dialogue
from infalign_core.errors import InfAlignError
from infalign_core.models import PRESETS as MODEL_PRESETS

HH_ROWS = [
    {
        "chosen": "\n\nHuman: What is a good movie?\n\nAssistant: Try Casablanca.",
        "rejected": "\n\nHuman: What is a good movie?\n\nAssistant: None.",
    },
    {
        "chosen": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: How do I bake bread?\n\nAssistant: Mix flour and water.",
        "rejected": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: How do I bake bread?\n\nAssistant: No.",
    },
]


def _hh_hub_layout(root, rows_by_subset):
    """A folder laid out like Anthropic/hh-rlhf: <subset>/train.jsonl.gz and test.jsonl.gz, written with datasets."""
    import datasets

    for subset, rows in rows_by_subset.items():
        folder = root / subset
        folder.mkdir(parents=True)
        for split in ("train", "test"):
            datasets.Dataset.from_list(rows).to_json(str(folder / f"{split}.jsonl.gz"), compression="gzip")
    return root


def test_hh_dialogue_becomes_its_prompt_without_the_final_reply():
    prompt = data.hh_prompt(HH_ROWS[1]["chosen"], "row 1")
    assert prompt == "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: How do I bake bread?\n\nAssistant:"
    assert parse_dialogue(prompt)[-1] == {"role": "user", "content": "How do I bake bread?"}


def test_local_hh_jsonl_is_recognised_without_naming_a_column(tmp_path):
    path = tmp_path / "hh.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in HH_ROWS))
    loaded = data.load_prompts(path)
    assert loaded.column == "chosen" and len(loaded) == 2
    assert all(p.endswith("\n\nAssistant:") for p in loaded.prompts)
    assert data.needs_column_choice(path) == []


def test_local_hh_parquet_written_with_datasets_is_recognised(tmp_path):
    import datasets

    path = tmp_path / "hh.parquet"
    datasets.Dataset.from_list(HH_ROWS).to_parquet(str(path))
    loaded = data.load_prompts(path)
    assert loaded.prompts[0] == "\n\nHuman: What is a good movie?\n\nAssistant:"
    assert data.load_prompts(path.read_bytes(), filename="hh.parquet").prompts == loaded.prompts


def test_hh_subset_is_read_from_its_data_dir(tmp_path):
    harmless = [{"chosen": "\n\nHuman: How do I pick a lock?\n\nAssistant: I can't help.", "rejected": "x"}]
    root = _hh_hub_layout(tmp_path / "hh-rlhf", {"helpful-base": HH_ROWS, "harmless-base": harmless})
    helpful = data.load_prompts(root, subset="helpful-base", split="test")
    assert len(helpful) == 2
    assert data.load_prompts(root, subset="harmless-base", split="train").prompts == [
        "\n\nHuman: How do I pick a lock?\n\nAssistant:"
    ]


def test_unknown_data_dir_is_one_message_naming_the_subsets(tmp_path):
    root = _hh_hub_layout(tmp_path / "hh-rlhf", {"helpful-base": HH_ROWS, "harmless-base": HH_ROWS})
    with pytest.raises(
        InfAlignError,
        match="no subset \\(data_dir\\) 'helpfull-base'; its subsets are harmless-base, helpful-base",
    ):
        data.load_prompts(root, subset="helpfull-base")


def test_unknown_data_dir_on_the_hub_is_one_message(monkeypatch):
    import datasets

    def missing(*args, **kwargs):
        raise FileNotFoundError(
            "Unable to find 'hf://datasets/Anthropic/hh-rlhf@main/nope/' with any supported extension"
        )

    monkeypatch.setattr(data, "_offline_mode", lambda: True)
    monkeypatch.setattr(datasets, "get_dataset_config_names", lambda name: ["default"])
    monkeypatch.setattr(datasets, "load_dataset", missing)
    with pytest.raises(InfAlignError, match="has no subset \\(config or data_dir\\) 'nope'"):
        data.load_prompts("Anthropic/hh-rlhf", subset="nope")


def test_hh_row_without_an_assistant_turn_is_refused(tmp_path):
    path = tmp_path / "hh.jsonl"
    rows = [HH_ROWS[0], {"chosen": "\n\nHuman: only a question", "rejected": "\n\nHuman: only a question"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = path.read_bytes()
    with pytest.raises(InfAlignError, match=r"Row 2 of hh\.jsonl has no 'Assistant:' turn"):
        data.load_prompts(path)
    assert path.read_bytes() == before


def test_over_long_dialogues_are_dropped_not_cut(tmp_path):
    path = tmp_path / "hh.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in HH_ROWS))
    loaded = data.load_prompts(path, max_chars=60)
    assert len(loaded) == 1 and loaded.prompts[0].endswith("Assistant:")
    assert any("longer than 60 characters" in n for n in loaded.notices)


def test_tldr_schema_prompt_column_is_taken_as_is(tmp_path):
    import datasets

    rows = [
        {"prompt": "SUBREDDIT: r/cooking\nPOST: I burned rice.\nTL;DR:", "completion": " burned rice"},
        {"prompt": "SUBREDDIT: r/movies\nPOST: Saw a film.\nTL;DR:", "completion": " saw film"},
    ]
    dataset = datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(rows), "validation": datasets.Dataset.from_list(rows[:1])}
    )
    dataset.save_to_disk(str(tmp_path / "tldr"))
    loaded = data.load_prompts(tmp_path / "tldr", split="validation")
    assert loaded.column == "prompt" and loaded.prompts == [rows[0]["prompt"]]


def test_a_file_with_several_text_columns_asks_which_one(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"question_a": "x", "question_b": "y"}) + "\n")
    assert data.needs_column_choice(path) == ["question_a", "question_b"]
    with pytest.raises(InfAlignError, match="Choose the column that holds the prompts"):
        data.load_prompts(path)
    assert data.load_prompts(path, column="question_b").prompts == ["y"]


def test_prompt_presets_pair_helpfulness_with_best_and_harmlessness_with_worst_of_n():
    presets = data.PROMPT_PRESETS
    assert presets["hh-helpful"].mode == "best" and presets["hh-helpful"].subset == "helpful-base"
    assert presets["hh-harmless"].mode == "worst" and presets["hh-harmless"].subset == "harmless-base"
    assert presets["tldr"].column == "prompt" and presets["tldr"].dataset == "trl-lib/tldr"


def test_a_prompt_preset_offline_gives_the_download_elsewhere_message(monkeypatch):
    monkeypatch.setattr(data, "_offline_mode", lambda: False)
    monkeypatch.setattr(data, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(
        InfAlignError,
        match=r"Cannot reach the Hugging Face Hub to load dataset 'Anthropic/hh-rlhf'.*save_to_disk",
    ):
        data.load_prompts("hh-harmless")


def test_a_subset_on_a_plain_file_is_refused(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("hello\n")
    with pytest.raises(
        InfAlignError, match="A subset \\('helpful-base'\\) applies to a dataset folder or hub id"
    ):
        data.load_prompts(path, subset="helpful-base")


@pytest.mark.parametrize("name", sorted(MODEL_PRESETS))
def test_each_model_preset_is_a_valid_run_whose_prompts_fail_clearly_offline(name, monkeypatch):
    from infalign_core import ctrl
    from infalign_core.models import PRESETS

    config = ctrl.preset_config(name, steps=1).validate()
    preset = PRESETS[name]
    assert (config.policy, config.reward, config.mode) == (preset.policy, preset.reward, preset.mode)
    assert preset.policy_size and preset.reward_size and preset.note
    if preset.prompts in data.PROMPT_PRESETS:
        assert data.PROMPT_PRESETS[preset.prompts].mode == preset.mode  # the paper's pairing
        monkeypatch.setattr(data, "_offline_mode", lambda: False)
        monkeypatch.setattr(data, "_hub_reachable", lambda timeout=3.0: False)
        with pytest.raises(InfAlignError, match=r"Cannot reach the Hugging Face Hub.*save_to_disk"):
            ctrl.load_prompt_list(config)
