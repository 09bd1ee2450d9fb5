"""Plotly figures for the Transforms & frontiers page (plotly only: no streamlit, so they can be tested and reused).

Every figure carries exact numbers in its hover text; colours are fixed per transform
so the same transform looks the same on every chart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

COLORS = {
    "identity": "#4C78A8",
    "log": "#72B7B2",
    "exp": "#F58518",
    "optimal": "#E45756",
    "best-of-n policy": "#222222",
}
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def _layout(fig: go.Figure, *, x: str, y: str, height: int = 360) -> go.Figure:
    """Common axes titles, margins and a legend that does not cover the data."""
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis_title=x,
        yaxis_title=y,
        hovermode="closest",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0},
    )
    return fig


def transform_curves_figure(curves: Sequence[Mapping]) -> go.Figure:
    """Φ(u) rescaled to [0, 1] for each transform; hover shows u, the rescaled and the raw Φ.

    Each curve is a mapping with ``name``, ``label``, ``u``, ``phi`` and ``normalised``.
    """
    fig = go.Figure()
    for curve in curves:
        fig.add_trace(
            go.Scatter(
                x=curve["u"],
                y=curve["normalised"],
                customdata=curve["phi"],
                name=curve["label"],
                mode="lines",
                line={"color": COLORS.get(curve["name"]), "width": 2.5},
                hovertemplate="u=%{x:.4f}<br>rescaled Φ=%{y:.5f}<br>Φ(u)=%{customdata:.6g}<extra>%{fullData.name}</extra>",
            )
        )
    return _layout(fig, x="calibrated reward u", y="Φ(u), rescaled to [0, 1]")


def density_figure(curves: Sequence[Mapping], log_y: bool = False) -> go.Figure:
    """The aligned policy's calibrated-reward density g(u) per transform, against the reference's g = 1."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0.0, 1.0],
            y=[1.0, 1.0],
            name="reference (uniform)",
            mode="lines",
            line={"color": "#999999", "dash": "dot"},
            hovertemplate="reference: g(u) = 1<extra></extra>",
        )
    )
    for curve in curves:
        fig.add_trace(
            go.Scatter(
                x=curve["u"],
                y=curve["density"],
                name=curve["label"],
                mode="lines",
                line={"color": COLORS.get(curve["name"]), "width": 2.5},
                hovertemplate="u=%{x:.4f}<br>g(u)=%{y:.5g}<extra>%{fullData.name}</extra>",
            )
        )
    fig = _layout(fig, x="calibrated reward u", y="density g(u)")
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def frontier_figure(
    frontiers: Sequence[Mapping],
    policy_points: Sequence[Mapping] = (),
    kl_marker: float | None = None,
    kl_axis: float = 3.0,
    win_rate_label: str = "best-of-N win rate",
) -> go.Figure:
    """Win rate against KL: one line per transform and N, best-of-n policies as diamonds.

    Each frontier is a mapping with ``name``, ``label``, ``n``, ``n_index`` (its dash),
    ``kl``, ``win_rate`` and optionally ``beta`` and ``markers`` (draw points, not just a line).
    """
    fig = go.Figure()
    for frontier in frontiers:
        keep = np.asarray(frontier["kl"]) <= 1.05 * kl_axis
        beta = np.asarray(frontier.get("beta", np.full(len(keep), np.nan)))[keep]
        fig.add_trace(
            go.Scatter(
                x=np.asarray(frontier["kl"])[keep],
                y=np.asarray(frontier["win_rate"])[keep],
                customdata=beta,
                name=f"{frontier['label']} · N={frontier['n']}",
                legendgroup=frontier["name"],
                mode="lines+markers" if frontier.get("markers") else "lines",
                line={
                    "color": COLORS.get(frontier["name"]),
                    "dash": DASHES[frontier["n_index"] % len(DASHES)],
                    "width": 2.5,
                },
                hovertemplate=(
                    f"N={frontier['n']}<br>"
                    "KL=%{x:.4f} nats<br>win rate=%{y:.5f}<br>β=%{customdata:.4g}<extra>%{fullData.name}</extra>"
                ),
            )
        )
    for points in policy_points:
        keep = np.asarray(points["kl"]) <= 1.05 * kl_axis
        fig.add_trace(
            go.Scatter(
                x=np.asarray(points["kl"])[keep],
                y=np.asarray(points["win_rate"])[keep],
                customdata=np.asarray(points["n"])[keep],
                name=points.get("label", f"best-of-n policy · N={points['n_eval']}"),
                legendgroup="best-of-n policy",
                mode="markers",
                marker={"symbol": "diamond", "size": 9, "color": COLORS["best-of-n policy"]},
                hovertemplate="best-of-%{customdata} policy<br>KL=%{x:.4f} nats<br>win rate=%{y:.5f}<extra>%{fullData.name}</extra>",
            )
        )
    if kl_marker is not None:
        fig.add_vline(x=kl_marker, line={"color": "#888888", "dash": "dot"})
    fig = _layout(fig, x="KL(π‖π_ref), nats", y=win_rate_label, height=440)
    fig.update_xaxes(range=[0.0, kl_axis])
    return fig


