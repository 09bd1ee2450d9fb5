"""Classroom mode: one switch that makes a shared server safe for a room of students.

``INFALIGN_CLASSROOM=1`` in the server's environment (``make classroom`` sets it) turns on three
guards, each applied once here and called wherever a typed path or a training run enters:

- every typed path (model and reward folders, prompt files and dataset folders, run folders,
  config files, bank caches, report and export output) must resolve, symlinks followed, inside
  one of the allowed roots: the bundled assets, a models folder, a data folder, the runs root and
  the bank cache; ``..`` is refused outright, so no answer leaks whether a file outside exists;
- ``trust_remote_code`` is refused, whoever asks for it;
- running trainings (queued, running or stopping) are capped per session and in total.

The roots and caps come from the environment so that the server, the CLI and the trainer
subprocesses it spawns (which inherit the environment) all apply the same rules.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from infalign_core.errors import InfAlignError

ENV_VAR = "INFALIGN_CLASSROOM"
REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = REPO_ROOT / "assets"
MODELS_ENV, DATA_ENV = "INFALIGN_MODELS_DIR", "INFALIGN_DATA_DIR"
MAX_RUNS_ENV, MAX_RUNS_PER_SESSION_ENV = "INFALIGN_MAX_RUNS", "INFALIGN_MAX_RUNS_PER_SESSION"
DEFAULT_MAX_RUNS, DEFAULT_MAX_RUNS_PER_SESSION = 4, 1
_ON = {"1", "true", "yes", "on"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")  # as models and data read a hub id


def enabled() -> bool:
    """Whether the server runs in classroom mode (``$INFALIGN_CLASSROOM`` is 1/true/yes/on)."""
    return os.environ.get(ENV_VAR, "").strip().lower() in _ON


def _env_dir(name: str, default: Path) -> Path:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else default


def roots() -> dict[str, Path]:
    """The folders typed paths may lead into in classroom mode, by name, each resolved."""
    named = {
        "bundled assets": ASSETS_DIR,
        "gallery": _env_dir("INFALIGN_GALLERY_DIR", ASSETS_DIR / "gallery"),
        "models folder": _env_dir(MODELS_ENV, REPO_ROOT / "models"),
        "data folder": _env_dir(DATA_ENV, REPO_ROOT / "data"),
        "runs root": _env_dir("INFALIGN_RUNS_DIR", REPO_ROOT / "runs"),
        "bank cache": _env_dir("INFALIGN_CACHE_DIR", REPO_ROOT / "cache" / "banks"),
    }
    return {name: path.resolve() for name, path in named.items()}


def describe_roots() -> str:
    """The allowed roots as one line a user can act on."""
    shown = {}
    for name, path in roots().items():
        try:
            shown[name] = str(path.relative_to(REPO_ROOT))
        except ValueError:
            shown[name] = str(path)
    return ", ".join(f"{name} ({where})" for name, where in shown.items())


def confine(text: str | os.PathLike, what: str) -> Path:
    """``text`` as a path; in classroom mode, refused unless it resolves inside an allowed root.

    Relative paths are taken from the working folder, as every reader does. ``..`` is refused
    before the file system is touched, and the path is resolved with symlinks followed, so a link
    inside a root that points out of it is refused too. Outside classroom mode the path is only
    ``~``-expanded, as before.
    """
    raw = os.fspath(text).strip()
    path = Path(raw).expanduser()
    if not enabled():
        return path
    if raw.startswith("~") or ".." in Path(raw).parts or "\x00" in raw:
        raise InfAlignError(
            f"classroom mode: the {what} {raw!r} is refused ('..' and '~' are not allowed); "
            f"use a path inside {describe_roots()}."
        )
    resolved = path.resolve()
    if any(resolved.is_relative_to(root) for root in roots().values()):
        return resolved
    raise InfAlignError(
        f"classroom mode: the {what} {raw!r} is outside the allowed folders; "
        f"use a path inside {describe_roots()}."
    )


def guard_source(text: str, what: str) -> None:
    """In classroom mode, confine ``text`` if it is a path: anything but a hub id (or run id) that exists nowhere here.

    A name like ``owner/model`` that is no local file or folder stays a hub id (or a run id,
    looked up under the runs root); everything else, and every name that exists locally, is a
    path and must lie inside the roots.
    """
    if not enabled():
        return
    text = text.strip()
    candidate = Path(text)
    try:
        local = candidate.exists() or candidate.is_symlink()
    except OSError:  # a name too long for the file system, say: confine refuses it below
        local = True
    if local or not _HUB_ID.match(text):
        confine(text, what)


def check_trust_remote_code(requested: bool) -> None:
    """Refuse ``trust_remote_code`` in classroom mode: code from a hub model never runs on a shared server."""
    if requested and enabled():
        raise InfAlignError(
            "classroom mode keeps trust_remote_code off: this server does not run code shipped with "
            "a model; pick a model that loads with the standard transformers classes."
        )


def _cap(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    try:
        return max(1, int(value)) if value else default
    except ValueError:
        raise InfAlignError(f"${name} must be a whole number ≥ 1, got {value!r}.") from None


def check_run_caps(active_owners: list[str | None], owner: str | None) -> None:
    """Refuse one more training when the session's or the server's cap of active runs is reached.

    ``active_owners`` holds the owner (session) of every queued, running or stopping run.
    """
    if not enabled():
        return
    total, per_session = (
        _cap(MAX_RUNS_ENV, DEFAULT_MAX_RUNS),
        _cap(MAX_RUNS_PER_SESSION_ENV, DEFAULT_MAX_RUNS_PER_SESSION),
    )
    mine = sum(1 for o in active_owners if owner is not None and o == owner)
    if mine >= per_session:
        raise InfAlignError(
            f"classroom mode: you already have {mine} training run(s) going (the limit per session is "
            f"{per_session}); wait for it to finish or stop it, then start the next."
        )
    if len(active_owners) >= total:
        raise InfAlignError(
            f"classroom mode: the server is running its limit of {total} trainings; try again when "
            "one finishes (the CTRL runs page shows them)."
        )
