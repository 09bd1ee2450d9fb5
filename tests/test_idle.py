"""An idle server is idle: a real server, a real browser tab, a virtualenv-sized tree in the project."""

import importlib.util
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
MEASURE_S = 30.0

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not Path(CHROMIUM).exists():
    if os.environ.get("INFALIGN_REQUIRE_BROWSER"):
        raise RuntimeError(f"{CHROMIUM} is missing but INFALIGN_REQUIRE_BROWSER is set")
    pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
psutil = pytest.importorskip("psutil", reason="psutil is not installed")

_spec = importlib.util.spec_from_file_location("screenshot", ROOT / "scripts" / "screenshot.py")
SHOT = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(SHOT)


def _project_with_a_virtualenv(folder: Path, dirs: int = 2000, files_per_dir: int = 10) -> Path:
    """A copy of the app's frame and config beside a .venv-sized tree and a runs/ folder.

    The pages and the core are linked in; app.py and .streamlit are copied, because the
    watcher (when on) watches app.py's folder recursively, and the config is read from cwd.
    """
    shutil.copy(ROOT / "app.py", folder / "app.py")
    shutil.copytree(ROOT / ".streamlit", folder / ".streamlit")
    for name in ("app_pages", "infalign_core", "assets"):
        (folder / name).symlink_to(ROOT / name)
    venv = folder / ".venv" / "lib" / "python3" / "site-packages"
    for d in range(dirs):
        package = venv / f"pkg{d // 50}" / f"mod{d}"
        package.mkdir(parents=True)
        for f in range(files_per_dir):
            (package / f"file{f}.py").write_text("x = 1\n")
    (folder / "runs").mkdir()
    return venv


def _read_tree_until(stop: threading.Event, tree: Path) -> None:
    """What a training run or a test session does to its virtualenv: open and read its files."""
    files = sorted(tree.rglob("*.py"))
    while not stop.is_set():
        for path in files[:2000]:
            path.read_bytes()
            if stop.is_set():
                return
        time.sleep(0.2)


def _cpu_seconds(process: "psutil.Process") -> float:
    """User + system CPU time of the server and any children."""
    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def idle_cpu_share(folder: Path, extra_args: tuple[str, ...] = ()) -> float:
    """The server's CPU share of one core over MEASURE_S with a tab open on Home."""
    tree = _project_with_a_virtualenv(folder)
    servers, stop = [], threading.Event()
    with SHOT.serve(SHOT.free_port(), cwd=folder, extra_args=extra_args, process=servers) as url:
        server = psutil.Process(servers[0].pid)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=SHOT.CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(url)
                page.get_by_text("no language model loaded").wait_for(timeout=90_000)
                SHOT.wait_for_idle(page, 90_000)
                page.wait_for_timeout(2000)  # let the first run's imports settle
                reader = threading.Thread(target=_read_tree_until, args=(stop, tree), daemon=True)
                reader.start()
                start_cpu, start = _cpu_seconds(server), time.monotonic()
                page.wait_for_timeout(MEASURE_S * 1000)
                share = (_cpu_seconds(server) - start_cpu) / (time.monotonic() - start)
                assert page.get_by_text("no language model loaded").count() == 1  # the tab stayed open
            finally:
                stop.set()
                browser.close()
    print(f"idle server CPU: {100 * share:.1f} % of a core over {MEASURE_S:g} s · load {os.getloadavg()}")
    return share


def test_idle_server_uses_under_5_percent_of_a_core_with_a_virtualenv_in_the_project(tmp_path):
    share = idle_cpu_share(tmp_path)
    assert share < 0.05, f"the idle server used {100 * share:.1f} % of a core"
