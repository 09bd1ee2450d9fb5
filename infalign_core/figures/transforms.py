"""Plotly figures for the Transforms & frontiers page (plotly only: no streamlit, so they can be tested and reused).

Every figure carries exact numbers in its hover text; colours are fixed per transform
so the same transform looks the same on every chart.
"""

from __future__ import annotations

import base64
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


def _layout(*, x: str, y: str, height: int = 360, **extra) -> dict:
    """Common axes titles, margins and a legend that does not cover the data."""
    return {
        "height": height,
        "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
        "xaxis": {"title": {"text": x}},
        "yaxis": {"title": {"text": y}},
        "hovermode": "closest",
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0},
        **extra,
    }


class _Figure(go.Figure):
    """A figure whose ``to_dict`` skips plotly's deep copy.

    Streamlit serialises a chart with ``to_dict`` and drops the result; the deep copy (tens of
    thousands of calls for a page of charts) was a quarter of a live rerun. Callers that mutate
    the returned dict get a copy with :func:`copy.deepcopy` themselves.
    """

    def to_dict(self) -> dict:
        """Data and layout as plain dicts, shared with the figure (not copied); arrays as typed arrays."""
        data = [
            {key: _typed(value) if key in _ARRAYS else value for key, value in t.items()} for t in self._data
        ]
        return {"data": data, "layout": self._layout}


_ARRAYS = ("x", "y", "customdata")


THIN_TOLERANCE = 1e-3
"""How far a dropped point may lie from the drawn line, as a fraction of the trace's x and y spans
(a third of a pixel on a 360-pixel chart): the eye cannot tell the thinned line from the full one."""


