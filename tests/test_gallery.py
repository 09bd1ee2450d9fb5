"""The gallery machinery on one tiny run: weights-only, read-only, listed, copyable, accepted as a run id."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infalign_core import arena_results, challengers, ctrl, gallery_build, runs
from infalign_core.errors import InfAlignError

ROOT = Path(__file__).resolve().parents[1]
TINY = {"num_prompts": 8, "m": 8, "k": 2, "prompts_per_step": 4, "max_new_tokens": 8}
pytestmark = [pytest.mark.slow, pytest.mark.gallery]


@pytest.fixture(scope="module")
def tiny_gallery(tmp_path_factory):
    """A gallery with one tiny run (2 steps, arena K = 4), and an empty runs root."""
    folder, runs_root = tmp_path_factory.mktemp("gallery"), tmp_path_factory.mktemp("runs")
    old = {k: os.environ.get(k) for k in ("INFALIGN_GALLERY_DIR", runs.RUNS_ENV_VAR)}
    os.environ["INFALIGN_GALLERY_DIR"], os.environ[runs.RUNS_ENV_VAR] = str(folder), str(runs_root)
    gallery_build.build_run(
        "gallery-ctrl-bo4-exp", folder, steps=2, arena_prompts=2, arena_k=4, log=lambda s: None, **TINY
    )
    yield folder, runs_root
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_gallery_checkpoint_is_weights_only_and_loaders_accept_it(tiny_gallery):
    run_dir = tiny_gallery[0] / "gallery-ctrl-bo4-exp"
    checkpoint = ctrl.checkpoint_path(run_dir)
    assert checkpoint is not None and not (checkpoint / ctrl.TRAINER_STATE).exists()
    assert runs.has_checkpoint(run_dir)
    challenger, source = challengers.load_challenger("gallery-ctrl-bo4-exp", device="cpu")
    assert source.run_dir == run_dir and source.run_config["transform"] == "exp"
    assert challenger.num_parameters > 0


def test_gallery_run_carries_metrics_arena_results_and_picks_without_absolute_paths(tiny_gallery):
    run_dir = tiny_gallery[0] / "gallery-ctrl-bo4-exp"
    status = json.loads((run_dir / runs.STATUS_FILE).read_text())
    assert status["state"] == "finished" and status["gallery"] is True
    assert "pid" not in status and "checkpoint" not in status
    assert len(ctrl.read_metrics(run_dir)) == 2
    (record,) = arena_results.load_arena_results(run_dir)
    assert record["settings"]["k"] == 4 and record["run"]["kl_target"] == 0.5
    assert set(record["picks"]) == {"best", "worst"} and record["picks"]["best"]


def test_gallery_runs_are_listed_beside_the_users_and_marked(tiny_gallery):
    (info,) = [i for i in runs.list_all_runs() if i.run_id == "gallery-ctrl-bo4-exp"]
    assert info.gallery and info.state == "finished"
    assert runs.summary(info)["gallery"] is True
    assert not runs.list_runs()  # the user's own runs stay separate


@pytest.mark.parametrize("action", [runs.delete_run, runs.resume_run, runs.stop_run])
def test_gallery_runs_refuse_delete_resume_and_stop(tiny_gallery, action):
    with pytest.raises(InfAlignError, match="gallery run and read-only"):
        action("gallery-ctrl-bo4-exp")
    assert (tiny_gallery[0] / "gallery-ctrl-bo4-exp" / runs.CONFIG_FILE).is_file()


def test_copy_to_my_runs_makes_an_editable_copy_that_cannot_resume_weights_only(tiny_gallery):
    new_id = runs.copy_to_runs("gallery-ctrl-bo4-exp")
    (mine,) = runs.list_runs()
    assert mine.run_id == new_id and not mine.gallery
    with pytest.raises(InfAlignError, match="weights only"):
        runs.resume_run(new_id)
    runs.delete_run(new_id)
    assert not runs.list_runs()


def test_runs_json_prints_every_run_with_the_gallery_flag(tiny_gallery):
    env = {
        **os.environ,
        "INFALIGN_GALLERY_DIR": str(tiny_gallery[0]),
        runs.RUNS_ENV_VAR: str(tiny_gallery[1]),
    }
    out = subprocess.run(
        [sys.executable, "-m", "infalign_core", "runs", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    (row,) = [r for r in rows if r["id"] == "gallery-ctrl-bo4-exp"]
    assert set(row) == {"id", "state", "transform", "mode", "n", "kl", "gallery"}
    assert row["gallery"] is True and row["transform"] == "exp" and row["n"] == 4


def test_winrate_save_to_a_gallery_run_is_refused(tiny_gallery):
    env = {
        **os.environ,
        "INFALIGN_GALLERY_DIR": str(tiny_gallery[0]),
        runs.RUNS_ENV_VAR: str(tiny_gallery[1]),
    }
    cmd = [
        "winrate",
        "--policy",
        "gallery-ctrl-bo4-exp",
        "--n",
        "2",
        "--k",
        "2",
        "--num-prompts",
        "2",
        "--save",
    ]
    out = subprocess.run(
        [sys.executable, "-m", "infalign_core", *cmd], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 2 and "read-only" in out.stderr


def test_report_holds_setup_theory_win_rates_charts_and_picks(tiny_gallery, tmp_path):
    from infalign_core import report

    path = report.write_report(["gallery-ctrl-bo4-exp"], tmp_path / "r.html")
    text = path.read_text()
    for needle in (
        "Setup",
        "transform Φ",
        "theory at the measured KL",
        "best-of-4 picks",
        "worst-of-4 picks",
        "KL(π‖π_ref) =",
    ):
        assert needle in text, needle
    assert text.count('class="plotly-graph-div"') >= 3  # two frontiers and the win rates
    # Self-contained: no script or stylesheet comes from elsewhere (the browser test checks fetches).
    assert "<script src=" not in text and "<link " not in text


def test_report_cli_refuses_an_unknown_run_and_a_non_html_name(tiny_gallery, tmp_path):
    env = {
        **os.environ,
        "INFALIGN_GALLERY_DIR": str(tiny_gallery[0]),
        runs.RUNS_ENV_VAR: str(tiny_gallery[1]),
    }
    base = [sys.executable, "-m", "infalign_core", "report"]
    bad = subprocess.run(
        [*base, "--run", "nope", "--out", str(tmp_path / "r.html")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "no run 'nope'" in bad.stderr
    txt = subprocess.run(
        [*base, "--run", "gallery-ctrl-bo4-exp", "--out", str(tmp_path / "r.txt")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert txt.returncode == 2 and "ending in .html" in txt.stderr
    ok = subprocess.run(
        [*base, "--run", "gallery-ctrl-bo4-exp", "--out", str(tmp_path / "r.html")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and (tmp_path / "r.html").stat().st_size > 1_000_000


@pytest.mark.browser
def test_report_opens_offline_in_chromium_and_draws_its_charts(tiny_gallery, tmp_path):
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's chromium is missing")
    sync_api = pytest.importorskip("playwright.sync_api")
    from infalign_core import report

    path = report.write_report(["gallery-ctrl-bo4-exp"], tmp_path / "r.html")
    fetched = []
    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]  # fmt: skip
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        try:
            context = browser.new_context(offline=True, viewport={"width": 1200, "height": 2400})
            page = context.new_page()
            page.on("request", lambda request: fetched.append(request.url))
            page.goto(path.as_uri())
            page.wait_for_function(
                "() => window.Plotly && document.querySelectorAll('.js-plotly-plot .main-svg').length >= 3",
                timeout=60_000,
            )
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert [url for url in fetched if not url.startswith("file:")] == []
    assert (tmp_path / "report.png").stat().st_size > 20_000
