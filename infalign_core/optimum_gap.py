"""How far a CTRL run is from the exact optimum of its own objective, and where its KL goes.

The exact optimum of a run's objective is the reference tilted by its transformed calibrated
reward, π*(y|x) ∝ π_ref(y|x)·e^{Φ(C(x,y))/β}, at the β whose tilt spends the KL the run spent.
The theory gives its win rates exactly; a trained run sits at or below them. The gap says how
much a better trainer could still gain at the same KL. The KL splits into the part the reward
sees (the KL of the calibrated reward's law, the most that can move a win rate) and the rest,
spent on text changes the reward does not rank (length, wording, lower entropy).

Read from the run's latest arena result when there is one, else from its last training steps
(the bank's estimate from k samples per prompt: noisier, and on the training prompts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TRAINING_WINDOW = 30
"""Steps averaged for the training-side reading (per-step estimates are noisy)."""


@dataclass
class OptimumGap:
    """One run's win rate against the exact optimum's at the run's KL, and the KL's split."""

    source: str  # "arena" or "training"
    procedure: str  # e.g. "worst-of-4"
    kl: float
    measured: float
    optimum: float
    kl_seen: float | None = None
    optimum_seen: float | None = None  # what the exact optimum at this KL shows through the same bank

    @property
    def gap(self) -> float:
        """Measured minus the optimum's win rate (negative: short of the curve)."""
        return self.measured - self.optimum

    @property
    def share_seen(self) -> float | None:
        """The reward-visible share of the KL (None when not measured)."""
        if self.kl_seen is None or not self.kl > 0:
            return None
        return float(min(1.0, max(0.0, self.kl_seen / self.kl)))

    @property
    def share_of_optimum_seen(self) -> float | None:
        """The run's reward-visible KL over the exact optimum's through the same bank (None: unknown)."""
        if self.kl_seen is None or not self.optimum_seen:
            return None
        return float(max(0.0, self.kl_seen) / self.optimum_seen)

    def text(self) -> str:
        """The reading in words a learner follows (two or three sentences)."""
        where = (
            "measured in the arena"
            if self.source == "arena"
            else f"estimated from the last {TRAINING_WINDOW} training steps against the bank"
        )
        verdict = (
            f"{-self.gap:.3f} short of the optimum"
            if self.gap < -0.005
            else "on the optimum's curve, within the estimate's noise"
            if self.gap <= 0.005
            else f"{self.gap:.3f} above it: sampling noise, as no policy beats the optimum at its KL"
        )
        out = (
            f"At its KL of {self.kl:.2f} nats the exact optimum (the reference tilted by e^(Φ(C)/β)) wins "
            f"{self.optimum:.3f} of {self.procedure} comparisons against the reference; this run wins "
            f"{self.measured:.3f} ({where}): {verdict}."
        )
        share = self.share_seen
        if share is not None:
            out += (
                f" The reward sees {self.kl_seen:.2f} of its {self.kl:.2f} nats ({share:.0%}); the other "
                f"{self.kl - self.kl_seen:.2f} nats change the text in ways the reward does not rank "
                "(length, wording, less variety), so they cost KL without buying win rate."
            )
        of_optimum = self.share_of_optimum_seen
        if of_optimum is not None:
            out += (
                f" Through the same bank the exact optimum at this KL would show {self.optimum_seen:.2f} nats "
                f"(a bank of reference samples cannot show all of any KL), so the run shows {of_optimum:.0%} "
                "of what the reward could see."
            )
        return out


def procedure_of(config: dict) -> tuple[str, str, int]:
    """The win rate a run is judged on: (metric key, label, N) from its mode and N."""
    n = int(config.get("n") or 4)
    if config.get("mode") == "worst" and config.get("transform") in ("exp", "optimal"):
        return "won_win_rate", f"worst-of-{n}", n
    return "bon_win_rate", f"best-of-{n}", n


def from_arena(config: dict, record: dict) -> OptimumGap | None:
    """The gap from one arena record (None without a theory curve for the run's Φ or a KL)."""
    from infalign_core.arena_theory import theory_at_kl

    key, label, n = procedure_of(config)
    kl = (record.get("kl") or {}).get("k1")
    measured = (record.get("win_rates") or {}).get(key)
    if kl is None or measured is None or not math.isfinite(kl):
        return None
    point = theory_at_kl({**config, **(record.get("run") or {})}, n, float(kl))
    if point is None or point.get(key) is None:
        return None
    seen = (record.get("kl") or {}).get("calibrated")
    bank = int(
        (record.get("settings") or {}).get("k") or 0
    )  # each sample is ranked among K reference samples
    ceiling = _optimum_seen({**config, **(record.get("run") or {})}, float(kl), bank)
    return OptimumGap("arena", label, float(kl), float(measured), float(point[key]), _finite(seen), ceiling)


def from_training(config: dict, metrics: list[dict]) -> OptimumGap | None:
    """The gap from the last training steps' KL and bank win rates (None before there are enough)."""
    from infalign_core.arena_theory import theory_at_kl

    key, label, n = procedure_of(config)
    column = {"won_win_rate": "winrate/won", "bon_win_rate": "winrate/bon"}[key]
    rows = [r for r in metrics[-TRAINING_WINDOW:] if r.get(column) is not None and "kl/k1" in r]
    if len(rows) < TRAINING_WINDOW or int(config.get("n") or 4) != n:
        return None
    kl = float(np.mean([r["kl/k1"] for r in rows]))
    measured = float(np.mean([r[column] for r in rows]))
    last = metrics[-1]
    point = theory_at_kl({**config, "phi_beta": last.get("phi/beta", config.get("phi_beta"))}, n, kl)
    if point is None or point.get(key) is None:
        return None
    seen = float(np.mean([r["kl/calibrated"] for r in rows if "kl/calibrated" in r] or [np.nan]))
    ceiling = _optimum_seen(config, kl, int(config.get("m") or 0))
    return OptimumGap("training", label, kl, measured, float(point[key]), _finite(seen), ceiling)


def for_run(config: dict, metrics: list[dict], arena_records: list[dict]) -> OptimumGap | None:
    """The run's gap: from its latest arena record when it has one, else from training."""
    for record in reversed(arena_records or []):
        gap = from_arena(config, record)
        if gap is not None:
            return gap
    return from_training(config, metrics)


def for_run_dir(run_dir, config: dict, metrics: list[dict]) -> OptimumGap | None:
    """``for_run`` with the arena results saved in the run's folder."""
    from infalign_core.arena_results import load_arena_results

    return for_run(config, metrics, load_arena_results(run_dir))


def _optimum_seen(config: dict, kl: float, m: int) -> float | None:
    """The exact optimum's reward-visible KL through a bank of m at ``kl`` (None when unknown)."""
    from infalign_core.optimum import optimum_visible_kl

    if m < 1:
        return None
    value = optimum_visible_kl(config, kl, m)
    return value if value is not None and value > 0 else None


def _finite(value) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None
