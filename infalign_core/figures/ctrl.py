"""Figures and tables for the CTRL runs page (plotly and pandas only: no streamlit)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from infalign_core import ctrl, filememo, runs

CURVES = [
    ("reward/calibrated", "calibrated reward (= standard win rate)"),
    ("kl/k1", "KL per sequence (solid) and the KL the reward sees (dotted), nats"),
    ("winrate/bon", "best-of-N win rate against the training bank"),
    ("reward/raw", "raw reward"),
]


CURVES_CAPTION = (
    "The best-of-N curve ranks each step's k samples per prompt against that prompt's m bank rewards "
    "(all N-subsets, ties ½): unbiased for the reference, but optimistic for a trained policy, which "
    "is scored against the bank it trains on. The arena's fresh samples are the real measurement. "
    "The dotted KL is the KL the reward sees: the step's calibrated rewards, counted on the bank's "
    "m + 1 rank levels (15 bins for 64 samples, the end levels kept single) against their uniform law "
    "under the reference, bias-corrected by a jackknife over the step's prompts. It is at most the "
    "sequence KL (data processing); the rest changes the text without changing its rank. Even the "
    "exact optimum shows less than its KL through a finite bank (90 % for best-of-4 at 0.5 nats with "
    "m = 64), so compare it with what the optimum shows at the same KL. Per step it is noisy (a standard "
    "deviation of about 0.08 nats near 0.1 nats, 0.1–0.3 nats at 0.5–2 nats) but nearly unbiased "
    "(within 10 % on the theory's own densities): read the trend, not a step."
)


def progress_line(info: runs.RunInfo, metrics: Sequence[dict], gallery_title=None) -> tuple[float, str]:
    """The focused run's progress bar: fraction done and "id: state, step i/n, about s left"."""
    total = int(info.config.get("steps") or 1)
    done = metrics[-1]["step"] if metrics else 0
    recent = metrics[-10:]
    step_time = sum(r["time/step"] for r in recent) / max(1, len(recent))
    eta = f", about {step_time * (total - done):.0f} s left" if info.state == "running" and metrics else ""
    mark = f" · gallery: {gallery_title(info.run_id)}, read-only" if gallery_title else ""
    return min(1.0, done / total), f"{info.run_id}: {info.state}, step {done}/{total}{eta}{mark}"


KL_WINDOW = 20
"""Steps averaged for the runs table's KL: one step's KL, from 64 samples, is noisy (a gallery run's
last step read 0.80 nats where its final 20 steps averaged 0.50, as the arena measured)."""


def runs_table(infos: Sequence[runs.RunInfo]) -> pd.DataFrame:
    """One row per run: state, transform, the latest metrics, KL as a final-window mean and as the arena measured it."""
    rows = []
    for info in infos:
        metrics = ctrl.read_metrics(info.path) or [{}]
        last = metrics[-1]
        rows.append(
            {
                "run": info.run_id,
                "state": f"{info.state} · gallery"
                if info.gallery
                else info.state,  # one column fewer: the table fits
                "Φ": _phi_label(info.config),
                "β": last.get("kl/beta", info.config.get("beta")),
                "step": f"{last.get('step', 0)}/{info.config.get('steps')}",
                "calibrated": last.get("reward/calibrated"),
                f"KL, last {KL_WINDOW} mean": _window_mean(metrics, "kl/k1"),
                f"KL seen, last {KL_WINDOW}": _window_mean(metrics, "kl/calibrated"),
                "KL in arena": _arena_kl(info.path),
                "BoN": last.get("winrate/bon"),
                # The full error is shown under the live view; a cell would cut it off.
                "error": "yes, see below" if info.status.get("error") else "",
            }
        )
    return pd.DataFrame(rows)


def _phi_label(config: dict) -> str:
    """'exp t=12.63' (one t rounding, transforms.t_label), or the transform's name."""
    from infalign_core.transforms import t_label

    t = config.get("t")
    return f"{config.get('transform')} t={t_label(t)}" if t is not None else str(config.get("transform"))


