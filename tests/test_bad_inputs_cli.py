"""Bad inputs on every CLI command: exit 2, exactly one ``error:`` line, no traceback, nothing on disk changed.

The commands run in this process (``cli.main``), so a traceback would surface as an uncaught
exception and fail the test; a few run as real subprocesses to check the printed stream itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from disk_snapshot import changes, snapshot
from test_ctrl import make_run_world

from infalign_core import cli

REPO = Path(__file__).resolve().parent.parent


@dataclass
class BadWorld:
    """Folders and files that bad inputs point at, all under ``root``."""

    root: Path
    policy: Path
    prompts: Path
    bin_only: Path
    empty_model: Path
    two_labels: Path
    finished: Path
    torn_checkpoint: Path
    cache: Path


def _train_flags(w: BadWorld) -> list[str]:
    return [
        "--policy", str(w.policy), "--prompts", str(w.prompts), "--reward", "oracle",
        "--num-prompts", "6", "--m", "4", "--k", "2", "--prompts-per-step", "2",
        "--max-new-tokens", "6", "--device", "cpu", "--cache-dir", str(w.cache), "--transform", "identity",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_world) -> BadWorld:
    """A tiny policy, prompts, a finished 2-step run, a copy with a torn checkpoint, and bad files."""
    root = tmp_path_factory.mktemp("bad_inputs")
    policy, prompts = make_run_world(root)
    w = BadWorld(
        root,
        policy,
        prompts,
        tiny_world.bin_only,
        tiny_world.empty,
        tiny_world.reward_two_labels,
        root / "finished",
        root / "torn",
        root / "cache",
    )
    assert cli.main(["train", "--run-dir", str(w.finished), *_train_flags(w), "--steps", "2", "--json"]) == 0
    shutil.copytree(w.finished, w.torn_checkpoint)
    weights = w.torn_checkpoint / "checkpoint" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:2000])
    (root / "a_file").write_text("not a folder\n")
    (root / "not_a_run").mkdir()
    (root / "not_a_run" / "notes.txt").write_text("someone's files\n")
    (root / "malformed.yaml").write_text("beta: [1\nsteps: 2\n")
    (root / "wrong_type.yaml").write_text("beta: abc\n")
    (root / "wrong_type.json").write_text('{"steps": 1.5}')
    (root / "list.yaml").write_text("- beta\n- 0.1\n")
    (root / "unknown.yaml").write_text("betta: 0.1\n1: 2\n")
    (root / "nan.json").write_text('{"beta": NaN}')
    (root / "binary.jsonl").write_bytes(bytes(range(256)) * 4)
    (root / "empty.jsonl").write_bytes(b"")
    with open(root / "huge.jsonl", "wb") as handle:  # sparse: 21 MB on paper, nothing on disk
        handle.truncate(21 * 1024 * 1024)
    (root / "wrong_column.csv").write_text("text,label\nthe movie,1\nthe plot,0\n")
    (root / "latin1.csv").write_bytes("prompt\nle film était très bon\n".encode("latin-1"))
    return w


def _w(path: str):
    """A placeholder for a path under the world's root, filled in at run time."""
    return ("W", path)


def _argv(w: BadWorld, template: list) -> list[str]:
    out = []
    for part in template:
        if isinstance(part, tuple) and part[0] == "W":
            out.append(str(getattr(w, part[1])) if hasattr(w, part[1]) else str(w.root / part[1]))
        elif part == "TRAIN":
            out.extend(_train_flags(w))
        else:
            out.append(part)
    return out


