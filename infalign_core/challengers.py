"""What the arena evaluates: the reference, a model folder, a hub id or a CTRL run (by folder or id).

The store's side of the arena: a run id is looked up with ``runs.run_dir_of`` (the user's runs
first, then the gallery's, with its id check), a run folder resolves to its checkpoint and config,
and ``load_challenger`` hands the arena a loaded policy.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from infalign_core import classroom
from infalign_core.errors import InfAlignError

RUN_CONFIG_FILE = "config.json"


@dataclass
class ChallengerSource:
    """Where a challenger's weights come from, and the CTRL run it belongs to (if any)."""

    model: str  # what load_policy gets
    label: str
    run_dir: Path | None = None
    run_config: dict | None = None


def _run_config(folder: Path) -> dict | None:
    """The CTRL config of a run folder, or None if ``folder`` is not a run."""
    path = folder / RUN_CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and "transform" in data and "architectures" not in data else None


def resolve_challenger(source: str, runs_root: str | Path | None = None) -> ChallengerSource:
    """Turn 'reference'/'default', a run folder or id, a checkpoint folder, a model folder or hub id into a source."""
    text = (source or "").strip()
    if not text:
        raise InfAlignError(
            "no challenger given: use 'reference', a CTRL run folder or id, or a model folder"
        )
    if text in ("reference", "default"):
        return ChallengerSource("default", "reference (bundled default policy)")
    classroom.guard_source(text, "challenger folder")
    path = Path(os.path.expanduser(text))
    if not path.exists() and "/" not in text:
        from infalign_core.runs import run_dir_of

        # A run id (the user's runs first, then the gallery's); anything else is a model or hub id.
        try:
            path = run_dir_of(text, runs_root)
        except InfAlignError:
            pass
    if path.is_dir():
        run_dir = path if _run_config(path) is not None else None
        if run_dir is None and _run_config(path.parent) is not None:
            config = _trained_config(_run_config(path.parent), path)
            return ChallengerSource(str(path), f"run {path.parent.name} ({path.name})", path.parent, config)
        if run_dir is not None:
            from infalign_core.ctrl import checkpoint_path

            checkpoint = checkpoint_path(run_dir)
            config = _run_config(run_dir)
            if checkpoint is None:
                raise InfAlignError(
                    f"run {run_dir.name} has no checkpoint yet (one is written every "
                    f"{config.get('checkpoint_every', '?')} steps and at the end); wait for it or pick another run"
                )
            return ChallengerSource(
                str(checkpoint), f"run {run_dir.name}", run_dir, _trained_config(config, checkpoint)
            )
    return ChallengerSource(text, text)


def _trained_config(config: dict, checkpoint: Path) -> dict:
    """A run's config plus ``phi_beta``, the β its checkpoint's optimal Φ was solved at (when recorded)."""
    from infalign_core.ctrl import trained_phi_beta

    phi_beta = trained_phi_beta(checkpoint)
    return {**config, "phi_beta": phi_beta} if phi_beta is not None else config


def load_challenger(source: str, *, device: str | None = None, runs_root=None):
    """Load the challenger policy; returns (LoadedPolicy, ChallengerSource). Not a causal LM → InfAlignError."""
    from infalign_core.models import load_policy

    resolved = resolve_challenger(source, runs_root)
    return load_policy(resolved.model, device=device), resolved


@dataclass(frozen=True)
class ArenaSettings:
    """What the arena uses for a challenger unless told otherwise: its run's reference, reward and sampling."""

    reference: str
    reward: str
    reward_label: str | None
    max_new_tokens: int
    temperature: float
    top_p: float


def arena_settings(run_config: dict | None) -> ArenaSettings:
    """The arena's settings from a run's config (the bundled defaults without a run).

    The reference is the run's (else the policy it started from), the reward and its label the run's,
    and both sides sample as the run did: its max_new_tokens and temperature, at top-p 1 (CTRL
    trains on the full distribution; ``CTRLConfig`` has no top-p).
    """
    from infalign_core.ctrl import CTRLConfig

    run = run_config or {}
    return ArenaSettings(
        reference=run.get("reference") or run.get("policy") or CTRLConfig.policy,
        reward=run.get("reward") or CTRLConfig.reward,
        reward_label=run.get("reward_label"),
        max_new_tokens=int(run.get("max_new_tokens") or CTRLConfig.max_new_tokens),
        temperature=float(run.get("temperature") or CTRLConfig.temperature),
        top_p=1.0,
    )
