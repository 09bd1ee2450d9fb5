"""Reference reward banks and the calibrated reward (THEORY.md, "Calibrated reward").

A reference bank holds, for every prompt x, the sorted rewards r(x, z_1..z_m) of m samples
z_i ~ π_ref(·|x). The calibrated reward of a response y is its mid-rank among them,

    C(x, y) = (#{i: r(x, z_i) < r(x, y)} + ½ #{i: r(x, z_i) = r(x, y)}) / m,

the empirical win rate of y against π_ref on x. It is unchanged by any increasing transform
of r and, for a fresh reference sample, uniform on [0, 1] whatever the prompt: that is what
makes one β mean the same thing for every prompt.

Banks are cached on disk (``<repo>/cache/banks`` or ``$INFALIGN_CACHE_DIR``) under a sha256
of everything that produced them, as an ``.npz`` with a human-readable ``.json`` sidecar;
both are written atomically and only once the bank is complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from infalign_core.errors import InfAlignError
from infalign_core.identity import policy_identity, reward_identity
from infalign_core.sampling_settings import DEFAULT_SAMPLING, SamplingSettings

CODE_VERSION = "calibration-v1"
"""Bumped whenever a change here would make an old cached bank differ from a new one."""

HELDOUT_SEED_OFFSET = 1_000_003
"""Held-out reference samples use seed + this, so they are independent of the bank's own."""

CACHE_ENV_VAR = "INFALIGN_CACHE_DIR"

Progress = Callable[[int, int, str], None]
"""``progress(done, total, stage)``: responses done of total in a stage such as "sampling"."""


class CalibrationCancelled(InfAlignError):
    """A bank build stopped on request; nothing was stored as complete."""


# --- the bank and the calibrated reward ---------------------------------------------------


@dataclass
class ReferenceBank:
    """Sorted reference rewards per prompt: ``rewards[p]`` are the m rewards for ``prompts[p]``."""

    prompts: list[str]
    rewards: np.ndarray
    key: str = ""
    settings: dict = field(default_factory=dict)
    path: Path | None = None
    cached: bool = False
    notices: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        rewards = np.asarray(self.rewards, dtype=np.float64)
        if rewards.ndim != 2 or rewards.shape[1] < 1:
            raise InfAlignError(
                f"A reference bank needs a [prompts, m] reward array, got shape {rewards.shape}."
            )
        if rewards.shape[0] != len(self.prompts):
            raise InfAlignError(
                f"The bank has {rewards.shape[0]} reward rows but {len(self.prompts)} prompts."
            )
        _reject_nan(rewards, "reference bank")
        # Sorting is cheap and makes the invariant hold however the bank was assembled.
        self.rewards = np.sort(rewards, axis=1)
        self.prompts = list(self.prompts)

    @property
    def m(self) -> int:
        """Reference samples per prompt."""
        return int(self.rewards.shape[1])

    @property
    def num_prompts(self) -> int:
        """Number of prompts in the bank."""
        return int(self.rewards.shape[0])

    def calibrated_reward(self, prompt_index, rewards) -> np.ndarray:
        """Mid-rank calibrated reward of ``rewards`` against this bank (see module function)."""
        return calibrated_reward(self, prompt_index, rewards)


def bank_from_samples(prompts: Sequence[str], prompt_index, rewards, **metadata) -> ReferenceBank:
    """Group per-response rewards into a bank; every prompt needs the same number of samples."""
    prompt_index = np.asarray(prompt_index, dtype=np.int64)
    rewards = np.asarray(rewards, dtype=np.float64)
    if prompt_index.shape != rewards.shape or rewards.ndim != 1:
        raise InfAlignError("prompt_index and rewards must be 1-D arrays of the same length.")
    if not len(prompts) or (
        prompt_index.size and (prompt_index.min() < 0 or prompt_index.max() >= len(prompts))
    ):
        raise InfAlignError(f"prompt_index must index the {len(prompts)} prompts.")
    counts = np.bincount(prompt_index, minlength=len(prompts))
    if counts.min() != counts.max() or counts[0] == 0:
        raise InfAlignError(
            f"Every prompt needs the same number of reference samples (got {counts.min()}..{counts.max()})."
        )
    order = np.argsort(prompt_index, kind="stable")
    return ReferenceBank(list(prompts), rewards[order].reshape(len(prompts), -1), **metadata)


