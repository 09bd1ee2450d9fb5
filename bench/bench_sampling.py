"""Samples per second of infalign_core.sampling.sample against model.generate and a one-at-a-time loop.

Run: ``python bench/bench_sampling.py [--policy default] [--threads 1,2] [--repeats 5]``.
Prints, never asserts. All three methods are measured side by side in one process, interleaved
repeat by repeat, with the same prompts and settings (temperature, top-p, no top-k,
max_new_tokens, stop at EOS); ``cat /proc/loadavg`` and the torch thread count are printed
beside every figure because on a small shared machine they move the numbers more than the code.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infalign_core.models import load_policy  # noqa: E402
from infalign_core.sampling import sample  # noqa: E402

FALLBACK_PROMPTS = ["The movie was", "I expected", "The acting felt", "This film is", "The plot"]


def loadavg() -> str:
    """The 1-minute load average, as /proc/loadavg reports it."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "n/a"


def bench_prompts(count: int) -> list[str]:
    """The first ``count`` bundled prompts (or a few fixed openings when the world is not built)."""
    path = ROOT / "assets" / "world" / "prompts.jsonl"
    if path.is_file():
        rows = [json.loads(line)["prompt"] for line in path.read_text().splitlines() if line.strip()]
    else:
        rows = FALLBACK_PROMPTS
    return [rows[i % len(rows)] for i in range(count)]


def run_ours(policy, prompts, n, args) -> int:
    """Our sampler: all rows in one batch."""
    s = sample(
        policy,
        prompts,
        n,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=0,
        batch_size=len(prompts) * n,
    )
    return len(s.responses)


def _generate(policy, rows: list[str], args) -> list[str]:
    """model.generate on left-padded rows with the same settings, decoded like ours."""
    tok = policy.tokenizer
    enc = tok(rows, return_tensors="pt", padding=True, padding_side="left").to(policy.device)
    with torch.inference_mode():
        out = policy.model.generate(
            **enc,
            do_sample=args.temperature > 0,
            temperature=args.temperature if args.temperature > 0 else None,
            top_p=args.top_p,
            top_k=0,
            max_new_tokens=args.max_new_tokens,
            pad_token_id=tok.pad_token_id,
        )
    return tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)


def run_generate(policy, prompts, n, args) -> int:
    """model.generate with every row in one batch."""
    rows = [p for p in prompts for _ in range(n)]
    return len(_generate(policy, rows, args))


def run_one_at_a_time(policy, prompts, n, args, limit: int = 32) -> int:
    """model.generate called once per sample (the first ``limit`` rows; rate extrapolates)."""
    rows = [p for p in prompts for _ in range(n)][:limit]
    for row in rows:
        _generate(policy, [row], args)
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="default")
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    parser.add_argument("--batches", default="64,256", help="comma-separated batch sizes (rows)")
    parser.add_argument("--n", type=int, default=8, help="samples per prompt (prompts = batch / n)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=1.0)
    args = parser.parse_args()

    policy = load_policy(args.policy, device="cpu")
    print(
        f"policy {args.policy}: {policy.num_parameters / 1e6:.2f} M parameters, "
        f"temperature {args.temperature}, top_p {args.top_p}, top_k off, max_new_tokens {args.max_new_tokens}"
    )
    methods = {"ours": run_ours, "generate": run_generate, "one-at-a-time": run_one_at_a_time}
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for batch in [int(b) for b in args.batches.split(",")]:
            prompts = bench_prompts(max(1, batch // args.n))
            n = batch // len(prompts)
            for fn in methods.values():  # warm-up: first calls allocate and import
                fn(policy, prompts[:1], 2, args)
            rates: dict[str, list[float]] = {name: [] for name in methods}
            loads: list[str] = []
            for _ in range(args.repeats):
                for name, fn in methods.items():
                    start = time.perf_counter()
                    count = fn(policy, prompts, n, args)
                    rates[name].append(count / (time.perf_counter() - start))
                loads.append(loadavg())
            med = {name: statistics.median(values) for name, values in rates.items()}
            print(
                f"threads={torch.get_num_threads()} batch={len(prompts) * n:>4} "
                f"loadavg[{' '.join(loads)}]  samples/s: ours {med['ours']:8.1f}  "
                f"generate {med['generate']:8.1f}  one-at-a-time {med['one-at-a-time']:6.1f}  "
                f"ratio vs generate {med['ours'] / med['generate']:.2f}x  "
                f"vs one-at-a-time {med['ours'] / med['one-at-a-time']:.1f}x"
            )
            sys.stdout.flush()


if __name__ == "__main__":
    main()
