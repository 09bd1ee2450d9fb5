"""Figures and tables for the Best-of-N arena page (plotly and pandas only: no streamlit)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from infalign_core import arena_theory, filememo, winrate

LABELS = {"standard_win_rate": "standard", "bon_win_rate": "best-of-N", "won_win_rate": "worst-of-N"}
KL_PLACES = {"sequence KL": "k1", "KL the reward sees": "seen_as_kl"}  # where a run sits on the chart
KL_PLACE_HELP = (
    "The theory's curves live in calibrated space. A run's sequence KL also counts changes the reward "
    "cannot see, so there it sits right of its curve. Placed by the KL the reward sees, it sits at the KL "
    "the exact optimum for its Φ would need to show as much through the same K reference samples (even "
    "the optimum shows less than its KL through a finite bank): where it would be if no KL were wasted. "
    'The table\'s "share seen" is the KL the reward sees as a share of what that optimum shows at the '
    "run's sequence KL, so 100 % means no KL spent where the reward does not look."
)


def convergence_figure(estimate: winrate.WinRateEstimate) -> go.Figure:
    """Each win rate as the prompts come in: the running mean over prompts with ±1.96 standard errors.

    Drawn from the per-prompt win rates, so it has one point per prompt however the prompts
    were batched (a single batch still shows how the estimate settles).
    """
    fig = go.Figure()
    for name, label in LABELS.items():
        values = np.asarray(estimate.per_prompt.get(name, []), dtype=np.float64)
        if values.size == 0:
            continue
        count = np.arange(1, values.size + 1)
        mean = np.cumsum(values) / count
        spread = np.sqrt(np.maximum(np.cumsum(values**2) / count - mean**2, 0.0) / np.maximum(count - 1, 1))
        x = count.tolist()
        # A win rate lies in [0, 1]: clip the normal band, which overshoots over the first few prompts.
        low, high = np.clip(mean - 1.96 * spread, 0, 1).tolist(), np.clip(mean + 1.96 * spread, 0, 1).tolist()
        fig.add_trace(
            go.Scatter(
                x=x + x[::-1],
                y=high + low[::-1],
                fill="toself",
                opacity=0.2,
                showlegend=False,
                hoverinfo="skip",
                line={"width": 0},
                legendgroup=name,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=mean,
                name=label,
                mode="lines+markers" if values.size < 40 else "lines",
                legendgroup=name,
                hovertemplate=f"{label}: %{{y:.3f}} after %{{x}} prompts<extra></extra>",
            )
        )
    fig.add_hline(y=0.5, line={"dash": "dot", "color": "#888"})
    fig.update_layout(
        height=320,
        margin={"t": 20, "b": 40},
        xaxis_title="prompts seen",
        yaxis_title="win rate against the reference (running mean ± 1.96 se)",
    )
    fig.update_xaxes(rangemode="tozero")
    return fig


def pick_caption(who: str, winner: str, reward: float) -> str:
    """One side's caption under a best-of-N / worst-of-N pick: who, whether it won, its reward."""
    mark = " · :material/emoji_events: **wins**" if winner == who else (" · tie" if winner == "tie" else "")
    return f"{who}{mark} · reward {reward:+.3f}"


def default_theory_curve(
    transform: str,
    t: float | None,
    mode: str,
    n: int,
    phi_beta: float | None = None,
    run_n: int | None = None,
    procedure: str | None = None,
) -> dict | None:
    """The theory's curve at N for a run's transform, at the β its optimal Φ was trained for if recorded."""
    config = {"transform": transform, "t": t, "mode": mode, "n": run_n or n, "phi_beta": phi_beta}
    return arena_theory.theory_curve({**config, "procedure": procedure}, n)


