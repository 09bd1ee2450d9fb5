"""Over-optimisation (Goodhart) on the bundled world: win rate under the weak proxy and under the oracle against KL.

Two families of policies are pushed away from the reference by the weak ``proxy`` reward:

- best-of-n of the reference, n = 1…64, picked by the proxy: its KL is log n − (n−1)/n, and its
  standard win rate under a reward R is the expected calibrated R of the proxy's pick, computed
  exactly over all n-subsets of K reference samples (``agency.selected_score``), each sample
  calibrated against separate reference samples;
- CTRL runs trained on the proxy (raw-reward RLHF, calibrated RLHF, CTRL for best-of-4) at a small
  fixed β, so that their KL grows with the steps: every ``every`` steps the policy meets the
  reference in the arena, scored by the proxy and rescored by the oracle.

Where the proxy's win rate keeps rising and the oracle's stalls or falls, the proxy is being
over-optimised. ``run_experiment`` writes both curves to a JSON file (``make goodhart``), which the
Tour and the README read.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from infalign_core.errors import InfAlignError
from infalign_core.sampling_settings import SamplingSettings

RESULTS_PATH = Path(__file__).resolve().parent.parent / "assets" / "goodhart" / "curves.json"
METHODS = {
    "raw-reward RLHF": {"transform": "raw"},
    "calibrated RLHF": {"transform": "identity"},
    "CTRL best-of-4 (exp)": {"transform": "exp", "n": 4, "mode": "best"},
}
BON_NS = (1, 2, 4, 8, 16, 32, 64)


def bon_kl(n: int) -> float:
    """KL of the best-of-n policy from the reference (continuous rewards): log n − (n−1)/n."""
    return math.log(n) - (n - 1) / n


def _calibrate(values: np.ndarray, against: np.ndarray) -> np.ndarray:
    """[P, K] mid-rank calibrated values of ``values`` against [P, M] reference values of the same prompt."""
    below = (against[:, None, :] < values[:, :, None]).mean(axis=2)
    ties = (against[:, None, :] == values[:, :, None]).mean(axis=2)
    return below + 0.5 * ties


def bon_curve(
    reference, proxy, oracle, prompts: Sequence[str], *, ns=BON_NS, k: int = 64, m: int = 64, seed: int = 0
) -> list[dict]:
    """Best-of-n of the reference by the proxy: KL and the standard win rate under the proxy and the oracle."""
    from infalign_core.agency import selected_score
    from infalign_core.eval_rewards import rescore
    from infalign_core.sampling import sample

    if max(ns) > k:
        raise InfAlignError(f"best-of-{max(ns)} needs K ≥ {max(ns)} reference samples per prompt, got {k}.")
    prompts = list(prompts)
    pool = sample(reference, prompts, int(k), sampling=SamplingSettings(seed=seed))
    comparison = sample(reference, prompts, int(m), sampling=SamplingSettings(seed=seed + 1))
    pool_rows = [pool.responses[i * k : (i + 1) * k] for i in range(len(prompts))]
    comparison_rows = [comparison.responses[i * m : (i + 1) * m] for i in range(len(prompts))]
    scores = {
        name: (rescore(fn, prompts, pool_rows), rescore(fn, prompts, comparison_rows))
        for name, fn in (("proxy", proxy), ("oracle", oracle))
    }
    calibrated = {name: _calibrate(ours, theirs) for name, (ours, theirs) in scores.items()}
    points = []
    for n in ns:
        point = {"method": "best-of-n (reference)", "n": int(n), "kl": bon_kl(int(n))}
        for name, values in calibrated.items():
            per_prompt = [
                selected_score(values[p], scores["proxy"][0][p], int(n)) for p in range(len(prompts))
            ]
            point[f"{name}_win_rate"] = float(np.mean(per_prompt))
        points.append(point)
    return points


def training_curve(
    method: str,
    *,
    steps: int = 150,
    every: int = 25,
    beta: float = 0.01,
    eval_prompts: Sequence[str],
    k_eval: int = 8,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    **overrides,
) -> list[dict]:
    """Train ``method`` on the proxy at a fixed β; every ``every`` steps its KL and win rates under proxy and oracle."""
    from infalign_core import arena, ctrl
    from infalign_core.eval_rewards import eval_reward_results
    from infalign_core.rewards import OracleReward

    if method not in METHODS:
        raise InfAlignError(f"No method {method!r}; choose one of {', '.join(METHODS)}.")
    log = log or (lambda _message: None)
    config = ctrl.CTRLConfig.from_dict(
        {
            "reward": "proxy",
            "beta": beta,
            "kl_target": None,
            "steps": steps,
            "checkpoint_every": steps,
            "num_prompts": 64,
            "m": 32,
            "seed": seed,
            "device": "cpu",
            **METHODS[method],
            **overrides,
        }
    ).resolved()
    models = ctrl.load_models(config)
    oracle = OracleReward()
    points = []

    def evaluate(step: int) -> None:
        state = arena.run_to_end(
            models.policy,
            models.reference,
            models.reward_fn,
            eval_prompts,
            sampling=SamplingSettings(seed=seed + 17),
            n=1,
            k=k_eval,
            resamples=200,
        )
        under_oracle = eval_reward_results(state, {"oracle": oracle}, resamples=200, seed=seed)["oracle"]
        est = state.estimate
        points.append(
            {
                "method": method,
                "step": step,
                "kl": float(state.kl.k1) if state.kl else float("nan"),
                "proxy_win_rate": est.standard_win_rate,
                "proxy_ci": [est.standard_win_rate_ci_low, est.standard_win_rate_ci_high],
                "oracle_win_rate": under_oracle["standard_win_rate"],
                "oracle_ci": [
                    under_oracle["standard_win_rate_ci_low"],
                    under_oracle["standard_win_rate_ci_high"],
                ],
            }
        )
        log(
            f"{method} step {step}: KL {points[-1]['kl']:.3f} proxy {est.standard_win_rate:.3f} oracle {under_oracle['standard_win_rate']:.3f}"
        )

    evaluate(0)

    def on_metrics(row: dict) -> None:
        if row["step"] % int(every) == 0:
            evaluate(int(row["step"]))

    ctrl.train(config, None, models=models, on_metrics=on_metrics, log=log)
    return points


def robustness_summary(curves: dict) -> dict:
    """Per trained method: the highest oracle win rate reached, at what KL, and the oracle's drop from there to the end."""
    out = {}
    for method, points in curves.items():
        if method == "best-of-n (reference)" or not points:
            continue
        best = max(points, key=lambda p: p["oracle_win_rate"])
        last = points[-1]
        out[method] = {
            "peak_oracle_win_rate": best["oracle_win_rate"],
            "peak_kl": best["kl"],
            "final_kl": last["kl"],
            "final_proxy_win_rate": last["proxy_win_rate"],
            "final_oracle_win_rate": last["oracle_win_rate"],
            "final_gap": last["proxy_win_rate"] - last["oracle_win_rate"],
        }
    return out


