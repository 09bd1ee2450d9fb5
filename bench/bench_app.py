"""The live feel of the app: the server's rerun after a KL-slider move on Transforms, against Home.

    .venv/bin/python bench/bench_app.py [--moves 9]

Drives the real app in-process with streamlit's AppTest (the same script runs a browser
session would trigger) and prints, never asserts: the median rerun of Home, of a Transforms
rerun with nothing changed, and of a Transforms rerun after each KL-slider move to a value
not visited before; each as milliseconds and as a ratio to Home, with the load average
beside the figures, since the machine may be shared.
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
    base = statistics.median(home)
    print(
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (uptime: {os.popen('uptime').read().strip()})"
    )
    print(f"Transforms first visit (families traced): {first:.0f} ms")
    print(f"{'rerun':34} {'median ms':>10} {'× Home':>8}")
    for label, times in (
        ("Home", home),
        ("Transforms, nothing changed", same),
        ("Transforms, after a KL-slider move", moves),
    ):
        median = statistics.median(times)
        print(f"{label:34} {median:10.1f} {median / base:8.1f}")


if __name__ == "__main__":
    main()
