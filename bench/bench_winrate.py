"""Win-rate estimators: speed of the order-statistics estimator, and the naive estimator's extra variance.

    .venv/bin/python bench/bench_winrate.py

Prints (asserts nothing): the time of the unbiased best-of-N estimate (all N-subsets, via order
statistics) against a direct [P, K, K] pairwise comparison, for growing K; and, over repeated
synthetic data sets, the standard deviation of the naive one-subset estimate against the
unbiased one, i.e. how many more prompts the naive estimate needs for the same precision.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infalign_core import winrate


def best_time(fn, repeats: int = 5) -> float:
    """The fastest of a few calls, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def pairwise(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """The same estimate through a dense [P, K, K] comparison (memory grows as K²)."""
    p = winrate.order_statistic_weights(a.shape[1], n)
    q = winrate.order_statistic_weights(b.shape[1], n)
    a, b = np.sort(a, axis=1), np.sort(b, axis=1)
    beats = (a[:, :, None] > b[:, None, :]) + 0.5 * (a[:, :, None] == b[:, None, :])
    return np.einsum("i,pij,j->p", p, beats, q)


def main() -> None:
    """Run both comparisons and print them."""
    rng = np.random.default_rng(0)
    print("speed: P = 256 prompts, N = 16")
    print(f"{'K':>5} {'order statistics':>18} {'dense pairwise':>16} {'ratio':>7}")
    for k in (32, 128, 512):
        a, b = rng.normal(0.2, 1, size=(256, k)), rng.normal(size=(256, k))
        fast = best_time(lambda a=a, b=b: winrate.per_prompt_win_rates(a, b, 16))
        dense = best_time(lambda a=a, b=b: pairwise(a, b, 16), repeats=2)
        assert np.allclose(winrate.per_prompt_win_rates(a, b, 16), pairwise(a, b, 16))
        print(f"{k:>5} {fast * 1e3:>15.1f} ms {dense * 1e3:>13.1f} ms {dense / fast:>6.1f}x")

    print("\nvariance: 64 prompts, K = 32 per side, challenger shifted by 0.3 sd, 400 data sets")
    print(f"{'N':>3} {'sd unbiased':>12} {'sd naive':>9} {'variance ratio':>15}")
    for n in (1, 4, 16):
        unbiased, naive = [], []
        for trial in range(400):
            a, b = rng.normal(0.3, 1, size=(64, 32)), rng.normal(size=(64, 32))
            unbiased.append(winrate.win_rate(a, b, n))
            naive.append(winrate.naive_per_prompt_win_rates(a, b, n, seed=trial).mean())
        ratio = np.var(naive) / np.var(unbiased)
        print(f"{n:>3} {np.std(unbiased):>12.4f} {np.std(naive):>9.4f} {ratio:>14.1f}x")


if __name__ == "__main__":
    main()
