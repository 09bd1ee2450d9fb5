"""Concurrency: one trainer per run folder, simultaneous starts queue, many sessions at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_ctrl import make_run_world, small_config

from infalign_core import cli, ctrl, runs
from infalign_core.errors import InfAlignError

REPO = Path(__file__).resolve().parents[1]
PAGES = REPO / "app_pages"


@pytest.fixture(scope="module")
def run_world(tmp_path_factory):
    """Folders of the tiny policy and prompts."""
    return make_run_world(tmp_path_factory.mktemp("concurrency_world"))


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not within {timeout} s")


@pytest.mark.slow
def test_a_second_trainer_on_a_live_run_is_refused_and_changes_nothing(run_world, tmp_path, capsys):
    policy, prompts = run_world
    root = tmp_path / "runs"
    run_id = runs.launch_run(small_config(policy, prompts, tmp_path / "cache", steps=400), root)
    run_dir = root / run_id
    _wait(lambda: runs.trainer_alive(run_dir) and ctrl.read_metrics(run_dir), 180, "the first trainer")
    status = runs.read_status(run_dir)
    try:
        assert cli.main(["train", "--run-dir", str(run_dir), "--resume"]) == 2
        err = capsys.readouterr().err
        assert (
            [line for line in err.splitlines() if line.startswith("error:")]
            == [line for line in err.splitlines() if "being trained right now" in line]
            != []
        )
        with pytest.raises(InfAlignError, match="one trainer per run folder"):
            runs.execute(run_dir, resume=True)  # even past the CLI's check, the lock refuses
        after = runs.read_status(run_dir)
        assert after["pid"] == status["pid"] and after["state"] == "running"
        with pytest.raises(InfAlignError, match="only a stopped or interrupted run resumes"):
            runs.resume_run(run_id, root)
    finally:
        runs.stop_run(run_id, root)
    assert runs.wait_for(run_id, runs.FINAL, root, timeout=120)["state"] == "stopped"
    assert not runs.trainer_alive(run_dir)


_SESSION = """
import json, sys
from streamlit.testing.v1 import AppTest
page, settings = sys.argv[1], json.loads(sys.argv[2])
at = AppTest.from_file(page, default_timeout=300).run()
for kind, key, value in settings.get("set", []):
    getattr(at, kind)(key=key).set_value(value)
if settings.get("set"):
    at.run()
if settings.get("click"):
    at.button(key=settings["click"]).click().run()
print(json.dumps({
    "exception": [str(e.value) for e in at.exception],
    "error": [e.value for e in at.error],
    "notice": [e.value for e in [*at.success, *at.info]],
}))
"""


def _sessions(page: str, settings: list[dict], env: dict) -> list[dict]:
    """Run one AppTest session per settings dict, all at once, each in its own process."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SESSION, str(PAGES / page), json.dumps(s)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO), **env},
            cwd=REPO,
        )
        for s in settings
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.mark.slow
def test_two_sessions_starting_runs_at_once_both_queue_without_an_error(run_world, tmp_path):
    policy, prompts = run_world
    root = tmp_path / "runs"

    def form(seed: int) -> dict:
        values = [("text_input", k, str(v)) for k, v in (("policy", policy), ("prompts", prompts))]
        values += [("text_input", "reward", "oracle"), ("selectbox", "device", "cpu")]
        numbers = {"num_prompts": 6, "prompts_per_step": 4, "k": 4, "steps": 2, "m": 8, "max_new_tokens": 8}
        values += [("number_input", k, v) for k, v in {**numbers, "seed": seed}.items()]
        return {"set": values, "click": "start"}

    results = _sessions("ctrl.py", [form(1), form(2)], {"INFALIGN_RUNS_DIR": str(root)})
    for result in results:
        assert result["exception"] == [] and result["error"] == [], result
        assert any("Launched run" in s for s in result["notice"]), result
    infos = runs.list_runs(root)
    assert len(infos) == 2
    for info in infos:
        status = runs.wait_for(info.run_id, runs.FINAL, root, timeout=300)
        assert status["state"] == "finished", (info.path / runs.LOG_FILE).read_text()
        assert [r["step"] for r in ctrl.read_metrics(info.path)] == [1, 2]
    # One device, so one ran while the other waited: their running spans do not overlap.
    spans = sorted((runs.read_status(i.path)["started"], runs.read_status(i.path)["ended"]) for i in infos)
    assert spans[0][1] <= spans[1][0] + 1.0


def test_launches_racing_from_many_threads_start_one_run_per_device(run_world, tmp_path, monkeypatch):
    policy, prompts = run_world
    root = tmp_path / "runs"
    spawned = []
    monkeypatch.setattr(runs, "_spawn", lambda path, resume: spawned.append(path.name) or _mark_running(path))
    configs = [small_config(policy, prompts, tmp_path / "cache", seed=s) for s in range(6)]
    with ThreadPoolExecutor(6) as pool:
        ids = list(pool.map(lambda c: runs.launch_run(c, root), configs))
    assert len(set(ids)) == 6 and len(spawned) == 1
    states = sorted(runs.read_status(root / i)["state"] for i in ids)
    assert states == ["queued"] * 5 + ["running"]


def _mark_running(path: Path) -> None:
    """What _spawn records, with this (live) process as the trainer."""
    import os

    runs.write_status(path, state="running", pid=os.getpid(), started=time.time())


@pytest.mark.slow
def test_eight_concurrent_sessions_on_the_transforms_and_arena_pages_run_without_an_error(tmp_path):
    # Different N per transforms session, so that they share no cache entry and all compute.
    transforms = [{"set": [("number_input", "n", 2 + i)]} for i in range(4)]
    results = _sessions("transforms.py", transforms, {"INFALIGN_RUNS_DIR": str(tmp_path / "runs")})
    results += _sessions("arena.py", [{}] * 4, {"INFALIGN_RUNS_DIR": str(tmp_path / "runs")})
    for result in results:
        assert result["exception"] == [] and result["error"] == [], result