def best_t_figure(rows: Sequence[Mapping]) -> go.Figure:
    """The best exponential t against N (log-log), from :func:`infalign_core.explorer.best_t_table` rows."""
    ns = [row["N"] for row in rows if np.isfinite(row["best t"])]
    ts = [row["best t"] for row in rows if np.isfinite(row["best t"])]
    fig = go.Figure(
        go.Scatter(
            x=ns,
            y=ts,
            mode="lines+markers",
            line={"color": COLORS["exp"]},
            hovertemplate="N=%{x}<br>best t=%{y:.4g}<extra></extra>",
            name="best t",
        )
    )
    fig = _layout(fig, x="N", y="best t", height=300)
    fig.update_xaxes(type="log", dtick=np.log10(2))
    fig.update_yaxes(type="log", dtick=1)
    return fig


def optimal_vs_exponential_figure(
    optimal_curve: Mapping,
    exponential_curve: Mapping,
    gap_kl: np.ndarray,
    gap_points: np.ndarray,
    kl_marker: float | None = None,
) -> go.Figure:
    """Left: the optimal Φ and the best exponential Φ (rescaled); right: the win-rate gap across KL."""
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("Φ rescaled to [0, 1]", "optimal − best exponential, at equal KL"),
        horizontal_spacing=0.12,
    )
    for curve, name in ((optimal_curve, "optimal"), (exponential_curve, "exp")):
        fig.add_trace(
            go.Scatter(
                x=curve["u"],
                y=curve["normalised"],
                customdata=curve["phi"],
                name=curve["label"],
                mode="lines",
                line={"color": COLORS[name], "width": 2.5, "dash": "solid" if name == "optimal" else "dash"},
                hovertemplate="u=%{x:.4f}<br>rescaled Φ=%{y:.5f}<br>Φ(u)=%{customdata:.6g}<extra>%{fullData.name}</extra>",
            ),
            row=1,
            col=1,
        )
    fig.add_trace(
        go.Scatter(
            x=gap_kl,
            y=gap_points,
            name="win-rate gap",
            mode="lines+markers",
            line={"color": COLORS["optimal"]},
            hovertemplate="KL=%{x:.4f} nats<br>gap=%{y:.4f} points<extra></extra>",
        ),
        row=1,
        col=2,
    )
    if kl_marker is not None:
        fig.add_vline(x=kl_marker, line={"color": "#888888", "dash": "dot"}, row=1, col=2)
    fig.update_xaxes(title_text="calibrated reward u", row=1, col=1)
    fig.update_xaxes(title_text="KL(π‖π_ref), nats", row=1, col=2)
    fig.update_yaxes(title_text="win-rate points", row=1, col=2)
    fig.update_layout(
        height=380,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "xanchor": "left", "x": 0},
    )
    return fig


def tradeoff_figure(rows: Sequence[Mapping], inference_key: str) -> go.Figure:
    """Grouped bars: standard win rate and best/worst-of-N win rate for each transform at equal KL."""
    labels = [row["transform"] for row in rows]
    fig = go.Figure()
    for key, color in (("standard win rate", "#9ECAE9"), (inference_key, "#F58518")):
        values = [row[key] for row in rows]
        fig.add_trace(
            go.Bar(
                x=labels,
                y=values,
                name=key,
                marker_color=color,
                text=[f"{v:.3f}" for v in values],
                textposition="outside",
                hovertemplate="%{x}<br>" + key + "=%{y:.5f}<extra></extra>",
            )
        )
    fig = _layout(fig, x="", y="win rate against the reference", height=360)
    low = min(min(row["standard win rate"], row[inference_key]) for row in rows) if rows else 0.5
    fig.update_yaxes(range=[max(0.0, low - 0.08), 1.04])
    fig.update_layout(barmode="group")
    return fig


def closed_form_frontier_lines(
    name: str, label: str, t: float | None, mode: str, ns: Sequence[int], betas: Sequence[float]
) -> list[dict]:
    """One :func:`frontier_figure` line per N for a closed-form transform: one vectorised sweep over β and N."""
    from infalign_core import theory
    from infalign_core.transforms import make_transform

    f = theory.frontier(make_transform(name, t=t, mode=mode), betas, ns)
    rates = f.bon_win_rate if mode == "best" else f.won_win_rate
    return [
        {"name": name, "label": label, "n": m, "n_index": i, "kl": f.kl, "beta": f.beta, "win_rate": rates[i]}
        for i, m in enumerate(ns)
    ]


def optimal_frontier_line(frontier, n: int, ns: Sequence[int]) -> dict:
    """The optimal transform's frontier for N as a :func:`frontier_figure` line (points, dashed as N)."""
    return {
        "name": "optimal",
        "label": "optimal",
        "n": n,
        "n_index": ns.index(n) if n in ns else 0,
        "kl": frontier.kl,
        "beta": frontier.beta,
        "win_rate": frontier.win_rate,
        "markers": True,
    }


def bon_policy_series(policy_ns: Sequence[int], ns: Sequence[int], mode: str) -> list[dict]:
    """The best-of-n policies' diamonds for :func:`frontier_figure`, one set per evaluation N.

    For best-of-N the best-of-n policy's win rate is n/(n+1) whatever N: one set serves all N.
    """
    from infalign_core import explorer

    if mode == "best":
        return [
            {**explorer.bon_policy_points(policy_ns, 1, mode), "n_eval": 1, "label": "best-of-n policies"}
        ]
    return [{**explorer.bon_policy_points(policy_ns, m, mode), "n_eval": m} for m in ns]