def calibrated_reward(bank: ReferenceBank | np.ndarray, prompt_index, rewards) -> np.ndarray:
    """C = (#bank rewards < r + ½ #bank rewards == r) / m for each (prompt_index, reward) pair.

    ``bank`` is a ReferenceBank or a [P, m] array sorted ascending per row. Vectorised over the
    batch: a few whole-batch bisection steps, no loop over responses.
    """
    rows = bank.rewards if isinstance(bank, ReferenceBank) else np.asarray(bank, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] < 1:
        raise InfAlignError(f"The bank must be a [prompts, m] array, got shape {rows.shape}.")
    rewards = np.asarray(rewards, dtype=np.float64)
    prompt_index = np.broadcast_to(np.asarray(prompt_index), rewards.shape)
    if prompt_index.size and not np.issubdtype(prompt_index.dtype, np.integer):
        raise InfAlignError("prompt_index must hold integers (row numbers of the bank).")
    prompt_index = prompt_index.astype(np.int64)
    _reject_nan(rewards, "rewards to calibrate")
    if prompt_index.size and (prompt_index.min() < 0 or prompt_index.max() >= rows.shape[0]):
        raise InfAlignError(
            f"prompt_index out of range: the bank has {rows.shape[0]} prompts, "
            f"got indices {prompt_index.min()}..{prompt_index.max()}."
        )
    flat_index, flat_rewards = prompt_index.ravel(), rewards.ravel()
    m, n = rows.shape[1], flat_rewards.size
    less = _count_below(m, n, lambda cols: rows[flat_index, cols] < flat_rewards)
    less_or_equal = _count_below(m, n, lambda cols: rows[flat_index, cols] <= flat_rewards)
    return ((less + 0.5 * (less_or_equal - less)) / rows.shape[1]).reshape(rewards.shape)


CALIBRATED_KL_BINS = 10
"""Equal-width bins for continuous calibrated rewards (``m`` None)."""

SAMPLES_PER_MIDDLE_BIN = 8
"""The automatic bins of bank levels aim at about this many samples per bin in the middle."""


def level_bins(m: int, samples: int) -> np.ndarray:
    """Edges, in bank levels 0..m, of the automatic bins for ``samples`` calibrated rewards.

    Dyadic from both ends (widths 1, 1, 2, 4, …) up to a middle width w, the power of two
    that leaves about SAMPLES_PER_MIDDLE_BIN samples per middle bin under the reference. The
    end levels stay single because a best-of-N optimum piles its mass on the top levels and a
    worst-of-N optimum empties the bottom ones: that is where the KL is. With enough samples
    (w = 1) every level is its own bin, and the estimate aims at the rank-level KL itself.
    """
    levels = int(m) + 1
    ratio = SAMPLES_PER_MIDDLE_BIN * levels / max(int(samples), 1)
    width = 1 << max(0, int(np.floor(np.log2(max(ratio, 1.0)))))
    lower, step = [0], 1
    while lower[-1] + step <= levels // 2:
        lower.append(lower[-1] + step)
        step = min(2 * step, width) if len(lower) > 2 else step
    edges = np.unique(np.concatenate([lower, levels - np.asarray(lower), [levels]]))
    return edges.astype(np.int64)


@dataclass(frozen=True)
class VisibleKL:
    """A reward-visible KL estimate with its jackknife standard error."""

    value: float  # nats; bias-corrected, so it can dip below 0 near the reference
    stderr: float  # jackknife standard error over the groups (prompts), nats
    bins: int  # bins of calibrated reward (bank levels) it counted
    samples: int
    groups: int  # prompts (rows) it treated as independent; = samples for a flat input


