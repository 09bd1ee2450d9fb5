"""Every plotly figure the pages draw, one module per page (plotly only: no streamlit).

The theory figures live in :mod:`.transforms` and are re-exported here, so
``from infalign_core import figures; figures.frontier_figure(...)`` keeps working.
"""

from infalign_core.figures.transforms import (
    COLORS,
    DASHES,
    best_t_figure,
    bon_policy_series,
    closed_form_frontier_lines,
    density_figure,
    frontier_figure,
    optimal_frontier_line,
    optimal_vs_exponential_figure,
    tradeoff_figure,
    transform_curves_figure,
)

__all__ = [
    "COLORS",
    "DASHES",
    "best_t_figure",
    "bon_policy_series",
    "closed_form_frontier_lines",
    "density_figure",
    "frontier_figure",
    "optimal_frontier_line",
    "optimal_vs_exponential_figure",
    "tradeoff_figure",
    "transform_curves_figure",
]
