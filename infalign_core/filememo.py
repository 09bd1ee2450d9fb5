"""Results computed from files, shared by every session until one of the files changes.

A classroom's sessions all read the same run folders: each run's metrics, the gallery's finished
runs. :func:`memo` keeps a function's result under its arguments and the size, mtime and inode of
the files it reads, so the second student's page costs a few ``stat`` calls, and a file a
trainer appends to is read again as soon as it grows. Bounded (least recently used goes first)
and thread-safe, as Streamlit runs each session's script in its own thread.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
_LOCK = threading.Lock()
_ENTRIES: OrderedDict[tuple, object] = OrderedDict()
MAX_ENTRIES = 512


def file_key(path: str | os.PathLike) -> tuple | None:
    """What identifies a file's content cheaply: (size, mtime in ns, inode); None if it is missing."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns, stat.st_ino


def memo(name: str, args: tuple, files: Iterable[str | os.PathLike], compute: Callable[[], T]) -> T:
    """``compute()``, or the result kept for the same name, arguments and unchanged ``files``.

    The result is shared between callers: treat it as read-only.
    """
    key = (name, args, tuple((os.fspath(f), file_key(f)) for f in files))
    with _LOCK:
        if key in _ENTRIES:
            _ENTRIES.move_to_end(key)
            return _ENTRIES[key]  # type: ignore[return-value]
    value = compute()  # outside the lock: two sessions may both compute once, neither waits on the other
    with _LOCK:
        _ENTRIES[key] = value
        while len(_ENTRIES) > MAX_ENTRIES:
            _ENTRIES.popitem(last=False)
    return value


def clear() -> None:
    """Forget every kept result (tests)."""
    with _LOCK:
        _ENTRIES.clear()
