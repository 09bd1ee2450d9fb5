"""Load test: many concurrent sessions opening the app's pages on a local server.

    .venv/bin/python bench/bench_load.py [--sessions 20] [--seconds 60]

Starts ``streamlit run app.py`` on a free port of 127.0.0.1 (runs root in a temporary folder),
then runs ``--sessions`` concurrent clients for ``--seconds``. Each client speaks Streamlit's
own websocket protocol, as a browser tab does: it opens a new session, asks for one page (round
robin over every page) and waits until the server says the script finished; that wait is the
page time. Bounded in count (the number of clients) and in time (each page waits at most
``--page-timeout`` seconds, the whole bench ``--seconds`` plus that). Prints the errors (failed
connections, timeouts, pages that raised, pages that showed ``st.error``), the p50/p95 page
time per page and overall, with the machine load beside them, and the server's CPU seconds per
page opened, which a shared machine's load inflates far less than wall time. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
# url path of each page (st.Page's default: the file's stem; the home page is the default "").
PAGES = ["", "tour", "transforms", "models", "calibration", "ctrl", "arena"]


def load() -> str:
    """The 1/5/15-minute load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int, runs_root: str) -> subprocess.Popen:
    """The app on 127.0.0.1:port, once its health endpoint answers."""
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1"]
    server = subprocess.Popen(
        [*command, "--server.port", str(port), "--server.headless", "true"],
        cwd=REPO,
        env={**os.environ, "INFALIGN_RUNS_DIR": runs_root, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as reply:
                if reply.status == 200:
                    return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("the server did not answer its health check within 120 s")


async def open_page(port: int, page: str, timeout: float) -> tuple[float, str | None]:
    """Open one page in a new session; returns (seconds, None) or (seconds, what went wrong)."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.asyncio.client import connect

    started = time.perf_counter()
    problem = None
    try:
        async with asyncio.timeout(timeout):
            async with connect(
                f"ws://127.0.0.1:{port}/_stcore/stream",
                subprotocols=["streamlit"],
                origin=f"http://127.0.0.1:{port}",
                max_size=None,
                ping_interval=None,  # as a browser: a slow server is waited for, not hung up on
            ) as ws:
                request = BackMsg()
                request.rerun_script.page_name = page
                request.rerun_script.query_string = ""
                await ws.send(request.SerializeToString())
                elements = 0
                while True:
                    msg = ForwardMsg()
                    msg.ParseFromString(await ws.recv())
                    kind = msg.WhichOneof("type")
                    if kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                        element = msg.delta.new_element
                        elements += 1
                        if element.WhichOneof("type") == "exception":
                            problem = problem or f"exception: {element.exception.message[:80]}"
                        elif element.WhichOneof("type") == "alert" and element.alert.format == 1:  # ERROR
                            problem = problem or f"st.error: {element.alert.body[:80]}"
                    elif kind == "page_not_found":
                        problem = "page not found"
                    elif kind == "script_finished" and msg.script_finished != 2:  # 2: early, for a rerun
                        if msg.script_finished == 1:
                            problem = "compile error"
                        elif elements == 0:
                            problem = problem or "the page rendered nothing"
                        break
    except TimeoutError:
        problem = f"timeout after {timeout:g} s"
    except Exception as err:  # a refused or dropped connection is an error to count, not to raise
        problem = f"{type(err).__name__}: {err}"[:100]
    return time.perf_counter() - started, problem


async def client(port: int, index: int, deadline: float, timeout: float, out: list) -> None:
    """One simulated user: open page after page until the deadline."""
    turn = index
    while time.monotonic() < deadline:
        page = PAGES[turn % len(PAGES)]
        seconds, problem = await open_page(port, page, timeout)
        out.append((page or "home", seconds, problem))
        turn += 1


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values, q: float) -> float:
    """The q-th percentile of values (nan if none)."""
    return float(np.percentile(values, q)) if len(values) else float("nan")


def main() -> None:
    """Run the load test and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--page-timeout", type=float, default=60.0)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as runs_root:
        print(f"load before the server: {load()}")
        server = start_server(port, runs_root)
        try:
            # One warm-up pass so the figures are of serving pages, not of first imports and caches.
            warm = [asyncio.run(open_page(port, page, 300)) for page in PAGES]
            print("warm-up (first open of each page, s): " + ", ".join(f"{s:.1f}" for s, _ in warm))
            print(f"load after warm-up: {load()}")
            results: list = []
            deadline = time.monotonic() + args.seconds

            async def everyone():
                await asyncio.gather(
                    *(client(port, i, deadline, args.page_timeout, results) for i in range(args.sessions))
                )

            started, cpu_before = time.monotonic(), cpu_seconds(server.pid)
            asyncio.run(everyone())
            elapsed = time.monotonic() - started
            server_cpu = cpu_seconds(server.pid) - cpu_before
            end_load = load()
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    problems = Counter(problem for _, _, problem in results if problem)
    by_page = defaultdict(list)
    for page, seconds, problem in results:
        if not problem:
            by_page[page].append(seconds)
    every = [s for times in by_page.values() for s in times]
    print(
        f"{args.sessions} concurrent sessions for {elapsed:.0f} s on 127.0.0.1: {len(results)} pages opened, "
        f"{sum(problems.values())} errors; load at the end: {end_load}"
    )
    if results:
        # The load-independent figure: a Streamlit server runs its pages under one GIL, so with
        # S sessions always waiting, a page takes about S × this on an otherwise idle machine.
        print(
            f"server CPU: {server_cpu:.1f} s for {len(results)} pages = {1000 * server_cpu / len(results):.0f} ms "
            f"a page (at {args.sessions} sessions on one GIL: p50 ≈ {args.sessions * server_cpu / len(results):.1f} s "
            "when nothing else runs)"
        )
    for problem, count in problems.most_common():
        print(f"  error × {count}: {problem}")
    print(f"{'page':<12} {'opened':>6} {'p50 s':>7} {'p95 s':>7}")
    for page in [p or "home" for p in PAGES]:
        times = by_page.get(page, [])
        print(f"{page:<12} {len(times):>6} {percentile(times, 50):>7.2f} {percentile(times, 95):>7.2f}")
    print(f"{'all':<12} {len(every):>6} {percentile(every, 50):>7.2f} {percentile(every, 95):>7.2f}")


if __name__ == "__main__":
    main()
