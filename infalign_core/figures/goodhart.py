"""The over-optimisation chart: win rate under the weak proxy and under the oracle against KL."""

from __future__ import annotations

import plotly.graph_objects as go

COLORS = {
    "best-of-n (reference)": "#7F7F7F",
    "raw-reward RLHF": "#E45756",
    "calibrated RLHF": "#4C78A8",
    "CTRL best-of-4 (exp)": "#54A24B",
}


def goodhart_figure(curves: dict) -> go.Figure:
    """Each method twice: solid under the proxy it optimises, dashed under the oracle (the truth)."""
    fig = go.Figure()
    for method, points in curves.items():
        color = COLORS.get(method, "#B279A2")
        kls = [p["kl"] for p in points]
        labels = [f"n = {p['n']}" if "n" in p else f"step {p['step']}" for p in points]
        for key, dash, suffix in (
            ("proxy_win_rate", "solid", "proxy"),
            ("oracle_win_rate", "dash", "oracle"),
        ):
            fig.add_scatter(
                x=kls,
                y=[p[key] for p in points],
                mode="lines+markers",
                name=f"{method} · {suffix}",
                line={"color": color, "dash": dash},
                text=labels,
                hovertemplate="%{text}<br>KL %{x:.2f} nats<br>win rate %{y:.3f}<extra>%{fullData.name}</extra>",
            )
    fig.add_hline(y=0.5, line={"color": "#BBBBBB", "width": 1})
    fig.update_layout(
        xaxis={"title": "KL(π‖π_ref), nats"},
        yaxis={"title": "standard win rate against the reference", "range": [0.3, 1.0]},
        legend={"orientation": "h", "y": -0.25},
        margin={"t": 30},
        height=460,
    )
    return fig
