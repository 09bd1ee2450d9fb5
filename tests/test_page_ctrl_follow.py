"""The CTRL form's fields follow the preset, N, mode and KL target until edited; bad targets are refused in the form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from infalign_core import ctrl, procedures, runs, theory
from infalign_core.errors import InfAlignError
from infalign_core.text import unescaped

PAGE = str(Path(__file__).resolve().parent.parent / "app_pages" / "ctrl.py")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Runs in a temporary folder; launching only queues (no trainer process), and records the config."""
    monkeypatch.setenv(runs.RUNS_ENV_VAR, str(tmp_path / "runs"))
    launched = []

    def launch(config, runs_root=None, name=None, owner=None):
        launched.append(config)
        return runs.create_run(config).name

    monkeypatch.setattr(runs, "launch_run", launch)
    return launched


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _best_t(n: int, kl: float, mode: str) -> float:
    return theory.rounded_t(procedures.best_exponential_t(procedures.of_n(n, mode), kl).t)


def test_t_follows_the_preset_n_mode_and_kl_target_and_the_run_trains_with_it(isolated):
    at = _page()
    assert at.number_input(key="t").value == _best_t(4, 0.5, "best")
    at.selectbox(key="preset").set_value("CTRL for worst-of-4").run()
    assert at.radio(key="mode").value == "worst"
    assert at.number_input(key="t").value == _best_t(4, 0.5, "worst")
    at.number_input(key="n").set_value(8).run()
    assert at.number_input(key="t").value == _best_t(8, 0.5, "worst")
    at.number_input(key="kl_target").set_value(1.0).run()
    assert at.number_input(key="t").value == _best_t(8, 1.0, "worst")
    at.radio(key="mode").set_value("best").run()
    assert at.number_input(key="t").value == _best_t(8, 1.0, "best")
    at.button(key="start").click().run()
    assert not at.exception
    config = isolated[-1]
    assert (config.mode, config.n, config.t) == ("best", 8, _best_t(8, 1.0, "best"))


def test_an_edited_t_stays_and_the_page_says_it_differs_from_the_theory(isolated):
    at = _page()
    at.number_input(key="t").set_value(3.0).run()
    at.selectbox(key="preset").set_value("CTRL for worst-of-4").run()
    assert at.number_input(key="t").value == 3.0
    captions = " ".join(c.value for c in at.caption)
    assert "t = 3.0 is your value" in captions
    assert theory.t_label(_best_t(4, 0.5, "worst")) in captions


def test_beta_and_n_follow_the_preset_until_edited(isolated):
    at = _page()
    at.number_input(key="beta").set_value(0.3).run()
    at.selectbox(key="preset").set_value("calibrated RLHF").run()
    assert at.number_input(key="beta").value == 0.3
    assert at.selectbox(key="transform").value == "identity"
    assert "β = 0.3 is your value" in " ".join(c.value for c in at.caption)


@pytest.mark.parametrize(("kl", "mode"), [(12.6, "best"), (1e9, "best"), (7.0, "worst")])
def test_a_kl_target_out_of_the_exponentials_reach_is_refused_in_the_form(isolated, kl, mode):
    at = _page()
    at.radio(key="mode").set_value(mode).run()
    at.number_input(key="kl_target").set_value(kl).run()
    assert not at.exception, [e.value for e in at.exception]
    form_errors = " ".join(e.value for e in at.error)
    assert "reach" in form_errors and "choose a budget in (0," in form_errors
    at.button(key="start").click().run()
    assert not at.exception
    assert "Not started" in " ".join(e.value for e in at.error)
    assert not isolated


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("learning_rate", 1e9, "learning_rate must be a number in [1e-08, 0.1]"),
        ("kl_target", 1e9, "kl_target must be a number in [0.001, 20] nats"),
        ("steps", 10**9, "steps must be an integer in [1, 100000]"),
        ("k", 1, "k must be an integer in [2, 256]"),
    ],
)
def test_out_of_range_fields_are_refused_at_start_with_the_accepted_range(isolated, key, value, message):
    at = _page()
    at.selectbox(key="transform").set_value("identity").run()  # no t to suggest: validate speaks
    at.number_input(key=key).set_value(value)
    at.button(key="start").click().run()
    assert message in unescaped(" ".join(e.value for e in at.error))
    assert not isolated


def test_resume_refuses_a_saved_run_whose_config_is_out_of_range(isolated):
    run = runs.create_run(ctrl.CTRLConfig(steps=3), name="wild")
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "learning_rate": 1e9}))
    runs.write_status(run, state="failed", step=0, error="IndexError: index out of range in self")
    with pytest.raises(InfAlignError, match=r"cannot resume: learning_rate must be a number in"):
        runs.resume_run(run.name)
    assert runs.read_status(run)["state"] == "failed"


@pytest.mark.parametrize("link", ["nonexistent", "../../etc", "nonexistent,../x"])
def test_a_link_to_runs_that_do_not_exist_warns_and_names_them(isolated, link):
    existing = runs.create_run(ctrl.CTRLConfig(steps=3), name="real")
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["runs"] = link
    at.run()
    assert not at.exception
    warning = unescaped(" ".join(w.value for w in at.warning))
    for run_id in link.split(","):
        assert repr(run_id) in warning
    assert "showing the newest run instead" in warning
    assert at.multiselect(key="overlay").value == [existing.name]


def test_a_link_to_a_real_run_shows_it_without_a_warning(isolated):
    runs.create_run(ctrl.CTRLConfig(steps=3), name="older")
    wanted = runs.create_run(ctrl.CTRLConfig(steps=3), name="wanted")
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["runs"] = wanted.name
    at.run()
    assert not at.warning
    assert at.multiselect(key="overlay").value == [wanted.name]


def test_the_runs_table_shows_kl_as_a_final_window_mean_and_the_arenas_figure(isolated):
    from infalign_core import arena_results
    from infalign_core.figures import ctrl as ctrl_figures

    run = runs.create_run(ctrl.CTRLConfig(steps=40), name="noisy")
    with (run / ctrl.METRICS_FILE).open("w") as out:
        for step in range(1, 41):  # the last step is an outlier; the final 20 average 0.5
            kl = 2.0 if step == 40 else (0.5 if step > 20 else 0.1)
            out.write(json.dumps({"step": step, "kl/k1": kl}) + "\n")
    runs.write_status(run, state="finished", step=40)
    table = ctrl_figures.runs_table(runs.list_runs())
    row = table.iloc[0]
    assert row["KL, last 20 mean"] == pytest.approx((19 * 0.5 + 2.0) / 20)
    assert "KL" not in table.columns  # no unlabelled last-step KL
    assert row["KL in arena"] is None or row["KL in arena"] != row["KL in arena"]
    record = {"settings": {"k": 64}, "num_prompts_done": 8, "kl": {"k1": 0.497}}
    (run / "arena.json").write_text(json.dumps([record]))
    assert arena_results.load_arena_results(run)
    assert ctrl_figures.runs_table(runs.list_runs()).iloc[0]["KL in arena"] == 0.497