# (id, argv template, a phrase the error line must hold)
# fmt: off
CASES = [
    # theory: every numeric field at and past its bounds, NaN and inf, unknown choices
    ("theory-n-0", ["theory", "--transform", "exp", "--t", "1", "--beta", "1", "--n", "0"], "must be >= 1"),
    ("theory-n-1025", ["theory", "--transform", "identity", "--beta", "1", "--n", "1025"], "at most 1024"),
    ("theory-beta-0", ["theory", "--transform", "identity", "--beta", "0", "--n", "4"], "must be > 0"),
    ("theory-beta-neg", ["theory", "--transform", "identity", "--beta", "-1", "--n", "4"], "must be > 0"),
    ("theory-beta-nan", ["theory", "--transform", "identity", "--beta", "nan", "--n", "4"], "finite"),
    ("theory-beta-huge", ["theory", "--transform", "identity", "--beta", "1e9", "--n", "4"], " in [0.001, 1000]"),
    ("theory-kl-inf", ["theory", "--transform", "identity", "--kl", "inf", "--n", "4"], "finite"),
    ("theory-t-nan", ["theory", "--transform", "exp", "--t", "nan", "--beta", "1", "--n", "4"], "finite"),
    ("theory-t-neg", ["theory", "--transform", "exp", "--t", "-1", "--beta", "1", "--n", "4"], "t must"),
    ("theory-n-text", ["theory", "--transform", "identity", "--beta", "1", "--n", "four"], "not an integer"),
    ("theory-cubic", ["theory", "--transform", "cubic", "--beta", "1", "--n", "4"], "invalid choice"),
    ("theory-exp-no-t", ["theory", "--transform", "exp", "--beta", "1", "--n", "4"], "needs --t"),
    ("unknown-command", ["fly"], "invalid choice"),
    # once a silent success: a KL budget the solver cannot verify is refused, not answered wrongly
    ("theory-optimal-kl-50", ["theory", "--transform", "optimal", "--kl", "50", "--n", "4"], "beyond what"),
    ("theory-procedure-bad", ["theory", "--transform", "identity", "--beta", "1", "--n", "4",
                              "--procedure", "cubic:3"], "cubic"),
    ("theory-procedure-nan", ["theory", "--transform", "identity", "--beta", "1", "--n", "4",
                              "--procedure", "poisson:nan"], "nan"),
    # calibrate: prompt sources and uploads, sampling bounds, model and reward sources
    ("cal-m-0", ["calibrate", "--m", "0"], "must be >= 1"),
    ("cal-top-p-1.5", ["calibrate", "--m", "4", "--top-p", "1.5"], "top-p"),
    ("cal-temp-nan", ["calibrate", "--m", "4", "--temperature", "nan"], "finite"),
    ("cal-no-prompts", ["calibrate", "--m", "4", "--prompts", _w("no_such.jsonl")], "no_such.jsonl"),
    ("cal-binary", ["calibrate", "--m", "4", "--prompts", _w("binary.jsonl")], "binary.jsonl"),
    ("cal-empty", ["calibrate", "--m", "4", "--prompts", _w("empty.jsonl")], "empty"),
    ("cal-huge", ["calibrate", "--m", "4", "--prompts", _w("huge.jsonl")], "MB"),
    ("cal-wrong-column", ["calibrate", "--m", "4", "--prompts", _w("wrong_column.csv"), "--column", "nope"], "nope"),
    ("cal-latin1", ["calibrate", "--m", "4", "--prompts", _w("latin1.csv")], "UTF-8"),
    ("cal-bad-split", ["calibrate", "--m", "4", "--split", "nope"], "nope"),
    ("cal-no-policy", ["calibrate", "--m", "4", "--policy", _w("no_model")], "not found"),
    ("cal-pickle-policy", ["calibrate", "--m", "4", "--policy", _w("bin_only")], "safetensors"),
    ("cal-empty-policy", ["calibrate", "--m", "4", "--policy", _w("empty_model")], "config.json"),
    ("cal-no-reward", ["calibrate", "--m", "4", "--policy", _w("policy"), "--reward", _w("no_reward")], "not found"),
    ("cal-bad-device", ["calibrate", "--m", "4", "--device", "tpu"], "device"),
    # sample
    ("sample-n-0", ["sample", "--prompt", "the movie", "--n", "0"], "must be >= 1"),
    ("sample-tokens-0", ["sample", "--prompt", "x", "--n", "2", "--max-new-tokens", "0"], "must be >= 1"),
    ("sample-top-p-0", ["sample", "--prompt", "x", "--n", "2", "--top-p", "0"], "must be > 0"),
    ("sample-temp-inf", ["sample", "--prompt", "x", "--n", "2", "--temperature", "inf"], "finite"),
    ("sample-label", ["sample", "--prompt", "x", "--n", "2", "--policy", _w("policy"),
                      "--reward", _w("two_labels"), "--label", "NOPE"], "NOPE"),
    # train: configs with wrong types, bounds, run folders of every wrong kind
    ("train-under-file", ["train", "--run-dir", _w("a_file/run"), "TRAIN"], "which is a file"),
    ("train-is-file", ["train", "--run-dir", _w("a_file"), "TRAIN"], "is a file"),
    ("train-not-a-run", ["train", "--run-dir", _w("not_a_run"), "TRAIN"], "not a run folder"),
    ("train-finished-resume", ["train", "--run-dir", _w("finished"), "--resume"], "already finished"),
    ("train-finished-again", ["train", "--run-dir", _w("finished")], "already finished"),
    ("train-flags-on-run", ["train", "--run-dir", _w("finished"), "--beta", "0.2"], "already holds a run"),
    ("train-resume-nothing", ["train", "--run-dir", _w("new_run"), "--resume"], "nothing to resume"),
    ("train-yaml-malformed", ["train", "--run-dir", _w("r"), "--config", _w("malformed.yaml")], "line 2"),
    ("train-yaml-type", ["train", "--run-dir", _w("r"), "--config", _w("wrong_type.yaml")], "beta must"),
    ("train-json-type", ["train", "--run-dir", _w("r"), "--config", _w("wrong_type.json")], "steps must"),
    ("train-json-nan", ["train", "--run-dir", _w("r"), "--config", _w("nan.json")], "beta must"),
    ("train-yaml-list", ["train", "--run-dir", _w("r"), "--config", _w("list.yaml")], "mapping"),
    ("train-yaml-unknown", ["train", "--run-dir", _w("r"), "--config", _w("unknown.yaml")], "betta"),
    ("train-binary-config", ["train", "--run-dir", _w("r"), "--config", _w("binary.jsonl")], "not UTF-8"),
    ("export-binary-config", ["export-trl", "--out", _w("x"), "--config", _w("latin1.csv")], "not UTF-8"),
    ("train-empty-run-dir", ["train", "--run-dir", "", "TRAIN"], "not a run folder"),
    ("train-no-config", ["train", "--run-dir", _w("r"), "--config", _w("none.yaml")], "cannot read"),
    ("train-beta-nan", ["train", "--run-dir", _w("r"), "--beta", "nan"], "finite"),
    ("train-steps-0", ["train", "--run-dir", _w("r"), "--steps", "0"], "steps must"),
    ("train-k-1", ["train", "--run-dir", _w("r"), "--k", "1"], "k must"),
    ("train-n-2000", ["train", "--run-dir", _w("r"), "--n", "2000"], "n must be an integer in [1, 1024]"),
    ("train-t-501", ["train", "--run-dir", _w("r"), "--t", "501"], "[0, 500]"),
    ("train-kl-target-neg", ["train", "--run-dir", _w("r"), "--kl-target", "-1"], "kl_target"),
    ("train-lr-inf", ["train", "--run-dir", _w("r"), "--learning-rate", "inf"], "finite"),
    ("train-pps", ["train", "--run-dir", _w("r"), "--prompts-per-step", "9", "--num-prompts", "8"], "cannot exceed"),
    ("train-steps-text", ["train", "--run-dir", _w("r"), "--steps", "many"], "invalid int"),
    ("train-binary-prompts", ["train", "--run-dir", _w("r"), "--prompts", _w("binary.jsonl")], "binary.jsonl"),
    ("train-no-policy", ["train", "--run-dir", _w("r"), "--policy", _w("no_model")], "not found"),
    # winrate
    ("winrate-n-gt-k", ["winrate", "--policy", "reference", "--n", "5", "--k", "4"], "raise K"),
    ("winrate-torn-ckpt", ["winrate", "--policy", _w("torn_checkpoint"), "--n", "2", "--k", "2"], "truncated"),
    ("winrate-no-policy", ["winrate", "--policy", _w("no_model"), "--n", "2", "--k", "2"], "no_model"),
    ("winrate-bad-id", ["winrate", "--policy", "no-such-run-id", "--n", "2", "--k", "2"], "no-such-run-id"),
    ("winrate-temp-nan", ["winrate", "--policy", "reference", "--n", "2", "--k", "2", "--temperature", "nan"], "temperature"),
    ("winrate-temp-neg", ["winrate", "--policy", "reference", "--n", "2", "--k", "2", "--temperature", "-1"], "temperature"),
    ("winrate-top-p-2", ["winrate", "--policy", "reference", "--n", "2", "--k", "2", "--top-p", "2"], "top"),
    ("winrate-pickle", ["winrate", "--policy", _w("bin_only"), "--n", "2", "--k", "2"], "safetensors"),
    # export-trl and build-world: outputs that cannot be written
    ("export-out-file", ["export-trl", "--out", _w("a_file"), "--config", _w("finished/config.json"),
                         "--num-processes", "1"], "a_file"),
    ("export-bad-config", ["export-trl", "--out", _w("x"), "--config", _w("wrong_type.yaml")], "beta must"),
    ("export-procs-0", ["export-trl", "--out", _w("x"), "--num-processes", "0"], "must be >= 1"),
    ("build-gallery-unknown", ["build-gallery", "--out", _w("g"), "--only", "nosuch"], "unknown gallery run"),
    ("build-gallery-steps-0", ["build-gallery", "--out", _w("g"), "--steps", "0"], "must be >= 1"),
    # runs and report: run ids are names inside the runs root (or the gallery), never paths
    ("runs-copy-traversal", ["runs", "--copy", "../finished"], "no run '../finished'"),
    ("runs-copy-unknown", ["runs", "--copy", "nosuch"], "no run 'nosuch'"),
    ("report-traversal", ["report", "--run", "../finished", "--out", _w("r.html")], "no run '../finished'"),
    ("report-absolute", ["report", "--run", _w("finished"), "--out", _w("r.html")], "no run"),
    ("build-world-under-file", ["build-world", "--out", _w("a_file/world"), "--quick"], "a_file"),
    # judges and HumanAgencyBench
    ("sample-judge-no-model", ["sample", "--prompt", "x", "--n", "1", "--reward", "judge:helpfulness"], "--judge MODEL"),
    ("sample-judge-bad-rubric", ["sample", "--prompt", "x", "--n", "1", "--reward", "judge:nosuch", "--judge", "x"],
     "No rubric 'nosuch'"),
    ("agency-bad-dimension", ["agency", "--policy", "default", "--judge", "default", "--prompts", "hab-fixture:curiosity"],
     "No HAB dimension"),
    ("agency-n-above-k", ["agency", "--policy", "default", "--judge", "default", "--n", "4", "--k", "2"], "N = 4 needs"),
    ("judge-agreement-zero", ["judge-agreement", "--judge", "default", "--per-dimension", "0"], "at least 1"),
]
# fmt: on


