"""Figures for the Calibration page (plotly only: no streamlit)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

_LAYOUT = {
    "height": 360,
    "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
    "legend": {"orientation": "h", "y": 1.1},
}


def distributions_figure(table) -> go.Figure:
    """Raw (left) and calibrated (right) held-out rewards per prompt, as box plots."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("raw reward", "calibrated reward"))
    for k, (label, rows) in enumerate(table.groupby("prompt", sort=False)):
        color = f"hsl({(k * 47) % 360},60%,45%)"
        for col, key in ((1, "raw"), (2, "calibrated")):
            box = go.Box(y=rows[key], name=label, marker_color=color, showlegend=False, boxmean=True)
            fig.add_trace(box, row=1, col=col)
    fig.update_yaxes(range=[-0.02, 1.02], row=1, col=2)
    fig.update_xaxes(showticklabels=False)
    return fig.update_layout(**_LAYOUT)


def ecdf_figure(check) -> go.Figure:
    """ECDF of the randomised calibrated rewards against the diagonal (Uniform[0, 1])."""
    step = max(1, check.pit.size // 1500)  # enough points to draw; the KS statistic uses all
    x, y = np.r_[0, check.pit[::step], 1], np.r_[0, check.ecdf[::step], 1]
    fig = go.Figure()
    fig.add_scatter(
        x=[0, 1], y=[0, 1], mode="lines", name="Uniform[0, 1]", line={"dash": "dash", "color": "#888"}
    )
    fig.add_scatter(x=x, y=y, mode="lines", name="held-out", line={"shape": "hv", "color": "#E45756"})
    return fig.update_layout(**_LAYOUT, xaxis_title="calibrated reward u", yaxis_title="fraction ≤ u")


def error_figure(curve) -> go.Figure:
    """Measured RMS error of C from m samples, with the theory's sqrt(u(1−u)/m)."""
    fig = go.Figure()
    m = curve.m_values
    fig.add_scatter(x=m, y=curve.rmse, mode="markers+lines", name="measured", line={"color": "#E45756"})
    fig.add_scatter(x=m, y=curve.theory_rmse, name="theory vs this bank", line={"color": "#4C78A8"})
    fig.add_scatter(
        x=m, y=curve.theory_rmse_infinite, name="√(u(1−u)/m)", line={"color": "#4C78A8", "dash": "dot"}
    )
    fig.update_layout(**_LAYOUT, xaxis_title="reference samples m", yaxis_title="RMS error of C")
    fig.update_xaxes(type="log", tickvals=m, ticktext=[str(v) for v in m])
    return fig.update_yaxes(type="log")


def kl_figure(table, beta: float) -> go.Figure:
    """Per-prompt KL at one β against the prompt's reward spread: raw varies, calibrated does not."""
    fig = go.Figure()
    for key, name in (("kl_raw", "raw reward"), ("kl_calibrated", "calibrated reward")):
        fig.add_scatter(x=table["iqr"], y=table[key], mode="markers", name=name, text=table["prompt"])
    return fig.update_layout(
        **_LAYOUT, xaxis_title="raw reward IQR of the prompt", yaxis_title=f"KL at β = {beta:g}"
    )
