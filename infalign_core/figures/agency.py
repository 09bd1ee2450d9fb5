"""The Agency page's figure: each HAB dimension's score, plain and under best-of-N / worst-of-N, with ±1.96 SE."""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go


def agency_figure(results: Sequence, n: int, select_name: str | None) -> go.Figure:
    """Grouped bars per dimension: plain, best-of-N and worst-of-N agency scores (0–1) with 95 % error bars."""
    fig = go.Figure()
    series = [("one sample", "mean", "stderr", "#4C78A8")]
    if select_name:
        series += [
            (f"best-of-{n} on {select_name}", "bon_mean", "bon_stderr", "#54A24B"),
            (f"worst-of-{n} on {select_name}", "won_mean", "won_stderr", "#E45756"),
        ]
    titles = [r.title for r in results]
    for label, mean, stderr, color in series:
        values = [getattr(r, mean) for r in results]
        errors = [1.96 * getattr(r, stderr) if math.isfinite(getattr(r, stderr)) else 0.0 for r in results]
        fig.add_bar(
            name=label,
            x=titles,
            y=[v if math.isfinite(v) else None for v in values],
            error_y={"type": "data", "array": errors, "visible": True},
            marker_color=color,
        )
    fig.update_layout(
        barmode="group",
        yaxis={"title": "agency score (0–1, judge)", "range": [0, 1.05]},
        legend={"orientation": "h", "y": -0.25},
        margin={"t": 30},
        height=420,
    )
    return fig
