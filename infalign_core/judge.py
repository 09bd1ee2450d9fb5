"""Judge rewards: a chat model reads a rubric, the prompt and a response, and its answer is the reward.

``judge:RUBRIC`` with a judge MODEL (a folder, hub id or preset, loaded like any policy) is a
``RewardFunction`` whose scores lie in [0, 1]. An answer that does not follow the rubric's
format (``rubrics.parse_answer``) is asked again once, greedily (temperature 0) and with a
reminder of the format; if that fails too the response is *unscored*: its reward is NaN inside
arrays and null in JSON, never 0, and every consumer reports the unscored share.

Each score is cached on disk under a key of the judge's identity (weights, tokenizer,
template, sampling), the rubric's content, the prompt and the response; writes are atomic
(a temporary file renamed into place), so a crash never leaves a half-written score.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

import numpy as np

from infalign_core.errors import InfAlignError
from infalign_core.reward_base import RewardFunction
from infalign_core.rubrics import Rubric, judge_prompt, load_rubric, parse_answer
from infalign_core.sampling_settings import SamplingSettings

JUDGE_PROMPT_VERSION = "judge-v1"  # bump when judge_prompt's wording changes: old scores no longer apply
CACHE_ENV_VAR = "INFALIGN_JUDGE_CACHE_DIR"
PREFIX = "judge:"


def judge_cache_dir() -> Path:
    """``$INFALIGN_JUDGE_CACHE_DIR``, else ``judge/`` beside the bank cache (``$INFALIGN_CACHE_DIR``), else ``<repo>/cache/judge``."""
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return Path(env).expanduser()
    banks = os.environ.get("INFALIGN_CACHE_DIR")
    if banks:
        return Path(banks).expanduser() / "judge"
    return Path(__file__).resolve().parents[1] / "cache" / "judge"


def split_spec(source: str) -> tuple[str, str | None]:
    """``judge:RUBRIC`` or ``judge:RUBRIC@MODEL`` → (rubric, model or None)."""
    body = source.strip()[len(PREFIX) :]
    rubric, at, model = body.partition("@")
    return rubric.strip(), (model.strip() or None) if at else None


def judge_spec(rubric: str, model: str) -> str:
    """The one-string form a config stores: ``judge:RUBRIC@MODEL``."""
    return f"{PREFIX}{rubric}@{model}"


def is_judge(source) -> bool:
    """Whether a reward source names a judge."""
    return isinstance(source, str) and source.strip().startswith(PREFIX)


def _sha(value) -> str:
    """sha256 of a JSON-able value."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


