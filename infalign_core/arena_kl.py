"""The challenger's KL against the reference, measured on its own samples, and the KL the reward sees.

The sequence KL comes from both policies' log-probs of the challenger's samples (``sample_logprobs``);
the reward-visible KL from the challenger's mid-ranks among the reference's samples of the same prompt.
"""

from __future__ import annotations

import numpy as np

from infalign_core.errors import InfAlignError


def _same_tokenizer(first, second) -> bool:
    if first is second:
        return True
    try:
        return len(first) == len(second) and first.get_vocab() == second.get_vocab()
    except (AttributeError, TypeError):
        return False


def sample_logprobs(
    policy, reference, samples, *, batch_size: int = 64, temperature: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """log π_T(y|x) and log π_ref,T(y|x) of every sampled response (EOS included where it was emitted).

    Both at the temperature the samples were drawn at (per-token log-softmax of logits / T).
    """
    from infalign_core.sampling import sequence_logprobs

    if not _same_tokenizer(policy.tokenizer, reference.tokenizer):
        raise InfAlignError(
            "the challenger and the reference use different tokenizers, so the KL between them is not "
            "defined token by token; pick a challenger trained from this reference"
        )
    prompts = samples.row_prompts()
    out = []
    for loaded in (policy,) if reference is policy else (policy, reference):
        logp = sequence_logprobs(
            loaded.model,
            loaded.tokenizer,
            prompts,
            samples.response_ids,
            finished=samples.finished,
            batch_size=batch_size,
            temperature=temperature,
            chat=getattr(policy, "chat", None),  # both sides see the prompt as the policy did
        )
        out.append(logp.double().cpu().numpy())
    return out[0], out[-1]


def reward_visible_kl(challenger_rewards, reference_rewards) -> float:
    """The KL the reward sees: each challenger sample's mid-rank among its prompt's K reference samples.

    Counted on the K + 1 rank levels and jackknifed over prompts (``calibration.visible_kl``),
    so it reads what the bank lets the reward see; by data processing at most the sequence KL.
    Compare it with ``optimum.optimum_visible_kl`` at the run's KL and m = K, not with the
    sequence KL: even the exact optimum shows less than its KL through K reference samples.
    """
    from infalign_core.calibration import calibrated_kl, calibrated_reward

    ours = np.asarray(challenger_rewards, dtype=np.float64)
    bank = np.sort(np.asarray(reference_rewards, dtype=np.float64), axis=1)
    rows = np.repeat(np.arange(ours.shape[0]), ours.shape[1])
    calibrated = calibrated_reward(bank, rows, ours.ravel()).reshape(ours.shape)  # one row per prompt
    return calibrated_kl(calibrated, m=bank.shape[1])


def top_p_kl_note(top_p: float) -> str:
    """Why the arena measures no KL at this top-p ('' at top-p = 1, where it does)."""
    if top_p >= 1.0:
        return ""
    return (
        f"KL not measured at top-p = {top_p:g}: nucleus sampling truncates both policies, so a response "
        "outside the reference's nucleus has infinite KL and the estimate is not meaningful; "
        "evaluate at top-p = 1 for the KL (the win rates above are at the top-p you chose)"
    )
