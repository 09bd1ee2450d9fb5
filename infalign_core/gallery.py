"""The gallery: finished CTRL runs shipped in ``assets/gallery/``, so a demo starts with results.

Five runs at a 0.5-nat KL target on the bundled world, each with its metrics, a
weights-only checkpoint (no optimizer state: small, and not resumable) and its arena
results at K = 64 with example picks:

    gallery-raw-rlhf            raw-reward RLHF
    gallery-calibrated-rlhf     calibrated RLHF (identity Φ)
    gallery-ctrl-bo4-exp        CTRL for best-of-4, exponential Φ
    gallery-ctrl-wo4-exp        CTRL for worst-of-4, exponential Φ
    gallery-ctrl-bo4-optimal    CTRL for best-of-4, optimal Φ

``make gallery`` (``python -m infalign_core build-gallery``, ``gallery_build``) rebuilds them with fixed seeds.
Gallery runs are read-only everywhere: listed beside the user's runs (``gallery: true``),
accepted wherever a run id is, never deleted, stopped or resumed; ``runs.copy_to_runs``
makes an editable copy. This module only reads: where the gallery is and what it holds.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
GALLERY_ROOT = REPO_ROOT / "assets" / "gallery"
PREFIX = "gallery-"
RUNS: dict[str, dict] = {
    "gallery-raw-rlhf": {"transform": "raw", "title": "raw-reward RLHF"},
    "gallery-calibrated-rlhf": {"transform": "identity", "title": "calibrated RLHF (identity)"},
    "gallery-ctrl-bo4-exp": {"transform": "exp", "mode": "best", "title": "CTRL best-of-4 (exp)"},
    "gallery-ctrl-wo4-exp": {"transform": "exp", "mode": "worst", "title": "CTRL worst-of-4 (exp)"},
    "gallery-ctrl-bo4-optimal": {"transform": "optimal", "mode": "best", "title": "CTRL best-of-4 (optimal)"},
}


def gallery_root() -> Path:
    """Where the gallery lives (``$INFALIGN_GALLERY_DIR`` overrides, for tests)."""
    import os

    env = os.environ.get("INFALIGN_GALLERY_DIR")
    return Path(env).expanduser() if env else GALLERY_ROOT


def is_gallery(run_dir: Path) -> bool:
    """Whether a run folder is a gallery run (inside the gallery root)."""
    try:
        return Path(run_dir).resolve().is_relative_to(gallery_root().resolve())
    except OSError:
        return False


def title(run_id: str) -> str:
    """A gallery run's one-line description ('' for other runs)."""
    return RUNS.get(run_id, {}).get("title", "")