def visible_kl(calibrated, *, m: int | None = None, bins: int | None = None) -> VisibleKL:
    """The KL the reward sees: plug-in KL of binned calibrated rewards, jackknife-corrected over prompts.

    ``calibrated`` is flat, or [prompts, samples] when each row was ranked against its own
    prompt's bank. Under the reference, C ranked against a bank of ``m`` is uniform on the
    m + 1 levels j/m; with ``m`` None, C is Uniform[0, 1] and ``bins`` (default 10)
    equal-width bins are used. With ``m``, ``bins`` None picks :func:`level_bins` (every level
    at the arena's 2,048 samples, coarser in the middle for a training step's 64), and an
    integer groups the levels into that many equal runs.

    The plug-in overestimates by about Σ Var(p̂_b)/(2 p_b). Samples of one prompt share a bank,
    which raises that variance beyond the multinomial's (the Miller–Madow correction only
    removes about half of it at the arena's size), so the bias is removed by a delete-one-prompt
    jackknife, which sees the shared bank (a flat input is jackknifed per sample). What it
    estimates is the KL of the binned rank levels, at most the rank-level KL of
    ``theory.rank_level_kl`` (the most any estimator can see through a bank of m), which is at
    most the sequence KL by data processing.
    """
    values = np.asarray(calibrated, dtype=np.float64)
    if values.size == 0:
        raise InfAlignError("the calibrated KL needs at least one calibrated reward")
    if values.ndim > 2:
        raise InfAlignError(
            f"calibrated rewards must be flat or [prompts, samples], got shape {values.shape}"
        )
    _reject_nan(values, "calibrated rewards")
    if values.min() < 0.0 or values.max() > 1.0:
        raise InfAlignError("calibrated rewards lie in [0, 1]; got values outside it")
    if bins is not None and (isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 2):
        raise InfAlignError(f"the calibrated KL needs an integer number of bins ≥ 2, got {bins!r}")
    rows = values if values.ndim == 2 else values.reshape(1, -1)
    if m is None:
        count = int(bins or CALIBRATED_KL_BINS)
        index = np.minimum((rows * count).astype(np.int64), count - 1)  # u = 1 in the top bin
        reference = np.full(count, 1.0 / count)
    else:
        if isinstance(m, bool) or not isinstance(m, int | np.integer) or m < 1:
            raise InfAlignError(f"the bank size m must be an integer ≥ 1, got {m!r}")
        levels = int(m) + 1
        if bins is None:
            edges = level_bins(int(m), values.size)
        else:
            edges = np.unique((np.arange(min(int(bins), levels) + 1) * levels) // min(int(bins), levels))
        # Level j/m (a tie's mid-rank rounds up).
        level = np.minimum(np.floor(rows * m + 0.5).astype(np.int64), levels - 1)
        index = np.searchsorted(edges, level, side="right") - 1
        reference = np.diff(edges) / levels
    count = reference.size
    per_row = np.stack([np.bincount(row, minlength=count) for row in index]).astype(np.float64)
    total = per_row.sum(axis=0)
    if per_row.shape[0] > 1:
        left_out = total[None, :] - per_row
        weights = np.ones(per_row.shape[0])
    else:
        # Flat input: delete one sample at a time, i.e. one count from each occupied bin.
        seen = np.flatnonzero(total)
        left_out = total[None, :] - np.eye(count)[seen]
        weights = total[seen]
    groups = int(weights.sum())
    full = _plug_in_kl(total[None, :], reference)[0]
    partial = _plug_in_kl(left_out, reference)
    mean = float(np.sum(weights * partial) / groups)
    value = groups * full - (groups - 1) * mean
    stderr = float(np.sqrt((groups - 1) / groups * np.sum(weights * (partial - mean) ** 2)))
    return VisibleKL(value=float(value), stderr=stderr, bins=count, samples=int(values.size), groups=groups)


def _plug_in_kl(counts: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Σ p̂ log(p̂/q) for each row of bin counts (empty bins add 0)."""
    mass = counts / counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(mass > 0, mass * np.log(mass / reference), 0.0)
    return terms.sum(axis=1)


def calibrated_kl(calibrated, *, m: int | None = None, bins: int | None = None) -> float:
    """The KL the reward sees, in nats: :func:`visible_kl`'s value (see there for the estimator and its bias)."""
    return visible_kl(calibrated, m=m, bins=bins).value


def _count_below(m: int, num_queries: int, below: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """For each query, the length of the prefix of its (sorted) bank row that lies below it.

    ``below(cols)`` says, per query, whether the entry at column ``cols[q]`` of that query's
    row is below the query; it must be true on a prefix of the row. A vectorised bisection:
    each of the ~log2(m) steps gathers one entry per query, so the cost does not grow with
    the number of prompts in the bank (np.searchsorted on a flattened bank would need the
    whole bank re-ranked with the batch on every call to keep float ties exact).
    """
    lo = np.zeros(num_queries, dtype=np.int64)
    hi = np.full(num_queries, m, dtype=np.int64)
    for _ in range(int(m).bit_length() + 1):
        active = lo < hi
        if not active.any():
            break
        mid = (lo + hi) // 2
        go_right = below(np.minimum(mid, m - 1)) & active
        lo = np.where(go_right, mid + 1, lo)
        hi = np.where(active & ~go_right, mid, hi)
    return lo


def _reject_nan(values: np.ndarray, what: str) -> None:
    """Raise a user-facing error if ``values`` holds NaN."""
    nan = np.isnan(values)
    if nan.any():
        first = np.argwhere(nan)[0].tolist()
        raise InfAlignError(
            f"{int(nan.sum())} NaN value(s) in the {what} (first at index {first}); "
            "the reward function must return a finite number for every response."
        )


# --- the on-disk cache -------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$INFALIGN_CACHE_DIR`` if set, else ``<repo>/cache/banks``."""
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[1] / "cache" / "banks"


def prompts_sha256(prompts: Sequence[str]) -> str:
    """sha256 of the exact prompt list (order matters: bank rows follow it)."""
    return hashlib.sha256(json.dumps(list(prompts), ensure_ascii=False).encode("utf-8")).hexdigest()


def bank_settings(
    policy,
    reward_fn,
    prompts: Sequence[str],
    m: int,
    sampling: SamplingSettings,
) -> dict:
    """Everything that determines a bank's contents; its sha256 (``settings_key``) is the cache key.

    Models enter by what they compute (``policy_identity``, ``reward_identity``), not by the name
    they were loaded under, so "default" and the same folder's path share banks; the names are
    kept under "sources", which the key ignores. The sampling settings enter by ``key``: the batch
    size is left out, as it changes the random stream, not the distribution the bank estimates.
    """
    return {
        "code_version": CODE_VERSION,
        "policy": policy_identity(policy),
        "reward": reward_identity(reward_fn),
        "prompts_sha256": prompts_sha256(prompts),
        "num_prompts": len(prompts),
        "m": int(m),
        **sampling.key(),
        "sources": {
            "policy": str(getattr(policy, "source", "")),
            "reward": str(getattr(reward_fn, "name", "")),
        },
    }


def settings_key(settings: dict) -> str:
    """sha256 of the canonical JSON of ``settings`` (its informative "sources" left out)."""
    material = {k: v for k, v in settings.items() if k != "sources"}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode("utf-8")).hexdigest()


def bank_paths(cache_dir: Path, key: str) -> tuple[Path, Path]:
    """The (.npz, .json) pair a bank with this key lives in."""
    stem = Path(cache_dir) / f"bank-{key[:24]}"
    return stem.with_suffix(".npz"), stem.with_suffix(".json")


def save_bank(bank: ReferenceBank, cache_dir: Path) -> Path:
    """Write ``bank`` atomically: the .npz first, then the sidecar that marks it complete."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    npz_path, json_path = bank_paths(cache_dir, bank.key)
    tmp_npz = npz_path.with_name(f".{npz_path.name}.{uuid.uuid4().hex}.tmp")  # unique per writer
    with open(tmp_npz, "wb") as handle:
        np.savez(handle, rewards=bank.rewards)
    os.replace(tmp_npz, npz_path)
    sidecar = {
        "key": bank.key,
        "settings": bank.settings,
        "rewards_sha256": _array_sha256(bank.rewards),
        "shape": list(bank.rewards.shape),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "prompts": bank.prompts,
    }
    tmp_json = json_path.with_name(f".{json_path.name}.{uuid.uuid4().hex}.tmp")
    tmp_json.write_text(json.dumps(sidecar, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp_json, json_path)
    bank.path = npz_path
    return npz_path


def load_cached_bank(cache_dir: Path, key: str, prompts: Sequence[str]) -> tuple[ReferenceBank | None, str]:
    """Return (bank, "") on a valid hit, (None, "") on a miss, (None, notice) if the files are bad.

    Bad files (truncated, edited, mismatched) are removed so the caller rebuilds them.
    """
    npz_path, json_path = bank_paths(cache_dir, key)
    if not json_path.exists():
        return None, ""  # no sidecar: never completed (a crash between the two writes included)
    try:
        sidecar = json.loads(json_path.read_text(encoding="utf-8"))
        with np.load(npz_path, allow_pickle=False) as archive:
            rewards = np.asarray(archive["rewards"], dtype=np.float64)
        problem = ""
        if sidecar.get("key") != key:
            problem = "its key does not match"
        elif list(rewards.shape) != sidecar.get("shape") or _array_sha256(rewards) != sidecar.get(
            "rewards_sha256"
        ):
            problem = "its rewards do not match their checksum"
        elif sidecar.get("prompts") != list(prompts):
            problem = "its prompts differ"
        if not problem:
            bank = ReferenceBank(list(prompts), rewards, key=key, settings=sidecar["settings"])
            bank.path, bank.cached = npz_path, True
            return bank, ""
    except Exception as err:  # any unreadable file means the same thing: rebuild it
        problem = f"it could not be read ({type(err).__name__}: {err})"
    for path in (json_path, npz_path):
        path.unlink(missing_ok=True)
    return None, f"The cached bank {npz_path.name} was unusable ({problem}); it was rebuilt."


def _array_sha256(array: np.ndarray) -> str:
    """sha256 of an array's float64 bytes in C order."""
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float64).tobytes()).hexdigest()


