"""What open CTRL tabs cost a server that also trains: server CPU while S sessions keep the CTRL page open.

    .venv/bin/python bench/bench_live.py [--sessions 20] [--seconds 30] [--root PROJECT]

Starts the app (``--root``, default this project, so another checkout measures its commit the
same way), opens ``--sessions`` sessions on the CTRL runs page over Streamlit's websocket and
keeps them open for ``--seconds``, asking for the live view's rerun every 2 s as a browser does
for ``st.fragment(run_every=2)``. Prints the server's CPU seconds per second (cores the open tabs take
from a training run beside them) and the live-view reruns it served, with the machine load.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_load


async def hold(port: int, seconds: float, counts: list) -> None:
    """Open the CTRL page in a new session and keep it open, counting the scripts it finishes."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.asyncio.client import connect

    finished, page_hash, timers = 0, "", []

    async def refresh(ws, interval: float, fragment_id: str) -> None:
        """What the browser does for ``st.fragment(run_every=...)``: ask for the fragment's rerun on a timer."""
        while True:
            await asyncio.sleep(interval)
            request = BackMsg()
            request.rerun_script.page_script_hash = page_hash
            request.rerun_script.fragment_id = fragment_id
            request.rerun_script.is_auto_rerun = True
            await ws.send(request.SerializeToString())

    async with connect(
        f"ws://127.0.0.1:{port}/_stcore/stream",
        subprotocols=["streamlit"],
        origin=f"http://127.0.0.1:{port}",
        max_size=None,
        ping_interval=None,
    ) as ws:
        request = BackMsg()
        request.rerun_script.page_name = "ctrl"
        await ws.send(request.SerializeToString())
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=left)
            except TimeoutError:
                break
            message = ForwardMsg()
            message.ParseFromString(raw)
            kind = message.WhichOneof("type")
            finished += kind == "script_finished"
            if kind == "new_session":
                page_hash = message.new_session.page_script_hash
            elif kind == "auto_rerun" and not timers:
                timers.append(
                    asyncio.create_task(
                        refresh(ws, message.auto_rerun.interval, message.auto_rerun.fragment_id)
                    )
                )
        for timer in timers:
            timer.cancel()
    counts.append(finished)


def main() -> None:
    """Hold the sessions open and print the server's CPU use."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--root", type=Path, default=bench_load.REPO)
    args = parser.parse_args()
    bench_load.REPO = args.root.resolve()  # start_server runs the app from here
    port = bench_load.free_port()
    with tempfile.TemporaryDirectory() as runs_root:
        server = bench_load.start_server(port, runs_root)
        try:
            asyncio.run(bench_load.open_page(port, "ctrl", 300))  # first visit: imports and caches
            counts: list[int] = []
            before, started = bench_load.cpu_seconds(server.pid), time.monotonic()

            async def everyone():
                await asyncio.gather(*(hold(port, args.seconds, counts) for _ in range(args.sessions)))

            asyncio.run(everyone())
            used, elapsed = bench_load.cpu_seconds(server.pid) - before, time.monotonic() - started
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(
        f"{args.root}: {args.sessions} CTRL tabs open for {elapsed:.0f} s: server CPU {used / elapsed:.2f} cores, "
        f"{sum(counts)} script runs and live refreshes ({sum(counts) / elapsed:.1f}/s); load {bench_load.load()}"
    )


if __name__ == "__main__":
    main()
