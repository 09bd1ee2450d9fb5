"""Results shared across sessions stay fresh: a changed file is read again, an unchanged one is not."""

from __future__ import annotations

import json
import os

from infalign_core import ctrl, filememo


def test_an_unchanged_file_is_computed_once_and_a_changed_one_again(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("a\n")
    calls = []

    def compute():
        calls.append(1)
        return path.read_text()

    assert filememo.memo("t", (), [path], compute) == "a\n"
    assert filememo.memo("t", (), [path], compute) == "a\n"
    assert len(calls) == 1
    with path.open("a") as handle:  # a trainer appends a step
        handle.write("b\n")
    assert filememo.memo("t", (), [path], compute) == "a\nb\n"
    replacement = tmp_path / "new"
    replacement.write_text("c\n")
    os.replace(replacement, path)  # an atomic rewrite of the same size is a new inode
    assert filememo.memo("t", (), [path], compute) == "c\n"
    assert len(calls) == 3


def test_a_missing_file_is_a_key_too(tmp_path):
    path = tmp_path / "later.json"
    assert filememo.memo("m", (), [path], lambda: "none") == "none"
    path.write_text("{}")
    assert filememo.memo("m", (), [path], lambda: "some") == "some"


def test_read_metrics_sees_every_appended_row_and_callers_cannot_shrink_the_shared_list(tmp_path):
    metrics = tmp_path / ctrl.METRICS_FILE
    metrics.write_text(json.dumps({"step": 1}) + "\n")
    first = ctrl.read_metrics(tmp_path)
    first.clear()
    assert [r["step"] for r in ctrl.read_metrics(tmp_path)] == [1]
    with metrics.open("a") as handle:
        handle.write(json.dumps({"step": 2}) + "\n")
    assert [r["step"] for r in ctrl.read_metrics(tmp_path)] == [1, 2]


def test_the_store_stays_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(filememo, "MAX_ENTRIES", 3)
    for i in range(10):
        filememo.memo("b", (i,), [], lambda i=i: i)
    assert len(filememo._ENTRIES) <= 3
