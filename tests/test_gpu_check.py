"""bench/gpu_check.py: a clear refusal without CUDA, and its code path on a CPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"


def test_without_cuda_it_says_so_in_one_line_and_exits_2():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the check would run")
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no CUDA device")
    assert "Traceback" not in result.stderr and not result.stdout


@pytest.mark.slow
def test_the_check_runs_ctrl_on_a_tiny_random_llama_on_cpu():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--size", "tiny", "--steps", "3", "--k", "2",
         "--prompts-per-step", "2", "--max-new-tokens", "4", "--skip-trl"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ctrl  step" in result.stdout and "tokens/s" in result.stdout