# --- building banks ----------------------------------------------------------------------


def build_reference_bank(
    policy,
    reward_fn,
    prompts: Sequence[str],
    m: int,
    sampling: SamplingSettings = DEFAULT_SAMPLING,
    *,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    score_batch_size: int = 512,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ReferenceBank:
    """Sample m reference responses per prompt from ``policy``, score them, sort: the bank.

    Reuses a cached bank built from identical settings; stores a new one only once it is
    complete. If ``should_stop()`` turns true midway, raises CalibrationCancelled.
    """
    prompts = list(prompts)
    if not prompts:
        raise InfAlignError("No prompts to calibrate on: choose at least one prompt.")
    if int(m) < 1:
        raise InfAlignError(f"m (reference samples per prompt) must be at least 1, got {m}.")
    sampling = _check_sampling(sampling)
    if use_cache and not str(getattr(reward_fn, "fingerprint", "")):
        raise InfAlignError(
            f"Reward {getattr(reward_fn, 'name', reward_fn)!r} has no fingerprint, so its banks cannot be "
            "cached safely; give it a fingerprint that changes when its scores do, or pass use_cache=False."
        )
    settings = bank_settings(policy, reward_fn, prompts, m, sampling)
    key = settings_key(settings)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    notices = []
    if use_cache:
        bank, notice = load_cached_bank(cache_dir, key, prompts)
        if bank is not None:
            return bank
        if notice:
            notices.append(notice)

    prompt_index, rewards = score_reference_samples(
        policy,
        reward_fn,
        prompts,
        int(m),
        sampling,
        score_batch_size=score_batch_size,
        progress=progress,
        should_stop=should_stop,
    )
    bank = bank_from_samples(prompts, prompt_index, rewards, key=key, settings=settings, notices=notices)
    if use_cache:
        save_bank(bank, cache_dir)
    return bank


def score_reference_samples(
    policy,
    reward_fn,
    prompts: Sequence[str],
    n: int,
    sampling: SamplingSettings = DEFAULT_SAMPLING,
    *,
    score_batch_size: int = 512,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """n reference samples per prompt and their rewards: (prompt_index, rewards), batched.

    Raises CalibrationCancelled if ``should_stop()`` becomes true before every prompt is done.
    """
    from infalign_core.sampling import sample

    total = len(prompts) * n
    samples = sample(
        policy,
        prompts,
        n,
        sampling,
        progress=None if progress is None else (lambda done, _total: progress(done, total, "sampling")),
        should_stop=should_stop,
    )
    if len(samples.responses) < total:
        raise CalibrationCancelled(
            f"Cancelled after sampling {len(samples.responses)} of {total} reference responses; "
            "nothing was stored."
        )
    prompt_index = np.asarray(samples.prompt_index, dtype=np.int64)
    full_prompts = [prompts[i] for i in prompt_index]
    rewards = np.empty(total, dtype=np.float64)
    for start in range(0, total, score_batch_size):
        if should_stop is not None and should_stop():
            raise CalibrationCancelled(
                f"Cancelled after scoring {start} of {total} reference responses; nothing was stored."
            )
        stop = min(start + score_batch_size, total)
        scores = np.asarray(reward_fn.score(full_prompts[start:stop], samples.responses[start:stop]))
        rewards[start:stop] = scores.astype(np.float64).reshape(-1)
        if progress is not None:
            progress(stop, total, "scoring")
    if getattr(reward_fn, "may_abstain", False) and np.isnan(rewards).any():
        rewards = _redraw_unscored(
            policy,
            reward_fn,
            prompts,
            prompt_index,
            rewards,
            sampling,
        )
    _reject_nan(rewards, f"rewards of '{reward_fn.name}' on the reference samples")
    return prompt_index, rewards


REDRAW_ROUNDS = 3


def _redraw_unscored(
    policy, reward_fn, prompts, prompt_index, rewards, sampling: SamplingSettings
) -> np.ndarray:
    """Replace reference samples a judge left unscored with fresh ones for the same prompt.

    A bank must hold m *scored* rewards per prompt. Redrawing conditions it on "the judge could
    score it", the same condition the policy's samples meet when their unscored ones are left
    out, so calibrated rewards compare like with like. Up to REDRAW_ROUNDS rounds; a judge that
    still fails is refused with its unscored share, never filled in.
    """
    from infalign_core.sampling import sample

    rewards, total_redrawn = rewards.copy(), 0
    for round_ in range(1, REDRAW_ROUNDS + 1):
        holes = np.flatnonzero(np.isnan(rewards))
        if not holes.size:
            break
        total_redrawn += holes.size
        owners = prompt_index[holes]
        needed = np.bincount(owners, minlength=len(prompts))
        asked = np.flatnonzero(needed)
        fresh = sample(
            policy,
            [prompts[i] for i in asked],
            int(needed.max()),
            dataclasses.replace(sampling, seed=int(sampling.seed) + 7_919 * round_ + 1),
        )
        per_prompt = int(needed.max())
        picks = [j * per_prompt + t for j, p in enumerate(asked) for t in range(needed[p])]
        scores = np.asarray(
            reward_fn.score(
                [prompts[asked[i // per_prompt]] for i in picks], [fresh.responses[i] for i in picks]
            ),
            dtype=np.float64,
        )
        # holes are sorted by position and rows are grouped by prompt, so picks line up with holes.
        rewards[holes[np.argsort(owners, kind="stable")]] = scores
    left = int(np.isnan(rewards).sum())
    if left:
        raise InfAlignError(
            f"'{reward_fn.name}' left {left} of {rewards.size} reference samples unscored even after "
            f"{REDRAW_ROUNDS} redraws: its answers do not follow the rubric's format. Use a stronger judge "
            "or raise its max_new_tokens."
        )
    note = f"{total_redrawn} reference sample(s) the judge left unscored were redrawn for the bank."
    if isinstance(getattr(reward_fn, "notes", None), list) and note not in reward_fn.notes:
        reward_fn.notes.append(note)
    return rewards


def heldout_rewards(
    policy,
    reward_fn,
    bank: ReferenceBank,
    n: int,
    *,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    batch_size: int = 256,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """n fresh reference samples per bank prompt, independent of the bank: (prompt_index, rewards).

    Same policy and sampling settings as the bank, seed + HELDOUT_SEED_OFFSET; cached like a bank.
    """
    drawn = bank.settings.get("sampling", {})
    sampling = SamplingSettings(
        max_new_tokens=drawn.get("max_new_tokens", 24),
        temperature=drawn.get("temperature", 1.0),
        top_p=drawn.get("top_p", 1.0),
        seed=int(bank.settings.get("seed", 0)) + HELDOUT_SEED_OFFSET,
        batch_size=batch_size,
    )
    heldout = build_reference_bank(
        policy,
        reward_fn,
        bank.prompts,
        n,
        sampling,
        cache_dir=cache_dir,
        use_cache=use_cache,
        progress=progress,
        should_stop=should_stop,
    )
    return np.repeat(np.arange(heldout.num_prompts), heldout.m), heldout.rewards.ravel()


def _check_sampling(sampling: SamplingSettings) -> SamplingSettings:
    """The settings, checked; a bank also refuses greedy decoding (temperature 0 draws no sample)."""
    if int(sampling.max_new_tokens) < 1:
        raise InfAlignError(f"max_new_tokens must be at least 1, got {sampling.max_new_tokens}.")
    if not (np.isfinite(sampling.temperature) and sampling.temperature > 0):
        raise InfAlignError(f"temperature must be > 0, got {sampling.temperature}.")
    if not (0 < sampling.top_p <= 1):
        raise InfAlignError(f"top_p must be in (0, 1], got {sampling.top_p}.")
    return sampling.checked()


@dataclass
class CalibrationResult:
    """A bank, fresh held-out reference rewards for its prompts, and their uniformity check."""

    bank: ReferenceBank
    heldout_prompt_index: np.ndarray
    heldout_rewards: np.ndarray
    uniformity: UniformityCheck


def calibrate(
    policy,
    reward_fn,
    prompts: Sequence[str],
    m: int,
    sampling: SamplingSettings = DEFAULT_SAMPLING,
    *,
    heldout: int | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    num_permutations: int = 1000,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> CalibrationResult:
    """Build (or reuse) the bank and ``heldout`` (default m) fresh samples per prompt; KS-check them.

    ``progress(done, total, stage)`` is told the stage, e.g. "bank: sampling" or "held-out: scoring".
    """

    def staged(name: str) -> Progress | None:
        if progress is None:
            return None
        return lambda done, total, stage: progress(done, total, f"{name}: {stage}")

    bank = build_reference_bank(
        policy,
        reward_fn,
        prompts,
        m,
        sampling,
        cache_dir=cache_dir,
        use_cache=use_cache,
        progress=staged("bank"),
        should_stop=should_stop,
    )
    index, rewards = heldout_rewards(
        policy,
        reward_fn,
        bank,
        int(heldout or m),
        cache_dir=cache_dir,
        use_cache=use_cache,
        batch_size=sampling.batch_size,
        progress=staged("held-out"),
        should_stop=should_stop,
    )
    check = uniformity_check(bank, index, rewards, num_permutations=num_permutations, seed=sampling.seed)
    return CalibrationResult(bank, index, rewards, check)


# --- diagnostics -------------------------------------------------------------------------


@dataclass
class UniformityCheck:
    """KS test of held-out calibrated rewards against Uniform[0, 1]."""

    ks_statistic: float
    ks_pvalue: float
    num_samples: int
    m: int
    pit: np.ndarray
    """Sorted randomised calibrated rewards (j + V)/(m + 1): the values the KS test compares."""
    ecdf: np.ndarray
    """ECDF of ``pit`` at each point, (i + 1)/n; plot against the diagonal."""
    calibrated: np.ndarray
    """The plain mid-rank calibrated rewards of the held-out samples, unsorted."""
    num_permutations: int


def uniformity_check(
    bank: ReferenceBank,
    heldout_prompt_index,
    heldout_rewards,
    *,
    num_permutations: int = 1000,
    seed: int = 0,
) -> UniformityCheck:
    """Are the calibrated rewards of fresh reference samples Uniform[0, 1]? (KS statistic, p-value).

    With finite m the mid-rank is discrete, so the test uses its randomised form: j, the number
    of bank rewards below the held-out reward (ties broken at random), spread uniformly over
    its cell, U = (j + V)/(m + 1) with V ~ Uniform[0, 1). If bank and held-out samples come
    from the same distribution, j is uniform on {0..m} and U exactly Uniform[0, 1]. Held-out
    samples of one prompt share its bank, so they are not independent and scipy's KS p-value
    would be too small; the p-value here is exact up to Monte Carlo error: the share of
    ``num_permutations`` simulated banks under the null (i.i.d. reference rewards, which a
    random tie-break makes continuous) whose KS statistic is at least the observed one.
    """
    rows = bank.rewards
    index = np.asarray(heldout_prompt_index, dtype=np.int64).ravel()
    values = np.asarray(heldout_rewards, dtype=np.float64).ravel()
    if index.size == 0 or index.shape != values.shape:
        raise InfAlignError("The uniformity check needs held-out rewards, one prompt index per reward.")
    if int(num_permutations) < 1:
        raise InfAlignError(f"num_permutations must be at least 1, got {num_permutations}.")
    calibrated = calibrated_reward(bank, index, values)
    rng = np.random.default_rng(seed)

    # Ties broken by a random key per bank entry and per held-out sample: (reward, key) order.
    bank_keys = rng.random(rows.shape)
    order = np.lexsort((bank_keys, rows), axis=1)
    rows_sorted = np.take_along_axis(rows, order, axis=1)
    keys_sorted = np.take_along_axis(bank_keys, order, axis=1)
    heldout_keys = rng.random(values.shape)

    def below(cols: np.ndarray) -> np.ndarray:
        bank_values = rows_sorted[index, cols]
        tied = (bank_values == values) & (keys_sorted[index, cols] < heldout_keys)
        return (bank_values < values) | tied

    j = _count_below(bank.m, values.size, below)
    pit = (j + rng.random(j.shape)) / (bank.m + 1)
    observed = _ks_uniform(pit[None, :])[0]

    counts = np.bincount(index, minlength=bank.num_prompts)
    null = _null_ks_statistics(counts[counts > 0], bank.m, int(num_permutations), rng)
    pvalue = (1.0 + np.count_nonzero(null >= observed - 1e-12)) / (len(null) + 1.0)
    pit_sorted = np.sort(pit)
    return UniformityCheck(
        ks_statistic=float(observed),
        ks_pvalue=float(pvalue),
        num_samples=int(values.size),
        m=bank.m,
        pit=pit_sorted,
        ecdf=np.arange(1, pit.size + 1) / pit.size,
        calibrated=calibrated,
        num_permutations=int(num_permutations),
    )


def _ks_uniform(samples: np.ndarray) -> np.ndarray:
    """KS distance to Uniform[0, 1] of each row of ``samples`` ([replicates, n])."""
    x = np.sort(samples, axis=-1)
    n = x.shape[-1]
    i = np.arange(1, n + 1)
    return np.maximum((i / n - x).max(axis=-1), (x - (i - 1) / n).max(axis=-1))


def _null_ks_statistics(counts: np.ndarray, m: int, replicates: int, rng) -> np.ndarray:
    """KS statistics of the randomised calibrated reward when bank and held-out are i.i.d.

    Under that null, with ties broken at random, which of a prompt's m + h pooled rewards are
    its h held-out ones is a uniformly random subset: shuffle a row of h marks among m blanks;
    a held-out sample's j is the number of blanks before its mark. This keeps the dependence
    among held-out samples that share a bank, and costs O(m + h) per prompt and replicate.
    """
    total = int(counts.sum())
    out = np.empty(replicates)
    chunk = max(1, 4_000_000 // max(1, len(counts) * m + total))
    for start in range(0, replicates, chunk):
        b = min(chunk, replicates - start)
        pieces = []
        for h in np.unique(counts).astype(int):
            rows = b * int(np.count_nonzero(counts == h))
            marks = np.zeros((rows, m + h), dtype=bool)
            marks[:, :h] = True
            marks = rng.permuted(marks, axis=1)
            j = np.cumsum(~marks, axis=1)[marks]  # row-major: each row's h values stay together
            pieces.append(j.reshape(b, -1))
        j = np.concatenate(pieces, axis=1)
        out[start : start + b] = _ks_uniform((j + rng.random(j.shape)) / (m + 1))
    return out


@dataclass
class CalibrationErrorCurve:
    """RMS error of the calibrated reward estimated from m reference samples, by m."""

    m_values: np.ndarray
    rmse: np.ndarray
    theory_rmse: np.ndarray
    """sqrt(mean u(1−u)/m · (M−m)/(M−1)): the estimate's spread around the full bank of M."""
    theory_rmse_infinite: np.ndarray
    """sqrt(mean u(1−u)/m): the same against the exact C (an infinite bank)."""
    full_m: int


def calibration_error_curve(
    bank: ReferenceBank,
    heldout_prompt_index,
    heldout_rewards,
    *,
    m_values: Sequence[int] | None = None,
    repeats: int = 8,
    seed: int = 0,
) -> CalibrationErrorCurve:
    """How far C estimated from m of the bank's samples is from C against the whole bank.

    For each m, random m-subsets (without replacement) of every prompt's M bank rewards
    calibrate the held-out rewards; the error is measured against the full bank. Theory: the
    estimate is a mean of m draws of 1{z<r} + ½1{z=r}, variance u(1−u)/m without ties, times the
    finite-population factor (M−m)/(M−1) because the reference is the bank itself.
    """
    rows = bank.rewards
    full_m = bank.m
    index = np.asarray(heldout_prompt_index, dtype=np.int64).ravel()
    values = np.asarray(heldout_rewards, dtype=np.float64).ravel()
    if full_m < 2:
        raise InfAlignError("The error curve needs a bank with m >= 2.")
    if m_values is None:
        m_values = [2**k for k in range(int(np.log2(full_m)) + 1) if 2**k < full_m]
    m_values = np.array(sorted({int(v) for v in m_values if 1 <= int(v) < full_m}), dtype=np.int64)
    if m_values.size == 0:
        raise InfAlignError(f"m_values must lie in 1..{full_m - 1} (the bank has m = {full_m}).")
    truth = calibrated_reward(bank, index, values)
    # Per-element score variance: u(1−u) without ties, smaller with ties (½ scores).
    less = _count_below(full_m, values.size, lambda cols: rows[index, cols] < values)
    equal = _count_below(full_m, values.size, lambda cols: rows[index, cols] <= values) - less
    score_var = np.maximum((less + 0.25 * equal) / full_m - truth**2, 0.0)

    rng = np.random.default_rng(seed)
    rmse = np.empty(m_values.size)
    for k, m in enumerate(m_values):
        squared = 0.0
        for _ in range(repeats):
            subset = np.argsort(rng.random(rows.shape), axis=1)[:, :m]
            sub_bank = np.sort(np.take_along_axis(rows, subset, axis=1), axis=1)
            squared += np.mean((calibrated_reward(sub_bank, index, values) - truth) ** 2)
        rmse[k] = np.sqrt(squared / repeats)
    mean_var = score_var.mean()
    return CalibrationErrorCurve(
        m_values=m_values,
        rmse=rmse,
        theory_rmse=np.sqrt(mean_var / m_values * (full_m - m_values) / (full_m - 1)),
        theory_rmse_infinite=np.sqrt(mean_var / m_values),
        full_m=full_m,
    )


def raw_reward_spread(
    bank: ReferenceBank,
    *,
    quantiles: Sequence[float] = (0.1, 0.25, 0.5, 0.75, 0.9),
    beta: float | None = None,
):
    """Per-prompt raw-reward statistics (a pandas DataFrame, one row per prompt).

    Columns: prompt, mean, std, min, q10.., max, iqr. With ``beta``, also ``kl_raw`` and
    ``kl_calibrated``: the KL from the bank's empirical reference distribution of the policy
    tilted by exp(r/β) (raw) or exp(C/β) (calibrated). The raw KL varies with each prompt's
    reward spread; the calibrated one is the same for every prompt.
    """
    import pandas as pd

    rows = bank.rewards
    table = {
        "prompt": bank.prompts,
        "mean": rows.mean(axis=1),
        "std": rows.std(axis=1),
        "min": rows[:, 0],
    }
    for q in quantiles:
        name = "median" if q == 0.5 else f"q{round(100 * q):02d}"
        table[name] = np.quantile(rows, q, axis=1)
    table["max"] = rows[:, -1]
    table["iqr"] = np.quantile(rows, 0.75, axis=1) - np.quantile(rows, 0.25, axis=1)
    if beta is not None:
        if not beta > 0:
            raise InfAlignError(f"beta must be > 0, got {beta}.")
        own = calibrated_reward(bank, np.repeat(np.arange(bank.num_prompts), bank.m), rows.ravel())
        table["kl_raw"] = tilted_kl(rows, beta)
        table["kl_calibrated"] = tilted_kl(own.reshape(rows.shape), beta)
    return pd.DataFrame(table)


def tilted_kl(rewards: np.ndarray, beta: float) -> np.ndarray:
    """KL(π_β ‖ uniform) per row, π_β ∝ exp(reward/β) over the row's m equally likely samples."""
    logits = np.asarray(rewards, dtype=np.float64) / beta
    logits = logits - logits.max(axis=-1, keepdims=True)
    log_weights = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    m = logits.shape[-1]
    return (np.exp(log_weights) * (log_weights + np.log(m))).sum(axis=-1)


def reward_distributions(
    bank: ReferenceBank, heldout_prompt_index, heldout_rewards, prompt_ids: Sequence[int]
):
    """Long-form table (prompt, label, raw, calibrated) of held-out rewards for some prompts."""
    import pandas as pd

    index = np.asarray(heldout_prompt_index, dtype=np.int64)
    values = np.asarray(heldout_rewards, dtype=np.float64)
    keep = np.isin(index, np.asarray(prompt_ids, dtype=np.int64))
    calibrated = calibrated_reward(bank, index[keep], values[keep])
    labels = [f"#{i}: {_shorten(bank.prompts[i])}" for i in index[keep]]
    return pd.DataFrame(
        {"prompt_id": index[keep], "prompt": labels, "raw": values[keep], "calibrated": calibrated}
    )


def _shorten(text: str, width: int = 32) -> str:
    """One-line label of at most ``width`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
