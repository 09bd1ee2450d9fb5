"""The one exception type the project raises for problems a user can fix, and how others map to it."""

from __future__ import annotations

import errno


class InfAlignError(ValueError):
    """A user-facing error: its message says what went wrong and what to do instead."""


def one_line(text: str) -> str:
    """``text`` on one line: the CLI promises exactly one ``error:`` line, whatever a parser wrote."""
    return " ".join(str(text).split())


_OS_HINTS = {
    errno.ENOSPC: "the disk is full: free some space, then try again (a run resumes from its checkpoint)",
    errno.EDQUOT: "the disk quota is exhausted: free some space, then try again",
    errno.EACCES: "permission denied: pick a folder you can write to",
    errno.EPERM: "operation not permitted: pick a folder you can write to",
    errno.ENOTDIR: "a part of this path is a file, not a folder: give a path whose parents are folders",
    errno.EISDIR: "this is a folder where a file was expected",
    errno.ENOENT: "no such file or folder",
    errno.EROFS: "the file system is read-only: pick a writable folder",
    errno.ENAMETOOLONG: "the path is too long",
}


def user_error(err: BaseException) -> InfAlignError | None:
    """The InfAlignError a user should see for ``err``, or None when ``err`` is a bug to report.

    Covers what the outside world does to us rather than what the code gets wrong: file-system
    errors (full disk, a path under a file, permissions) and truncated or corrupt weight files.
    """
    if isinstance(err, InfAlignError):
        return InfAlignError(one_line(str(err)))
    if isinstance(err, OSError) and err.errno in _OS_HINTS:
        where = f" ({err.filename})" if err.filename else ""
        return InfAlignError(f"{_OS_HINTS[err.errno]}{where}.")
    if isinstance(err, UnicodeDecodeError):
        return InfAlignError(f"a file is not UTF-8 text ({one_line(str(err))[:120]}): save it as UTF-8.")
    if type(err).__name__ == "SafetensorError" or type(err).__module__.startswith("safetensors"):
        return InfAlignError(
            f"a .safetensors weights file is truncated or corrupt ({one_line(str(err))}): "
            "save the model again, or pick another checkpoint or folder."
        )
    return None
