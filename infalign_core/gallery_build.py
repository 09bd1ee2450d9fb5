"""Building the gallery: train each gallery run, evaluate it in the arena and write it to ``assets/gallery``.

``make gallery`` (``python -m infalign_core build-gallery``) runs ``build_gallery`` with fixed seeds;
``gallery`` reads what it wrote.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from infalign_core.errors import InfAlignError
from infalign_core.gallery import RUNS, gallery_root

ARENA_K = 64


def config_for(run_id: str, steps: int | None = None, *, seed: int = 0, **overrides):
    """The CTRLConfig a gallery run is trained with: the recommended run, N = 4, on CPU; tests shrink it."""
    from infalign_core.ctrl import RECOMMENDED_RUN, recommended_config

    steps = int(steps if steps is not None else RECOMMENDED_RUN["steps"])
    spec = {k: v for k, v in RUNS[run_id].items() if k != "title"}
    return recommended_config(
        n=4, steps=steps, checkpoint_every=steps, seed=seed, device="cpu", **{**spec, **overrides}
    ).resolved()


def initial_beta(config, kl: float | None = None) -> float:
    """The β whose optimum spends ``kl`` nats (default: the run's KL target): where its KL controller starts.

    For calibrated transforms the theory gives it exactly; for the raw reward (no theory) it is
    read off the run's reference bank: the β at which tilting each prompt's bank by exp(r/β)
    costs ``kl`` nats on average. Starting there, the controller only fine-tunes β, instead of
    overshooting the target from a β that suits another reward scale.
    """
    import numpy as np
    from scipy import optimize

    from infalign_core import theory
    from infalign_core.transforms import make_transform

    kl = config.kl_target if kl is None else kl
    if config.transform == "optimal":
        from infalign_core.optimal import optimal_transform_for_kl

        return float(optimal_transform_for_kl(config.n, kl, config.mode).beta)
    if config.transform != "raw":
        return float(theory.beta_for_kl(make_transform(config.transform, t=config.t, mode=config.mode), kl))
    from infalign_core import calibration, ctrl
    from infalign_core.models import load_policy
    from infalign_core.rewards import load_reward

    reference = load_policy(config.reference or config.policy, device="cpu")
    reward_fn = load_reward(config.reward, label=config.reward_label, device="cpu")
    bank = ctrl.reference_bank(config, reference, reward_fn, ctrl.load_prompt_list(config))
    return float(
        np.exp(
            optimize.brentq(
                lambda log_beta: calibration.tilted_kl(bank.rewards, float(np.exp(log_beta))).mean() - kl,
                np.log(1e-3),
                np.log(1e3),
            )
        )
    )


def strip_optimizer_state(checkpoint: Path) -> None:
    """Make a checkpoint weights-only: the optimizer state is most of its size and only a resume needs it."""
    from infalign_core.ctrl import TRAINER_STATE

    (Path(checkpoint) / TRAINER_STATE).unlink(missing_ok=True)


def build_run(
    run_id: str,
    out: Path,
    *,
    steps: int | None = None,
    arena_prompts: int = 32,
    arena_k: int = ARENA_K,
    seed: int = 0,
    log: Callable[[str], None] = print,
    **overrides,
) -> Path:
    """Train one gallery run, evaluate it in the arena and write it to ``out/run_id`` (replacing it)."""
    from infalign_core import arena, arena_results, challengers, ctrl, data, runs
    from infalign_core.models import load_policy
    from infalign_core.rewards import load_reward

    config = config_for(run_id, steps, seed=seed, **overrides)
    config = config_for(run_id, steps, seed=seed, **{"beta": round(initial_beta(config), 5), **overrides})
    log(
        f"{run_id}: initial β {config.beta:g} (its optimum spends {config.kl_target} nats), KL target {config.kl_target}"
    )
    with tempfile.TemporaryDirectory(prefix="gallery-") as tmp:
        run_dir = Path(tmp) / run_id
        run_dir.mkdir()
        config.save(run_dir / runs.CONFIG_FILE)
        runs.write_status(run_dir, state="queued", created=time.time(), device="cpu", step=0, resume=False)
        started = time.monotonic()
        result = runs.execute(run_dir, log=lambda line: None)
        log(f"{run_id}: trained {result['step']} steps in {time.monotonic() - started:.0f} s")
        checkpoint = ctrl.checkpoint_path(run_dir)
        strip_optimizer_state(checkpoint)
        challenger = load_policy(str(checkpoint), device="cpu")
        reference = load_policy(config.reference or config.policy, device="cpu")
        reward_fn = load_reward(config.reward, label=config.reward_label, device="cpu")
        prompts = data.load_prompts("bundled", split="eval", limit=arena_prompts).prompts
        started = time.monotonic()
        state = arena.run_to_end(
            challenger,
            reference,
            reward_fn,
            prompts,
            sampling=config.sampling(seed),
            n=config.n,
            k=arena_k,
        )
        settings = arena_results.record_settings(
            n=config.n,
            k=arena_k,
            prompts="bundled:eval",
            num_prompts=state.done,
            sampling=config.sampling(seed),
            reference=reference,
            reward_fn=reward_fn,
        )
        source = challengers.resolve_challenger(str(run_dir))
        record = arena_results.arena_record(state, settings, source.run_config)
        record["label"] = f"run {run_id}"
        record["picks"] = arena_results.picks_record(state)
        arena_results.save_arena_result(run_dir, record)
        log(
            f"{run_id}: arena K={arena_k} on {state.done} prompts in {time.monotonic() - started:.0f} s: "
            f"BoN {state.estimate.bon_win_rate:.3f}, WoN {state.estimate.won_win_rate:.3f}, KL {state.kl.k1:.3f}"
        )
        # No pid, no absolute checkpoint path: the folder moves into the repository.
        status = {k: v for k, v in runs.read_status(run_dir).items() if k not in ("pid", "checkpoint")}
        (run_dir / runs.STATUS_FILE).write_text(
            json.dumps({**status, "gallery": True}, indent=1), encoding="utf-8"
        )
        (run_dir / runs.LOG_FILE).unlink(missing_ok=True)
        for leftover in run_dir.glob(".*"):  # locks and temp files
            if leftover.is_file():
                leftover.unlink()
        target = Path(out) / run_id
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(run_dir, target)
    return target


def build_gallery(
    out: Path | None = None,
    *,
    steps: int | None = None,
    only: Sequence[str] | None = None,
    arena_prompts: int = 32,
    arena_k: int = ARENA_K,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Build every gallery run (or ``only`` some) into ``out``; returns their folders."""
    out = Path(out) if out is not None else gallery_root()
    names = list(only) if only else list(RUNS)
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        raise InfAlignError(f"unknown gallery run(s) {', '.join(unknown)}; choose from {', '.join(RUNS)}")
    built = []
    for name in names:
        built.append(build_run(name, out, steps=steps, arena_prompts=arena_prompts, arena_k=arena_k, log=log))
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    log(f"gallery: {len(built)} runs in {out}, {size / 1e6:.1f} MB")
    return built
