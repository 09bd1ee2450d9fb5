"""Screen a trainer lever on one gallery run: train it, evaluate it in the arena, print one JSON line.

    .venv/bin/python scripts/lever_screen.py gallery-ctrl-wo4-exp --out /tmp/screen/pi \\
        --set kl_controller=pi --set algorithm=distil

The run is the gallery's (bundled world, KL target 0.5, seed 0, arena on 32 eval prompts at
K = 64), with CTRLConfig fields overridden by ``--set``; the line gives the arena's win rates,
the theory's at the run's measured KL, the reward-visible share, and the training KL's path.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def summary(run_dir: Path) -> dict:
    """Arena figures, the theory beside them, and the training KL's path, for one built run."""
    from infalign_core import arena_results, ctrl

    record = arena_results.load_arena_results(run_dir)[-1]
    rows = ctrl.read_metrics(run_dir)
    kl = [r["kl/k1"] for r in rows]
    theory = record.get("theory", {})
    first = rows[:10]
    last = rows[-30:]
    mean = lambda rs, key: sum(r[key] for r in rs) / len(rs)  # noqa: E731
    return {
        "kl": record["kl"]["k1"],
        "kl_seen": record["kl"].get("calibrated"),
        "bon": record["win_rates"]["bon_win_rate"],
        "won": record["win_rates"]["won_win_rate"],
        "theory_bon": theory.get("bon_win_rate"),
        "theory_won": theory.get("won_win_rate"),
        "train_kl_max_ema": max(
            sum(kl[max(0, i - 9) : i + 1]) / len(kl[max(0, i - 9) : i + 1]) for i in range(len(kl))
        ),
        "train_kl_last30": mean(last, "kl/k1"),
        "entropy_first": mean(first, "policy/entropy"),
        "entropy_last30": mean(last, "policy/entropy"),
        "length_first": mean(first, "policy/response_length"),
        "length_last30": mean(last, "policy/response_length"),
        "beta_last": rows[-1]["kl/beta"],
    }


def main(argv=None) -> None:
    """Build the run with the overrides and print its summary as one JSON line."""
    from infalign_core import gallery, gallery_build

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_id", choices=list(gallery.RUNS))
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], help="FIELD=VALUE (JSON value) of CTRLConfig")
    args = p.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.set)
    overrides = {k: _value(v) for k, v in overrides.items()}
    started = time.time()
    run_dir = gallery_build.build_run(
        args.run_id, Path(args.out), steps=args.steps, seed=args.seed, log=print, **overrides
    )
    out = {
        "run": args.run_id,
        "seed": args.seed,
        "overrides": overrides,
        "seconds": round(time.time() - started),
    }
    out.update(summary(run_dir))
    out["load"] = open("/proc/loadavg").read().split()[:3]
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
