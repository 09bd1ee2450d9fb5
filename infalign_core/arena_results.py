"""Arena results that survive restarts: one JSON record per evaluation, kept in ``run_dir/arena.json``.

A record holds the settings, the estimates, the KL, and the theory at the measured KL with the gaps to it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from infalign_core import filememo
from infalign_core.arena import PROMPTS_PER_BATCH, ArenaState, example_picks
from infalign_core.arena_theory import theory_at_kl
from infalign_core.errors import InfAlignError
from infalign_core.optimum import equivalent_kl, optimum_visible_kl
from infalign_core.sampling_settings import SamplingSettings
from infalign_core.winrate import METRICS, paired_difference

ARENA_FILE = "arena.json"


def record_settings(
    *,
    n: int,
    k: int,
    prompts: str,
    num_prompts: int,
    sampling: SamplingSettings,
    reference,
    reward_fn,
    prompts_per_batch: int = PROMPTS_PER_BATCH,
) -> dict:
    """What an evaluation was run with, as its record's ``settings`` (a saved record is found by them).

    ``prompts`` names the source and split ("bundled:eval"); the models enter by fingerprint. The
    batch is stated only when it is not the default, as the reference's samples follow it.
    """
    settings = {
        "n": int(n),
        "k": int(k),
        "prompts": prompts,
        "num_prompts": int(num_prompts),
        "max_new_tokens": int(sampling.max_new_tokens),
        "temperature": float(sampling.temperature),
        "top_p": float(sampling.top_p),
        "seed": int(sampling.seed),
        "reference": reference.fingerprint,
        "reward": reward_fn.fingerprint,
    }
    return settings | (
        {} if int(prompts_per_batch) == PROMPTS_PER_BATCH else {"prompts_per_batch": int(prompts_per_batch)}
    )


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


# --- paired comparisons: this run − that run on the same prompts and reference samples ------------

PAIRED_RESAMPLES, PAIRED_SEED = 2000, 1  # the headline experiment's bootstrap, so the page reproduces it


@dataclass(frozen=True)
class PairedDifference:
    """One win rate of these evaluations minus those, per prompt, with a paired bootstrap interval."""

    metric: str
    difference: float
    ci_low: float
    ci_high: float
    level: float
    num_prompts: int
    num_pairs: int  # evaluations averaged on each side (seeds)

    def text(self, these: str, those: str) -> str:
        """'CTRL best-of-4 − calibrated RLHF: +0.027 [+0.004, +0.050]'."""
        return f"{these} − {those}: {self.difference:+.3f} [{self.ci_low:+.3f}, {self.ci_high:+.3f}]"

    @property
    def verdict(self) -> str:
        """Plain words: which side is ahead, or that the interval cannot tell."""
        if self.ci_low > 0:
            return "ahead"
        if self.ci_high < 0:
            return "behind"
        return "not distinguishable"


def pairing_problem(first: dict, second: dict) -> str | None:
    """Why two arena records cannot be paired prompt by prompt (None when they can).

    Pairing needs the same prompts and the same reference samples: every setting equal (prompts,
    count, K, N, seed, reference, reward, sampling); then the reference side was sampled with the
    same seeds from the same model, so the difference cancels its noise.
    """
    batch = {"prompts_per_batch": PROMPTS_PER_BATCH}  # records at the default batch leave it out
    a, b = {**batch, **(first.get("settings") or {})}, {**batch, **(second.get("settings") or {})}
    differing = sorted(key for key in a.keys() | b.keys() if a.get(key) != b.get(key))
    if differing:
        return (
            f"evaluated with different {', '.join(differing)}: re-evaluate both with the same arena settings"
        )
    if first.get("num_prompts_done") != second.get("num_prompts_done"):
        return "evaluated on different numbers of prompts"
    if not first.get("per_prompt") or not second.get("per_prompt"):
        return "an evaluation saved without per-prompt win rates: evaluate it again"
    return None


def paired_comparison(
    these: Sequence[dict], those: Sequence[dict], metric: str, *, level: float = 0.95
) -> PairedDifference:
    """Mean over prompts of these − those for one win rate (several evaluations per side: averaged, paired in order).

    Raises InfAlignError naming why the evaluations cannot be paired.
    """
    if metric not in METRICS:
        raise InfAlignError(f"unknown win rate {metric!r}; choose one of {', '.join(METRICS)}")
    these, those = list(these), list(those)
    if not these or len(these) != len(those):
        raise InfAlignError(
            f"a paired comparison needs the same number of evaluations on each side, got {len(these)} and {len(those)}"
        )
    for record in these[1:] + those:
        problem = pairing_problem(these[0], record)
        if problem:
            raise InfAlignError(f"these evaluations cannot be paired: {problem}")
    first = np.array([r["per_prompt"][metric] for r in these], dtype=np.float64)
    second = np.array([r["per_prompt"][metric] for r in those], dtype=np.float64)
    diff, low, high = paired_difference(
        first, second, resamples=PAIRED_RESAMPLES, level=level, seed=PAIRED_SEED
    )
    return PairedDifference(metric, diff, low, high, level, first.shape[1], len(these))


def run_metric(record: dict) -> str:
    """The win rate a run was trained for: worst-of-N for worst-mode runs, else best-of-N."""
    run = record.get("run") or {}
    procedure = str(run.get("procedure") or "")
    worst = run.get("mode") == "worst" or procedure.startswith("won:")
    return "won_win_rate" if worst else "bon_win_rate"


def compare_with_run(record: dict, run_dir: str | Path) -> list[PairedDifference]:
    """This evaluation − the run's saved one with the same settings, for each win rate."""
    saved = load_arena_results(run_dir)
    match = next((other for other in saved if pairing_problem(record, other) is None), None)
    if match is None:
        problem = pairing_problem(record, saved[-1]) if saved else "it has no saved evaluation"
        raise InfAlignError(
            f"cannot pair with run {Path(run_dir).name}: {problem} (its saved evaluations: "
            f"{'; '.join(_settings_text(r) for r in saved) or 'none'})"
        )
    return [paired_comparison([record], [match], metric) for metric in METRICS]


def _settings_text(record: dict) -> str:
    """'N=4 K=64 32 prompts seed 0' for a record."""
    s = record.get("settings") or {}
    return f"N={s.get('n')} K={s.get('k')} {record.get('num_prompts_done')} prompts seed {s.get('seed')}"


def metric_label(metric: str, n: int) -> str:
    """'standard', 'best-of-4' or 'worst-of-4' for a win-rate name."""
    return {"standard_win_rate": "standard", "bon_win_rate": f"best-of-{n}", "won_win_rate": f"worst-of-{n}"}[
        metric
    ]
