"""Classroom mode (INFALIGN_CLASSROOM=1): every typed path stays inside the roots, no remote code, capped runs.

Every text box and link that takes a path, and every CLI flag that names a file or folder, is
tried with /etc/passwd, a ``..`` path, a symlink inside a root that leads out, and an absolute
path to a real model or prompt file outside the roots (which loads when classroom mode is off, so
the refusal is classroom mode's, not a missing file's).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from disk_snapshot import changes, snapshot
from streamlit.testing.v1 import AppTest
from test_ctrl import make_run_world

from infalign_core import classroom, cli, data, models, runs
from infalign_core.ctrl import CTRLConfig
from infalign_core.errors import InfAlignError

PAGES = Path(__file__).resolve().parents[1] / "app_pages"
REFUSED = "classroom mode"


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> dict[str, Path]:
    """A real model folder and prompt file outside every root."""
    root = tmp_path_factory.mktemp("outside")
    policy, prompts = make_run_world(root)
    return {"policy": policy, "prompts": prompts}


@pytest.fixture
def room(tmp_path, monkeypatch, outside) -> dict[str, Path]:
    """Classroom mode on, with models, data, runs and cache roots in tmp_path and symlinks that lead out."""
    folders = {name: tmp_path / name for name in ("models", "data", "runs", "cache")}
    for folder in folders.values():
        folder.mkdir()
    for var, name in [
        ("INFALIGN_MODELS_DIR", "models"),
        ("INFALIGN_DATA_DIR", "data"),
        ("INFALIGN_RUNS_DIR", "runs"),
        ("INFALIGN_CACHE_DIR", "cache"),
    ]:
        monkeypatch.setenv(var, str(folders[name]))
    monkeypatch.setenv(classroom.ENV_VAR, "1")
    (folders["models"] / "escape").symlink_to(outside["policy"], target_is_directory=True)
    (folders["data"] / "escape.jsonl").symlink_to(outside["prompts"])
    (folders["data"] / "etc").symlink_to("/etc", target_is_directory=True)
    return {**folders, **outside}


def bad_models(room) -> list[str]:
    """Model sources a student must not reach: system paths, '..', symlinks out, absolute paths out."""
    return ["/etc", "/etc/passwd", "../../../../etc", str(room["models"] / "escape"), str(room["policy"])]


def bad_prompts(room) -> list[str]:
    """Prompt sources a student must not reach."""
    return [
        "/etc/passwd",
        "/etc/shadow",
        "../../../../etc/passwd",
        str(room["data"] / "escape.jsonl"),
        str(room["data"] / "etc" / "passwd"),
        str(room["prompts"]),
    ]


# --- the core check ------------------------------------------------------------------------------


def test_confine_refuses_system_files_dotdot_tilde_symlinks_out_and_absolute_paths_outside(room):
    for text in [*bad_prompts(room), "~/.ssh/id_rsa", "runs/../../etc", str(room["models"] / "escape")]:
        with pytest.raises(InfAlignError, match=REFUSED):
            classroom.confine(text, "file")


def test_confine_accepts_paths_inside_each_root_and_names_the_roots_when_it_refuses(room):
    inside = room["data"] / "prompts.jsonl"
    assert classroom.confine(str(inside), "file") == inside.resolve()
    assert (
        classroom.confine(str(room["runs"] / "new-run"), "run folder") == (room["runs"] / "new-run").resolve()
    )
    assert classroom.confine(str(classroom.ASSETS_DIR / "world"), "model folder").is_relative_to(
        classroom.ASSETS_DIR
    )
    with pytest.raises(InfAlignError) as refused:
        classroom.confine("/etc/passwd", "prompt file")
    assert "data folder" in str(refused.value) and "runs root" in str(refused.value)


def test_outside_classroom_mode_the_same_outside_paths_load_as_before(room, monkeypatch):
    monkeypatch.delenv(classroom.ENV_VAR)
    assert models.locate(str(room["models"] / "escape"), "policy").is_local
    assert len(data.load_prompts(str(room["data"] / "escape.jsonl")).prompts) == 6


def test_model_and_prompt_loaders_refuse_every_path_outside_the_roots(room):
    for source in bad_models(room):
        with pytest.raises(InfAlignError, match=REFUSED):
            models.locate(source, "policy")
    for source in bad_prompts(room):
        with pytest.raises(InfAlignError, match=REFUSED):
            data.load_prompts(source)


def test_hub_ids_bundled_defaults_and_presets_still_resolve_in_classroom_mode(room):
    assert not models.locate("openai-community/gpt2", "policy").is_local
    assert models.locate("default", "policy").is_local
    assert data.load_prompts("bundled", split="eval").prompts


def test_trust_remote_code_is_refused_whoever_asks(room):
    with pytest.raises(InfAlignError, match="trust_remote_code off"):
        models.load_policy("default", trust_remote_code=True)
    with pytest.raises(InfAlignError, match="trust_remote_code off"):
        models.load_reward_model("default", trust_remote_code=True)


# --- training caps -------------------------------------------------------------------------------


def _config(room) -> CTRLConfig:
    prompts = room["data"] / "prompts.jsonl"
    prompts.write_text(room["prompts"].read_text())
    return CTRLConfig(
        policy="default", reward="oracle", prompts=str(prompts), num_prompts=6, prompts_per_step=4
    )


def test_a_session_gets_one_active_run_and_the_server_its_cap_with_a_clear_message(room, monkeypatch):
    monkeypatch.setenv(classroom.MAX_RUNS_ENV, "2")
    config = _config(room)
    runs.create_run(config, owner="alice")
    with pytest.raises(InfAlignError, match="limit per session is 1"):
        runs.create_run(config, owner="alice")
    runs.create_run(config, owner="bob")
    with pytest.raises(InfAlignError, match="limit of 2 trainings"):
        runs.create_run(config, owner="carol")
    assert len(list(runs.list_runs())) == 2  # a refused run leaves no folder behind


def test_a_finished_or_stopped_run_frees_its_sessions_slot(room):
    config = _config(room)
    first = runs.create_run(config, owner="alice")
    runs.stop_run(first.name)
    runs.create_run(config, owner="alice")


def test_caps_do_not_apply_outside_classroom_mode(room, monkeypatch):
    monkeypatch.delenv(classroom.ENV_VAR)
    config = _config(room)
    for _ in range(3):
        runs.create_run(config, owner="alice")


# --- the command line ----------------------------------------------------------------------------


def _cli_refusals(room) -> list[list[str]]:
    """Every CLI flag that takes a path, each with a path outside the roots."""
    cases = []
    for bad in bad_prompts(room):
        cases.append(["calibrate", "--m", "4", "--prompts", bad])
        cases.append(["winrate", "--policy", "default", "--n", "2", "--k", "2", "--prompts", bad])
        cases.append(["train", "--run-dir", str(room["runs"] / "r"), "--prompts", bad, "--reward", "oracle"])
    for bad in bad_models(room):
        cases.append(["calibrate", "--m", "4", "--policy", bad])
        cases.append(["calibrate", "--m", "4", "--reward", bad])
        cases.append(["sample", "--prompt", "hi", "--n", "1", "--policy", bad])
        cases.append(["sample", "--prompt", "hi", "--n", "1", "--reward", bad])
        cases.append(["winrate", "--policy", bad, "--n", "2", "--k", "2"])
        cases.append(["winrate", "--policy", "default", "--reference", bad, "--n", "2", "--k", "2"])
        cases.append(["train", "--run-dir", str(room["runs"] / "r"), "--policy", bad, "--reward", "oracle"])
    for bad in ["/tmp/elsewhere", "../../x", str(room["models"] / "escape" / "x")]:
        cases.append(["train", "--run-dir", bad])
        cases.append(["calibrate", "--m", "4", "--cache-dir", bad])
        cases.append(["export-trl", "--out", bad])
        cases.append(["build-world", "--out", bad])
        cases.append(["build-gallery", "--out", bad])
        cases.append(["report", "--run", "x", "--out", bad + ".html"])
        cases.append(["train", "--run-dir", str(room["runs"] / "r"), "--config", bad + ".yaml"])
        cases.append(["export-trl", "--out", str(room["runs"] / "x"), "--config", "/etc/passwd"])
    cases.append(["sample", "--prompt", "hi", "--n", "1", "--trust-remote-code"])
    return cases


def test_every_cli_path_flag_refuses_paths_outside_the_roots_with_one_error_line(room, capsys):
    before = snapshot(room["runs"], room["cache"], room["data"])
    for argv in _cli_refusals(room):
        capsys.readouterr()
        status = cli.main(argv)
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert status == 2 and len(errors) == 1, (argv, errors)
        assert REFUSED in errors[0], (argv, errors[0])
    assert not changes(before, snapshot(room["runs"], room["cache"], room["data"]))


# --- the pages: every text box and link that takes a path ----------------------------------------


def _page_errors(at: AppTest) -> list[str]:
    assert not at.exception, at.exception
    return [e.value for e in at.error]


def _refused_on(at: AppTest, set_bad, submit, bad: str) -> None:
    set_bad(at, bad)
    submit(at)
    errors = _page_errors(at)
    assert any(REFUSED in e for e in errors), (bad, errors)


def _button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


@pytest.mark.parametrize("box", ["policy_text", "reward_text"])
def test_models_page_refuses_every_folder_outside_the_roots(room, box):
    at = AppTest.from_file(str(PAGES / "models.py"), default_timeout=90).run()
    assert next(c for c in at.checkbox if c.label.startswith("Trust remote code")).disabled
    for bad in bad_models(room):
        _refused_on(
            at,
            lambda at, bad: at.text_input(key=box).set_value(bad),
            lambda at: _button(at, "Load models").click().run(),
            bad,
        )


@pytest.mark.parametrize("box", ["policy", "reward", "prompts"])
def test_ctrl_page_refuses_every_source_outside_the_roots_and_writes_no_run(room, box):
    at = AppTest.from_file(str(PAGES / "ctrl.py"), default_timeout=60).run()
    at.text_input(key="reward").set_value("oracle")
    before = snapshot(room["runs"])
    for bad in bad_prompts(room) if box == "prompts" else bad_models(room):
        _refused_on(
            at,
            lambda at, bad: at.text_input(key=box).set_value(bad),
            lambda at: at.button(key="start").click().run(),
            bad,
        )
    assert not changes(before, snapshot(room["runs"]))


@pytest.mark.parametrize("box", ["folder", "reference", "reward"])
def test_arena_page_refuses_every_model_folder_outside_the_roots(room, box):
    at = AppTest.from_file(str(PAGES / "arena.py"), default_timeout=60).run()
    at.selectbox(key="challenger").set_value("a local model folder…").run()
    at.text_input(key="folder").set_value("default")
    at.text_input(key="reward").set_value("oracle")
    for bad in bad_models(room):
        _refused_on(
            at,
            lambda at, bad: at.text_input(key=box).set_value(bad),
            lambda at: at.button(key="evaluate").click().run(),
            bad,
        )


@pytest.mark.parametrize("box", ["calibration_policy", "calibration_reward"])
def test_calibration_page_refuses_every_model_folder_outside_the_roots(room, box):
    at = AppTest.from_file(str(PAGES / "calibration.py"), default_timeout=60).run()
    for bad in bad_models(room):
        _refused_on(
            at,
            lambda at, bad: at.text_input(key=box).set_value(bad),
            lambda at: _button(at, "Build reference banks").click().run(),
            bad,
        )


def test_calibration_page_refuses_every_dataset_path_outside_the_roots(room):
    at = AppTest.from_file(str(PAGES / "calibration.py"), default_timeout=60).run()
    at.radio(key="calibration_source").set_value("Hugging Face dataset").run()
    for bad in bad_prompts(room):
        _refused_on(at, lambda at, bad: at.text_input[0].set_value(bad), lambda at: at.run(), bad)


@pytest.mark.parametrize("page, param", [("arena.py", "run"), ("ctrl.py", "runs")])
def test_links_naming_runs_outside_the_runs_root_show_no_outside_run(room, page, param):
    for bad in ["../../etc", "/etc", str(room["models"] / "escape")]:
        at = AppTest.from_file(str(PAGES / page), default_timeout=60)
        at.query_params[param] = bad
        at.run()
        assert not at.exception, at.exception
        shown = " ".join(str(w.value) for w in [*at.warning, *at.error, *at.info, *at.markdown])
        assert str(room["policy"]) not in shown and "escape" not in " ".join(
            str(s.value) for s in at.selectbox
        )
