"""The ``theory`` command: output contract and one-line errors."""

import json
import subprocess
import sys

import pytest

from infalign_core.cli import main

KEYS = {"kl", "beta", "standard_win_rate", "bon_win_rate", "won_win_rate"}


def run(args, capsys):
    code = main(["theory", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    "args",
    [
        ["--transform", "identity", "--beta", "0.1", "--n", "4"],
        ["--transform", "log", "--kl", "0.5", "--n", "2"],
        ["--transform", "exp", "--t", "10", "--beta", "0.2", "--n", "16"],
        ["--transform", "exp", "--kl", "0.5", "--n", "4", "--mode", "worst"],
        ["--transform", "optimal", "--kl", "0.5", "--n", "4"],
    ],
)
def test_json_output_has_exactly_the_contract_keys(args, capsys):
    code, out, _ = run([*args, "--json"], capsys)
    assert code == 0
    point = json.loads(out.strip().splitlines()[-1])
    assert set(point) == KEYS
    assert all(0 <= point[k] <= 1 for k in KEYS - {"kl", "beta"})


def test_kl_budget_is_met_and_beta_reported(capsys):
    _, out, _ = run(["--transform", "identity", "--kl", "0.5", "--n", "1", "--json"], capsys)
    point = json.loads(out)
    assert point["kl"] == pytest.approx(0.5, rel=1e-8)
    assert point["bon_win_rate"] == pytest.approx(point["standard_win_rate"])


def test_text_output_lists_every_key(capsys):
    code, out, _ = run(["--transform", "identity", "--beta", "1", "--n", "2"], capsys)
    assert code == 0 and {line.split()[0] for line in out.strip().splitlines()} == KEYS


@pytest.mark.parametrize(
    "args",
    [
        ["--transform", "identity", "--beta", "0", "--n", "4"],
        ["--transform", "identity", "--beta", "-1", "--n", "4"],
        ["--transform", "identity", "--kl", "0", "--n", "4"],
        ["--transform", "identity", "--beta", "1", "--n", "0"],
        ["--transform", "cubic", "--beta", "1", "--n", "4"],
        ["--transform", "exp", "--t", "-2", "--beta", "1", "--n", "4"],
        ["--transform", "identity", "--beta", "nan", "--n", "4"],
        ["--transform", "identity", "--kl", "80", "--n", "4"],
        ["--transform", "identity", "--beta", "1e9", "--n", "4"],
        ["--transform", "optimal", "--kl", "50", "--n", "4"],
        ["--transform", "optimal", "--kl", "1.5", "--n", "64", "--mode", "worst"],
        ["--transform", "identity", "--beta", "1", "--n", "4", "--procedure", "beam:4"],
        ["--transform", "identity", "--beta", "1", "--n", "4", "--procedure", "bon:0"],
        ["--transform", "optimal", "--kl", "0.5", "--n", "4", "--procedure", "expr:__import__('os')"],
        ["--transform", "optimal", "--kl", "0.5", "--n", "4", "--procedure", "expr:1-x"],
        ["--transform", "optimal", "--kl", "50", "--n", "4", "--procedure", "bon:4"],
    ],
)
def test_bad_values_print_one_line_and_exit_2(args):
    # A subprocess, as a user runs it: argparse's own errors must follow the same contract.
    proc = subprocess.run(
        [sys.executable, "-m", "infalign_core", "theory", *args], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--transform", "identity", "--beta", "0.2", "--n", "4", "--procedure", "poisson:3"],
        ["--transform", "exp", "--kl", "0.5", "--n", "4", "--procedure", "mix:0.5:8"],
        ["--transform", "optimal", "--kl", "0.5", "--n", "4", "--procedure", "reject:0.8:4"],
        ["--transform", "optimal", "--beta", "0.2", "--n", "4", "--procedure", "expr:x**3"],
    ],
)
def test_procedure_adds_its_win_rate_beside_the_contract_keys(args, capsys):
    code, out, _ = run([*args, "--json"], capsys)
    assert code == 0
    point = json.loads(out)
    assert set(point) == KEYS | {"procedure_win_rate"}
    assert 0.5 <= point["procedure_win_rate"] <= 1


def test_procedure_bon_equals_the_bon_key_and_its_optimum_hits_the_budget(capsys):
    _, out, _ = run(
        ["--transform", "exp", "--t", "10", "--beta", "0.3", "--n", "8", "--procedure", "bon:8", "--json"],
        capsys,
    )
    point = json.loads(out)
    assert point["procedure_win_rate"] == pytest.approx(point["bon_win_rate"], abs=1e-9)
    _, out, _ = run(
        ["--transform", "optimal", "--kl", "0.7", "--n", "4", "--procedure", "poisson:2", "--json"], capsys
    )
    assert json.loads(out)["kl"] == pytest.approx(0.7, rel=1e-6)
