"""Benchmark the calibrated-space engine against per-point adaptive quadrature (prints, never asserts).

    python bench/bench_theory.py

Reports ratios measured side by side in one run, with the machine load beside them:
- a 200-point frontier (one transform, one N) against evaluating each point with scipy's
  adaptive quadrature (KL, W₁ and best-of-N; timed on a subset and scaled per point);
- one optimal transform at a KL budget against the damped fixed-point iteration at a single
  β (which alone cannot hit a KL budget and oscillates for large N / small β), and its point
  evaluated by the engine against adaptive quadrature.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import integrate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infalign_core import optimal, theory
from infalign_core.transforms import Transform


def load() -> str:
    """The 1/5/15-minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def best_of(fn, repeats: int) -> float:
    """Fastest wall time of several calls (the least disturbed by other processes)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def quadrature_point(phi, beta: float, n: int) -> tuple[float, float, float]:
    """KL, W₁ and best-of-N win rate of one β by adaptive quadrature."""
    lam = 1.0 / beta
    top = lam * float(phi(np.array([1.0]))[0])

    def f(u: float) -> float:
        return float(np.exp(lam * phi(np.array([u]))[0] - top))

    z = integrate.quad(f, 0, 1, limit=200)[0]
    kl = integrate.quad(lambda u: f(u) / z * np.log(f(u) / z) if f(u) > 0 else 0.0, 0, 1, limit=200)[0]
    w1 = integrate.quad(lambda u: u * f(u) / z, 0, 1, limit=200)[0]
    cdf = np.vectorize(lambda u: integrate.quad(f, 0, u, limit=200)[0] / z)
    bon = 1 - integrate.quad(lambda u: cdf(u) ** n * n * u ** (n - 1), 0, 1, limit=100)[0]
    return kl, w1, bon


def fixed_point(n: int, beta: float, points: int = 4001, steps: int = 300) -> np.ndarray:
    """The naive damped fixed-point iteration for the optimal Φ at one β."""
    u = np.linspace(0, 1, points)
    phi = u.copy()
    for _ in range(steps):
        g = np.exp((phi - phi.max()) / beta)
        cdf = np.concatenate([[0.0], np.cumsum(0.5 * (g[1:] + g[:-1]) * np.diff(u))])
        cdf /= cdf[-1]
        slope = n * n * u ** (n - 1) * cdf ** (n - 1)
        new = np.concatenate([[0.0], np.cumsum(0.5 * (slope[1:] + slope[:-1]) * np.diff(u))])
        phi = 0.5 * phi + 0.5 * new
    return phi


def main() -> None:
    """Run both comparisons and print one line each."""
    print(f"numpy {np.__version__}; cpus {os.cpu_count()}")
    phi, n = Transform("exp", 10.0, "best"), 4
    betas = theory.default_betas(200)
    theory.frontier(phi, betas, (n,))  # warm caches (Gauss rule)
    t_frontier = best_of(lambda: theory.frontier(phi, betas, (n,)), 10)
    load_frontier = load()
    subset = betas[::20]
    start = time.perf_counter()
    for beta in subset:
        quadrature_point(phi, float(beta), n)
    t_quad = (time.perf_counter() - start) / len(subset) * len(betas)
    print(
        f"frontier, 200 β, {phi.label}, N={n}: engine {t_frontier * 1e3:.1f} ms vs quadrature "
        f"{t_quad:.2f} s (timed on {len(subset)} points, scaled) -> {t_quad / t_frontier:.0f}x faster  [load {load_frontier}]"
    )

    t_optimal = best_of(lambda: optimal.optimal_transform_for_kl(n, 0.5, "best"), 3)
    load_optimal = load()
    beta = optimal.optimal_transform_for_kl(n, 0.5, "best").beta
    t_fixed = best_of(lambda: fixed_point(n, beta), 1)
    print(
        f"optimal transform, best-of-{n} at KL 0.5: ODE shooting {t_optimal * 1e3:.0f} ms (KL budget met) vs "
        f"damped fixed point at its β {t_fixed * 1e3:.0f} ms (one β only) -> ratio {t_fixed / t_optimal:.2f}  [load {load_optimal}]"
    )
    solved = optimal.optimal_transform_for_kl(n, 0.5, "best")
    t_engine = best_of(lambda: theory.evaluate(solved, solved.beta, n), 5)
    start = time.perf_counter()
    quadrature_point(solved, solved.beta, n)
    t_quad_opt = time.perf_counter() - start
    print(
        f"evaluating that optimal transform's point: engine {t_engine * 1e3:.1f} ms vs adaptive quadrature "
        f"{t_quad_opt * 1e3:.0f} ms -> {t_quad_opt / t_engine:.0f}x faster; solve + evaluate "
        f"{(t_optimal + t_engine) * 1e3:.0f} ms vs solve + quadrature {(t_optimal + t_quad_opt) * 1e3:.0f} ms  [load {load()}]"
    )
    point = theory.evaluate(phi, float(subset[3]), n)
    ref = quadrature_point(phi, float(subset[3]), n)
    print(
        f"agreement at β={subset[3]:.3g}: |Δ| KL {abs(point.kl - ref[0]):.1e}, W1 {abs(point.standard_win_rate - ref[1]):.1e}, BoN {abs(point.bon_win_rate - ref[2]):.1e}"
    )


if __name__ == "__main__":
    main()
