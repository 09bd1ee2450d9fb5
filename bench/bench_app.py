"""The live feel of the app: the server's rerun after a KL-slider move on Transforms, against Home and a plain page.

    .venv/bin/python bench/bench_app.py [--moves 9]

Drives the real app in-process with streamlit's AppTest (the same script runs a browser
session would trigger) and prints, never asserts: the median rerun of Home, of a Transforms
rerun with nothing changed, and of a Transforms rerun after each KL-slider move to a value
not visited before; and of a plain page of one slider and six plotly charts of four 200-point
lines (the yardstick: the issue's target is Transforms ≤ 4× it); each as milliseconds and as a
ratio to Home and to the plain page, with the load average beside the figures, since the
machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The yardstick: a plain page with one slider and six plotly charts of four 200-point lines each.
BASELINE_PAGE = """
import numpy as np
import plotly.graph_objects as go
import streamlit as st

value = st.slider("value", 0.0, 10.0, 0.5, 0.05, key="value")
x = np.linspace(0.0, 1.0, 200)
for chart in range(6):
    fig = go.Figure([go.Scatter(x=x, y=np.sin(x * (line + 1) * value + chart), mode="lines") for line in range(4)])
    st.plotly_chart(fig, key=f"chart-{chart}")
"""


def timed(action, count: int) -> list[float]:
    """Milliseconds of ``action(i)`` for i in range(count)."""
    times = []
    for i in range(count):
        start = time.perf_counter()
        action(i)
        times.append(1000 * (time.perf_counter() - start))
    return times


def main() -> None:
    """Open the app, warm each page once, then time the reruns side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=9, help="KL-slider moves to time")
    args = parser.parse_args()
    os.chdir(ROOT)  # the project's .streamlit/config.toml applies, as it does to `make app`
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600).run()
    home = timed(lambda i: at.run(), args.moves)
    start = time.perf_counter()
    at.switch_page("app_pages/transforms.py").run()
    first = 1000 * (time.perf_counter() - start)
    if at.exception:
        raise SystemExit(f"the Transforms page raised: {at.exception[0].value}")
    budgets = [round(0.55 + 0.05 * i, 2) for i in range(args.moves)]  # each a new value: no point cache hit
    moves = timed(lambda i: at.slider(key="kl").set_value(budgets[i]).run(), args.moves)
    same = timed(lambda i: at.run(), args.moves)
    plain = AppTest.from_string(BASELINE_PAGE, default_timeout=600).run()
    baseline = timed(lambda i: plain.slider(key="value").set_value(budgets[i]).run(), args.moves)
    sent = sum(len(chart.proto.spec) for chart in at.get("plotly_chart"))
    base = statistics.median(home)
    print(
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (uptime: {os.popen('uptime').read().strip()})"
    )
    print(f"Transforms first visit (families traced): {first:.0f} ms")
    print(f"{'rerun':40} {'median ms':>10} {'× Home':>8} {'× plain':>8}")
    plain_median = statistics.median(baseline)
    for label, times in (
        ("Home", home),
        ("plain page: slider + 6 charts × 4 × 200", baseline),
        ("Transforms, nothing changed", same),
        ("Transforms, after a KL-slider move", moves),
    ):
        median = statistics.median(times)
        print(f"{label:40} {median:10.1f} {median / base:8.1f} {median / plain_median:8.1f}")
    print(
        f"Transforms' chart specs after a move: {sent / 1000:.1f} kB (the browser benchmark measures the wire)"
    )


if __name__ == "__main__":
    main()
