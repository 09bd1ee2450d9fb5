"""What shapes a sample, as one value: ``SamplingSettings`` (no torch here, so the light modules can hold one).

``sampling.sample`` draws with it, the calibration banks put its ``key`` in their cache key, and
the arena samples both sides with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from infalign_core.errors import InfAlignError


@dataclass(frozen=True)
class SamplingSettings:
    """What shapes a sample: response length, temperature, nucleus, seed, and rows per batch.

    Passed whole wherever samples are drawn (``sample``, the calibration banks, the arena). Its
    distribution fields and the seed are part of a bank's cache key (``key``); the batch size is
    not: it changes the random stream, not the distribution a bank estimates.
    """

    max_new_tokens: int = 24
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 256

    def checked(self) -> SamplingSettings:
        """The settings as plain ints and floats, or InfAlignError naming the first one out of its range."""
        if int(self.max_new_tokens) < 1:
            raise InfAlignError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}.")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise InfAlignError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}.")
        if not (math.isfinite(self.top_p) and 0 < self.top_p <= 1):
            raise InfAlignError(f"top_p must be in (0, 1], got {self.top_p}.")
        if int(self.batch_size) < 1:
            raise InfAlignError(f"batch_size must be >= 1, got {self.batch_size}.")
        return SamplingSettings(
            int(self.max_new_tokens),
            float(self.temperature),
            float(self.top_p),
            int(self.seed),
            int(self.batch_size),
        )

    def key(self) -> dict:
        """The fields a cache key holds: the distribution's (length, temperature, top-p) and the seed."""
        return {
            "sampling": {
                "max_new_tokens": int(self.max_new_tokens),
                "temperature": float(self.temperature),
                "top_p": float(self.top_p),
            },
            "seed": int(self.seed),
        }


DEFAULT_SAMPLING = SamplingSettings()
"""The defaults: 24 new tokens at temperature 1, top-p 1, seed 0, 256 rows per batch."""
