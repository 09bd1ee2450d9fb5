"""Where a page's time goes for a student who is not the first: profile each page in a fresh session.

    .venv/bin/python bench/profile_pages.py [--pages home tour ...] [--top 15]

Opens every page once in AppTest (the first visitor fills the process-wide caches), then again
in a new session, as the next student's tab is, with the script thread under cProfile, and
prints both times with the machine load and the functions that take most of the second, by
cumulative time. Asserts nothing.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAGES = ["home", "tour", "transforms", "models", "calibration", "ctrl", "arena"]


def main() -> None:
    """Profile the pages named on the command line (default: all)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", nargs="*", default=PAGES)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--first", action="store_true", help="profile the first visit instead (cold caches)")
    args = parser.parse_args()
    os.environ.setdefault("INFALIGN_RUNS_DIR", tempfile.mkdtemp(prefix="infalign-profile-runs-"))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.path.insert(0, str(REPO))
    from streamlit.runtime.scriptrunner.script_runner import ScriptRunner
    from streamlit.testing.v1 import AppTest

    state = {"on": False, "profiler": cProfile.Profile()}
    plain = ScriptRunner._run_script

    def profiled(self, rerun_data):
        if not state["on"]:
            return plain(self, rerun_data)
        state["profiler"].enable()  # in the script's own thread, where the page runs
        try:
            return plain(self, rerun_data)
        finally:
            state["profiler"].disable()

    ScriptRunner._run_script = profiled
    os.chdir(REPO)
    for page in args.pages:
        visits = []
        for profile in (args.first, not args.first):
            at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300).run()
            if page != "home":
                at.switch_page(f"app_pages/{page}.py")
            if profile:
                state.update(on=True, profiler=cProfile.Profile())
            start = time.perf_counter()
            at.run()
            visits.append(time.perf_counter() - start)
            state["on"] = False
        which = "first visit" if args.first else "next session"
        print(
            f"\n=== {page} (profiled: {which}): first visit {visits[0]:.2f} s, next session {visits[1]:.2f} s (load {os.getloadavg()[0]:.2f})"
        )
        out = io.StringIO()
        pstats.Stats(state["profiler"], stream=out).sort_stats("cumulative").print_stats(args.top)
        text = out.getvalue()
        print(text[text.index("ncalls") :].rstrip())


if __name__ == "__main__":
    main()
