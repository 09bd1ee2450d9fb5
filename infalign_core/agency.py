"""Agency scores: a policy on HumanAgencyBench's dimensions, judged, under plain, best-of-N and worst-of-N decoding.

For each HAB test the policy answers K times; a judge grades every answer on that dimension's
rubric (0–1). A dimension's score is the mean over tests with its standard error, as HAB reports
it. Best-of-N (worst-of-N) decoding keeps the answer that a *selection* reward ranks highest
(lowest) among N; its expected agency score is computed exactly from the K answers, averaging
over all N-subsets (order-statistic weights, ties in the selection reward shared). This answers
"does best-of-4 on a helpfulness reward cost agency support?" without drawing subsets.

Unscored answers (the judge's format failed twice, or the selection reward abstained) are left
out of a test; a test with fewer than N usable answers is left out of best/worst-of-N.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from infalign_core.errors import InfAlignError
from infalign_core.sampling_settings import SamplingSettings
from infalign_core.winrate import order_statistic_weights


def selected_score(scores, selection, n: int, mode: str = "best") -> float:
    """E[judge score of the best-of-N (worst-of-N) pick by ``selection``] over all N-subsets of the K answers.

    Answers with NaN in either array are left out first; NaN if fewer than N remain. Answers tied
    in ``selection`` share their judge scores' mean (a tie is broken at random).
    """
    scores, selection = np.asarray(scores, dtype=np.float64), np.asarray(selection, dtype=np.float64)
    keep = ~(np.isnan(scores) | np.isnan(selection))
    scores, selection = scores[keep], selection[keep]
    if scores.size < int(n):
        return float("nan")
    order = np.argsort(selection, kind="stable")
    scores, selection = scores[order], selection[order]
    _, group, counts = np.unique(selection, return_inverse=True, return_counts=True)
    shared = np.bincount(group, weights=scores) / counts  # each tied group's mean score
    weights = order_statistic_weights(scores.size, int(n), mode)
    return float(weights @ shared[group])


def _mean_and_stderr(values: np.ndarray) -> tuple[float, float, int]:
    """Mean, its standard error over tests, and the count, NaN tests left out."""
    values = values[~np.isnan(values)]
    if not values.size:
        return float("nan"), float("nan"), 0
    stderr = float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else float("nan")
    return float(values.mean()), stderr, int(values.size)


@dataclass
class DimensionScore:
    """One dimension: the plain score and its best-of-N / worst-of-N counterparts, each a mean ± standard error."""

    dimension: str
    title: str
    tests: int
    mean: float
    stderr: float
    bon_mean: float
    bon_stderr: float
    won_mean: float
    won_stderr: float
    unscored_share: float

    def as_dict(self) -> dict:
        """JSON-ready (NaN → None)."""
        return {
            k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in asdict(self).items()
        }


def score_dimension(
    dimension: str, scores: np.ndarray, selection: np.ndarray | None, n: int
) -> DimensionScore:
    """A dimension's result from [T, K] judge scores and [T, K] selection rewards."""
    from infalign_core.hab import TITLES

    scores = np.asarray(scores, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        plain = np.array([np.nanmean(row) if np.isfinite(row).any() else np.nan for row in scores])
    mean, stderr, tests = _mean_and_stderr(plain)
    picked = {}
    for mode in ("best", "worst"):
        if selection is None:
            picked[mode] = (float("nan"), float("nan"))
            continue
        values = np.array([selected_score(s, r, n, mode) for s, r in zip(scores, selection)])
        picked[mode] = _mean_and_stderr(values)[:2]
    return DimensionScore(
        dimension=dimension,
        title=TITLES.get(dimension, dimension),
        tests=tests,
        mean=mean,
        stderr=stderr,
        bon_mean=picked["best"][0],
        bon_stderr=picked["best"][1],
        won_mean=picked["worst"][0],
        won_stderr=picked["worst"][1],
        unscored_share=float(np.isnan(scores).mean()) if scores.size else 0.0,
    )


def agency_scores(
    policy,
    tests: Sequence,
    judges: Callable[[str], object],
    *,
    n: int = 4,
    k: int = 8,
    select_reward=None,
    max_new_tokens: int = 128,
    temperature: float = 1.0,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[DimensionScore]:
    """Sample K answers per HAB test, judge each on its dimension (``judges(dimension)`` gives the reward), score.

    ``select_reward`` (any RewardFunction, e.g. a helpfulness judge) ranks the answers for
    best-of-N and worst-of-N; without one only the plain scores are given.
    """
    from infalign_core.sampling import sample

    if int(n) < 1 or int(k) < int(n):
        raise InfAlignError(f"best-of-N needs 1 ≤ N ≤ K answers per test; got N = {n}, K = {k}.")
    if not tests:
        raise InfAlignError("No HAB tests to score.")
    say = progress or (lambda _message: None)
    prompts = [t.prompt for t in tests]
    say(f"sampling {k} answers to each of {len(prompts)} tests")
    samples = sample(
        policy,
        prompts,
        int(k),
        sampling=SamplingSettings(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed),
    )
    responses = np.array(samples.responses, dtype=object).reshape(len(prompts), int(k))
    selection = None
    if select_reward is not None:
        say(f"ranking the answers with {select_reward.name}")
        selection = np.asarray(
            select_reward.score([p for p in prompts for _ in range(int(k))], list(responses.ravel())),
            dtype=np.float64,
        ).reshape(len(prompts), int(k))
    results = []
    for dimension in dict.fromkeys(t.dimension for t in tests):
        rows = [i for i, t in enumerate(tests) if t.dimension == dimension]
        say(f"judging {dimension} ({len(rows)} tests × {k} answers)")
        judge = judges(dimension)
        scores = np.asarray(
            judge.score([prompts[i] for i in rows for _ in range(int(k))], list(responses[rows].ravel())),
            dtype=np.float64,
        ).reshape(len(rows), int(k))
        results.append(
            score_dimension(dimension, scores, None if selection is None else selection[rows], int(n))
        )
    return results


def judges_for(judge_model, max_new_tokens: int = 256) -> Callable[[str], object]:
    """dimension → a JudgeReward on that dimension's rubric, all sharing one loaded judge model."""
    from infalign_core.judge import JudgeReward
    from infalign_core.rubrics import load_rubric

    made = {}

    def judge_for(dimension: str):
        if dimension not in made:
            made[dimension] = JudgeReward(judge_model, load_rubric(dimension), max_new_tokens=max_new_tokens)
        return made[dimension]

    return judge_for


def selection_reward(spec: str, judge_model, load: Callable, max_new_tokens: int = 256):
    """The reward best/worst-of-N ranks by: ``judge:RUBRIC`` on the loaded judge, None for 'none', else ``load(spec)``."""
    from infalign_core.judge import JudgeReward, is_judge, split_spec
    from infalign_core.rubrics import load_rubric

    spec = (spec or "").strip()
    if not spec or spec.lower() == "none":
        return None
    rubric, model = split_spec(spec) if is_judge(spec) else (None, None)
    if rubric is not None and model is None:
        return JudgeReward(judge_model, load_rubric(rubric), max_new_tokens=max_new_tokens)
    return load(spec)


def change_lines(results: Sequence[DimensionScore], n: int, reward_name: str) -> list[str]:
    """'best-of-4 on judge:helpfulness: Ask Clarifying Questions 0.41 → 0.35' per dimension and mode."""
    lines = []
    for mode, key in ((f"best-of-{n}", "bon_mean"), (f"worst-of-{n}", "won_mean")):
        for r in results:
            after = getattr(r, key)
            if np.isfinite(r.mean) and np.isfinite(after):
                lines.append(f"{mode} on {reward_name}: {r.title} {r.mean:.2f} → {after:.2f}")
    return lines


@dataclass
class Agreement:
    """A judge against the humans' mean on one dimension."""

    dimension: str
    responses: int
    pearson: float | None
    spearman: float | None
    unscored_share: float


def judge_agreement(annotations: Sequence, judges: Callable[[str], object]) -> list[Agreement]:
    """Per dimension: Pearson and Spearman correlation of the judge's scores with the human mean."""
    from scipy import stats

    out = []
    for dimension in dict.fromkeys(a.dimension for a in annotations):
        rows = [a for a in annotations if a.dimension == dimension]
        scores = np.asarray(
            judges(dimension).score([a.prompt for a in rows], [a.response for a in rows]), dtype=np.float64
        )
        humans = np.array([a.human_mean for a in rows])
        ok = ~np.isnan(scores)
        pearson = spearman = None
        if ok.sum() >= 3 and np.ptp(scores[ok]) > 0 and np.ptp(humans[ok]) > 0:
            pearson = float(stats.pearsonr(scores[ok], humans[ok])[0])
            spearman = float(stats.spearmanr(scores[ok], humans[ok])[0])
        out.append(Agreement(dimension, int(ok.sum()), pearson, spearman, float((~ok).mean())))
    return out


__all__ = [
    "Agreement",
    "DimensionScore",
    "agency_scores",
    "change_lines",
    "judge_agreement",
    "judges_for",
    "score_dimension",
    "selected_score",
    "selection_reward",
]
