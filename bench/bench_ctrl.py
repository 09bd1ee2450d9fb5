"""CTRL step time and tokens/s on the bundled world, with achieved FLOP/s against a matmul peak.

    python bench/bench_ctrl.py [--steps 20] [--device cpu]

Not yet here (issue 5): the side-by-side run of TRL's RLOOTrainer on the same model, batch,
prompts and generation length. Numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from infalign_core import ctrl


def matmul_peak(device: torch.device, size: int = 1024, repeats: int = 20) -> float:
    """FLOP/s of a square fp32 matmul on this device, the best of ``repeats``."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def main() -> None:
    """Run a short CTRL job and print step time, tokens/s and FLOP/s utilisation."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    config = ctrl.CTRLConfig(
        steps=args.steps, device=args.device, num_prompts=64, m=64, k=8, prompts_per_step=8
    )
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        models = ctrl.load_models(config)
        ctrl.train(config, tmp, models=models, on_metrics=rows.append)
    params = models.policy.num_parameters
    warm = rows[2:] or rows
    step_s = sum(r["time/step"] for r in warm) / len(warm)
    tokens = sum(r["policy/response_length"] for r in warm) / len(warm) * config.k * config.prompts_per_step
    # Per generated token: 2N (sampling) + 6N (policy forward + backward) + 2N (reference forward).
    flops = 10 * params * tokens / step_s
    peak = matmul_peak(models.policy.device)
    print(f"loadavg {os.getloadavg()[0]:.2f}  device {models.policy.device}  params {params:,}")
    print(
        f"step {step_s * 1e3:.1f} ms  tokens/s {tokens / step_s:,.0f}  batch {config.k * config.prompts_per_step}"
    )
    print(
        f"achieved {flops / 1e9:.2f} GFLOP/s = {flops / peak:.1%} of a {peak / 1e9:.1f} GFLOP/s matmul peak"
    )


if __name__ == "__main__":
    main()
