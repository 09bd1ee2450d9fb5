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


def log_ticks(values) -> list[float]:
    """1-2-5 tick values spanning positive data, for a log axis that reads as numbers.

    Plotly's own log ticks label minor ticks by their leading digit only (… 4, 3, 2, 0.1, 9, 8 …).
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        return []
    low, high = np.floor(np.log10(values.min())), np.ceil(np.log10(values.max()))
    ticks = [m * 10.0**e for e in np.arange(low, high + 1) for m in (1, 2, 5)]
    inside = [t for t in ticks if values.min() / 1.5 <= t <= values.max() * 1.5]
    return inside if len(inside) >= 2 else ticks


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
    ticks = log_ticks(np.concatenate([curve.rmse, curve.theory_rmse, curve.theory_rmse_infinite]))
    return fig.update_yaxes(type="log", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])


def kl_figure(table, beta: float) -> go.Figure:
    """Per-prompt KL at one β against the prompt's reward spread: raw varies, calibrated does not.

    A log KL axis, so a calibrated KL far below the raw ones still shows as the flat line it is.
    """
    fig = go.Figure()
    order = np.argsort(np.asarray(table["iqr"]))
    for key, name, color in (
        ("kl_raw", "raw reward", "#F58518"),
        ("kl_calibrated", "calibrated reward", "#4C78A8"),
    ):
        fig.add_scatter(
            x=np.asarray(table["iqr"])[order],
            y=np.maximum(np.asarray(table[key])[order], 1e-6),
            mode="markers",  # one point per prompt: a line would join unrelated prompts
            name=name,
            text=np.asarray(table["prompt"])[order],
            marker={"color": color, "size": 8},
            hovertemplate="%{text}<br>IQR %{x:.3f}<br>KL %{y:.4f} nats<extra>%{fullData.name}</extra>",
        )
    iqr, calibrated = np.asarray(table["iqr"]), np.asarray(table["kl_calibrated"])
    fig.add_scatter(  # the calibrated KL is one number for every prompt: say so with a level line
        x=[iqr.min(), iqr.max()],
        y=[max(float(calibrated.mean()), 1e-6)] * 2,
        mode="lines",
        name="calibrated, the same on every prompt",
        line={"color": "#4C78A8", "dash": "dot", "width": 1},
        hoverinfo="skip",
    )
    fig.update_layout(
        **_LAYOUT, xaxis_title="raw reward IQR of the prompt", yaxis_title=f"KL at β = {beta:g}, nats"
    )
    ticks = log_ticks(np.concatenate([np.asarray(table["kl_raw"]), np.asarray(table["kl_calibrated"])]))
    return fig.update_yaxes(type="log", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])


def kl_note(table, beta: float, m: int) -> str:
    """What the KL chart shows at this β, in words: the raw tilt saturates when β is small against the spread."""
    raw, calibrated = np.asarray(table["kl_raw"]), np.asarray(table["kl_calibrated"])
    saturated = float(np.mean(raw > 0.9 * np.log(m)))
    spread = raw.max() / max(raw.min(), 1e-12)
    text = (
        f"At β = {beta:g} the raw KL ranges over a factor {spread:.3g} across prompts "
        f"({raw.min():.3f}–{raw.max():.3f} nats); the calibrated KL is {calibrated.mean():.3f} nats on every prompt "
        f"(spread {calibrated.max() - calibrated.min():.1e})."
    )
    if saturated >= 0.5:
        text += (
            f" {saturated:.0%} of the prompts are at the ceiling log m = {np.log(m):.2f}: this β is so small "
            "against the raw rewards that each prompt's optimum is its single best reply. Raise β to see the "
            "spread matter."
        )
    return text
