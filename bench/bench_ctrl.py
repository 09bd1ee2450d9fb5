"""CTRL's trainer against TRL's RLOOTrainer: step time, tokens/s and FLOP/s against a matmul peak, side by side.

    python bench/bench_ctrl.py [--steps 20] [--rounds 2] [--threads 1] [--device cpu]

Both trainers run the same algorithm on the same bundled policy, reward model, reference banks,
prompts, batch (8 prompts × k = 8) and generation length (24 new tokens, stopping at EOS), with
the same calibrated, transformed reward: TRL gets it through ``integrations.trl.CTRLReward`` from
an ``export-trl`` folder, exactly as a user would. Rounds alternate CTRL and TRL so that a change
in machine load hits both; the first two steps of each run are warm-up and not counted. Tokens are
the response tokens actually generated (EOS included). Numbers are printed, never asserted;
``/proc/loadavg`` is printed beside them because on a small shared machine load moves them most.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infalign_core import ctrl  # noqa: E402

WARMUP_STEPS = 2


def loadavg() -> str:
    """The 1-minute load average, as /proc/loadavg reports it."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "n/a"


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


def run_ctrl(config: ctrl.CTRLConfig, models: ctrl.Models) -> list[tuple[float, float]]:
    """(seconds, response tokens) of each step of an in-app CTRL run from the initial policy."""
    import copy

    rows: list[dict] = []
    fresh = ctrl.Models(copy.deepcopy(models.policy), models.reference, models.reward_fn)
    ctrl.train(config, None, models=fresh, on_metrics=rows.append)
    batch = config.k * config.prompts_per_step
    return [(r["time/step"], r["policy/response_length"] * batch) for r in rows]


def run_trl(config: ctrl.CTRLConfig, export_dir: Path, workdir: Path) -> list[tuple[float, float]]:
    """(seconds, response tokens) of each step of TRL's RLOOTrainer on the exported dataset, config and reward."""
    from datasets import load_from_disk
    from transformers import PrinterCallback, TrainerCallback
    from trl import RLOOTrainer

    from infalign_core.integrations import trl as ctrl_trl

    class StepTimer(TrainerCallback):
        """Wall time from each step's start to its end: generation, scoring, KL, backward, optimizer."""

        def __init__(self):
            self.seconds: list[float] = []
            self._start = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.seconds.append(time.perf_counter() - self._start)

    timer = StepTimer()
    args = ctrl_trl.load_rloo_config(
        export_dir, output_dir=str(workdir), save_strategy="no", disable_tqdm=True, logging_steps=1
    )
    reward = ctrl_trl.load_exported_reward(export_dir)
    dataset = load_from_disk(str(export_dir / ctrl_trl.DATASET_DIR))
    policy = ctrl_trl.exported_policy(export_dir)
    trainer = RLOOTrainer(
        model=policy, reward_funcs=[reward], args=args, train_dataset=dataset, callbacks=[timer]
    )
    trainer.remove_callback(PrinterCallback)  # its per-step log dicts would bury the table
    trainer.train()
    lengths = [
        row["completions/mean_length"]
        for row in trainer.state.log_history
        if "completions/mean_length" in row
    ]
    batch = config.k * config.prompts_per_step
    return [(s, n * batch) for s, n in zip(timer.seconds, lengths)]


def summarise(steps: list[tuple[float, float]]) -> tuple[float, float]:
    """Median step seconds and tokens/s over the steps after warm-up."""
    warm = steps[WARMUP_STEPS:] or steps
    step_s = statistics.median(s for s, _ in warm)
    tokens_per_s = sum(n for _, n in warm) / sum(s for s, _ in warm)
    return step_s, tokens_per_s


def main() -> None:
    """Alternate CTRL and TRL runs; print each round and the medians with the load beside them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: this machine is shared)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from infalign_core.integrations import trl as ctrl_trl

    config = ctrl.CTRLConfig(
        steps=args.steps,
        device=args.device,
        num_prompts=64,
        m=64,
        k=8,
        prompts_per_step=8,
        sample_every=10_000,
        checkpoint_every=10_000,
    )
    results: dict[str, list[tuple[float, float]]] = {"ctrl": [], "trl": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        export_dir = tmp / "export"
        ctrl_trl.export_trl(config, export_dir, num_processes=1)  # also builds (or reuses) the banks
        models = ctrl.load_models(config)
        params = models.policy.num_parameters
        device = models.policy.device
        print(
            f"device {device}  torch threads {torch.get_num_threads()}  params {params:,}  "
            f"batch {config.prompts_per_step} prompts × k = {config.k}  max_new_tokens {config.max_new_tokens}  "
            f"steps {config.steps} (first {WARMUP_STEPS} not counted)"
        )
        for round_ in range(args.rounds):
            for name in ("ctrl", "trl"):
                before = loadavg()
                workdir = tmp / f"{name}-{round_}"
                steps = run_ctrl(config, models) if name == "ctrl" else run_trl(config, export_dir, workdir)
                step_s, tokens_per_s = summarise(steps)
                results[name].append((step_s, tokens_per_s))
                print(
                    f"round {round_ + 1}  {name:<4}  step {step_s * 1e3:7.1f} ms  tokens/s {tokens_per_s:8,.0f}  "
                    f"loadavg {before} -> {loadavg()}"
                )
        peak = matmul_peak(device)

    print(f"matmul peak {peak / 1e9:.1f} GFLOP/s (fp32, 1024², {torch.get_num_threads()} thread(s))")
    summary = {}
    for name in ("ctrl", "trl"):
        step_s = statistics.median(s for s, _ in results[name])
        tokens_per_s = statistics.median(t for _, t in results[name])
        # Per response token: 2N sampling + 6N policy forward and backward + 2N reference forward.
        flops = 10 * params * tokens_per_s
        summary[name] = (step_s, tokens_per_s)
        print(
            f"{name:<4}  step {step_s * 1e3:7.1f} ms  tokens/s {tokens_per_s:8,.0f}  "
            f"{flops / 1e9:.2f} GFLOP/s = {flops / peak:.1%} of peak"
        )
    ratio = summary["ctrl"][1] / summary["trl"][1]
    print(
        f"CTRL / TRL throughput (tokens/s) {ratio:.2f}x  step-time ratio TRL / CTRL "
        f"{summary['trl'][0] / summary['ctrl'][0]:.2f}x  (target >= 1.5x)  loadavg {loadavg()}"
    )


if __name__ == "__main__":
    main()
