"""Reference samples scored per second while building banks, against a naive per-prompt loop.

    python bench/bench_calibration.py [--prompts 16] [--m 16 64] [--repeats 2] [--threads 1]

The batched path is ``calibration.build_reference_bank`` (cache off): all prompts' samples go
through ``sampling.sample`` in batches of ``--batch-size`` rows, then the reward in chunks. The
naive loop does what a first attempt would: for each prompt, sample its m responses, score
them, next prompt. Both run in the same process, alternated, and the machine load is printed
beside the numbers (on a shared 2-core CPU the load changes throughput several-fold).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from infalign_core import calibration, data, sampling
from infalign_core.models import load_policy
from infalign_core.rewards import load_reward
from infalign_core.sampling_settings import SamplingSettings


def batched(policy, reward_fn, prompts, m, args) -> float:
    """Seconds for one bank build through build_reference_bank (no cache)."""
    start = time.perf_counter()
    calibration.build_reference_bank(
        policy,
        reward_fn,
        prompts,
        m,
        sampling=SamplingSettings(max_new_tokens=args.max_new_tokens, seed=1, batch_size=args.batch_size),
        use_cache=False,
    )
    return time.perf_counter() - start


def naive(policy, reward_fn, prompts, m, args) -> float:
    """Seconds for the same work one prompt at a time: sample m, score m, repeat."""
    start = time.perf_counter()
    rows = []
    for i, prompt in enumerate(prompts):
        samples = sampling.sample(
            policy, [prompt], m, sampling=SamplingSettings(max_new_tokens=args.max_new_tokens, seed=1 + i)
        )
        rows.append(np.sort(reward_fn.score([prompt] * m, samples.responses)))
    np.stack(rows)
    return time.perf_counter() - start


def load() -> str:
    """The 1-minute load average and the core count."""
    return f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


def main() -> None:
    """Run the benchmark and print one line per m."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16, help="number of prompts")
    parser.add_argument("--source", default="bundled", help="prompt source (see data.load_prompts)")
    parser.add_argument("--m", type=int, nargs="+", default=[16, 64], help="reference samples per prompt")
    parser.add_argument("--repeats", type=int, default=2, help="alternating repeats; the median is shown")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--policy", default="default")
    parser.add_argument("--reward", default="default")
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)  # on a busy 2-core machine 1 thread can be far faster than 2

    policy = load_policy(args.policy, device=args.device)
    reward_fn = load_reward(args.reward, device=args.device)
    prompts = data.load_prompts(args.source, limit=args.prompts).prompts
    print(
        f"device {policy.device}, torch threads {torch.get_num_threads()}, {len(prompts)} prompts, "
        f"max_new_tokens {args.max_new_tokens}, policy {policy.source}, reward {reward_fn.name}; {load()}"
    )
    batched(policy, reward_fn, prompts[:2], 4, args)  # warm-up: first-call allocations, lazy imports
    naive(policy, reward_fn, prompts[:2], 4, args)
    for m in args.m:
        fast, slow = [], []
        for _ in range(args.repeats):
            fast.append(batched(policy, reward_fn, prompts, m, args))
            slow.append(naive(policy, reward_fn, prompts, m, args))
        n = len(prompts) * m
        fast_rate, slow_rate = n / statistics.median(fast), n / statistics.median(slow)
        print(
            f"m={m:<4} batched {fast_rate:8.1f} samples/s   per-prompt loop {slow_rate:8.1f} samples/s   "
            f"ratio {fast_rate / slow_rate:5.2f}x   ({n} samples, median of {args.repeats}; {load()})"
        )


if __name__ == "__main__":
    main()
