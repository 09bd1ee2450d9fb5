"""The run store and the ``train`` command: subprocess runs, stop, kill -9 and resume, the queue, bad configs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_ctrl import make_run_world, small_config

from infalign_core import ctrl, runs
from infalign_core.errors import InfAlignError

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run_world(tmp_path_factory):
    """Folders of the tiny policy and prompts."""
    return make_run_world(tmp_path_factory.mktemp("runs_world"))


def _cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "infalign_core", "train", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=timeout,
    )


def _wait_rows(run_dir: Path, count: int, timeout: float = 120) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = ctrl.read_metrics(run_dir)
        if len(rows) >= count:
            return rows
        time.sleep(0.05)
    raise AssertionError(
        f"no {count} metric rows in {timeout} s; log:\n{(run_dir / runs.LOG_FILE).read_text()}"
    )


def _steps(run_dir: Path) -> list[int]:
    return [r["step"] for r in ctrl.read_metrics(run_dir)]


@pytest.mark.slow
def test_cli_train_runs_end_to_end_and_prints_final_metrics_as_json(run_world, tmp_path):
    policy, prompts = run_world
    run_dir = tmp_path / "run"
    out = _cli(
        "--run-dir",
        str(run_dir),
        "--policy",
        str(policy),
        "--prompts",
        str(prompts),
        "--reward",
        "oracle",
        "--num-prompts",
        "6",
        "--m",
        "8",
        "--k",
        "4",
        "--prompts-per-step",
        "4",
        "--max-new-tokens",
        "12",
        "--steps",
        "3",
        "--device",
        "cpu",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--transform",
        "identity",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    final = json.loads(out.stdout.strip().splitlines()[-1])
    for key in (
        "reward/raw",
        "reward/calibrated",
        "kl/k1",
        "kl/k3",
        "winrate/bon",
        "winrate/won",
        "checkpoint",
    ):
        assert key in final
    assert final["step"] == 3 and final["state"] == "finished"
    assert _steps(run_dir) == [1, 2, 3]
    assert runs.read_status(run_dir)["state"] == "finished"
    assert ctrl.CTRLConfig.load(run_dir / "config.json").transform == "identity"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--beta", "0"], "beta must be a number in [0.0001, 100]"),
        (["--beta", "-1"], "beta must be a number in"),
        (["--k", "1"], "k must be an integer in [2, 256] (leave-one-out"),
        (["--learning-rate", "0"], "learning_rate must be a number in"),
        (["--learning-rate", "1e9"], "learning_rate must be a number in [1e-08, 0.1]"),
        (["--kl-target", "1e9"], "kl_target must be a number in [0.001, 20] nats"),
        (["--transform", "cubic"], "invalid choice: 'cubic'"),
        (["--prompts", "/no/such/prompts.jsonl"], "prompts"),
    ],
)
def test_cli_rejects_bad_configs_and_writes_nothing(tmp_path, flags, message):
    run_dir = tmp_path / "runs" / "bad"
    out = _cli("--run-dir", str(run_dir), *flags, timeout=60)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "runs").exists()


def test_launch_rejects_bad_configs_before_writing_to_the_runs_folder(run_world, tmp_path):
    policy, prompts = run_world
    root = tmp_path / "runs"
    bad = [
        small_config(policy, prompts, tmp_path, beta=0.0),
        small_config(policy, prompts, tmp_path, k=1),
        small_config(policy, prompts, tmp_path, learning_rate=-1e-3),
        small_config(policy, prompts, tmp_path, transform="cubic"),
        small_config(policy, tmp_path / "missing.jsonl", tmp_path),
        small_config(tmp_path / "no-model", prompts, tmp_path),
    ]
    for config in bad:
        with pytest.raises(InfAlignError):
            runs.launch_run(config, root)
    assert not root.exists()


@pytest.mark.slow
def test_sigterm_stops_a_run_with_a_checkpoint_at_its_last_step(run_world, tmp_path):
    from transformers import AutoModelForCausalLM

    policy, prompts = run_world
    root = tmp_path / "runs"
    run_id = runs.launch_run(
        small_config(policy, prompts, tmp_path / "cache", steps=400, checkpoint_every=1000), root
    )
    run_dir = root / run_id
    _wait_rows(run_dir, 2)
    runs.stop_run(run_id, root)
    status = runs.wait_for(run_id, runs.FINAL, root, timeout=120)
    assert status["state"] == "stopped", (run_dir / runs.LOG_FILE).read_text()
    import torch

    state = torch.load(run_dir / "checkpoint" / ctrl.TRAINER_STATE, weights_only=True)
    assert state["step"] == _steps(run_dir)[-1] < 400
    AutoModelForCausalLM.from_pretrained(run_dir / "checkpoint", use_safetensors=True)


@pytest.mark.slow
def test_kill_9_is_detected_and_resume_leaves_no_gap_or_duplicate_step(run_world, tmp_path):
    policy, prompts = run_world
    root = tmp_path / "runs"
    config = small_config(policy, prompts, tmp_path / "cache", steps=20, checkpoint_every=3)
    run_id = runs.launch_run(config, root)
    run_dir = root / run_id
    _wait_rows(run_dir, 7)
    os.kill(runs.read_status(run_dir)["pid"], signal.SIGKILL)
    status = runs.wait_for(run_id, runs.FINAL, root, timeout=30)
    assert status["state"] == "interrupted"
    assert [r.state for r in runs.list_runs(root)] == ["interrupted"]
    runs.resume_run(run_id, root)
    status = runs.wait_for(run_id, runs.FINAL, root, timeout=240)
    assert status["state"] == "finished", (run_dir / runs.LOG_FILE).read_text()
    assert _steps(run_dir) == list(range(1, 21))


@pytest.mark.slow
def test_second_run_on_the_same_device_queues_until_the_first_ends(run_world, tmp_path):
    policy, prompts = run_world
    root = tmp_path / "runs"
    first = runs.launch_run(small_config(policy, prompts, tmp_path / "cache", steps=3), root)
    second = runs.launch_run(
        small_config(policy, prompts, tmp_path / "cache", steps=2, transform="raw"), root
    )
    assert runs.read_status(root / second)["state"] == "queued"
    assert runs.wait_for(first, runs.FINAL, root, timeout=240)["state"] == "finished"
    assert runs.wait_for(second, runs.FINAL, root, timeout=240)["state"] == "finished"
    assert _steps(root / second) == [1, 2]
    with pytest.raises(InfAlignError, match="already finished"):
        runs.resume_run(second, root)
    runs.delete_run(second, root)
    assert [r.run_id for r in runs.list_runs(root)] == [first]


def test_delete_refuses_a_running_run(tmp_path):
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    ctrl.CTRLConfig().save(run_dir / "config.json")
    runs.write_status(run_dir, state="running", pid=os.getpid(), device="cpu", started=0)
    # This test process does not name the run dir on its command line, so it reads as dead:
    assert runs.refresh_status(run_dir)["state"] == "interrupted"
    runs.write_status(run_dir, state="running", pid=os.getpid())
    import unittest.mock

    with (
        unittest.mock.patch.object(runs, "_pid_alive", return_value=True),
        pytest.raises(InfAlignError, match="stop it before deleting"),
    ):
        runs.delete_run("r1", tmp_path / "runs")
