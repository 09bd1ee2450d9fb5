"""The theory's slow, unchanging results kept on disk, so a fresh server does not trace them again.

The optimal transform's family for an N (a few dozen stiff ODE integrations) and its frontier
against the best exponential's take seconds and depend only on their arguments and on the theory
code. :func:`load_or_compute` keeps such a result, a dataclass of numbers, strings and numpy arrays
(nested dataclasses flattened), as one ``.npz`` file (no pickle) under ``cache/theory`` (or
``$INFALIGN_THEORY_CACHE``), keyed by the arguments and a hash of the theory modules' source, so
editing the theory invalidates it. A missing, torn or unreadable file is recomputed and rewritten.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import typing
import zipfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TypeVar

import numpy as np

ENV_VAR = "INFALIGN_THEORY_CACHE"
PACKAGE = Path(__file__).resolve().parent
_SOURCES = ("optimal.py", "families.py", "explorer.py", "theory.py", "transforms.py", "procedures.py")
T = TypeVar("T")


def cache_dir() -> Path:
    """``$INFALIGN_THEORY_CACHE`` if set, else ``<repo>/cache/theory``."""
    env = os.environ.get(ENV_VAR, "").strip()
    return Path(env).expanduser() if env else PACKAGE.parent / "cache" / "theory"


@cache
def code_version() -> str:
    """A hash of the theory modules' source: results from other code are never read."""
    digest = hashlib.sha256()
    for name in _SOURCES:
        path = PACKAGE / name
        digest.update(path.read_bytes() if path.is_file() else b"")
    return digest.hexdigest()[:16]


def _flatten(value, prefix: str, arrays: dict, meta: dict) -> None:
    for field in dataclasses.fields(value):
        item, key = getattr(value, field.name), f"{prefix}{field.name}"
        if dataclasses.is_dataclass(item):
            _flatten(item, f"{key}.", arrays, meta)
        elif isinstance(item, np.ndarray):
            arrays[key] = item
        elif isinstance(item, int | float | str | bool) or item is None:
            meta[key] = item.item() if isinstance(item, np.generic) else item
        else:
            raise TypeError(f"{key}: cannot store a {type(item).__name__}")


def _rebuild(kind: type[T], prefix: str, arrays, meta: dict) -> T:
    types = typing.get_type_hints(kind)  # resolves the string annotations of nested dataclasses
    values = {}
    for field in dataclasses.fields(kind):
        key = f"{prefix}{field.name}"
        if key in arrays:
            values[field.name] = np.array(arrays[key])
        elif key in meta:
            values[field.name] = meta[key]
        else:
            values[field.name] = _rebuild(types[field.name], f"{key}.", arrays, meta)
    return kind(**values)


def load_or_compute(name: str, key: tuple, kind: type[T], compute: Callable[[], T]) -> T:
    """``compute()``'s result for ``key``, read from disk when this code stored it before."""
    digest = hashlib.sha256(json.dumps([name, list(key), code_version()], default=str).encode()).hexdigest()
    path = cache_dir() / f"{name}-{digest[:24]}.npz"
    try:
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored["__meta__"]))
            return _rebuild(kind, "", {k: stored[k] for k in stored.files if k != "__meta__"}, meta)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
        pass  # not stored yet, torn or from an older layout: compute it
    value = compute()
    arrays, meta = {}, {}
    _flatten(value, "", arrays, meta)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as handle:
            np.savez(handle, __meta__=np.array(json.dumps(meta)), **arrays)
        os.replace(handle.name, path)  # readers see the old file or the whole new one
    except OSError:
        pass  # a read-only or full disk only costs the next server the computation
    return value
