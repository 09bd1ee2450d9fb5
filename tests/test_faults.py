"""Faults: kill -9 at random points, torn files, a full disk and a reward that returns NaN.

The kill tests run real subprocess trainers on the tiny test world; the others run the trainer
in this process so the fault can be injected exactly.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from test_ctrl import make_run_world, small_config

from infalign_core import calibration, cli, ctrl, runs
from infalign_core.errors import InfAlignError
from infalign_core.sampling_settings import SamplingSettings


@pytest.fixture(scope="module")
def run_world(tmp_path_factory):
    """Folders of the tiny policy and prompts."""
    return make_run_world(tmp_path_factory.mktemp("faults_world"))


def _wait(predicate, timeout: float, what: str, run_dir: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    log = run_dir / runs.LOG_FILE
    raise AssertionError(f"{what} not within {timeout} s; log:\n{log.read_text() if log.exists() else ''}")


def _kill_and_check_interrupted(run_dir: Path) -> None:
    """kill -9 the trainer; the very next look at the run (no page reload) says interrupted."""
    pid = runs.read_status(run_dir)["pid"]
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: not runs.trainer_alive(run_dir), 30, "the lock to drop", run_dir)
    status = runs.refresh_status(run_dir)
    assert status["state"] == "interrupted", status
    assert status["pid"] is None


def _steps(run_dir: Path) -> list[int]:
    return [row["step"] for row in ctrl.read_metrics(run_dir)]


@pytest.mark.slow
def test_kill_9_during_banks_mid_step_and_mid_checkpoint_then_resume_has_no_gap_or_duplicate(
    run_world, tmp_path
):
    policy, prompts = run_world
    root = tmp_path / "runs"
    rng = random.Random(14)
    # m = 256 makes the bank long enough to be killed in; a checkpoint every step makes most of
    # a step's time checkpoint writing, so a random kill lands in one often.
    config = small_config(policy, prompts, tmp_path / "cache", steps=14, m=256, checkpoint_every=1)
    run_id = runs.launch_run(config, root)
    run_dir = root / run_id

    # 1. While the reference banks are being built: the trainer holds its lock, no metric yet.
    _wait(lambda: runs.trainer_alive(run_dir), 120, "the trainer to start", run_dir)
    _wait(
        lambda: b"building reference banks" in (run_dir / runs.LOG_FILE).read_bytes(), 120, "banks", run_dir
    )
    time.sleep(rng.uniform(0.0, 0.3))
    assert _steps(run_dir) == []
    _kill_and_check_interrupted(run_dir)

    # 2. Mid-step, at a random moment after a random number of steps.
    runs.resume_run(run_id, root)
    _wait(lambda: len(_steps(run_dir)) >= rng.randint(2, 4), 240, "steps", run_dir)
    time.sleep(rng.uniform(0.0, 0.2))
    _kill_and_check_interrupted(run_dir)
    # A torn last line, as a crash in the middle of a write leaves it: skipped, then rewritten.
    with open(run_dir / ctrl.METRICS_FILE, "a", encoding="utf-8") as handle:
        handle.write('{"step": 99, "reward/raw": 0.')
    assert 99 not in _steps(run_dir)

    # 3. Again, with the checkpoint written every step: whatever is on disk is a whole checkpoint.
    runs.resume_run(run_id, root)
    done = len(_steps(run_dir))
    _wait(lambda: len(_steps(run_dir)) >= done + 2, 240, "more steps", run_dir)
    time.sleep(rng.uniform(0.0, 0.15))
    _kill_and_check_interrupted(run_dir)
    checkpoint = ctrl.checkpoint_path(run_dir)
    assert checkpoint is not None
    import torch
    from safetensors.torch import load_file

    assert load_file(str(checkpoint / "model.safetensors"))  # whole, never half-written
    assert torch.load(checkpoint / ctrl.TRAINER_STATE, weights_only=True)["step"] >= 1

    runs.resume_run(run_id, root)
    status = runs.wait_for(run_id, runs.FINAL, root, timeout=300)
    assert status["state"] == "finished", (run_dir / runs.LOG_FILE).read_text()
    assert _steps(run_dir) == list(range(1, 15))
    assert not (run_dir / "checkpoint.tmp").exists()


def _finished_run(run_world, tmp_path, **overrides) -> Path:
    """A small run trained in this process to its end; returns its folder."""
    policy, prompts = run_world
    config = small_config(policy, prompts, tmp_path / "cache", **{"steps": 3, **overrides}).resolved()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config.save(run_dir / runs.CONFIG_FILE)
    runs.write_status(run_dir, state="queued", created=time.time(), step=0, device="cpu")
    runs.execute(run_dir)
    return run_dir


def test_a_truncated_checkpoint_refuses_to_resume_with_one_clear_line(run_world, tmp_path, capsys):
    run_dir = _finished_run(run_world, tmp_path, steps=4, checkpoint_every=2)
    metrics = (run_dir / ctrl.METRICS_FILE).read_text()
    # As if killed after step 2's checkpoint: the run is interrupted at step 2 ...
    runs.write_status(run_dir, state="interrupted", step=2)
    weights = run_dir / "checkpoint" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # ... and the weights file is torn
    status = cli.main(["train", "--run-dir", str(run_dir), "--resume", "--json"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert status == 2 and len(errors) == 1 and "Traceback" not in err
    assert "truncated or corrupt" in errors[0] and "checkpoint" in errors[0]
    after = runs.read_status(run_dir)
    assert after["state"] == "failed" and "truncated or corrupt" in after["error"]
    assert (run_dir / ctrl.METRICS_FILE).read_text() == metrics  # nothing lost


def test_a_truncated_bank_cache_entry_is_rebuilt_with_a_notice(tiny_policy, tmp_path):
    from infalign_core.rewards import load_reward

    reward = load_reward("oracle")
    prompts = ["the movie", "the plot"]
    kwargs = dict(sampling=SamplingSettings(max_new_tokens=6, seed=0), cache_dir=tmp_path)
    first = calibration.build_reference_bank(tiny_policy, reward, prompts, 8, **kwargs)
    first.path.write_bytes(first.path.read_bytes()[:40])
    again = calibration.build_reference_bank(tiny_policy, reward, prompts, 8, **kwargs)
    assert not again.cached
    assert any("unusable" in notice and "rebuilt" in notice for notice in again.notices)
    np.testing.assert_array_equal(again.rewards, first.rewards)
    third = calibration.build_reference_bank(tiny_policy, reward, prompts, 8, **kwargs)
    assert third.cached and not third.notices


class _FullDisk:
    """A metrics file that takes ``rows`` lines, then fails as a full disk does."""

    def __init__(self, handle, rows: int):
        self.handle, self.rows = handle, rows

    def write(self, text: str) -> int:
        if self.rows <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.handle.name))
        self.rows -= 1
        return self.handle.write(text)

    def __getattr__(self, name):
        return getattr(self.handle, name)


def test_a_full_disk_marks_the_run_failed_with_the_message_and_keeps_what_was_written(
    run_world, tmp_path, monkeypatch, capsys
):
    policy, prompts = run_world
    run_dir = tmp_path / "run"
    real_open = open

    def open_on_a_filling_disk(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        return _FullDisk(handle, 2) if str(path).endswith(ctrl.METRICS_FILE) and "a" in mode else handle

    monkeypatch.setattr(ctrl, "open", open_on_a_filling_disk, raising=False)
    argv = ["train", "--run-dir", str(run_dir), "--policy", str(policy), "--prompts", str(prompts)]
    argv += ["--reward", "oracle", "--num-prompts", "6", "--m", "8", "--k", "4", "--prompts-per-step", "4"]
    argv += ["--max-new-tokens", "8", "--steps", "5", "--device", "cpu", "--cache-dir", str(tmp_path / "c")]
    status = cli.main([*argv, "--json"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert status == 2 and len(errors) == 1 and "Traceback" not in err
    assert "disk is full" in errors[0]
    after = runs.read_status(run_dir)
    assert after["state"] == "failed" and "disk is full" in after["error"]
    assert _steps(run_dir) == [1, 2]  # the rows written before the disk filled are intact
    assert (run_dir / runs.CONFIG_FILE).is_file()


def test_a_reward_that_returns_nan_stops_the_run_with_a_clear_error_and_keeps_its_metrics(
    run_world, tmp_path
):
    from infalign_core.rewards import callable_reward

    policy, prompts = run_world
    calls = {"n": 0}

    def flaky(prompt: str, response: str) -> float:
        calls["n"] += 1
        # Finite for the banks (6 prompts × m = 8) and two steps (2 × 16 rows), then NaN.
        return float("nan") if calls["n"] > 6 * 8 + 2 * 16 and "e" in response else float(len(response))

    config = small_config(policy, prompts, tmp_path / "cache", steps=6, checkpoint_every=100).resolved()
    run_dir = tmp_path / "run"
    base = ctrl.load_models(config)
    models = ctrl.Models(base.policy, base.reference, callable_reward(flaky, "flaky"))
    with pytest.raises(InfAlignError, match=r"nan"):  # a callable reward names the text itself
        ctrl.train(config, run_dir, models=models)
    assert _steps(run_dir) == [1, 2]
    assert all(np.isfinite(row["reward/raw"]) for row in ctrl.read_metrics(run_dir))


def test_an_inf_reward_run_is_marked_failed_with_the_reward_message(run_world, tmp_path, monkeypatch):
    from infalign_core.rewards import OracleReward

    calls = {"n": 0}
    real_score = OracleReward.score

    def score(self, prompts, responses):
        calls["n"] += 1
        values = np.asarray(real_score(self, prompts, responses), dtype=np.float64)
        if calls["n"] > 1:  # the bank is the first call; the first step's reward the second
            values[0] = np.inf
        return values

    monkeypatch.setattr(OracleReward, "score", score)
    with pytest.raises(InfAlignError, match="reward returned inf"):
        _finished_run(run_world, tmp_path)
    status = runs.read_status(tmp_path / "run")
    assert status["state"] == "failed" and "reward returned inf" in status["error"]
    assert status["pid"] is None and not runs.trainer_alive(tmp_path / "run")


def test_checkpoints_are_written_to_a_temporary_folder_and_renamed(run_world, tmp_path, monkeypatch):
    run_dir = _finished_run(run_world, tmp_path, steps=2, checkpoint_every=1)
    good = (run_dir / "checkpoint" / "model.safetensors").read_bytes()

    def torn_save(self, folder, **kwargs):  # dies half-way through writing the weights
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "model.safetensors").write_bytes(good[:500])
        raise OSError(errno.ENOSPC, "No space left on device")

    from infalign_core.models import load_policy

    policy = load_policy(str(run_world[0]), device="cpu")
    monkeypatch.setattr(type(policy.model), "save_pretrained", torn_save)
    import torch

    optimizer = torch.optim.AdamW(policy.model.parameters())
    with pytest.raises(OSError):
        ctrl.save_checkpoint(run_dir, policy, optimizer, 3, 0.1)
    assert ctrl.checkpoint_path(run_dir) == run_dir / "checkpoint"
    assert (run_dir / "checkpoint" / "model.safetensors").read_bytes() == good
    shutil.rmtree(run_dir / "checkpoint.tmp", ignore_errors=True)


def test_the_metrics_reader_skips_a_torn_last_line(tmp_path):
    rows = [{"step": 1, "x": 0.5}, {"step": 2, "x": 0.25}]
    (tmp_path / ctrl.METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 3, "x')
    assert ctrl.read_metrics(tmp_path) == rows
    ctrl.truncate_metrics(tmp_path, 2)
    assert (tmp_path / ctrl.METRICS_FILE).read_text().count("\n") == 2


@pytest.mark.slow
def test_a_page_trainer_killed_with_9_shows_as_interrupted_on_the_next_refresh(
    run_world, tmp_path, monkeypatch
):
    from streamlit.testing.v1 import AppTest

    policy, prompts = run_world
    root = tmp_path / "runs"
    monkeypatch.setenv("INFALIGN_RUNS_DIR", str(root))
    at = AppTest.from_file(str(Path(__file__).parents[1] / "app_pages" / "ctrl.py"), default_timeout=60).run()
    for key, value in {"policy": policy, "prompts": prompts, "reward": "oracle"}.items():
        at.text_input(key=key).set_value(str(value))
    at.selectbox(key="device").set_value("cpu")
    for key, value in {"num_prompts": 6, "prompts_per_step": 4, "k": 4, "steps": 400, "m": 8}.items():
        at.number_input(key=key).set_value(value)
    at.button(key="start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (info,) = runs.list_runs(root)
    _wait(lambda: runs.trainer_alive(info.path) and _steps(info.path), 180, "the page's trainer", info.path)
    # The trainer is this process's child, as it is the server's: killed, it lingers as a zombie.
    os.kill(runs.read_status(info.path)["pid"], signal.SIGKILL)
    _wait(lambda: not runs.trainer_alive(info.path), 30, "the lock to drop", info.path)
    at.run()  # what the live view's timer does every 2 s, in the same session: no reload
    assert not at.exception
    assert at.dataframe[0].value["state"].tolist() == ["interrupted"]
    assert not at.button(key="resume").disabled


@pytest.mark.slow
@pytest.mark.browser
def test_in_the_browser_a_killed_trainer_shows_as_interrupted_without_a_reload(tmp_path, monkeypatch):
    import importlib.util

    from infalign_core.models import BUNDLED

    chromium = Path("/usr/bin/chromium")
    if not chromium.exists() or not (BUNDLED["policy"] / "config.json").is_file():
        pytest.skip("needs Debian's chromium and the bundled world")
    sync_api = pytest.importorskip("playwright.sync_api")
    spec = importlib.util.spec_from_file_location(
        "screenshot", Path(__file__).parents[1] / "scripts" / "screenshot.py"
    )
    shot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shot)
    root = tmp_path / "runs"
    monkeypatch.setenv("INFALIGN_RUNS_DIR", str(root))  # the server inherits both
    monkeypatch.setenv("INFALIGN_CACHE_DIR", str(tmp_path / "cache"))
    with shot.serve(shot.free_port(), 120) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=shot.CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{url}/ctrl")
            page.get_by_role("button", name="Start").click(timeout=120_000)
            # The server launched the trainer (its child): wait, reading files only, for its lock.
            run_dir = _wait(lambda: next(iter(root.glob("*/config.json")), None), 120, "a run", root).parent
            _wait(lambda: runs.trainer_alive(run_dir), 180, "the trainer's lock", run_dir)
            page.get_by_text(": running, step").first.wait_for(timeout=60_000)
            os.kill(runs.read_status(run_dir)["pid"], signal.SIGKILL)
            # No reload, and no refresh_status from this test: only the page's live view can notice.
            page.get_by_text(": interrupted, step").first.wait_for(timeout=60_000)
            assert runs.read_status(run_dir)["state"] == "interrupted"
            assert page.get_by_role("button", name="Resume").is_enabled()
        finally:
            browser.close()