def _window_mean(metrics: Sequence[dict], key: str) -> float | None:
    """The mean of a metric over the last KL_WINDOW steps that logged it (None before any)."""
    values = [r[key] for r in metrics if isinstance(r.get(key), int | float)][-KL_WINDOW:]
    return float(np.mean(values)) if values else None


def _arena_kl(run_dir) -> float | None:
    """The KL the arena measured on fresh samples (its largest evaluation), or None before one."""
    from infalign_core import report

    record = report._best_record(run_dir)
    return None if record is None else record.get("kl", {}).get("k1")


def curves_figure(selected: Sequence[str]) -> go.Figure:
    """Four panels of training curves, one line per selected run (one figure shared until a run's metrics change)."""
    files = [runs.run_dir_of(run_id) / ctrl.METRICS_FILE for run_id in selected]
    return filememo.memo("curves_figure", tuple(selected), files, lambda: _curves_figure(selected))


def _curves_figure(selected: Sequence[str]) -> go.Figure:
    fig = make_subplots(rows=2, cols=2, subplot_titles=[title for _, title in CURVES])
    for index, run_id in enumerate(selected):
        metrics = runs.read_metrics_of(run_id)
        steps = [r["step"] for r in metrics]
        for panel, (key, _) in enumerate(CURVES):
            fig.add_trace(
                go.Scatter(
                    x=steps,
                    y=[r.get(key) for r in metrics],
                    name=run_id,
                    legendgroup=run_id,
                    showlegend=panel == 0,
                    line={"color": f"hsl({index * 97 % 360},70%,45%)"},
                ),
                row=panel // 2 + 1,
                col=panel % 2 + 1,
            )
            if key == "kl/k1":  # beside it, the part of the KL that moves the calibrated reward
                fig.add_trace(
                    go.Scatter(
                        x=steps,
                        y=[r.get("kl/calibrated") for r in metrics],
                        name=f"{run_id} (reward sees)",
                        legendgroup=run_id,
                        showlegend=False,
                        line={"color": f"hsl({index * 97 % 360},70%,45%)", "dash": "dot"},
                    ),
                    row=panel // 2 + 1,
                    col=panel % 2 + 1,
                )
    fig.update_layout(height=560, margin={"t": 40, "b": 20}, legend={"orientation": "h"})
    fig.update_xaxes(title_text="step")
    return fig


def recommended_run_shortfall() -> str | None:
    """One sentence: how far the gallery's recommended-run CTRL runs land from the exact optimum at their KL.

    Read from the gallery's saved arena records (None when the gallery is not built), so the
    page states what was measured, never a typed-in number.
    """
    from infalign_core import gallery, optimum_gap
    from infalign_core.errors import InfAlignError

    parts, gaps = [], []
    for run_id in ("gallery-ctrl-wo4-exp", "gallery-ctrl-bo4-exp"):
        run_dir = gallery.gallery_root() / run_id
        try:
            config = ctrl.CTRLConfig.load(run_dir / runs.CONFIG_FILE).to_dict()
        except (InfAlignError, OSError):  # not built, or unreadable: say nothing rather than guess
            return None
        gap = optimum_gap.for_run_dir(run_dir, config, ctrl.read_metrics(run_dir))
        if gap is None or gap.source != "arena":
            return None
        gaps.append(gap.gap)
        parts.append(
            f"{gallery.title(run_id)} wins {gap.measured:.3f} of {gap.procedure} against the optimum's "
            f"{gap.optimum:.3f} at its {gap.kl:.2f} nats"
        )
    verdict = (
        "lands within 0.03 of the exact optimum of its objective"
        if min(gaps) >= -0.03
        else "does not yet reach the exact optimum of its objective"
    )
    return (
        f"Measured on the bundled world, the recommended run {verdict}: {'; '.join(parts)} (the "
        "gallery's runs; the README's 'Reaching the optimum' section gives every lever tried and its figure)."
    )
