"""Output helpers the command modules share: JSON without NaN, and the judges' unscored notes."""

from __future__ import annotations

import json
import math
import sys


def json_safe(value):
    """NaN and infinities as null, recursively (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def print_json(obj) -> None:
    """Print one JSON value on one line (the contract for ``--json``), NaN as null."""
    print(json.dumps(json_safe(obj), allow_nan=False))


def print_unscored(*rewards) -> None:
    """Say how many responses each judge left unscored (on stderr, so --json stays one value)."""
    for reward_fn in rewards:
        note = getattr(reward_fn, "unscored_note", lambda: "")()
        if note:
            print(f"note: {note}", file=sys.stderr)
