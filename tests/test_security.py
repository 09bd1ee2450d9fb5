"""Secure defaults, kept: 127.0.0.1 only, run ids inside the runs root, inert uploads, no remote code, no pickle."""

from __future__ import annotations

import ast
import inspect
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomllib
from streamlit.testing.v1 import AppTest

from infalign_core import challengers, ctrl, data, models, runs
from infalign_core.errors import InfAlignError

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "infalign_core"
SOURCES = [*PACKAGE.rglob("*.py"), *(REPO / "app_pages").glob("*.py"), REPO / "app.py"]


# --- the server binds to 127.0.0.1 ---------------------------------------------------------------


def test_the_server_config_and_make_app_bind_to_localhost_only():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert config["server"]["maxUploadSize"] <= 20
    assert config["browser"]["gatherUsageStats"] is False
    assert "--server.address 127.0.0.1" in (REPO / "Makefile").read_text()


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.rsplit(":", 1)
            if state == "0A" and int(port_hex, 16) == port:  # 0A = LISTEN
                found.add(address)
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net")
def test_a_started_server_listens_on_127_0_0_1_and_nowhere_else(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "INFALIGN_RUNS_DIR": str(tmp_path / "runs")}
    # No --server.address: the project's .streamlit/config.toml alone must keep it local.
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not _listening_addresses(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        addresses = _listening_addresses(port)
        assert addresses == {"0100007F"}, addresses  # 127.0.0.1, little-endian hex; no 0.0.0.0 or ::
    finally:
        server.terminate()
        server.wait(timeout=30)


# --- run ids resolve only inside the runs root -----------------------------------------------------


@pytest.fixture
def runs_root(tmp_path) -> Path:
    """A runs root holding one run, a victim folder beside it and a symlink that leads out."""
    root = tmp_path / "runs"
    for folder in (root / "good-run", tmp_path / "victim"):
        folder.mkdir(parents=True)
        ctrl.CTRLConfig().save(folder / runs.CONFIG_FILE)
        runs.write_status(folder, state="stopped", created=time.time())
    (root / "escape").symlink_to(tmp_path / "victim")
    return root


TRAVERSALS = ["../victim", "..", "../runs/good-run", "/etc", str(Path("/tmp")), "good-run/..", ".", "escape"]
TRAVERSALS += ["", "good-run\x00", ".hidden", "a/b", "~"]


@pytest.mark.parametrize("run_id", TRAVERSALS)
def test_a_run_id_never_resolves_outside_the_runs_root(runs_root, run_id):
    with pytest.raises(InfAlignError, match="no run"):
        runs.run_dir_of(run_id, runs_root)
    for action in (runs.delete_run, runs.stop_run, runs.resume_run, runs.read_metrics_of):
        with pytest.raises(InfAlignError, match="no run"):
            action(run_id, runs_root)
    assert (runs_root.parent / "victim" / runs.CONFIG_FILE).is_file()  # nothing outside was touched
    assert runs.run_dir_of("good-run", runs_root) == runs_root / "good-run"


def test_the_runs_table_lists_no_folder_outside_the_root(runs_root):
    assert [info.run_id for info in runs.list_runs(runs_root)] == ["good-run"]


def test_a_run_named_in_any_script_is_still_a_run(runs_root):
    named = runs_root / "20261201-120000-exp-ab12-critique-été"
    named.mkdir()
    ctrl.CTRLConfig().save(named / runs.CONFIG_FILE)
    runs.write_status(named, state="stopped", created=time.time() + 1)
    assert [info.run_id for info in runs.list_runs(runs_root)] == [named.name, "good-run"]
    assert runs.run_dir_of(named.name, runs_root) == named


def test_a_cli_run_id_is_looked_up_in_the_root_but_a_typed_path_is_taken_as_given(
    runs_root, tmp_path, monkeypatch
):
    for folder in (runs_root / "good-run", tmp_path / "victim"):
        (folder / "checkpoint").mkdir()
        (folder / "checkpoint" / ctrl.TRAINER_STATE).write_bytes(b"")
    assert challengers.resolve_challenger("good-run", runs_root).run_dir == runs_root / "good-run"
    # '../victim' is a path the user typed: relative to where they stand, never to the runs root.
    elsewhere = tmp_path / "elsewhere" / "deep"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)  # here '../victim' names nothing, though <root>/../victim is a run
    assert challengers.resolve_challenger("../victim", runs_root).run_dir is None
    monkeypatch.chdir(runs_root)
    assert challengers.resolve_challenger("../victim", runs_root).run_dir == Path("../victim")


def test_the_ctrl_page_offers_only_runs_inside_the_root_whatever_its_link_says(runs_root, monkeypatch):
    from disk_snapshot import changes, snapshot

    monkeypatch.setenv("INFALIGN_RUNS_DIR", str(runs_root))
    gallery = {info.run_id for info in runs.list_gallery()}
    before = snapshot(runs_root.parent)
    at = AppTest.from_file(str(REPO / "app_pages" / "ctrl.py"), default_timeout=60)
    at.query_params["runs"] = "../victim,escape,/etc,good-run"
    at.run()
    assert not at.exception
    assert set(at.multiselect(key="overlay").options) - gallery == {"good-run"}
    assert at.multiselect(key="overlay").value == ["good-run"]
    assert changes(before, snapshot(runs_root.parent)) == []


