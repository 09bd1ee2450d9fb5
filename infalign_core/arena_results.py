"""Arena results that survive restarts: one JSON record per evaluation, kept in ``run_dir/arena.json``.

A record holds the settings, the estimates, the KL, and the theory at the measured KL with the gaps to it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from infalign_core import filememo
from infalign_core.arena import ArenaState, example_picks
from infalign_core.arena_theory import theory_at_kl
from infalign_core.optimum import equivalent_kl, optimum_visible_kl
from infalign_core.winrate import METRICS

ARENA_FILE = "arena.json"


def arena_record(state: ArenaState, settings: dict, run_config: dict | None = None) -> dict:
    """One evaluation as JSON-ready data: settings, estimates, KL, the theory at that KL and the gaps."""
    estimate = state.estimate.as_dict() if state.estimate else {}
    kl = state.kl.as_dict() if state.kl else {}
    if state.calibrated_kl is not None:
        kl["calibrated"] = state.calibrated_kl
        m = int(np.shape(state.reference_rewards)[1])
        if kl.get("k1", 0.0) > 0:
            kl["share_of_sequence"] = state.calibrated_kl / kl["k1"]
            # The yardstick: what the exact optimum for the run's Φ shows through the same K reference
            # samples at the run's sequence KL (the bank's coarseness cancels).
            optimum_seen = optimum_visible_kl(run_config, kl["k1"], m) if run_config is not None else None
            if optimum_seen:
                kl["optimum_visible"] = optimum_seen
                kl["share_seen"] = state.calibrated_kl / optimum_seen
        if run_config is not None:
            # Where the run sits if no KL were wasted: the optimum's KL that shows as much through the bank.
            kl["seen_as_kl"] = equivalent_kl(run_config, state.calibrated_kl, kl.get("k1", float("nan")), m)
    per_prompt = {
        name: np.round(v, 8).tolist()
        for name, v in (state.estimate.per_prompt if state.estimate else {}).items()
    }
    if state.kl is not None:
        per_prompt["kl_k1"] = np.round(
            (state.policy_logprobs - state.reference_logprobs).mean(axis=1), 8
        ).tolist()
    record = {
        "settings": dict(settings),
        "num_prompts_done": state.done,
        "win_rates": estimate,
        "kl": kl,
        "per_prompt": per_prompt,
        "seconds": round(state.seconds, 2),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "tie_share": state.tie_share,
        "unscored_share": state.unscored_share,
    }
    if state.kl_note:
        record["kl_note"] = state.kl_note
    if run_config is not None:
        record["run"] = {
            key: run_config.get(key)
            for key in ("transform", "t", "mode", "n", "procedure", "beta", "kl_target", "seed", "phi_beta")
        }
        theory_point = theory_at_kl(run_config, state.n, kl.get("k1", float("nan")))
        if theory_point is not None:
            record["theory"] = theory_point
            record["gap_to_theory"] = {
                name: estimate[name] - theory_point[name] for name in METRICS if name in estimate
            }
        # The same theory at the KL the reward sees: where the run sits if no KL were wasted.
        seen_at = kl.get("seen_as_kl")
        seen_point = theory_at_kl(run_config, state.n, float("nan") if seen_at is None else seen_at)
        if seen_point is not None:
            record["theory_at_calibrated_kl"] = seen_point
    return record


def optimum_record(state, settings: dict, resolved) -> dict:
    """The exact optimum's evaluation (``optimum.run_optimum``'s state) as a record, labelled and with its pool.

    Drawn as a star on the frontier and carried by the report; ``resolved`` is the
    ``optimum.ResolvedOptimum`` it sampled.
    """
    record = arena_record(state, settings, resolved.run_config(state.pool))
    record["label"] = f"{resolved.label} (what a perfect trainer would reach in this world)"
    record["picks"] = picks_record(state)
    record["optimum"] = {"pool": state.pool, "ess": float(np.mean(state.ess)), "warning": state.warning}
    return record


def load_arena_results(run_dir: str | Path) -> list[dict]:
    """Every evaluation saved for a run ([] when none or unreadable); shared records, read-only."""
    path = Path(run_dir) / ARENA_FILE
    # Every session's arena page lists every run's evaluations: parse each version of the file once.
    return list(filememo.memo("arena_results", (str(path),), [path], lambda: _parse_arena_file(path)))


def _parse_arena_file(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return []
    return data if isinstance(data, list) else []


def save_arena_result(run_dir: str | Path, record: dict) -> Path:
    """Store an evaluation in run_dir/arena.json (atomically), replacing one with the same settings."""
    path = Path(run_dir) / ARENA_FILE
    kept = [r for r in load_arena_results(run_dir) if r.get("settings") != record.get("settings")]
    tmp = path.with_name(f".{ARENA_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps([*kept, record], indent=1, allow_nan=True), encoding="utf-8")
    os.replace(tmp, path)
    return path


def find_arena_result(run_dir: str | Path, settings: dict) -> dict | None:
    """The saved evaluation with exactly these settings, if any."""
    return next((r for r in load_arena_results(run_dir) if r.get("settings") == settings), None)


def picks_record(state, count: int = 3) -> dict:
    """Best-of-N and worst-of-N example picks of an arena state, JSON-ready (for reports)."""
    return {mode: [asdict(p) for p in example_picks(state, count, mode)] for mode in ("best", "worst")}
