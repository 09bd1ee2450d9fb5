"""Benchmark inference procedures against per-point adaptive quadrature (prints, never asserts).

    python bench/bench_procedures.py

Ratios measured side by side in one run, with the load beside each figure:
- a 200-point frontier of best-of-(1+Poisson(3)) win rate for exp(t=10), against scipy's
  adaptive quadrature of W = ∫ (1 − T(G)) T′(u) du at each β (timed on a subset, scaled);
- the same for rejection sampling (reject:0.8:4), whose integrand has a kink at q;
- poisson:3's optimal transform at KL 0.5 nats (damped fixed point, β solved inside it)
  with its point evaluated by the engine, against evaluating that point by quadrature.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import integrate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_theory import best_of, load

from infalign_core import procedures, theory
from infalign_core.transforms import Transform


def quadrature_win_rate(phi, beta: float, proc: procedures.Procedure) -> float:
    """The procedure's win rate at one β by nested adaptive quadrature."""
    lam = 1.0 / beta
    top = lam * float(np.max(phi(np.linspace(0, 1, 1001))))

    def f(u: float) -> float:
        return float(np.exp(lam * phi(np.array([u]))[0] - top))

    breaks = list(proc.breaks)
    z = integrate.quad(f, 0, 1, limit=200, points=breaks or None)[0]

    def cdf(u: float) -> float:
        return integrate.quad(f, 0, u, limit=200)[0] / z

    if proc.kind == "reject":
        n, q, gamma = proc.n, proc.q, cdf(proc.q)
        c, cq = sum(gamma**k for k in range(n)), sum(q**k for k in range(n))

        def integrand(u: float) -> float:
            g = cdf(u)
            return (1 - gamma ** (n - 1) * g) * q ** (n - 1) if u < q else c * (1 - g) * cq

        return integrate.quad(integrand, 0, 1, points=[q], limit=100)[0]

    def integrand(u: float) -> float:
        g = cdf(u)
        return float(
            proc.upper(np.array([g]), np.array([1 - g]))[0]
            * proc.t_prime(np.array([u]), np.array([1 - u]))[0]
        )

    return integrate.quad(integrand, 0, 1, limit=100)[0]


def frontier_line(spec: str) -> None:
    """Time one procedure's 200-point frontier against per-point quadrature and print the ratio."""
    proc, phi = procedures.parse_procedure(spec), Transform("exp", 10.0, "best")
    betas = theory.default_betas(200)
    procedures.procedure_frontier(phi, betas, proc)
    t_engine = best_of(lambda: procedures.procedure_frontier(phi, betas, proc), 5)
    load_engine = load()
    subset = betas[::25]
    start = time.perf_counter()
    reference = [quadrature_win_rate(phi, float(b), proc) for b in subset]
    t_quad = (time.perf_counter() - start) / len(subset) * len(betas)
    ours = procedures.procedure_frontier(phi, subset, proc).win_rate
    print(
        f"frontier, 200 β, {phi.label}, {proc.label}: engine {t_engine * 1e3:.1f} ms vs quadrature "
        f"{t_quad:.1f} s (timed on {len(subset)} points, scaled) -> {t_quad / t_engine:.0f}x faster; "
        f"max |Δ| {np.max(np.abs(ours - reference)):.1e}  [load {load_engine}]"
    )


def main() -> None:
    """Run the comparisons and print one line each."""
    # quad warns about the optimum's PCHIP Φ (smooth only to C¹); its answer is still compared below.
    warnings.filterwarnings("ignore", category=integrate.IntegrationWarning)
    frontier_line("poisson:3")
    frontier_line("reject:0.8:4")
    proc = procedures.parse_procedure("poisson:3")
    t_solve = best_of(lambda: procedures.optimal_for_procedure(proc, kl=0.5), 3)
    load_solve = load()
    opt = procedures.optimal_for_procedure(proc, kl=0.5)
    t_engine = best_of(lambda: procedures.procedure_win_rate(opt.phi, opt.beta, proc), 5)
    start = time.perf_counter()
    reference = quadrature_win_rate(opt.phi, opt.beta, proc)
    t_quad = time.perf_counter() - start
    print(
        f"optimum for {proc.label} at KL 0.5: solve {t_solve * 1e3:.0f} ms ({opt.iterations} fixed-point steps, "
        f"residual {opt.residual:.1e}); its win rate by the engine {t_engine * 1e3:.2f} ms vs quadrature "
        f"{t_quad * 1e3:.0f} ms -> {t_quad / t_engine:.0f}x faster; solve + engine vs one quadrature point "
        f"-> {t_quad / (t_solve + t_engine):.2f}x; |Δ| {abs(opt.win_rate - reference):.1e}  [load {load_solve}]"
    )


if __name__ == "__main__":
    main()
