"""Take the README screenshot of the "Transforms & frontiers" page with Debian's Chromium.

Usage: ``python scripts/screenshot.py [--out assets/screenshot.png] [--section frontiers]``.
Starts ``streamlit run app.py`` on a free local port, opens the page at 1400×900 in
headless Chromium (Playwright's sync API, never ``playwright install``), waits for the
charts, and saves the viewport, scrolled so the chosen chart is in view.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(
    port: int, timeout: float = 60.0, *, cwd: Path = ROOT, extra_args: tuple[str, ...] = (), process=None
) -> Iterator[str]:
    """Run the app on 127.0.0.1:port until the block ends; yields its base URL.

    ``cwd`` is the project folder (its .streamlit/config.toml applies); ``process``, a list,
    receives the server's Popen so a caller can measure it.
    """
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
    command += [
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        *extra_args,
    ]
    server = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if process is not None:
        process.append(server)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"streamlit exited early: {server.stderr.read().decode()[-2000:]}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read().strip() == b"ok":
                        break
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not become healthy within {timeout:g} s")
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def wait_for_idle(page, timeout_ms: int = 60_000) -> None:
    """Wait until the script run has finished (Streamlit's status widget disappears)."""
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms
    )
    page.wait_for_timeout(300)


def main() -> None:
    """Parse arguments, start the app, save the screenshot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "screenshot.png")
    parser.add_argument("--section", default="frontiers", help="alt text of the chart to scroll to, or 'top'")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    with serve(free_port()) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900}, device_scale_factor=1)
        # Enter through the home page, as a user does.
        page.goto(url)
        page.get_by_role("link", name="Transforms & frontiers").first.click()
        page.wait_for_selector(".js-plotly-plot", timeout=90_000)
        wait_for_idle(page, 120_000)
        page.wait_for_function(
            "() => document.querySelectorAll('.js-plotly-plot').length >= 6", timeout=120_000
        )
        if args.section != "top":
            chart = page.locator(f"[aria-label='{args.section}']").first
            chart.evaluate("element => element.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(800)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out))
        browser.close()
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
