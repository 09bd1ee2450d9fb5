"""A snapshot of folders on disk, to prove that a refused input changed nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path


def snapshot(*roots: Path) -> dict[str, tuple]:
    """Every file and folder under ``roots``: path → (kind, size, sha256 of the content)."""
    seen: dict[str, tuple] = {}
    for root in roots:
        root = Path(root)
        if not root.exists():
            seen[str(root)] = ("missing",)
            continue
        for path in sorted([root, *root.rglob("*")]):
            if path.is_dir():
                seen[str(path)] = ("dir",)
            elif path.is_file():
                data = path.read_bytes()
                seen[str(path)] = ("file", len(data), hashlib.sha256(data).hexdigest())
    return seen


def changes(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    """The paths that appeared, vanished or changed between two snapshots."""
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