def measured_frontier_figure(
    records: Mapping[str, dict],
    name: str,
    label: str,
    theory_curve: Callable[..., dict | None] = default_theory_curve,
    at: str = "k1",
) -> tuple[go.Figure, list[str]]:
    """Theory curves (one per transform and N) with every evaluation's point and error bars.

    ``theory_curve(transform, t, mode, n, phi_beta, run_n, procedure)`` gives a run's curve; pages pass a
    cached one. ``at`` places each run at its sequence KL ("k1") or at the KL the reward sees ("calibrated").
    The figure is shared with every caller that passes the same records (every session sees the
    gallery's): treat it as read-only.
    """
    # Keyed by the records' content: hashing them costs far less than building the figure.
    content = json.dumps([records, name, label, at, getattr(theory_curve, "__qualname__", "")], default=str)
    key = (hashlib.sha256(content.encode()).hexdigest(),)
    return filememo.memo(
        "frontier_figure", key, [], lambda: _frontier_figure(records, name, label, theory_curve, at)
    )


def _frontier_figure(records, name, label, theory_curve, at) -> tuple[go.Figure, list[str]]:
    fig, notes, colors = go.Figure(), [], {}
    palette = px.colors.qualitative.Plotly
    max_kl = 0.0
    for key, record in records.items():
        run, w, kl, n_eval = (
            record.get("run") or {},
            record["win_rates"],
            record["kl"],
            record["settings"]["n"],
        )
        curve_key = (
            run.get("transform"),
            run.get("t"),
            run.get("mode") or "best",
            n_eval,
            run.get("phi_beta"),
            run.get("n"),
            run.get("procedure"),
        )
        if curve_key not in colors:
            colors[curve_key] = palette[len(colors) % len(palette)]
            curve = theory_curve(*curve_key) if run.get("transform") else None
            if curve is not None:
                fig.add_trace(
                    go.Scatter(
                        x=curve["kl"],
                        y=curve[name],
                        mode="lines",
                        line={"color": colors[curve_key]},
                        name=f"theory · {curve['label']} · N={n_eval}",
                    )
                )
            elif run.get("transform") == "raw":
                notes.append(
                    "Raw-reward runs: the raw reward is a prompt-dependent transform, so the theory has no curve for them."
                )
        if kl.get(at) is None:  # top-p < 1, a raw-reward run, or a record from before this KL was kept
            why = (
                record.get("kl_note")
                or "no such KL recorded (a raw reward has no optimum); evaluate it again"
            )
            notes.append(f"{key}: {why}")
            continue
        max_kl = max(max_kl, kl[at])
        fig.add_trace(
            go.Scatter(
                x=[kl[at]],
                y=[w[name]],
                mode="markers",
                name=key,
                # The exact optimum is a star: the point a perfect trainer would reach on this curve.
                marker={
                    "size": 16 if record.get("optimum") else 10,
                    "symbol": "star" if record.get("optimum") else "circle",
                    "color": colors[curve_key],
                    "line": {"width": 1, "color": "#222"},
                },
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [w[f"{name}_ci_high"] - w[name]],
                    "arrayminus": [w[name] - w[f"{name}_ci_low"]],
                },
                error_x={
                    "type": "data",
                    "array": [1.96 * (kl.get("k1_stderr") or 0.0) if at == "k1" else 0.0],
                },
            )
        )
    fig.update_layout(
        height=440,
        xaxis_title="KL(π‖π_ref), nats"
        if at == "k1"
        else "the optimum's KL showing what the reward sees, nats",
        yaxis_title=f"{label} win rate",
        margin={"t": 20},
    )
    fig.update_xaxes(range=[0.0, max(1.0, 1.6 * max_kl)])
    return fig, notes


COMPARISON_PARTS = {
    "setup": ["challenger", "Φ", "N·K·prompts", "KL ± se", "KL seen (share)", "− theory (own)"],
    "win rates": ["challenger", *LABELS.values(), "Δ vs baseline"],
}
"""The comparison table drawn as two tables: each fits a 1,400-pixel-wide page whole (one did not)."""


