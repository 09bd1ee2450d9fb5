"""How well the reward-visible KL estimator reads the rank-level ceiling on the theory's own densities.

For each density g ∝ e^{Φ/β} (Φ the exponential at the theory's best t, identity for N = 1)
it draws calibrated rewards u ~ g, mid-ranks them against a fresh simulated bank of m per
prompt, and prints the estimator's mean and standard deviation over repeats against the exact
rank-level KL (``theory.rank_level_kl``), at the arena's size (32 prompts × 64) and at a
training step's (8 prompts × 8). Usage: python scripts/visible_kl_check.py [--repeats R]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infalign_core import calibration, procedures, theory
from infalign_core.transforms import Transform

SIZES = {"arena (32 × 64)": (32, 64), "training step (8 × 8)": (8, 8)}


def tilted_draws(phi, beta: float, shape, rng) -> np.ndarray:
    """u ~ g ∝ e^{Φ/β}, by inverting the engine's CDF at its nodes."""
    policy = theory.aligned_policy(phi, beta)
    u = np.concatenate([[0.0], policy.grid.u.ravel(), [1.0]])
    cdf = np.maximum.accumulate(np.concatenate([[0.0], policy.cdf[0].ravel(), [1.0]]))
    return np.interp(rng.random(shape), cdf, u)


def main() -> None:
    """Print one row per density and sample size: exact KL, ceiling, estimator mean and sd."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--m", type=int, default=64)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"| density | KL | ceiling (m = {args.m}) | size | mean estimate / ceiling | sd (nats) |")
    print("|---|---|---|---|---|---|")
    for n, mode in [(1, "best"), (4, "best"), (4, "worst"), (16, "best"), (16, "worst")]:
        for kl in (0.1, 0.5, 2.0):
            phi = (
                Transform("identity")
                if n == 1
                else Transform("exp", procedures.best_exponential_t(procedures.of_n(n, mode), kl).t, mode)
            )
            beta = theory.beta_for_kl(phi, kl)
            ceiling = float(theory.rank_level_kl(phi, beta, args.m)[0])
            name = "identity" if n == 1 else f"{'best' if mode == 'best' else 'worst'}-of-{n} exp"
            for size, (prompts, k) in SIZES.items():
                u = tilted_draws(phi, beta, (args.repeats, prompts, k), rng)
                bank = rng.random((args.repeats, prompts, args.m))
                calibrated = (bank[..., None, :] < u[..., :, None]).sum(axis=-1) / args.m
                values = np.array([calibration.calibrated_kl(c, m=args.m) for c in calibrated])
                print(
                    f"| {name} | {kl:g} | {ceiling:.3f} | {size} | {values.mean() / ceiling:.3f} | {values.std():.3f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