def run_experiment(
    out: str | Path = RESULTS_PATH,
    *,
    methods: Sequence[str] = tuple(METHODS),
    steps: int = 150,
    every: int = 25,
    beta: float = 0.01,
    num_eval_prompts: int = 32,
    seed: int = 0,
    log=print,
) -> dict:
    """Both curves on the bundled world, written to ``out`` as JSON (resumable: finished methods are kept)."""
    from infalign_core import data
    from infalign_core.models import load_policy
    from infalign_core.rewards import OracleReward, load_reward

    out = Path(out)
    result = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {"curves": {}}
    eval_prompts = data.load_prompts("bundled", split="eval", limit=int(num_eval_prompts)).prompts
    settings = {
        "steps": steps,
        "every": every,
        "beta": beta,
        "num_eval_prompts": num_eval_prompts,
        "seed": seed,
    }
    if result.get("settings") != settings:
        result = {"curves": {}}
    result["settings"] = settings
    started = time.perf_counter()
    if "best-of-n (reference)" not in result["curves"]:
        reference = load_policy("default", device="cpu")
        result["curves"]["best-of-n (reference)"] = bon_curve(
            reference, load_reward("proxy", device="cpu"), OracleReward(), eval_prompts, seed=seed
        )
        _save(out, result)
    for method in methods:
        if method in result["curves"]:
            continue
        result["curves"][method] = training_curve(
            method, steps=steps, every=every, beta=beta, eval_prompts=eval_prompts, seed=seed, log=log
        )
        _save(out, result)
    result["summary"] = robustness_summary(result["curves"])
    result["seconds"] = round(time.perf_counter() - started, 1)
    _save(out, result)
    return result


def _save(path: Path, result: dict) -> None:
    """Write atomically (a finished method survives a crash in the next)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1), encoding="utf-8")
    tmp.replace(path)


def load_results(path: str | Path | None = None) -> dict:
    """The shipped curves, or an error saying how to build them."""
    path = Path(path) if path is not None else RESULTS_PATH
    if not path.is_file():
        raise InfAlignError(f"No Goodhart curves at {path}: build them with make goodhart.")
    return json.loads(path.read_text(encoding="utf-8"))


__all__ = [
    "BON_NS",
    "METHODS",
    "RESULTS_PATH",
    "bon_curve",
    "bon_kl",
    "load_results",
    "robustness_summary",
    "run_experiment",
    "training_curve",
]