@pytest.mark.parametrize(("argv", "phrase"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_error_line_and_changes_nothing(world, argv, phrase, monkeypatch, capsys):
    runs_root, cache = world.root.parent / "runs_root", world.root.parent / "cache_root"
    monkeypatch.setenv("INFALIGN_RUNS_DIR", str(runs_root))
    monkeypatch.setenv("INFALIGN_CACHE_DIR", str(cache))
    monkeypatch.chdir(world.root)
    before = snapshot(world.root, runs_root, cache)
    try:
        status = cli.main(_argv(world, argv))
    except SystemExit as exit_:  # argparse's usage errors
        status = exit_.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert status == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert phrase in lines[0], lines[0]
    assert changes(before, snapshot(world.root, runs_root, cache)) == []


def _subprocess(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "infalign_core", *argv], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.parametrize(
    "case", ["train-under-file", "train-yaml-malformed", "winrate-torn-ckpt", "train-finished-resume"]
)
def test_the_printed_stream_is_one_error_line_without_a_traceback(world, case):
    argv = _argv(world, next(c[1] for c in CASES if c[0] == case))
    out = _subprocess(*argv)
    assert out.returncode == 2, out.stderr
    assert [line for line in out.stderr.splitlines() if line.startswith("error:")] != []
    assert len([line for line in out.stderr.splitlines() if line.startswith("error:")]) == 1
    assert "Traceback" not in out.stderr
    assert out.stdout == ""


def test_the_suite_covers_every_command_and_forty_inputs():
    commands = {c[1][0] for c in CASES}
    assert commands >= {a.__name__.removeprefix("_add_").replace("_", "-") for a in cli._COMMANDS}
    assert len(CASES) >= 40


def test_the_finished_fixture_run_is_a_real_finished_run(world):
    status = json.loads((world.finished / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == 2
