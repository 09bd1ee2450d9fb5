"""What a person feels on Transforms: one arrow-key step of the KL slider in Chromium, key to redraw, and its bytes.

    .venv/bin/python bench/bench_browser.py [--steps 6] [--root PROJECT]

Serves the app (``--root``, default this project: a checkout of another commit measures that
commit the same way) on 127.0.0.1, opens Transforms & frontiers in Debian's Chromium (Playwright,
never ``playwright install``), focuses the KL-budget slider and presses the right arrow
``--steps`` times, one step at a time, each to a value not visited before. Inside the page it
records each key press, each websocket message from the server (time and bytes) and the paint
that follows each message (two animation frames later); the rerun ends with the server's
``script_finished`` message. Prints, per step and as medians: the time from the key to the
paint after that last message, and the bytes the server sent for the rerun; with the machine
load beside them. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

RECORDER = """
window.__keys = []; window.__frames = []; window.__paints = [];
const Plain = window.WebSocket;
class Recording extends Plain {
  constructor(...args) {
    super(...args);
    this.addEventListener('message', (event) => {
      const bytes = event.data.byteLength ?? event.data.size ?? event.data.length ?? 0;
      window.__frames.push([performance.now(), bytes]);
      requestAnimationFrame(() => requestAnimationFrame(() => window.__paints.push(performance.now())));
    });
  }
}
window.WebSocket = Recording;
document.addEventListener('keydown', () => window.__keys.push(performance.now()), true);
"""


def value(slider) -> str:
    """The slider's value as the page shows it."""
    return slider.evaluate(
        "e => e.getAttribute('aria-valuenow') || e.getAttribute('aria-valuetext') || e.outerHTML.slice(0, 300)"
    )


def wait_finished(page, kinds: list[str], start: int, timeout_s: float = 120.0) -> int:
    """Wait for the server's ``script_finished`` after message ``start``; returns how many messages the rerun took."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if "script_finished" in kinds[start:]:
            return kinds.index("script_finished", start) - start + 1
        page.wait_for_timeout(20)
    raise TimeoutError("the rerun did not finish")


def main() -> None:
    """Serve, open Transforms, step the KL slider and print key-to-redraw and bytes per step."""
    import screenshot
    from playwright import sync_api
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--root", type=Path, default=ROOT, help="the project folder to serve")
    args = parser.parse_args()
    port = screenshot.free_port()
    print(
        f"load before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs; serving {args.root}"
    )
    with (
        screenshot.serve(port, 120, cwd=args.root.resolve()) as url,
        sync_api.sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(
            executable_path=screenshot.CHROMIUM, args=screenshot.CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.add_init_script(RECORDER)
            kinds: list[
                str
            ] = []  # the type of every message from the server, in order (as the page saw them)

            def decode(payload) -> None:
                message = ForwardMsg()
                message.ParseFromString(payload if isinstance(payload, bytes) else payload.encode())
                kinds.append(message.WhichOneof("type"))

            page.on("websocket", lambda ws: ws.on("framereceived", decode))
            page.goto(f"{url}/transforms")
            page.get_by_role("slider", name="KL budget, nats").wait_for(timeout=300_000)
            wait_finished(page, kinds, 0, 300)
            page.wait_for_timeout(1000)
            slider = page.get_by_role("slider", name="KL budget, nats")
            slider.focus()
            print(f"  KL {value(slider)}: the page as opened")
            times, sizes = [], []
            for _ in range(args.steps):
                mark, start = page.evaluate("performance.now()"), len(kinds)
                page.keyboard.press("ArrowRight")
                count = wait_finished(page, kinds, start)
                page.wait_for_timeout(300)  # the paint after the last message
                key, frames, paints = page.evaluate(
                    "(m) => [window.__keys.filter(k => k > m)[0], window.__frames.filter(f => f[0] > m),"
                    " window.__paints.filter(p => p > m)]",
                    mark,
                )
                frames = frames[:count]
                last_frame = frames[-1][0]
                painted = min((p for p in paints if p >= last_frame), default=last_frame)
                times.append(painted - key)
                sizes.append(sum(bytes_ for _, bytes_ in frames))
                print(
                    f"  KL {value(slider)}: {times[-1]:7.0f} ms key to redraw, "
                    f"{sizes[-1] / 1000:7.1f} kB in {len(frames)} messages"
                )
        finally:
            browser.close()
    print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"KL-slider step on Transforms (median of {args.steps}): {statistics.median(times):.0f} ms key to redraw, "
        f"{statistics.median(sizes) / 1000:.1f} kB sent"
    )


if __name__ == "__main__":
    main()
