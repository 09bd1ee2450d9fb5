"""The arena page with the gallery: listed from the first open, read-only, in links and in reports."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from infalign_core import gallery_build, runs, winrate
from infalign_core.figures import arena as arena_figures

PAGE = str(Path(__file__).resolve().parent.parent / "app_pages" / "arena.py")
pytestmark = [pytest.mark.slow, pytest.mark.gallery]
TINY = {"num_prompts": 8, "m": 8, "k": 2, "prompts_per_step": 4, "max_new_tokens": 8}


@pytest.fixture(scope="module")
def tiny_gallery(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gallery")
    old = os.environ.get("INFALIGN_GALLERY_DIR")
    os.environ["INFALIGN_GALLERY_DIR"] = str(folder)
    gallery_build.build_run(
        "gallery-ctrl-bo4-exp", folder, steps=2, arena_prompts=3, arena_k=4, log=lambda s: None, **TINY
    )
    yield folder
    if old is None:
        os.environ.pop("INFALIGN_GALLERY_DIR", None)
    else:
        os.environ["INFALIGN_GALLERY_DIR"] = old


@pytest.fixture
def page(tiny_gallery, tmp_path, monkeypatch):
    monkeypatch.setenv(runs.RUNS_ENV_VAR, str(tmp_path / "runs"))

    def open_page(**params) -> AppTest:
        at = AppTest.from_file(PAGE, default_timeout=120)
        at.query_params.update(params)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return open_page


def test_gallery_runs_and_their_results_show_from_the_first_open(page):
    at = page()
    assert at.selectbox(key="challenger").value == "gallery · CTRL best-of-4 (exp)"
    table = at.dataframe[0].value
    assert table["challenger"].tolist() == ["gallery · CTRL best-of-4 (exp)"]
    assert len(at.get("plotly_chart")) == 2  # the best-of-N and worst-of-N frontiers


def test_the_comparison_table_has_short_columns_so_it_fits_the_page(page):
    at = page()
    columns = at.dataframe[0].value.columns
    assert max(len(str(c)) for c in columns) <= 18 and len(columns) <= 13


def test_a_link_picks_the_challenger_n_and_k(page):
    at = page(run="gallery-ctrl-bo4-exp", n="2", k="8", prompts="4")
    assert at.selectbox(key="challenger").value == "gallery · CTRL best-of-4 (exp)"
    assert (at.number_input(key="n").value, at.number_input(key="k").value) == (2, 8)
    assert at.number_input(key="num_prompts").value == 4


def test_a_link_to_an_unknown_run_is_refused_with_a_warning(page):
    at = page(run="nope")
    assert any("run=nope" in w.value for w in at.warning)


def test_evaluating_a_gallery_run_does_not_write_into_the_gallery(page, tiny_gallery):
    before = (tiny_gallery / "gallery-ctrl-bo4-exp" / "arena.json").read_text()
    at = page(n="2", k="2", prompts="2")
    at.number_input(key="max_new_tokens").set_value(6)
    at.button(key="evaluate").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("read-only" in i.value for i in at.info)
    assert (tiny_gallery / "gallery-ctrl-bo4-exp" / "arena.json").read_text() == before


def test_the_report_button_offers_a_self_contained_html_download(page):
    at = page()
    at.button(key="build_report").click().run()
    assert not at.exception
    data = at.session_state["arena_report"].decode()
    assert data.startswith("<!DOCTYPE html>") and "CTRL best-of-4 (exp)" in data


def test_one_batch_still_draws_a_convergence_curve_with_a_point_per_prompt():
    rng = np.random.default_rng(0)
    estimate = winrate.estimate_win_rates(rng.normal(0.3, 1, (8, 16)), rng.normal(size=(8, 16)), 4)
    fig = arena_figures.convergence_figure(estimate)
    lines = [t for t in fig.data if t.name]
    assert {t.name for t in lines} == {"standard", "best-of-N", "worst-of-N"}
    assert all(len(t.x) == 8 for t in lines)
    assert json.loads(fig.to_json())  # serialisable