class JudgeReward(RewardFunction):
    """A judge model grading responses on a rubric; NaN marks an unscored response."""

    may_abstain = True

    def __init__(
        self,
        judge,
        rubric: Rubric,
        *,
        temperature: float = 0.0,
        max_new_tokens: int = 256,
        batch_size: int = 16,
        seed: int = 0,
        cache_dir: str | Path | None = None,
        use_cache: bool = True,
    ):
        from infalign_core.identity import policy_identity

        if not (np.isfinite(temperature) and temperature >= 0):
            raise InfAlignError(f"The judge's temperature must be ≥ 0, got {temperature}.")
        if int(max_new_tokens) < 1 or int(batch_size) < 1:
            raise InfAlignError("The judge needs max_new_tokens ≥ 1 and batch_size ≥ 1.")
        self.judge, self.rubric = judge, rubric
        self.temperature, self.max_new_tokens = float(temperature), int(max_new_tokens)
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else judge_cache_dir()
        self.use_cache = bool(use_cache)
        self.name = f"{PREFIX}{rubric.name}"
        self.notes = []
        self.identity = {
            "version": JUDGE_PROMPT_VERSION,
            "judge": policy_identity(judge),
            "temperature": self.temperature,
            "max_new_tokens": self.max_new_tokens,
            "seed": self.seed,
        }
        self.rubric_sha256 = rubric.content_sha256()
        self.key = _sha({"judge": self.identity, "rubric": self.rubric_sha256})
        self.fingerprint = f"judge:{self.key[:24]}"
        self.counts = {"scored": 0, "unscored": 0, "retried": 0, "cached": 0, "judged": 0}

    # --- cache -------------------------------------------------------------------------------

    def item_key(self, prompt: str, response: str) -> str:
        """The cache key of one score: judge identity, rubric content, prompt and response."""
        return _sha({"judge": self.key, "prompt": prompt, "response": response})

    def _path(self, item: str) -> Path:
        return self.cache_dir / self.key[:24] / item[:2] / f"{item}.json"

    def _read(self, item: str) -> tuple[bool, float | None]:
        """(hit, score) for one key; an unreadable entry is a miss and is removed."""
        path = self._path(item)
        if not self.use_cache or not path.is_file():
            return False, None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            score = entry["score"]
            if entry.get("key") != item or not (score is None or 0.0 <= float(score) <= 1.0):
                raise ValueError("mismatched entry")
            return True, None if score is None else float(score)
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            return False, None

    def _write(self, item: str, score: float | None, answers: list[str]) -> None:
        """Store one score atomically (temporary file, then rename)."""
        if not self.use_cache:
            return
        path = self._path(item)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        entry = {"key": item, "score": score, "rubric": self.rubric.name, "answers": answers}
        tmp.write_text(json.dumps(entry, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)

    # --- judging -----------------------------------------------------------------------------

    def _ask(self, texts: list[str], temperature: float) -> list[str]:
        """The judge's answers to these prompts, sampled in batches."""
        from infalign_core.sampling import sample

        if not texts:
            return []
        samples = sample(
            self.judge,
            texts,
            1,
            sampling=SamplingSettings(
                max_new_tokens=self.max_new_tokens,
                temperature=temperature,
                seed=self.seed,
                batch_size=self.batch_size,
            ),
        )
        for note in samples.notes:
            if note not in self.notes:
                self.notes.append(note)
        return list(samples.responses)

    def _score_pairs(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        """Cached scores, then one batched judging pass for the rest, then one retry for unparseable answers."""
        keys = [self.item_key(p, r) for p, r in zip(prompts, responses)]
        scores: dict[str, float | None] = {}
        todo: dict[str, tuple[str, str]] = {}
        for key, prompt, response in zip(keys, prompts, responses):
            if key in scores or key in todo:
                continue  # the same pair twice is judged once
            hit, score = self._read(key)
            if hit:
                scores[key] = score
                self.counts["cached"] += 1
            else:
                todo[key] = (prompt, response)
        pending = list(todo)
        if pending:
            scores.update(self._judge([todo[k] for k in pending], pending))
        values = np.array([np.nan if scores[k] is None else scores[k] for k in keys], dtype=np.float64)
        unscored = int(np.isnan(values).sum())
        self.counts["unscored"] += unscored
        self.counts["scored"] += len(values) - unscored
        return values

    def _judge(self, pairs: list[tuple[str, str]], keys: list[str]) -> dict[str, float | None]:
        """One batched pass over new pairs, one greedy retry (with a format reminder) for the unparseable."""
        first = self._ask([judge_prompt(self.rubric, *pair) for pair in pairs], self.temperature)
        answers = {k: [a] for k, a in zip(keys, first)}
        retry = [i for i, k in enumerate(keys) if parse_answer(self.rubric, answers[k][0]) is None]
        if retry:
            second = self._ask([judge_prompt(self.rubric, *pairs[i], reminder=True) for i in retry], 0.0)
            for i, a in zip(retry, second):
                answers[keys[i]].append(a)
        self.counts["retried"] += len(retry)
        self.counts["judged"] += len(keys)
        scores = {}
        for k in keys:
            scores[k] = parse_answer(self.rubric, answers[k][-1])
            self._write(k, scores[k], answers[k])
        return scores

    def unscored_note(self) -> str:
        """One line on how many responses the judge left unscored so far ('' if none)."""
        total = self.counts["scored"] + self.counts["unscored"]
        if not self.counts["unscored"]:
            return ""
        return (
            f"The judge ({self.name}) left {self.counts['unscored']} of {total} responses unscored "
            f"({100 * self.counts['unscored'] / total:.1f} %) after a retry at temperature 0; "
            "they count as missing, not as 0."
        )


def load_judge_reward(
    source: str,
    *,
    judge: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = False,
    **kwargs,
) -> JudgeReward:
    """``judge:RUBRIC`` (with ``judge=MODEL``) or ``judge:RUBRIC@MODEL`` as a loaded JudgeReward."""
    from infalign_core.models import load_policy

    rubric_name, model = split_spec(source)
    model = judge or model
    if not rubric_name:
        raise InfAlignError(f"{source!r} names no rubric: use judge:RUBRIC, e.g. judge:helpfulness.")
    rubric = load_rubric(rubric_name)
    if not model:
        raise InfAlignError(
            f"{source} needs a judge model: give --judge MODEL (a chat model's folder, a hub id or a preset)."
        )
    loaded = load_policy(model, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
    reward = JudgeReward(loaded, rubric, **kwargs)
    reward.notes.extend(loaded.notes)
    return reward


def unscored_share(values) -> float:
    """The share of NaN (unscored) entries; 0 for an empty array."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.isnan(values).mean()) if values.size else 0.0


__all__ = [
    "JudgeReward",
    "is_judge",
    "judge_cache_dir",
    "judge_spec",
    "load_judge_reward",
    "split_spec",
    "unscored_share",
]
