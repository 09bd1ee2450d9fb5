"""The run store: one folder per CTRL run, a subprocess per running run, a queue per device.

    runs/<id>/config.json     the resolved CTRLConfig
    runs/<id>/status.json     state (queued, running, stopping, stopped, finished, failed,
                              interrupted), pid, device, times, step, error
    runs/<id>/metrics.jsonl   one JSON object per step, appended and flushed every step
    runs/<id>/checkpoint/     save_pretrained model + tokenizer + trainer_state.pt
    runs/<id>/train.log       the trainer's stdout and stderr

A run is ``python -m infalign_core train --run-dir runs/<id>`` started detached (its own
session), so it survives page reloads and frees its GPU memory when it ends.

Queueing: at most one running run per device. ``start_next`` starts the oldest queued run
of every idle device, under an exclusive file lock on ``runs/.lock`` so two callers never
start two runs. It is called by ``launch_run`` and ``resume_run``, by every trainer as it
exits (so a queue drains by itself), and by ``list_runs`` after it marks dead runs
interrupted (so a queue behind a run killed with -9 drains at the next look at the runs).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from infalign_core import classroom
from infalign_core.ctrl import CHECKPOINT_DIR, CTRLConfig, checkpoint_path, read_metrics
from infalign_core.errors import InfAlignError

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNS_ENV_VAR = "INFALIGN_RUNS_DIR"
ACTIVE = ("queued", "running", "stopping")
FINAL = ("stopped", "finished", "failed", "interrupted")
CONFIG_FILE, STATUS_FILE, LOG_FILE = "config.json", "status.json", "train.log"
TRAINER_LOCK = ".trainer.lock"
_EXEC_GRACE_S = 30.0
_RUN_ID = re.compile(r"[^\W_][\w.-]{0,199}")  # any script: create_run keeps the letters of a name


def default_runs_root() -> Path:
    """``$INFALIGN_RUNS_DIR`` if set, else ``<repo>/runs``."""
    env = os.environ.get(RUNS_ENV_VAR)
    return Path(env).expanduser() if env else REPO_ROOT / "runs"


# --- status.json --------------------------------------------------------------------------


def read_status(run_dir: Path) -> dict:
    """The run's status dict ({} when missing or torn)."""
    try:
        return json.loads((Path(run_dir) / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def write_status(run_dir: Path, **fields) -> dict:
    """Merge ``fields`` into status.json, written atomically; returns the new status."""
    run_dir = Path(run_dir)
    status = {**read_status(run_dir), **fields, "updated": time.time()}
    tmp = run_dir / f".{STATUS_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(status, indent=1), encoding="utf-8")
    os.replace(tmp, run_dir / STATUS_FILE)
    return status


def _pid_alive(pid: int | None, run_dir: Path, *, check_cmdline: bool = True) -> bool:
    """Whether ``pid`` is a live (not zombie) process training this run dir."""
    if not pid:
        return False
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap our own finished child so it stops looking alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if proc.exists():
        try:
            if proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return False
            if not check_cmdline:
                return True
            # A recycled pid belongs to another program: its command line does not name this run.
            cmdline = proc.joinpath("cmdline").read_bytes().decode(errors="replace")
            return str(Path(run_dir).resolve()) in cmdline
        except OSError:
            return False
    return True


def refresh_status(run_dir: Path) -> dict:
    """The status, with a running/stopping run whose trainer is gone marked ``interrupted``.

    A trainer holds the run's lock file from its first moment to its last status write, and the
    kernel drops the lock the instant the process dies (kill -9 included), so a released lock
    whose recorded owner is the status's pid means the trainer is gone. Before a freshly spawned
    trainer takes the lock, its pid's liveness decides.
    """
    status = read_status(run_dir)
    if status.get("state") not in ("running", "stopping") or trainer_alive(run_dir):
        return status
    pid = status.get("pid")
    # Just after the fork the child still shows the launcher's command line: judge it by pid alone.
    settled = time.time() - float(status.get("started") or 0) > _EXEC_GRACE_S
    took_lock = pid is not None and _lock_owner(run_dir) == pid
    if took_lock or not _pid_alive(pid, run_dir, check_cmdline=settled):
        # A trainer writes its final state before it lets go of the lock: read again so that a
        # run that just finished is not marked interrupted.
        again = read_status(run_dir)
        if again.get("state") in ("running", "stopping") and again.get("pid") == pid:
            return write_status(
                run_dir, state="interrupted", error="the trainer process ended without saying so", pid=None
            )
        return again
    return status


# --- one trainer per run folder ---------------------------------------------------------------


def _lock_owner(run_dir: Path) -> int | None:
    """The pid the last trainer to take the run's lock wrote into it (None if none)."""
    try:
        return int((Path(run_dir) / TRAINER_LOCK).read_text(encoding="utf-8").strip() or 0) or None
    except (OSError, ValueError):
        return None


def trainer_alive(run_dir: Path) -> bool:
    """Whether some process holds the run's trainer lock right now."""
    try:
        handle = open(Path(run_dir) / TRAINER_LOCK, encoding="utf-8")
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


@contextlib.contextmanager
def trainer_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run's trainer lock while training; a second trainer on the same folder is refused.

    ``flock`` belongs to the open file, so the lock dies with its process however it dies and
    never goes stale; the owner's pid is written inside for the liveness check and for messages.
    """
    handle = open(Path(run_dir) / TRAINER_LOCK, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        owner = _lock_owner(run_dir)
        raise InfAlignError(
            f"{run_dir} is being trained right now by another process{f' (pid {owner})' if owner else ''}: "
            "one trainer per run folder. Stop that run first (Stop on the CTRL runs page, or Ctrl-C), "
            "or wait for it to end."
        ) from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()  # closing the file releases the lock


# --- what a --run-dir may be ----------------------------------------------------------------


def check_run_dir(run_dir: Path) -> None:
    """Refuse a run folder that cannot or must not hold a run, before anything is written to it.

    It must be a folder (or not exist yet) whose parents are folders, and an existing folder must
    be a run (hold config.json) or be empty: a folder of someone's files is never written into.
    """
    run_dir = Path(run_dir)
    for path in (run_dir, *run_dir.parents):
        if path.exists() or path.is_symlink():
            if not path.is_dir():
                where = "is a file" if path == run_dir else f"sits under {path}, which is a file"
                raise InfAlignError(f"the run folder {run_dir} {where}: give a folder path instead.")
            break
    if run_dir.is_dir() and not (run_dir / CONFIG_FILE).is_file() and any(run_dir.iterdir()):
        raise InfAlignError(
            f"{run_dir} is not a run folder (it has no {CONFIG_FILE}) and is not empty: refusing to "
            "write into it. Give a new or an empty folder."
        )


def check_can_train(run_dir: Path, *, resume: bool) -> None:
    """Refuse to train an existing run that is finished, has a live trainer, or needs ``resume``."""
    run_dir = Path(run_dir)
    status = refresh_status(run_dir)
    config = CTRLConfig.load(run_dir / CONFIG_FILE)
    if status.get("state") == "finished" and int(status.get("step") or 0) >= config.steps:
        raise InfAlignError(
            f"the run in {run_dir} already finished all {config.steps} steps: nothing to resume. "
            "Evaluate it (winrate --policy RUN_DIR), or start a new run in a new folder."
        )
    if trainer_alive(run_dir):
        raise InfAlignError(
            f"{run_dir} is being trained right now (pid {_lock_owner(run_dir)}): one trainer per run "
            "folder. Stop that run first, or wait for it to end."
        )
    if not resume and read_metrics(run_dir):
        raise InfAlignError(
            f"{run_dir} already has metrics: pass --resume to continue it, or give a new --run-dir."
        )


# --- the store ---------------------------------------------------------------------------


@dataclass
class RunInfo:
    """One row of the runs table."""

    run_id: str
    path: Path
    status: dict
    config: dict

    @property
    def state(self) -> str:
        """queued, running, stopping, stopped, finished, failed or interrupted."""
        return self.status.get("state", "unknown")

    @property
    def gallery(self) -> bool:
        """Whether this is a read-only gallery run."""
        return bool(self.status.get("gallery"))


def run_dir_of(run_id: str, runs_root: Path | None = None) -> Path:
    """The folder of a run id (which must exist): a run in the runs root, else a gallery run."""
    from infalign_core.gallery import gallery_root

    root = Path(runs_root) if runs_root is not None else default_runs_root()
    # An id is a name inside the runs root, never a path: '../x', '/etc', 'a/b' or a symlink
    # leading out of the root are refused (an explicit folder path is a different argument).
    bad = not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id)
    for folder in (root, gallery_root()):
        path = folder / run_id if not bad else folder
        if not bad and path.resolve().is_relative_to(folder.resolve()) and (path / CONFIG_FILE).is_file():
            return path
    raise InfAlignError(f"no run {run_id!r} in {root} or the gallery")


def _refuse_gallery(path: Path, action: str) -> None:
    """Gallery runs are read-only: say how to get an editable copy."""
    from infalign_core.gallery import is_gallery

    if is_gallery(path):
        raise InfAlignError(
            f"{path.name} is a gallery run and read-only: it cannot be {action}. "
            "Copy it to your runs first (CTRL runs page: Copy to my runs)."
        )


def list_gallery() -> list[RunInfo]:
    """The gallery's finished runs (read only: nothing is refreshed or written)."""
    from infalign_core.gallery import gallery_root

    root = gallery_root()
    infos = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if _is_run_in(root, path):
            try:
                config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            infos.append(RunInfo(path.name, path, {**read_status(path), "gallery": True}, config))
    return infos


def list_all_runs(runs_root: Path | None = None) -> list[RunInfo]:
    """The user's runs (newest first), then the gallery's."""
    return [*list_runs(runs_root), *list_gallery()]


def summary(info: RunInfo) -> dict:
    """One run as the ``runs --json`` row: id, state, transform, mode, n, kl (last measured) and gallery."""
    last = (read_metrics(info.path) or [{}])[-1]
    kl = last.get("kl/k1")
    return {
        "id": info.run_id,
        "state": info.state,
        "transform": info.config.get("transform"),
        "mode": info.config.get("mode"),
        "n": info.config.get("n"),
        "kl": float(kl) if isinstance(kl, int | float) else None,
        "gallery": info.gallery,
    }


def _is_run_in(root: Path, path: Path) -> bool:
    """Whether ``path`` is a run folder whose real location is inside ``root`` (a symlink out is not)."""
    return (
        bool(_RUN_ID.fullmatch(path.name))
        and path.resolve().is_relative_to(root.resolve())
        and (path / CONFIG_FILE).is_file()
    )


def list_runs(runs_root: Path | None = None) -> list[RunInfo]:
    """Every run, newest first, with dead processes marked interrupted and the queue advanced."""
    root = Path(runs_root) if runs_root is not None else default_runs_root()
    if not root.is_dir():
        return []
    changed = False
    infos = []
    for path in sorted(root.iterdir()):
        if not _is_run_in(root, path):
            continue
        before = read_status(path).get("state")
        status = refresh_status(path)
        changed |= status.get("state") != before
        try:
            config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            config = {}
        infos.append(RunInfo(path.name, path, status, config))
    if changed or any(i.state == "queued" for i in infos):
        start_next(root)
        infos = [RunInfo(i.run_id, i.path, read_status(i.path), i.config) for i in infos]
    return sorted(infos, key=lambda i: i.status.get("created", 0), reverse=True)


def read_metrics_of(run_id: str, runs_root: Path | None = None) -> list[dict]:
    """The metric rows of a run."""
    return read_metrics(run_dir_of(run_id, runs_root))


def create_run(
    config: CTRLConfig, runs_root: Path | None = None, *, name: str | None = None, owner: str | None = None
) -> Path:
    """Validate the config and its prompts, then write a queued run folder; nothing is written if invalid.

    ``owner`` names the session that asked (classroom mode caps active runs per owner and in all).
    """
    from infalign_core.ctrl import load_prompt_list

    config = config.resolved()
    load_prompt_list(config)  # an unreadable prompt source fails here, before any folder exists
    check_model_sources(config)
    root = Path(runs_root) if runs_root is not None else default_runs_root()
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{config.transform}-{uuid.uuid4().hex[:4]}"
    if name:
        run_id = f"{run_id}-{''.join(c if c.isalnum() or c in '-_' else '-' for c in name)[:40]}"
    path = root / run_id
    with _queue_lock(root):  # the cap is checked and the run written as one step
        classroom.check_run_caps(_active_owners(root), owner)
        path.mkdir(parents=True)
        config.save(path / CONFIG_FILE)
        write_status(
            path,
            state="queued",
            created=time.time(),
            device=device_key(config),
            step=0,
            resume=False,
            owner=owner,
        )
    return path


def _active_owners(root: Path) -> list[str | None]:
    """The owner of every queued, running or stopping run under ``root``."""
    owners = []
    for path in root.iterdir():
        if _is_run_in(root, path):
            status = refresh_status(path)
            if status.get("state") in ACTIVE:
                owners.append(status.get("owner"))
    return owners


def check_model_sources(config: CTRLConfig) -> None:
    """Fail early on a policy or reference folder that does not exist (hub ids are checked by the trainer)."""
    from infalign_core.models import locate

    for source in (config.policy, config.reference):
        if source:
            locate(source, "policy")
    classroom.guard_source(config.reward, "reward model folder")


def device_key(config: CTRLConfig) -> str:
    """The device a run will occupy: one running run per key."""
    if config.device != "auto":
        return config.device if config.device != "cuda" else "cuda:0"
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def launch_run(
    config: CTRLConfig, runs_root: Path | None = None, *, name: str | None = None, owner: str | None = None
) -> str:
    """Create a run and start it now if its device is idle, else leave it queued; returns its id."""
    path = create_run(config, runs_root, name=name, owner=owner)
    start_next(path.parent)
    return path.name


@contextlib.contextmanager
def _queue_lock(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def start_next(runs_root: Path | None = None) -> list[str]:
    """Start the oldest queued run on every device with nothing running; returns the ids started."""
    root = Path(runs_root) if runs_root is not None else default_runs_root()
    started = []
    with _queue_lock(root):
        busy, queued = set(), []
        for path in root.iterdir():
            if not _is_run_in(root, path):
                continue
            status = refresh_status(path)
            if status.get("state") in ("running", "stopping"):
                busy.add(status.get("device"))
            elif status.get("state") == "queued":
                queued.append((status.get("created", 0), path, status))
        for _created, path, status in sorted(queued, key=lambda q: q[0]):
            if status.get("device") in busy:
                continue
            _spawn(path, resume=bool(status.get("resume")))
            busy.add(status.get("device"))
            started.append(path.name)
    return started


def _spawn(run_dir: Path, *, resume: bool) -> None:
    """Start the trainer for ``run_dir`` as a detached process and record its pid as running."""
    cmd = [sys.executable, "-m", "infalign_core", "train", "--run-dir", str(run_dir.resolve())]
    if resume:
        cmd.append("--resume")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    with open(run_dir / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=str(REPO_ROOT),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    write_status(run_dir, state="running", pid=proc.pid, started=time.time(), error=None)


def stop_run(run_id: str, runs_root: Path | None = None) -> dict:
    """Ask a run to stop: SIGTERM to a running trainer (it checkpoints, then marks itself stopped)."""
    path = run_dir_of(run_id, runs_root)
    _refuse_gallery(path, "stopped")
    status = refresh_status(path)
    state = status.get("state")
    if state == "queued":
        return write_status(path, state="stopped", error=None)
    if state not in ("running", "stopping"):
        return status
    status = write_status(path, state="stopping")
    with contextlib.suppress(ProcessLookupError):
        os.kill(int(status["pid"]), signal.SIGTERM)
    return status


def resume_run(run_id: str, runs_root: Path | None = None, *, owner: str | None = None) -> dict:
    """Queue a stopped, interrupted or failed run to continue from its last checkpoint (``owner``: see create_run)."""
    from infalign_core.ctrl import TRAINER_STATE

    path = run_dir_of(run_id, runs_root)
    _refuse_gallery(path, "resumed")
    checkpoint = checkpoint_path(path)
    if checkpoint is not None and not (checkpoint / TRAINER_STATE).is_file():
        raise InfAlignError(
            f"run {run_id}'s checkpoint holds weights only (no optimizer state), so it cannot resume; "
            "start a new run with its checkpoint folder as the policy instead"
        )
    status = refresh_status(path)
    if status.get("state") in ACTIVE:
        raise InfAlignError(
            f"run {run_id} is {status.get('state')}; only a stopped or interrupted run resumes"
        )
    config = CTRLConfig.load(path / CONFIG_FILE)
    try:  # a run saved before the fields were bounded (learning rate 1e9) would only fail again
        config.validate()
    except InfAlignError as err:
        raise InfAlignError(
            f"run {run_id} cannot resume: {err}; start a new run with a fixed config"
        ) from None
    done = int(status.get("step") or 0)
    if status.get("state") == "finished" and done >= config.steps:
        raise InfAlignError(f"run {run_id} already finished all {config.steps} steps")
    with _queue_lock(path.parent):
        classroom.check_run_caps(_active_owners(path.parent), owner)
        write_status(path, state="queued", resume=True, created=time.time(), error=None, owner=owner)
    start_next(path.parent)
    return read_status(path)


def delete_run(run_id: str, runs_root: Path | None = None) -> None:
    """Delete a run's folder; refused while it is queued, running or stopping, and for gallery runs."""
    path = run_dir_of(run_id, runs_root)
    _refuse_gallery(path, "deleted")
    state = refresh_status(path).get("state")
    if state in ("running", "stopping"):
        raise InfAlignError(f"run {run_id} is {state}: stop it before deleting it")
    shutil.rmtree(path)


def wait_for(
    run_id: str, states: tuple[str, ...] = FINAL, runs_root: Path | None = None, timeout: float = 60.0
) -> dict:
    """Poll until the run's state is one of ``states`` (for scripts and tests); returns the status."""
    path = run_dir_of(run_id, runs_root)
    deadline = time.monotonic() + timeout
    while True:
        status = refresh_status(path)
        if status.get("state") in states or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


# --- inside the trainer process ----------------------------------------------------------


def execute(run_dir: Path, *, resume: bool = False, on_metrics=None, log=None) -> dict:
    """Train the run in ``run_dir`` in this process, keeping status.json current; SIGTERM stops cleanly.

    Marks the run running (with this pid), then finished, stopped or failed with the error;
    on the way out it starts the next queued run.
    """
    run_dir = Path(run_dir)
    config = CTRLConfig.load(run_dir / CONFIG_FILE)
    with trainer_lock(run_dir):  # refused (status untouched) while another trainer holds the run
        return _execute_locked(run_dir, config, resume=resume, on_metrics=on_metrics, log=log)


def _execute_locked(run_dir: Path, config: CTRLConfig, *, resume: bool, on_metrics, log) -> dict:
    """``execute``'s body, run while this process holds the run's trainer lock."""
    from infalign_core import ctrl
    from infalign_core.errors import user_error

    stop_requested = {"flag": False}

    def on_signal(signum, _frame) -> None:
        if signum == signal.SIGINT and stop_requested["flag"]:
            raise KeyboardInterrupt  # a second Ctrl-C does not wait for the checkpoint
        stop_requested["flag"] = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    write_status(run_dir, state="running", pid=os.getpid(), started=time.time(), error=None, resume=resume)
    last_write = [0.0]

    def metrics_hook(row: dict) -> None:
        now = time.monotonic()
        if now - last_write[0] > 1.0 or row["step"] == config.steps:
            write_status(run_dir, step=row["step"])
            last_write[0] = now
        if on_metrics is not None:
            on_metrics(row)

    try:
        result = ctrl.train(
            config,
            run_dir,
            resume=resume,
            on_metrics=metrics_hook,
            should_stop=lambda: stop_requested["flag"],
            log=log,
        )
    except BaseException as err:
        from infalign_core.calibration import CalibrationCancelled

        if isinstance(err, CalibrationCancelled | KeyboardInterrupt):
            write_status(run_dir, state="stopped", pid=None, error=None, ended=time.time())
        else:
            fixable = user_error(err) if isinstance(err, Exception) else None
            message = str(fixable) if fixable else f"{type(err).__name__}: {str(err) or type(err).__name__}"
            with contextlib.suppress(OSError):  # on a full disk even this small write may fail
                write_status(run_dir, state="failed", pid=None, error=message, ended=time.time())
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        with contextlib.suppress(Exception):
            _start_next_after(run_dir)
    state = "stopped" if result["stopped"] else "finished"
    write_status(
        run_dir,
        state=state,
        pid=None,
        step=result["step"],
        ended=time.time(),
        checkpoint=result["checkpoint"],
    )
    with contextlib.suppress(Exception):
        _start_next_after(run_dir)
    return result


def _start_next_after(run_dir: Path) -> None:
    """Start the queue's next run once this one no longer counts as running."""
    if read_status(run_dir).get("state") not in ("running", "stopping"):
        start_next(run_dir.parent)


def has_checkpoint(run_dir: Path) -> bool:
    """Whether the run has a complete checkpoint to resume from or evaluate."""
    return checkpoint_path(run_dir) is not None


__all__ = [
    "CHECKPOINT_DIR",
    "RunInfo",
    "create_run",
    "delete_run",
    "execute",
    "launch_run",
    "list_runs",
    "read_metrics_of",
    "read_status",
    "refresh_status",
    "resume_run",
    "start_next",
    "stop_run",
]


def copy_to_runs(run_id: str, runs_root: Path | None = None) -> str:
    """Copy a gallery run into the user's runs (a new id); returns the new id. The copy is editable."""
    from infalign_core.gallery import PREFIX, is_gallery

    source = run_dir_of(run_id, runs_root)
    if not is_gallery(source):
        raise InfAlignError(f"run {run_id} is not a gallery run; it is already yours")
    root = Path(runs_root) if runs_root is not None else default_runs_root()
    new_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{run_id.removeprefix(PREFIX)}-copy"
    target = root / new_id
    suffix = 1
    while target.exists():
        suffix += 1
        target = root / f"{new_id}{suffix}"
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target)
    status = json.loads((target / STATUS_FILE).read_text(encoding="utf-8"))
    status.update(gallery=False, copied_from=run_id, created=time.time())
    (target / STATUS_FILE).write_text(json.dumps(status), encoding="utf-8")
    return target.name
