"""Prompt sources and their validation (infalign_core.data)."""

from __future__ import annotations

import io
import json

import pytest

from infalign_core import data
from infalign_core.data import MAX_UPLOAD_BYTES, guess_prompt_column, list_columns, load_prompts
from infalign_core.errors import InfAlignError


def _jsonl(rows) -> bytes:
    return "\n".join(json.dumps(r) for r in rows).encode("utf-8")


def test_bundled_prompts_load_with_disjoint_splits():
    from infalign_core.world import PROMPTS_PATH

    if not PROMPTS_PATH.is_file():
        pytest.skip("bundled world not built yet")
    everything = load_prompts("bundled")
    train = load_prompts("bundled", split="train")
    evaluation = load_prompts("bundled", split="eval")
    assert len(train) > 0 and len(evaluation) > 0
    assert set(train.prompts).isdisjoint(evaluation.prompts)
    assert set(train.prompts) | set(evaluation.prompts) == set(everything.prompts)
    assert load_prompts("bundled", limit=5).prompts == everything.prompts[:5]


def test_upload_drops_empty_and_duplicate_prompts_with_notices():
    rows = [
        {"prompt": "The film was"},
        {"prompt": "  "},
        {"prompt": ""},
        {"prompt": "The film was"},
        {"prompt": "It"},
    ]
    result = load_prompts(_jsonl(rows), filename="p.jsonl")
    assert result.prompts == ["The film was", "It"]
    assert any("Dropped 2 empty" in n for n in result.notices)
    assert any("Dropped 1 duplicate" in n for n in result.notices)


def test_overlong_prompts_are_truncated_with_a_notice():
    result = load_prompts(
        _jsonl([{"prompt": "x" * 50}, {"prompt": "short"}]), filename="p.jsonl", max_chars=10
    )
    assert result.prompts == ["x" * 10, "short"]
    assert any("Truncated 1 prompt" in n for n in result.notices)


def test_csv_column_picker_lists_columns_and_reads_the_chosen_one():
    upload = b"id,question,answer\n1,Why?,Because\n2,How?,So\n"
    assert list_columns(upload, filename="q.csv") == ["id", "question", "answer"]
    assert load_prompts(upload, filename="q.csv").prompts == ["Why?", "How?"]  # guessed "question"
    assert load_prompts(upload, filename="q.csv", column="answer").prompts == ["Because", "So"]


def test_text_file_and_file_like_upload_and_local_path(tmp_path):
    upload = io.BytesIO(b"first prompt\n\nsecond prompt\n")
    upload.name = "prompts.txt"
    result = load_prompts(upload)
    assert result.prompts == ["first prompt", "second prompt"]
    path = tmp_path / "p.jsonl"
    path.write_bytes(_jsonl([{"text": "a"}, {"text": "b"}]))
    assert load_prompts(str(path)).prompts == ["a", "b"]
    assert load_prompts(path, limit=1).prompts == ["a"]


def test_json_list_and_split_column_filter():
    rows = [{"prompt": "a", "split": "train"}, {"prompt": "b", "split": "eval"}]
    assert load_prompts(json.dumps(rows).encode(), filename="p.json", split="eval").prompts == ["b"]
    with pytest.raises(InfAlignError, match="no rows in split 'test'"):
        load_prompts(_jsonl(rows), filename="p.jsonl", split="test")
    with pytest.raises(InfAlignError, match="no 'split' column"):
        load_prompts(_jsonl([{"prompt": "a"}]), filename="p.jsonl", split="train")


@pytest.mark.parametrize(
    ("payload", "filename", "column", "message"),
    [
        (b'{"prompt": "ok"}\n{"prompt": oops}\n', "p.jsonl", None, "Line 2 of p.jsonl is not valid JSON"),
        (b'{"prompt": "ok"}\n[1, 2]\n', "p.jsonl", None, "Line 2 of p.jsonl is a list"),
        (b"", "p.jsonl", None, "empty"),
        (b"   \n\n", "p.csv", None, "empty"),
        (b"prompt\n", "p.csv", None, "no rows"),
        (b'{"prompt": "a"}\n', "p.jsonl", "text", "no column 'text'; its columns are prompt"),
        (b'{"prompt": 3}\n{"prompt": 4}\n', "p.jsonl", None, "holds int values, not text"),
        (b'{"prompt": ""}\n{"prompt": " "}\n', "p.jsonl", None, "All 2 prompts in column 'prompt' are empty"),
        (b'{"a": "x", "b": "y"}\n', "p.jsonl", None, "Choose the column that holds the prompts"),
        (b"prompt\n\xff\xfe\n", "p.csv", None, "not UTF-8"),
        (b"whatever", "p.xlsx", None, "Unsupported file type '.xlsx'"),
        (b'{"prompt": ["a"]}\n', "p.jsonl", None, "holds list values"),
    ],
)
def test_every_bad_upload_gives_a_clear_message(payload, filename, column, message):
    with pytest.raises(InfAlignError, match=message):
        load_prompts(payload, filename=filename, column=column)


def test_oversized_upload_is_refused():
    payload = b"prompt\n" + b"x" * (MAX_UPLOAD_BYTES + 1)
    with pytest.raises(InfAlignError, match="the limit is 20 MB"):
        load_prompts(payload, filename="big.csv")


def test_missing_file_and_bad_limit_are_clear(tmp_path):
    with pytest.raises(InfAlignError, match="No file or folder"):
        load_prompts(str(tmp_path / "nope.jsonl"))
    with pytest.raises(InfAlignError, match="not a Hugging Face dataset id"):
        load_prompts("my prompts file")
    with pytest.raises(InfAlignError, match="at least 1"):
        load_prompts(b"a\n", filename="p.txt", limit=0)


def test_limit_larger_than_the_source_is_a_notice():
    result = load_prompts(b"a\nb\n", filename="p.txt", limit=5)
    assert result.prompts == ["a", "b"]
    assert any("Asked for 5 prompts" in n for n in result.notices)


def test_saved_hugging_face_dataset_loads_by_split_and_column(tmp_path):
    import datasets

    folder = tmp_path / "ds"
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": ["a", "b", "a"], "label": [0, 1, 0]}),
            "test": datasets.Dataset.from_dict({"text": ["c"], "label": [1]}),
        }
    ).save_to_disk(str(folder))
    result = load_prompts(str(folder))  # train by default, text guessed
    assert result.prompts == ["a", "b"] and any("duplicate" in n for n in result.notices)
    assert load_prompts(str(folder), split="test").prompts == ["c"]
    assert list_columns(str(folder)) == ["text", "label"]
    with pytest.raises(InfAlignError, match="does not hold text"):
        load_prompts(str(folder), column="label")
    with pytest.raises(InfAlignError, match="no split 'validation'"):
        load_prompts(str(folder), split="validation")


def test_local_data_files_folder_loads_through_load_dataset(tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "train.csv").write_text("prompt,score\nHello there,1\nGood day,2\n")
    assert load_prompts(str(folder), column="prompt").prompts == ["Hello there", "Good day"]


def test_unreachable_hub_fails_fast_with_offline_advice(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(data, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(InfAlignError, match=r"Cannot reach the Hugging Face Hub.*save_to_disk"):
        load_prompts("stanfordnlp/imdb", column="text")


def test_guess_prompt_column_prefers_usual_names():
    assert guess_prompt_column(["id", "Prompt"]) == "Prompt"
    assert guess_prompt_column(["only"]) == "only"
    assert guess_prompt_column(["a", "b"]) is None
