"""Every arena result under more than one reward: rescore both sides' samples and estimate again.

A run is trained on one reward; the same samples can be scored by others (the world's oracle,
VADER, a judge, another reward model) to see whether its win rates hold up there. Over-optimising
a weak reward (Goodhart) shows as win rates under the trained reward that the others do not share.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from infalign_core.errors import InfAlignError
from infalign_core.winrate import METRICS, estimate_scored_win_rates

RESULT_KEYS = (
    *tuple(key for name in METRICS for key in (name, f"{name}_ci_low", f"{name}_ci_high")),
    "tie_share",
    "unscored_share",
    "num_prompts",
)


CHOICES = ["oracle", "proxy", "vader", "default", "judge:helpfulness"]
CHOICES_HELP = (
    "Score both sides' samples again with each reward and show the three win rates under it: the world's "
    "oracle, its deliberately weak proxy, VADER, the bundled reward model, a judge (judge:RUBRIC, with a judge model), or type a "
    "reward-model folder or hub id."
)


def with_judge(spec: str, judge: str | None) -> str:
    """``judge:RUBRIC`` with the judge model folded in (``judge:RUBRIC@MODEL``); other specs unchanged."""
    from infalign_core.judge import is_judge, judge_spec, split_spec

    if not is_judge(spec) or not judge or split_spec(spec)[1]:
        return spec
    return judge_spec(split_spec(spec)[0], judge)


def eval_reward_name(spec: str) -> str:
    """The name a result is filed under: the spec as given (``oracle``, ``judge:helpfulness``, a folder)."""
    return spec.strip()


def load_eval_rewards(
    specs: Sequence[str],
    *,
    judge: str | None = None,
    device: str | None = None,
    chat=None,
    load: Callable | None = None,
) -> dict:
    """Each ``--eval-reward`` spec loaded once (``judge`` serves every ``judge:RUBRIC`` without ``@MODEL``)."""
    from infalign_core.rewards import load_reward

    load = load or load_reward
    out = {}
    for spec in specs:
        name = eval_reward_name(spec)
        if not name:
            raise InfAlignError(
                "An empty --eval-reward: give oracle, vader, judge:RUBRIC, a folder or a hub id."
            )
        if name not in out:
            out[name] = load(name, device=device, chat=chat, judge=judge)
    return out


def rescore(reward_fn, prompts: Sequence[str], responses: Sequence[Sequence[str]]) -> np.ndarray:
    """[P, K] rewards of K responses per prompt under ``reward_fn`` (one batched call; NaN = unscored)."""
    k = len(responses[0]) if responses else 0
    if any(len(row) != k for row in responses) or len(responses) != len(prompts):
        raise InfAlignError("rescoring needs K responses for every prompt")
    flat_prompts = [p for p, row in zip(prompts, responses) for _ in row]
    flat = [r for row in responses for r in row]
    return np.asarray(reward_fn.score(flat_prompts, flat), dtype=np.float64).reshape(len(prompts), k)


def summarise(challenger: np.ndarray, reference: np.ndarray, n: int, **kwargs) -> dict:
    """The three win rates with intervals, tie share, unscored share and prompts used, as one JSON-ready dict."""
    estimate, extras = estimate_scored_win_rates(challenger, reference, n, **kwargs)
    out = {key: getattr(estimate, key) for key in RESULT_KEYS if hasattr(estimate, key)}
    out.update(
        tie_share=extras["tie_share"],
        unscored_share=extras["unscored_share"],
        num_prompts=estimate.num_prompts,
    )
    return out


def eval_reward_results(
    state, rewards: dict, *, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> dict:
    """{name: summary} of the arena state's samples rescored by each reward (see ``summarise``)."""
    if not state.prompts:
        raise InfAlignError("nothing sampled yet: run the arena before rescoring")
    out = {}
    for name, reward_fn in rewards.items():
        ours = rescore(reward_fn, state.prompts, state.challenger_responses)
        theirs = rescore(reward_fn, state.prompts, state.reference_responses)
        out[name] = summarise(ours, theirs, state.n, resamples=resamples, level=level, seed=seed)
    return out


def trained_summary(state) -> dict:
    """The trained reward's own row in the same form, read off the arena state."""
    out = {key: getattr(state.estimate, key) for key in RESULT_KEYS if hasattr(state.estimate, key)}
    out.update(
        tie_share=state.tie_share, unscored_share=state.unscored_share, num_prompts=state.estimate.num_prompts
    )
    return out


def table_rows(trained_name: str, trained: dict, others: dict, n: int) -> list[dict]:
    """Rows for a side-by-side table: the trained reward first (marked), then each other reward."""
    rows = []
    for name, result, is_trained in [(trained_name, trained, True)] + [
        (k, v, False) for k, v in others.items()
    ]:
        rows.append(
            {
                "reward": f"{name} (trained on)" if is_trained else name,
                "standard": _cell(result, "standard_win_rate"),
                f"best-of-{n}": _cell(result, "bon_win_rate"),
                f"worst-of-{n}": _cell(result, "won_win_rate"),
                "ties": _share(result.get("tie_share")),
                "unscored": _share(result.get("unscored_share")),
            }
        )
    return rows


def _cell(result: dict, name: str) -> str:
    """'0.612 [0.580, 0.641]'."""
    return f"{result[name]:.3f} [{result[f'{name}_ci_low']:.3f}, {result[f'{name}_ci_high']:.3f}]"


def _share(value) -> str:
    """A share as a percentage ('—' when unknown)."""
    return "—" if value is None or not np.isfinite(value) else f"{100 * value:.1f} %"


__all__ = [
    "RESULT_KEYS",
    "eval_reward_results",
    "load_eval_rewards",
    "rescore",
    "summarise",
    "table_rows",
    "trained_summary",
]