# --- uploads: bounded, parsed as data, nothing executed -------------------------------------------


def test_uploads_over_the_bound_are_refused_before_parsing():
    with pytest.raises(InfAlignError, match="MB"):
        data.load_prompts(b'{"prompt": "x"}\n' * (data.MAX_UPLOAD_BYTES // 15 + 1), filename="big.jsonl")


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("code.jsonl", b"{\"prompt\": \"__import__('os').system('touch PWNED')\"}\n"),
        ("code.txt", b"__import__('os').system('touch PWNED')\n"),
        ("formula.csv", b"prompt\n\"=cmd|' /C touch PWNED'!A0\"\n"),
        ("code.json", json.dumps([{"prompt": "exec(\"import os; os.system('touch PWNED')\")"}]).encode()),
    ],
)
def test_an_upload_is_parsed_as_text_and_nothing_in_it_runs(name, payload, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    prompt_set = data.load_prompts(payload, filename=name)
    assert len(prompt_set.prompts) == 1 and "touch PWNED" in prompt_set.prompts[0]
    assert not (tmp_path / "PWNED").exists()


def test_a_yaml_config_cannot_construct_python_objects(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.yaml"
    evil.write_text("beta: !!python/object/apply:os.system ['touch PWNED']\n")
    with pytest.raises(InfAlignError, match="not valid YAML"):
        ctrl.CTRLConfig.load(evil)
    assert not (tmp_path / "PWNED").exists()


def test_a_dataset_folder_with_a_loading_script_does_not_run_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "dataset"
    folder.mkdir()
    (folder / "dataset.py").write_text("import pathlib; pathlib.Path('PWNED').touch()\n")
    (folder / "train.jsonl").write_text(json.dumps({"prompt": "the movie"}) + "\n")
    try:
        data.load_prompts(str(folder))
    except InfAlignError:
        pass  # refusing the folder is as good as reading only its data files
    assert not (tmp_path / "PWNED").exists()


# --- trust_remote_code off unless ticked ----------------------------------------------------------


def test_trust_remote_code_defaults_to_false_everywhere():
    for fn in (models.load_policy, models.load_reward_model):
        assert inspect.signature(fn).parameters["trust_remote_code"].default is False
    from infalign_core.cli import build_parser

    args = build_parser().parse_args(["sample", "--prompt", "x", "--n", "1"])
    assert args.trust_remote_code is False


def test_no_source_passes_trust_remote_code_true():
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
                assert not (isinstance(node.value, ast.Constant) and node.value.value is True), path


def test_the_models_page_leaves_trust_remote_code_unticked():
    at = AppTest.from_file(str(REPO / "app_pages" / "models.py"), default_timeout=120).run()
    box = next(c for c in at.checkbox if "Trust remote code" in c.label)
    assert box.value is False


# --- nothing is pickle- or torch.load-ed from an untrusted file ------------------------------------


def _calls(name: str):
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                dotted = (
                    f"{getattr(func.value, 'id', '?')}.{func.attr}"
                    if isinstance(func, ast.Attribute)
                    else func.id
                    if isinstance(func, ast.Name)
                    else ""
                )
                if dotted == name or (isinstance(func, ast.Attribute) and func.attr == name):
                    yield path, node


def _keyword(node: ast.Call, name: str):
    return next((k.value for k in node.keywords if k.arg == name), None)


def test_the_package_never_imports_pickle_or_calls_eval_or_exec():
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(
                    n.split(".")[0] in ("pickle", "dill", "cloudpickle", "marshal") for n in names
                ), path
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("eval", "exec", "compile", "__import__"), (path, node.lineno)


def test_every_torch_load_is_weights_only_and_every_np_load_refuses_pickles():
    loads = list(_calls("torch.load"))
    assert loads, "the scan found no torch.load at all: the scan itself is broken"
    for path, node in loads:
        flag = _keyword(node, "weights_only")
        assert isinstance(flag, ast.Constant) and flag.value is True, (path, node.lineno)
    for path, node in _calls("np.load"):
        flag = _keyword(node, "allow_pickle")
        assert isinstance(flag, ast.Constant) and flag.value is False, (path, node.lineno)
    for path, node in _calls("yaml.load"):
        raise AssertionError(f"{path}:{node.lineno} uses yaml.load; use yaml.safe_load")


def test_models_are_loaded_from_safetensors_only(tiny_world):
    for path, node in _calls("from_pretrained"):
        flag = _keyword(node, "use_safetensors")
        assert not (isinstance(flag, ast.Constant) and flag.value is False), (path, node.lineno)
    with pytest.raises(InfAlignError, match="pickle"):
        models.load_policy(str(tiny_world.bin_only), device="cpu")