def comparison_table(records: Mapping[str, dict], baseline: str | None = None) -> pd.DataFrame:
    """One row per evaluation: who, its Φ, N·K·prompts, KL, each win rate with its interval, the gap to
    the theory on the run's own procedure, and the paired difference to ``baseline`` on it.

    Short columns, few of them, so the whole table fits a 1,400-pixel-wide page.
    """
    from infalign_core import arena_results
    from infalign_core.theory import t_label

    base = records.get(baseline) if baseline else None
    rows = []
    for key, record in records.items():
        run, w, kl, settings = record.get("run") or {}, record["win_rates"], record["kl"], record["settings"]
        metric = arena_results.run_metric(record)
        short = "WoN" if metric == "won_win_rate" else "BoN"
        transform = run.get("transform", "–")
        share = f" ({kl['share_seen']:.0%})" if kl.get("optimum_visible") else ""
        row = {
            "challenger": record.get("label") or key.split(" · ")[0],
            "Φ": f"{transform} t={t_label(run['t'])}" if run.get("t") else transform,
            "N·K·prompts": f"{settings['n']}·{settings['k']}·{record['num_prompts_done']}",
            "KL ± se": f"{kl['k1']:.3f} ± {kl.get('k1_stderr') or 0:.3f}"
            if kl.get("k1") is not None
            else "–",
            # Only against the optimum's visible KL (records before it divided by the sequence KL).
            "KL seen (share)": f"{kl['calibrated']:.3f}{share}" if kl.get("calibrated") is not None else "–",
        }
        for name, label in LABELS.items():
            row[label] = f"{w[name]:.3f} [{w[f'{name}_ci_low']:.3f}, {w[f'{name}_ci_high']:.3f}]"
        gap = (record.get("gap_to_theory") or {}).get(metric)
        row["− theory (own)"] = f"{gap:+.3f} {short}" if gap is not None else "–"
        if base is not None:
            row["Δ vs baseline"] = _paired_cell(record, base, metric, short, key == baseline)
        rows.append(row)
    return pd.DataFrame(rows)


def _paired_cell(record: dict, base: dict, metric: str, short: str, is_base: bool) -> str:
    """'+0.026 [+0.009, +0.043] BoN', 'baseline', or why the two cannot be paired."""
    from infalign_core import arena_results

    if is_base:
        return "baseline"
    problem = arena_results.pairing_problem(record, base)
    if problem:
        return "not paired: " + problem.split(":")[0]
    d = arena_results.paired_comparison([record], [base], metric)
    return f"{d.difference:+.3f} [{d.ci_low:+.3f}, {d.ci_high:+.3f}] {short}"


def procedure_figure(
    curve: dict | None, estimate: winrate.ProcedureEstimate, kl: float | None, kl_stderr: float
) -> go.Figure:
    """The procedure's theory curve for the run's Φ with the arena's estimate and its interval on it."""
    fig = go.Figure()
    if curve is not None:
        fig.add_trace(
            go.Scatter(x=curve["kl"], y=curve["win_rate"], mode="lines", name=f"theory · {curve['label']}")
        )
    if kl is not None:
        fig.add_trace(
            go.Scatter(
                x=[kl],
                y=[estimate.win_rate],
                mode="markers",
                name=f"arena · {estimate.spec} ({estimate.method})",
                marker={"size": 11, "line": {"width": 1, "color": "#222"}},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [estimate.ci_high - estimate.win_rate],
                    "arrayminus": [estimate.win_rate - estimate.ci_low],
                },
                error_x={"type": "data", "array": [1.96 * kl_stderr]},
            )
        )
    fig.update_layout(
        height=400, xaxis_title="KL(π‖π_ref), nats", yaxis_title=f"{estimate.spec} win rate", margin={"t": 20}
    )
    fig.update_xaxes(range=[0.0, max(1.0, 1.6 * (kl or 0.0))])
    return fig
