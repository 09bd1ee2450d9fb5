"""The arena's sampling loop: sample K responses per prompt from a challenger and the reference, score, estimate.

``run_arena`` works on loaded models (``challengers.load_challenger`` turns a run id or folder into
one), samples and scores both sides a batch of prompts at a time and yields the running estimates.
Beside it: the KL measurement (``arena_kl``), the theory overlays (``arena_theory``) and the
result records (``arena_results``); the estimators themselves are in ``infalign_core.winrate``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from infalign_core.arena_kl import reward_visible_kl, sample_logprobs, top_p_kl_note
from infalign_core.errors import InfAlignError
from infalign_core.sampling_settings import DEFAULT_SAMPLING, SamplingSettings
from infalign_core.winrate import (
    KLEstimate,
    WinRateEstimate,
    _check_mode,
    _check_n,
    estimate_scored_win_rates,
    kl_from_logprobs,
)

# --- the arena: sample, score, estimate, batch by batch ------------------------------------------


@dataclass
class ArenaState:
    """Everything sampled so far and the estimates on it; ``run_arena`` yields one after each batch."""

    prompts: list[str]
    challenger_rewards: np.ndarray  # [p, K]
    reference_rewards: np.ndarray  # [p, K]
    challenger_responses: list[list[str]]
    reference_responses: list[list[str]]
    policy_logprobs: np.ndarray  # [p, K] log π of the challenger's samples
    reference_logprobs: np.ndarray  # [p, K] log π_ref of the same samples
    total_prompts: int
    n: int
    estimate: WinRateEstimate | None = None
    kl: KLEstimate | None = None
    seconds: float = 0.0
    kl_note: str = ""  # why ``kl`` is None when the KL was asked for (top-p < 1)
    calibrated_kl: float | None = None  # the KL the reward sees (see ``reward_visible_kl``)
    tie_share: float | None = None  # share of tied (challenger, reference) sample pairs: ties count ½
    unscored_share: float = 0.0  # share of samples a judge left unscored (left out of the estimates)

    @property
    def done(self) -> int:
        """Prompts evaluated so far."""
        return len(self.prompts)


def check_arena(n: int, k: int, prompts: Sequence[str], prompts_per_batch: int) -> tuple[int, list[str]]:
    """N and the prompts as strings, or InfAlignError: K ≥ N samples per prompt, a prompt, a batch ≥ 1."""
    n = _check_n(n)
    if int(k) < n:
        raise InfAlignError(f"K = {k} samples per prompt cannot form a best-of-{n}; choose K ≥ N")
    prompts = [str(p) for p in prompts]
    if not prompts:
        raise InfAlignError("no prompts to evaluate on")
    if int(prompts_per_batch) < 1:
        raise InfAlignError(f"prompts_per_batch must be ≥ 1, got {prompts_per_batch}")
    return n, prompts


PROMPTS_PER_BATCH = 8
"""The arena's default batch: the reference's samples follow the seed per batch, so a record states
another batch size (``prompts_per_batch`` in its settings) and pairs only with records sampled alike."""


def _stream_seed(seed: int, batch: int, side: int) -> int:
    # Distinct streams per side: the reference against itself must not compare a sample with itself.
    return (int(seed) * 1_000_003 + batch * 7_919 + side * 104_729) % (2**31 - 1)


def run_arena(
    challenger,
    reference,
    reward_fn,
    prompts: Sequence[str],
    *,
    n: int,
    k: int,
    sampling: SamplingSettings = DEFAULT_SAMPLING,
    prompts_per_batch: int = PROMPTS_PER_BATCH,
    resamples: int = 2000,
    level: float = 0.95,
    with_kl: bool = True,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[ArenaState]:
    """Sample K responses per prompt from both policies a batch of prompts at a time; yield the running state.

    ``challenger`` and ``reference`` are LoadedPolicy objects, ``reward_fn`` a RewardFunction.
    Both sides sample as ``sampling`` says (each side and batch on its own stream from its seed);
    the KL is that of the tempered distributions. With top-p < 1 it is not measured (``kl_note`` says why; see ``top_p_kl_note``).
    Estimates are recomputed on all prompts seen after each batch, so a caller can draw them converging.
    The reference and the reward see prompts rendered as the challenger does (``same_rendering``).
    """
    from infalign_core.sampling import sample

    n, prompts = check_arena(n, k, prompts, prompts_per_batch)
    temperature, top_p, seed = sampling.temperature, sampling.top_p, sampling.seed
    if not (np.isfinite(temperature) and temperature > 0):
        raise InfAlignError(f"the arena samples at a temperature > 0, got {temperature}")
    if not (np.isfinite(top_p) and 0 < top_p <= 1):
        raise InfAlignError(f"top-p must be in (0, 1], got {top_p}")
    kl_note = top_p_kl_note(top_p) if with_kl else ""
    with_kl = with_kl and not kl_note
    reference, reward_fn = same_rendering(challenger, reference, reward_fn)
    started = time.perf_counter()
    empty = np.zeros((0, int(k)))
    state = ArenaState([], empty, empty, [], [], empty, empty, len(prompts), n, kl_note=kl_note)
    for batch, lo in enumerate(range(0, len(prompts), int(prompts_per_batch))):
        if should_stop is not None and state.done and should_stop():
            break
        chunk = prompts[lo : lo + int(prompts_per_batch)]
        ours, theirs = (
            sample(
                policy,
                chunk,
                int(k),
                dataclasses.replace(sampling, seed=_stream_seed(seed, batch, side)),
            )
            for side, policy in enumerate((challenger, reference))
        )
        # Both sides in one call: the reward scores each distinct text once, so a response the two
        # policies both wrote gets one score and ties, rather than differing in the last bits.
        rewards = reward_fn.score(
            ours.row_prompts() + theirs.row_prompts(), list(ours.responses) + list(theirs.responses)
        )
        our_rewards, their_rewards = (part.reshape(len(chunk), int(k)) for part in np.split(rewards, 2))
        if with_kl:
            log_pi, log_ref = sample_logprobs(challenger, reference, ours, temperature=temperature)
        else:
            log_pi = log_ref = np.full(len(ours), np.nan)
        state = ArenaState(
            prompts=state.prompts + chunk,
            challenger_rewards=np.vstack([state.challenger_rewards, our_rewards]),
            reference_rewards=np.vstack([state.reference_rewards, their_rewards]),
            challenger_responses=state.challenger_responses + _by_prompt(ours.responses, int(k)),
            reference_responses=state.reference_responses + _by_prompt(theirs.responses, int(k)),
            policy_logprobs=np.vstack([state.policy_logprobs, log_pi.reshape(len(chunk), int(k))]),
            reference_logprobs=np.vstack([state.reference_logprobs, log_ref.reshape(len(chunk), int(k))]),
            total_prompts=len(prompts),
            n=n,
            kl_note=kl_note,
        )
        # A judge may leave samples unscored (NaN): they are left out, never counted as 0.
        state.estimate, extras = estimate_scored_win_rates(
            state.challenger_rewards, state.reference_rewards, n, resamples=resamples, level=level, seed=seed
        )
        state.tie_share, state.unscored_share = extras["tie_share"], extras["unscored_share"]
        if not state.unscored_share:  # the rank-based KL needs every sample ranked
            state.calibrated_kl = reward_visible_kl(state.challenger_rewards, state.reference_rewards)
        if with_kl:
            rows = np.repeat(np.arange(state.done), int(k))
            state.kl = kl_from_logprobs(state.policy_logprobs, state.reference_logprobs, rows)
        state.seconds = time.perf_counter() - started
        yield state


def _by_prompt(responses: Sequence[str], k: int) -> list[list[str]]:
    return [list(responses[i : i + k]) for i in range(0, len(responses), k)]


def same_rendering(challenger, reference, reward_fn):
    """The reference and reward seeing prompts as the challenger does (its chat template use, system prompt).

    A run trained in completion mode, or with a system prompt, is evaluated the same way: its
    checkpoint records its rendering, and both sides and the reward follow it.
    """
    chat = getattr(challenger, "chat", None)
    if chat is None:
        return reference, reward_fn
    if getattr(reference, "chat", chat) != chat:
        reference = dataclasses.replace(reference, chat=chat)  # shares the weights
    if hasattr(reward_fn, "with_chat") and getattr(reward_fn, "chat", chat) != chat:
        reward_fn = reward_fn.with_chat(chat)
    return reference, reward_fn


def rendering_settings(reference, prompt_subset: str | None = None) -> dict:
    """What an arena record adds about prompt rendering and subsets; empty for the template-less default."""
    from infalign_core.chat import rendering_key

    extra = {}
    rendering = rendering_key(reference.tokenizer, getattr(reference, "chat", None))
    if rendering["template"] is not None or rendering["completion"]:
        extra["rendering"] = rendering
    if prompt_subset:
        extra["prompt_subset"] = prompt_subset
    return extra


def run_to_end(challenger, reference, reward_fn, prompts: Sequence[str], **kwargs) -> ArenaState:
    """Run the arena to the end and return its final state (``run_arena``'s arguments)."""
    states = run_arena(challenger, reference, reward_fn, prompts, **kwargs)
    last = None
    for last in states:  # noqa: B007 (only the final state is wanted)
        pass
    return last


@dataclass
class Pick:
    """One prompt's best-of-N (or worst-of-N) pick on each side, from its first N samples."""

    prompt: str
    challenger_response: str
    challenger_reward: float
    reference_response: str
    reference_reward: float
    winner: str  # "challenger", "reference" or "tie"


def example_picks(state: ArenaState, count: int = 3, mode: str = "best") -> list[Pick]:
    """Best-of-N (worst-of-N) picks of the first N samples of a few prompts, side by side, the winner named."""
    mode = _check_mode(mode)
    choose = np.nanargmax if mode == "best" else np.nanargmin  # a judge's unscored samples are skipped
    picks = []
    for row in range(min(count, state.done)):
        ours = state.challenger_rewards[row, : state.n]
        theirs = state.reference_rewards[row, : state.n]
        if np.isnan(ours).all() or np.isnan(theirs).all():
            continue
        i, j = int(choose(ours)), int(choose(theirs))
        # Higher is better in both modes: worst-of-N compares each side's worst pick.
        winner = "tie" if ours[i] == theirs[j] else ("challenger" if ours[i] > theirs[j] else "reference")
        picks.append(
            Pick(
                state.prompts[row],
                state.challenger_responses[row][i],
                float(ours[i]),
                state.reference_responses[row][j],
                float(theirs[j]),
                winner,
            )
        )
    return picks


# --- any inference procedure: the arena's estimate and the theory's curve ----------------------


def arena_calibrated_rewards(state: ArenaState) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated rewards of both sides' samples against K − 1 of the reference side's rewards of the same prompt.

    Mid-rank CDF, ties ½. Sample i of either side is ranked among the reference's samples
    other than the i-th: a reference sample is never compared with itself, and both sides'
    calibrated rewards come from equally large banks, so the reference against itself is
    exactly symmetric. Soft best-of-N and rejection choose by these.
    """
    ours, theirs = state.challenger_rewards, state.reference_rewards
    k = theirs.shape[1]
    if k < 2:
        raise InfAlignError("calibrating the arena's samples needs K ≥ 2 reference samples per prompt")

    def rank(values: np.ndarray) -> np.ndarray:
        others = np.arange(k)[None, :] != (np.arange(values.shape[1]) % k)[:, None]  # [K_side, K]
        below = ((theirs[:, None, :] < values[:, :, None]) & others).sum(axis=2)
        equal = ((theirs[:, None, :] == values[:, :, None]) & others).sum(axis=2)
        return (below + 0.5 * equal) / (k - 1)

    return rank(ours), rank(theirs)


def procedure_estimate(
    state: ArenaState,
    spec: str,
    *,
    draws: int = 2000,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
):
    """The arena's win rate for an inference procedure (winrate.estimate_procedure_win_rate on its samples)."""
    from infalign_core.procedures import parse_procedure
    from infalign_core.winrate import estimate_procedure_win_rate

    proc = parse_procedure(spec)
    calibrated = arena_calibrated_rewards(state) if proc.kind in ("soft", "reject") else (None, None)
    return estimate_procedure_win_rate(
        state.challenger_rewards,
        state.reference_rewards,
        proc,
        challenger_calibrated=calibrated[0],
        reference_calibrated=calibrated[1],
        draws=draws,
        resamples=resamples,
        level=level,
        seed=seed,
    )
