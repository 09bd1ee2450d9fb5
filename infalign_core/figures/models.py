"""Figures for the Models page (plotly only: no streamlit)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go


def rewards_strip_figure(table: pd.DataFrame) -> go.Figure:
    """The N samples' rewards on one axis, best green and worst red (rows sorted best first)."""
    colors = ["#2a9d8f"] + ["#8d99ae"] * (len(table) - 2) + ["#e63946"] if len(table) > 1 else ["#2a9d8f"]
    fig = go.Figure(
        go.Scatter(
            x=table.reward,
            y=np.zeros(len(table)),
            mode="markers",
            marker={"size": 12, "color": colors, "opacity": 0.8},
            text=table.review,
            hovertemplate="%{x:.3f}<br>%{text}<extra></extra>",
        )
    )
    fig.update_layout(
        height=180, margin={"l": 10, "r": 10, "t": 30, "b": 30}, title="Rewards of the N samples"
    )
    fig.update_yaxes(visible=False)
    fig.update_xaxes(title="reward")
    return fig


def ranked_samples(prompt: str, samples, rewards: np.ndarray) -> pd.DataFrame:
    """The N sampled reviews, best reward first (a stable sort keeps sampling order among ties)."""
    order = np.argsort(-rewards, kind="stable")
    return pd.DataFrame(
        {
            "reward": rewards[order],
            "review": [prompt + samples.responses[i] for i in order],
            "ended": samples.finished[order],
        }
    )


def styled_samples(table: pd.DataFrame):
    """The ranked table with the best row green and the worst red, rewards to three decimals."""

    def highlight(row):
        colour = "#d8f3dc" if row.name == table.index[0] else "#ffd6d6" if row.name == table.index[-1] else ""
        return [f"background-color: {colour}" if colour else ""] * len(row)

    return table.style.apply(highlight, axis=1).format({"reward": "{:.3f}"})


def model_summary(loaded) -> str:
    """One line for the sidebar: source, parameters, size, device."""
    from infalign_core.models import describe_size

    return f"{loaded.source} · {loaded.num_parameters / 1e6:.2f} M params · {describe_size(loaded.size_bytes)} · {loaded.device}"
