"""One end-to-end test: the real app in Debian's Chromium, driven by Playwright; a slider moves a chart."""

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not Path(CHROMIUM).exists():
    # CI sets INFALIGN_REQUIRE_BROWSER so a missing browser fails there instead of skipping.
    if os.environ.get("INFALIGN_REQUIRE_BROWSER"):
        raise RuntimeError(f"{CHROMIUM} is missing but INFALIGN_REQUIRE_BROWSER is set")
    pytest.skip(
        f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)"
)


def _screenshot_module():
    """scripts/screenshot.py, which knows how to serve the app and launch Chromium."""
    spec = importlib.util.spec_from_file_location("screenshot", ROOT / "scripts" / "screenshot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SHOT = _screenshot_module()
EXP_TRACE = """() => {
    const plot = document.querySelector('[aria-label="transform curves"] .js-plotly-plot');
    const trace = plot && plot.data && plot.data.find(t => t.name.startsWith('exp'));
    // y may be a typed array or plotly's base64 {dtype, bdata}: compare its serialisation.
    return trace ? {name: trace.name, y: JSON.stringify(ArrayBuffer.isView(trace.y) ? Array.from(trace.y) : trace.y)} : null;
}"""


@pytest.fixture(scope="module")
def app_url():
    """The app served by `streamlit run app.py` on a free local port; stopped afterwards."""
    with SHOT.serve(SHOT.free_port()) as url:
        yield url


def test_moving_the_t_slider_redraws_the_transform_chart(app_url, tmp_path):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=SHOT.CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(app_url)
            page.get_by_role("link", name="Transforms & frontiers").first.click()
            page.wait_for_function(EXP_TRACE, timeout=90_000)
            SHOT.wait_for_idle(page, 90_000)
            before = page.evaluate(EXP_TRACE)
            assert before["name"] == "exp (t=10)"
            # The frame fills its sidebar slot after the page has run: wait for it.
            sidebar_note = page.get_by_text("no language model loaded")
            sidebar_note.wait_for(timeout=60_000)

            slider = page.get_by_role("slider", name="t, exponential steepness")
            slider.focus()
            for _ in range(3):
                page.keyboard.press("ArrowRight")
            page.wait_for_function(
                f"() => {{ const t = ({EXP_TRACE})(); return t && t.name !== {before['name']!r}; }}",
                timeout=60_000,
            )
            SHOT.wait_for_idle(page, 60_000)
            after = page.evaluate(EXP_TRACE)
            assert after["name"] == "exp (t=30)"
            assert len(after["y"]) > 100 and after["y"] != before["y"]
            sidebar_note.wait_for(timeout=60_000)  # the frame's sidebar survives reruns
            assert sidebar_note.count() == 1
            page.screenshot(path=str(tmp_path / "transforms.png"))
        finally:
            browser.close()
    assert (tmp_path / "transforms.png").stat().st_size > 10_000
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_a_deep_link_on_a_fresh_server_gets_the_apps_frame():
    # Streamlit falls back to legacy multipage mode for a first visit to a sub-page when a
    # folder named pages/ sits beside app.py; the frame (navigation, sidebar) must show anyway.
    with SHOT.serve(SHOT.free_port()) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=SHOT.CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url + "/transforms")
            page.get_by_text("no language model loaded").wait_for(timeout=90_000)
            assert page.get_by_role("link", name="Best-of-N arena").count() == 1
        finally:
            browser.close()


GOODHART_TRACES = """() => {
    const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
    const names = plots.flatMap(p => (p.data || []).map(t => t.name));
    return names.filter(n => n.endsWith(' · oracle') || n.endsWith(' · proxy'));
}"""


def test_the_tours_goodhart_step_draws_the_over_optimisation_chart(app_url):
    from infalign_core import goodhart, tour

    if not goodhart.RESULTS_PATH.is_file():
        pytest.skip("the Goodhart curves are not built (make goodhart)")
    steps = tour.load_steps()
    number = next(i for i, s in enumerate(steps) if s.answer == "goodhart_curve")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=SHOT.CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(app_url)
            page.get_by_role("link", name="Tour").first.click()
            for _ in range(number):
                page.get_by_role("button", name="Next →").click()
                SHOT.wait_for_idle(page, 60_000)
            page.get_by_text(steps[number].title).first.wait_for(timeout=60_000)
            page.get_by_text(tour.choices_of(steps[number])[0], exact=True).click()
            SHOT.wait_for_idle(page, 60_000)
            page.get_by_role("button", name="Reveal the answer").click()
            page.wait_for_function(f"() => ({GOODHART_TRACES})().length >= 4", timeout=90_000)
            names = page.evaluate(GOODHART_TRACES)
            assert "best-of-n (reference) · oracle" in names and "best-of-n (reference) · proxy" in names
        finally:
            browser.close()


def test_an_unknown_page_says_it_does_not_exist_and_a_link_to_unknown_runs_warns(app_url):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=SHOT.CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(app_url + "/nonexistent")
            page.get_by_text("does not seem to exist").wait_for(timeout=90_000)  # not silently Home
            page.goto(app_url + "/ctrl?runs=../../etc")
            page.get_by_text("no run '../../etc'").wait_for(timeout=90_000)
        finally:
            browser.close()
