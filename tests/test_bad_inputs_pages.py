"""Bad inputs on every page (AppTest): ``st.error`` with the CLI's message, and nothing on disk changed.

Each case drives one page with one bad input, then runs the CLI command a user would type for
the same input and checks that the page shows the very message the CLI prints after ``error:``.
Pages clamp their numeric widgets to the accepted range (a value past it sent by a client is
dropped by Streamlit), so numeric fields are tested at their bounds here and past them in the
CLI suite.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from disk_snapshot import changes, snapshot
from streamlit.testing.v1 import AppTest
from test_ctrl import make_run_world

from infalign_core import cli
from infalign_core.models import BUNDLED
from infalign_core.text import unescaped

PAGES = Path(__file__).resolve().parents[1] / "app_pages"
WORLD_READY = (BUNDLED["policy"] / "config.json").is_file() and (BUNDLED["reward"] / "config.json").is_file()


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_world) -> dict[str, Path]:
    """Bad files and folders, and a run whose checkpoint is torn."""
    root = tmp_path_factory.mktemp("page_bad_inputs")
    policy, prompts = make_run_world(root)
    torn = root / "torn_model"
    shutil.copytree(policy, torn)
    weights = torn / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1500])
    (root / "binary.jsonl").write_bytes(bytes(range(256)) * 4)
    (root / "a_file.txt").write_text("not a model\n")
    return {
        "root": root,
        "policy": policy,
        "prompts": prompts,
        "torn": torn,
        "binary": root / "binary.jsonl",
        "a_file": root / "a_file.txt",
        "bin_only": tiny_world.bin_only,
        "empty": tiny_world.empty,
        "missing": root / "no_such_model",
        "missing_prompts": root / "no_such_prompts.jsonl",
        "reward": tiny_world.reward,
    }


@pytest.fixture
def isolated(files, tmp_path, monkeypatch):
    """Runs root and bank cache in tmp_path; returns a function that lists what changed on disk."""
    runs_root, cache = tmp_path / "runs", tmp_path / "cache"
    monkeypatch.setenv("INFALIGN_RUNS_DIR", str(runs_root))
    monkeypatch.setenv("INFALIGN_CACHE_DIR", str(cache))
    roots = (files["root"], runs_root, cache)
    before = snapshot(*roots)
    return lambda: changes(before, snapshot(*roots))


def cli_error(argv: list[str], capsys) -> str:
    """The message the CLI prints after ``error:`` for ``argv`` (asserting exit 2 and one line)."""
    capsys.readouterr()
    try:
        status = cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        status = exit_.code
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert status == 2 and len(lines) == 1, lines
    return lines[0].removeprefix("error: ")


def _errors(at: AppTest) -> list[str]:
    """The error messages as a reader sees them (the page escapes user text for Markdown)."""
    assert not at.exception, at.exception
    return [unescaped(e.value) for e in at.error]


def _button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


# --- Models ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["missing", "bin_only", "empty", "a_file", "torn"])
def test_models_page_shows_the_cli_message_for_a_bad_policy_folder(files, bad, isolated, capsys):
    at = AppTest.from_file(str(PAGES / "models.py"), default_timeout=90)
    at.session_state["policy_source"] = str(files["policy"])
    at.session_state["reward_source"] = str(files["reward"])
    at.run()
    at.text_input(key="policy_text").set_value(str(files[bad]))
    _button(at, "Load models").click().run()
    expected = cli_error(
        ["sample", "--prompt", "x", "--n", "2", "--policy", files[bad], "--reward", "vader"], capsys
    )
    assert expected in _errors(at)
    assert isolated() == []


# --- Calibration --------------------------------------------------------------------------------

UPLOADS = {
    "binary": ("binary.jsonl", bytes(range(256)) * 4),
    "empty": ("empty.jsonl", b""),
    "huge": ("huge.jsonl", b"{}\n" * (7 * 1024 * 1024 + 1)),
    "blank-column": ("blank.csv", b"prompt,label\n,1\n ,0\n"),
    "latin-1": ("latin1.csv", "prompt\nle film était très bon\n".encode("latin-1")),
    "not-json": ("broken.json", b'[{"prompt": "a"'),
    "wrong-shape": ("numbers.jsonl", b"1\n2\n"),
}


@pytest.mark.parametrize("kind", list(UPLOADS))
def test_calibration_page_refuses_a_bad_upload_with_the_cli_message(kind, isolated, tmp_path, capsys):
    name, payload = UPLOADS[kind]
    at = AppTest.from_file(str(PAGES / "calibration.py"), default_timeout=60).run()
    at.radio(key="calibration_source").set_value("Upload a file").run()
    at.file_uploader[0].set_value((name, payload, "application/octet-stream")).run()
    errors = _errors(at)
    on_disk = tmp_path / "upload" / name
    on_disk.parent.mkdir()
    on_disk.write_bytes(payload)
    expected = cli_error(["calibrate", "--m", "4", "--prompts", on_disk], capsys)
    assert expected.replace(str(on_disk), name) in errors, (expected, errors)
    assert _button(at, "Build reference banks").disabled  # nothing to build from a refused file
    on_disk.unlink()
    assert isolated() == []


def test_calibration_page_shows_the_cli_message_for_a_missing_dataset_folder(files, isolated, capsys):
    at = AppTest.from_file(str(PAGES / "calibration.py"), default_timeout=60).run()
    at.radio(key="calibration_source").set_value("Hugging Face dataset").run()
    at.text_input[0].set_value(str(files["missing_prompts"])).run()
    expected = cli_error(["calibrate", "--m", "4", "--prompts", files["missing_prompts"]], capsys)
    assert expected in _errors(at)
    assert isolated() == []


# --- CTRL runs ----------------------------------------------------------------------------------


def _ctrl_page(files) -> AppTest:
    at = AppTest.from_file(str(PAGES / "ctrl.py"), default_timeout=60).run()
    at.text_input(key="policy").set_value(str(files["policy"]))
    at.text_input(key="prompts").set_value(str(files["prompts"]))
    at.text_input(key="reward").set_value("oracle")
    at.selectbox(key="device").set_value("cpu")
    at.number_input(key="num_prompts").set_value(6)
    at.number_input(key="prompts_per_step").set_value(4)
    return at


CTRL_CASES = {
    "missing-policy": ({"policy": "missing"}, ["--policy", "missing"]),
    "pickle-policy": ({"policy": "bin_only"}, ["--policy", "bin_only"]),
    "policy-is-a-file": ({"policy": "a_file"}, ["--policy", "a_file"]),
    "missing-prompts": ({"prompts": "missing_prompts"}, ["--prompts", "missing_prompts"]),
    "binary-prompts": ({"prompts": "binary"}, ["--prompts", "binary"]),
    "prompts-per-step-over-prompts": ({"prompts_per_step": 7}, ["--prompts-per-step", "7"]),
}


@pytest.mark.parametrize("case", list(CTRL_CASES))
def test_ctrl_page_refuses_a_bad_run_with_the_cli_message_and_writes_no_run(files, case, isolated, capsys):
    widgets, flags = CTRL_CASES[case]
    at = _ctrl_page(files)
    for key, value in widgets.items():
        if isinstance(value, int):
            at.number_input(key=key).set_value(value)
        else:
            at.text_input(key=key).set_value(str(files[value]))
    at.button(key="start").click().run()
    argv = ["train", "--run-dir", files["root"] / "cli_run", "--policy", files["policy"]]
    argv += ["--prompts", files["prompts"], "--reward", "oracle", "--num-prompts", "6", "--device", "cpu"]
    argv += ["--prompts-per-step", "4"]
    argv += [files[f] if f in files else f for f in flags]
    expected = cli_error(argv, capsys)
    # The page says the run was not started, then the CLI's message word for word.
    assert any(e.endswith(expected) for e in _errors(at)), (expected, _errors(at))
    assert isolated() == []


# --- Best-of-N arena ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["missing", "torn", "bin_only", "empty"])
def test_arena_page_shows_the_cli_message_for_a_bad_challenger_folder(files, bad, isolated, capsys):
    at = AppTest.from_file(str(PAGES / "arena.py"), default_timeout=60).run()
    at.selectbox(key="challenger").set_value("a local model folder…").run()
    at.text_input(key="folder").set_value(str(files[bad]))
    at.text_input(key="reward").set_value("oracle")
    at.button(key="evaluate").click().run()
    expected = cli_error(
        ["winrate", "--policy", files[bad], "--n", "2", "--k", "2", "--reward", "oracle"], capsys
    )
    assert expected in _errors(at), (expected, _errors(at))
    assert isolated() == []


def test_arena_page_refuses_n_above_k_with_the_cli_message(isolated, capsys):
    at = AppTest.from_file(str(PAGES / "arena.py"), default_timeout=60).run()
    at.selectbox(key="challenger").set_value("reference (bundled default policy)")
    at.number_input(key="n").set_value(8)
    at.number_input(key="k").set_value(4)
    at.button(key="evaluate").click().run()
    expected = cli_error(["winrate", "--policy", "reference", "--n", "8", "--k", "4"], capsys)
    assert expected in _errors(at)
    assert isolated() == []


# --- Transforms ---------------------------------------------------------------------------------


def test_transforms_page_shows_the_cli_message_for_a_kl_budget_out_of_reach(isolated, capsys):
    at = AppTest.from_file(str(PAGES / "transforms.py"), default_timeout=120).run()
    at.multiselect(key="names").set_value(["log"])
    at.number_input(key="n").set_value(1)
    at.slider(key="kl").set_value(8.0)  # the slider's upper bound
    at.run()
    expected = cli_error(["theory", "--transform", "log", "--kl", "8", "--n", "1"], capsys)
    assert any(expected in e for e in _errors(at)), (expected, _errors(at))
    assert isolated() == []


@pytest.mark.skipif(not WORLD_READY, reason="the bundled world has not been built yet")
def test_every_page_renders_without_an_error_at_its_defaults(isolated):
    for page in ("transforms.py", "calibration.py", "ctrl.py", "arena.py"):  # home needs the frame
        at = AppTest.from_file(str(PAGES / page), default_timeout=120).run()
        assert not at.exception and not at.error, (page, at.exception, [e.value for e in at.error])
    assert isolated() == []