def thin(x: np.ndarray, y: np.ndarray, tolerance: float = THIN_TOLERANCE) -> np.ndarray:
    """Indices of the points a line needs (Ramer-Douglas-Peucker in units of the data's spans).

    Every dropped point lies within ``tolerance`` of the segment that replaces it, in both
    coordinates scaled to [0, 1]; the first and last points are always kept.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    count = len(x)
    if count <= 2:
        return np.arange(count)
    px = (x - x.min()) / ((x.max() - x.min()) or 1.0)
    py = (y - y.min()) / ((y.max() - y.min()) or 1.0)
    keep = np.zeros(count, dtype=bool)
    keep[[0, -1]] = True
    stack = [(0, count - 1)]
    while stack:
        first, last = stack.pop()
        if last - first < 2:
            continue
        dx, dy = px[last] - px[first], py[last] - py[first]
        inner_x, inner_y = px[first + 1 : last] - px[first], py[first + 1 : last] - py[first]
        length = np.hypot(dx, dy)
        if length > 0:
            distance = np.abs(dy * inner_x - dx * inner_y) / length
        else:
            distance = np.hypot(inner_x, inner_y)
        worst = int(np.argmax(distance))
        if distance[worst] > tolerance:
            middle = first + 1 + worst
            keep[middle] = True
            stack += [(first, middle), (middle, last)]
    return np.flatnonzero(keep)


def _typed(values) -> object:
    """A float array as plotly.js's typed-array spec (base64 float32: 4 bytes a number, not ~19 in JSON).

    float32 keeps 7 significant digits, more than any hover shows; values beyond its range stay float64.
    """
    if not isinstance(values, np.ndarray) or values.dtype.kind != "f" or values.ndim != 1:
        return values
    array = values
    array = array.astype(np.float64)
    finite = array[np.isfinite(array)]
    dtype = "f4" if finite.size == 0 or np.abs(finite).max() < 1e37 else "f8"
    data = np.ascontiguousarray(array.astype(dtype))
    return {"dtype": dtype, "bdata": base64.b64encode(data.tobytes()).decode("ascii")}


def _compact(trace: dict, log_y: bool) -> dict:
    """A line trace with only the points the eye needs (``to_dict`` sends its arrays as typed arrays)."""
    x, y = trace.get("x"), trace.get("y")
    if x is None or y is None or len(x) != len(y) or len(x) < 3:
        return trace
    try:
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        return trace  # categories (a bar chart's names): nothing to thin
    shown_y = y
    if log_y:
        with np.errstate(divide="ignore", invalid="ignore"):
            shown_y = np.log10(y)  # thin in the axis' own scale
    trace = dict(trace)
    if trace.get("mode") == "lines" and np.isfinite(x).all() and np.isfinite(shown_y).all():
        index = thin(x, shown_y)
        trace["x"], trace["y"] = x[index], y[index]
        if trace.get("customdata") is not None and len(trace["customdata"]) == len(x):
            trace["customdata"] = np.asarray(trace["customdata"])[index]
    return trace


def _figure(traces: list[dict], layout: dict) -> go.Figure:
    """One figure from plain trace and layout dicts, without plotly's per-property validation.

    Validation costs several times the data on a live page's rerun; the dicts here are
    fixed by this module, and a test rebuilds every figure with validation on. Each line keeps
    only the points the eye can tell apart (:func:`thin`) and travels as float32 typed arrays:
    what a KL-slider step sends to the browser shrinks about tenfold.
    """
    log_y = {
        name: axis.get("type") == "log"
        for name, axis in layout.items()
        if name.startswith("yaxis") and isinstance(axis, dict)
    }
    compact = [_compact(t, log_y.get("yaxis" + str(t.get("yaxis", "y"))[1:], False)) for t in traces]
    return _Figure({"data": compact, "layout": layout}, _validate=False)


def transform_curves_figure(curves: Sequence[Mapping]) -> go.Figure:
    """Φ(u) rescaled to [0, 1] for each transform; hover shows u, the rescaled and the raw Φ.

    Each curve is a mapping with ``name``, ``label``, ``u``, ``phi`` and ``normalised``.
    """
    traces = [
        {
            "type": "scatter",
            "x": curve["u"],
            "y": curve["normalised"],
            "customdata": curve["phi"],
            "name": curve["label"],
            "mode": "lines",
            "line": {"color": COLORS.get(curve["name"]), "width": 2.5},
            "hovertemplate": "u=%{x:.4f}<br>rescaled Φ=%{y:.5f}<br>Φ(u)=%{customdata:.6g}<extra>%{fullData.name}</extra>",
        }
        for curve in curves
    ]
    return _figure(traces, _layout(x="calibrated reward u", y="Φ(u), rescaled to [0, 1]"))


def density_figure(curves: Sequence[Mapping], log_y: bool = False) -> go.Figure:
    """The aligned policy's calibrated-reward density g(u) per transform, against the reference's g = 1."""
    traces = [
        {
            "type": "scatter",
            "x": [0.0, 1.0],
            "y": [1.0, 1.0],
            "name": "reference (uniform)",
            "mode": "lines",
            "line": {"color": "#999999", "dash": "dot"},
            "hovertemplate": "reference: g(u) = 1<extra></extra>",
        }
    ]
    traces += [
        {
            "type": "scatter",
            "x": curve["u"],
            "y": curve["density"],
            "name": curve["label"],
            "mode": "lines",
            "line": {"color": COLORS.get(curve["name"]), "width": 2.5},
            "hovertemplate": "u=%{x:.4f}<br>g(u)=%{y:.5g}<extra>%{fullData.name}</extra>",
        }
        for curve in curves
    ]
    layout = _layout(x="calibrated reward u", y="density g(u)")
    if log_y:
        layout["yaxis"]["type"] = "log"
    return _figure(traces, layout)


def _vline(x: float, xref: str = "x", yref: str = "y domain") -> dict:
    """A dotted vertical marker line (what add_vline draws), as a layout shape."""
    return {
        "type": "line",
        "x0": x,
        "x1": x,
        "y0": 0,
        "y1": 1,
        "xref": xref,
        "yref": yref,
        "line": {"color": "#888888", "dash": "dot"},
    }


def frontier_figure(
    frontiers: Sequence[Mapping],
    policy_points: Sequence[Mapping] = (),
    kl_marker: float | None = None,
    kl_axis: float = 3.0,
    win_rate_label: str = "best-of-N win rate",
) -> go.Figure:
    """Win rate against KL: one line per transform and N, best-of-n policies as diamonds.

    Each frontier is a mapping with ``name``, ``label``, ``n``, ``n_index`` (its dash),
    ``kl``, ``win_rate`` and optionally ``beta``, ``markers`` (draw points, not just a line) and
    ``legend`` (the legend entry, instead of label · N).
    """
    traces = []
    for frontier in frontiers:
        keep = np.asarray(frontier["kl"]) <= 1.05 * kl_axis
        beta = np.asarray(frontier.get("beta", np.full(len(keep), np.nan)))[keep]
        traces.append(
            {
                "type": "scatter",
                "x": np.asarray(frontier["kl"])[keep],
                "y": np.asarray(frontier["win_rate"])[keep],
                "customdata": beta,
                "name": frontier.get("legend", f"{frontier['label']} · N={frontier['n']}"),
                "legendgroup": frontier["name"],
                "mode": "lines+markers" if frontier.get("markers") else "lines",
                "line": {
                    "color": COLORS.get(frontier["name"]),
                    "dash": DASHES[frontier["n_index"] % len(DASHES)],
                    "width": 2.5,
                },
                "hovertemplate": (
                    f"N={frontier['n']}<br>"
                    "KL=%{x:.4f} nats<br>win rate=%{y:.5f}<br>β=%{customdata:.4g}<extra>%{fullData.name}</extra>"
                ),
            }
        )
    for points in policy_points:
        keep = np.asarray(points["kl"]) <= 1.05 * kl_axis
        traces.append(
            {
                "type": "scatter",
                "x": np.asarray(points["kl"])[keep],
                "y": np.asarray(points["win_rate"])[keep],
                "customdata": np.asarray(points["n"])[keep],
                "name": points.get("label", f"best-of-n policy · N={points['n_eval']}"),
                "legendgroup": "best-of-n policy",
                "mode": "markers",
                "marker": {"symbol": "diamond", "size": 9, "color": COLORS["best-of-n policy"]},
                "hovertemplate": "best-of-%{customdata} policy<br>KL=%{x:.4f} nats<br>win rate=%{y:.5f}<extra>%{fullData.name}</extra>",
            }
        )
    layout = _layout(x="KL(π‖π_ref), nats", y=win_rate_label, height=440)
    layout["xaxis"]["range"] = [0.0, kl_axis]
    if kl_marker is not None:
        layout["shapes"] = [_vline(kl_marker)]
    return _figure(traces, layout)


def best_t_figure(rows: Sequence[Mapping]) -> go.Figure:
    """The best exponential t against N (log-log), from :func:`infalign_core.explorer.best_t_table` rows."""
    ns = [row["N"] for row in rows if np.isfinite(row["best t"])]
    ts = [row["best t"] for row in rows if np.isfinite(row["best t"])]
    trace = {
        "type": "scatter",
        "x": ns,
        "y": ts,
        "mode": "lines+markers",
        "line": {"color": COLORS["exp"]},
        "hovertemplate": "N=%{x}<br>best t=%{y:.4g}<extra></extra>",
        "name": "best t",
    }
    layout = _layout(x="N", y="best t", height=300)
    layout["xaxis"].update(type="log", dtick=np.log10(2))
    layout["yaxis"].update(type="log", dtick=1)
    return _figure([trace], layout)


def optimal_vs_exponential_figure(
    optimal_curve: Mapping,
    exponential_curve: Mapping,
    gap_kl: np.ndarray,
    gap_points: np.ndarray,
    kl_marker: float | None = None,
    at_beta_floor: np.ndarray | None = None,
) -> go.Figure:
    """Left: the optimal Φ and the best exponential Φ (rescaled); right: the win-rate gap across KL.

    Points where the exponential's best t is pinned by the β floor (``at_beta_floor``) are drawn
    as open circles: there its t is the steepest reachable, not its best, and the gap reopens.
    """
    traces = [
        {
            "type": "scatter",
            "x": curve["u"],
            "y": curve["normalised"],
            "customdata": curve["phi"],
            "name": curve["label"],
            "mode": "lines",
            "line": {"color": COLORS[name], "width": 2.5, "dash": "solid" if name == "optimal" else "dash"},
            "hovertemplate": "u=%{x:.4f}<br>rescaled Φ=%{y:.5f}<br>Φ(u)=%{customdata:.6g}<extra>%{fullData.name}</extra>",
            "xaxis": "x",
            "yaxis": "y",
        }
        for curve, name in ((optimal_curve, "optimal"), (exponential_curve, "exp"))
    ]
    traces.append(
        {
            "type": "scatter",
            "x": gap_kl,
            "y": gap_points,
            "name": "win-rate gap",
            "mode": "lines+markers",
            "line": {"color": COLORS["optimal"]},
            "hovertemplate": "KL=%{x:.4f} nats<br>gap=%{y:.4f} points<extra></extra>",
            "xaxis": "x2",
            "yaxis": "y2",
        }
    )
    floor = np.zeros(len(gap_kl), dtype=bool) if at_beta_floor is None else np.asarray(at_beta_floor, bool)
    if floor.any():
        traces.append(
            {
                "type": "scatter",
                "x": np.asarray(gap_kl)[floor],
                "y": np.asarray(gap_points)[floor],
                "name": "exponential's t pinned by the β floor",
                "mode": "markers",
                "marker": {"symbol": "circle-open", "size": 12, "color": "#444", "line": {"width": 2}},
                "hovertemplate": "KL=%{x:.4f} nats<br>gap=%{y:.4f} points<br>β floor binds<extra></extra>",
                "xaxis": "x2",
                "yaxis": "y2",
            }
        )
    # Two panels side by side, laid out by hand (make_subplots costs more than the data).
    left, right = [0.0, 0.44], [0.56, 1.0]
    titles = [
        {"text": text, "x": sum(dom) / 2, "y": 1.0, "xref": "paper", "yref": "paper", "showarrow": False}
        | {"xanchor": "center", "yanchor": "bottom", "font": {"size": 16}}
        for text, dom in (("Φ rescaled to [0, 1]", left), ("optimal − best exponential, at equal KL", right))
    ]
    layout = {
        "height": 380,
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "legend": {"orientation": "h", "yanchor": "top", "y": -0.2, "xanchor": "left", "x": 0},
        "xaxis": {"domain": left, "anchor": "y", "title": {"text": "calibrated reward u"}},
        "yaxis": {"domain": [0.0, 1.0], "anchor": "x"},
        "xaxis2": {"domain": right, "anchor": "y2", "title": {"text": "KL(π‖π_ref), nats"}},
        "yaxis2": {"domain": [0.0, 1.0], "anchor": "x2", "title": {"text": "win-rate points"}},
        "annotations": titles,
    }
    if kl_marker is not None:
        layout["shapes"] = [_vline(kl_marker, "x2", "y2 domain")]
    return _figure(traces, layout)


def tradeoff_figure(rows: Sequence[Mapping], inference_key: str) -> go.Figure:
    """Grouped bars: standard win rate and best/worst-of-N win rate for each transform at equal KL."""
    labels = [row["transform"] for row in rows]
    traces = []
    for key, color in (("standard win rate", "#9ECAE9"), (inference_key, "#F58518")):
        values = [row[key] for row in rows]
        traces.append(
            {
                "type": "bar",
                "x": labels,
                "y": values,
                "name": key,
                "marker": {"color": color},
                "text": [f"{v:.3f}" for v in values],
                "textposition": "outside",
                "hovertemplate": "%{x}<br>" + key + "=%{y:.5f}<extra></extra>",
            }
        )
    layout = _layout(x="", y="win rate against the reference", height=360, barmode="group")
    layout["yaxis"]["range"] = [0.0, 1.08]  # bars start at 0: a cut axis exaggerates their differences
    return _figure(traces, layout)


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
