"""The one interface every reward implements: r(prompt, response) for batches of pairs, finite float64.

``rewards`` holds the reward kinds (a reward model, VADER, the oracle, a callable) and ``load_reward``;
``judge`` the judge reward. Both subclass ``RewardFunction`` from here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from infalign_core.errors import InfAlignError


class RewardFunction:
    """r(prompt, response) for batches of pairs; subclasses implement ``_score_texts``."""

    name: str = "reward"
    fingerprint: str = ""
    notes: Sequence[str] = ()  # things a user should know, said once (e.g. a template fallback)
    may_abstain: bool = False  # a judge may leave a response unscored: NaN, never a made-up number

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        """The reward of each prompt + response pair (float64, finite)."""
        prompts, responses = list(prompts), list(responses)
        if len(prompts) != len(responses):
            raise InfAlignError(
                f"{len(prompts)} prompts but {len(responses)} responses: give one prompt per response."
            )
        if not prompts:
            return np.zeros(0, dtype=np.float64)
        # Each distinct pair is scored once and every copy gets that score: a batched model's padding
        # and batch composition move the last bits of a score, and two copies of one text must tie
        # exactly (win rates count ties as ½), whichever batch or side they came from.
        first: dict[tuple[str, str], int] = {}
        slot = np.array([first.setdefault(pair, len(first)) for pair in zip(prompts, responses)])
        unique_prompts, unique_responses = (list(side) for side in zip(*first)) if first else ([], [])
        values = np.asarray(self._score_pairs(unique_prompts, unique_responses), dtype=np.float64).reshape(-1)
        if values.shape[0] != len(first):
            raise InfAlignError(
                f"Reward {self.name!r} returned {values.shape[0]} scores for {len(first)} texts."
            )
        values = values[slot]
        bad = np.flatnonzero(np.isinf(values) if self.may_abstain else ~np.isfinite(values))
        if bad.size:
            i = int(bad[0])
            raise InfAlignError(
                f"Reward {self.name!r} gave {values[i]} (not finite) for input {i}: "
                f"{(prompts[i] + responses[i])[:80]!r}{f' and {bad.size - 1} more' if bad.size > 1 else ''}."
            )
        return values

    def _score_pairs(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        """Scores of the full texts prompt + response (override for pair-aware rewards)."""
        return self._score_texts([p + r for p, r in zip(prompts, responses)])

    def _score_texts(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
