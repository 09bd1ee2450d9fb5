"""Reference banks, the mid-rank calibrated reward, its diagnostics and the bank cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infalign_core import calibration
from infalign_core.calibration import (
    CalibrationCancelled,
    ReferenceBank,
    bank_from_samples,
    bank_settings,
    calibrated_reward,
    calibration_error_curve,
    raw_reward_spread,
    settings_key,
    tilted_kl,
    uniformity_check,
)
from infalign_core.errors import InfAlignError
from infalign_core.sampling_settings import SamplingSettings

# --- the calibrated reward ---------------------------------------------------------------


def test_mid_rank_counts_ties_as_half():
    bank = np.array([[1.0, 2.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0]])
    prompt_index = [0, 0, 0, 0, 0, 0, 1, 1, 1]
    rewards = [2.0, 0.0, 5.0, 1.0, 2.5, 3.0, 0.0, -1.0, 1.0]
    expected = [0.5, 0.0, 1.0, 0.125, 0.75, 0.875, 0.5, 0.0, 1.0]
    np.testing.assert_array_equal(calibrated_reward(bank, prompt_index, rewards), expected)


def test_bank_sorts_rows_and_groups_samples_by_prompt():
    bank = bank_from_samples(["a", "b"], [1, 0, 1, 0], [5.0, 2.0, 4.0, 1.0])
    np.testing.assert_array_equal(bank.rewards, [[1.0, 2.0], [4.0, 5.0]])
    assert (bank.m, bank.num_prompts) == (2, 2)
    with pytest.raises(InfAlignError, match="same number of reference samples"):
        bank_from_samples(["a", "b"], [0, 0, 1], [1.0, 2.0, 3.0])


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(1, 9),
    st.integers(0, 30),
    st.randoms(use_true_random=False),
)
def test_calibrated_reward_matches_the_definition(num_prompts, m, batch, rand):
    rng = np.random.default_rng(rand.randint(0, 2**32 - 1))
    rows = np.sort(rng.integers(-3, 4, (num_prompts, m)).astype(float), axis=1)
    index = rng.integers(0, num_prompts, batch)
    rewards = rng.integers(-4, 5, batch).astype(float)
    expected = [((rows[p] < r).sum() + 0.5 * (rows[p] == r).sum()) / m for p, r in zip(index, rewards)]
    np.testing.assert_allclose(calibrated_reward(rows, index, rewards), np.reshape(expected, (batch,)))


_INCREASING = [
    lambda x: 2.0 * x + 1.0,
    lambda x: x**3 + x,
    lambda x: np.exp(x / 10.0),
    lambda x: np.tanh(x / 100.0),
    lambda x: -1.0 / (x + 100.0),
]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.integers(-40, 40), min_size=5, max_size=5), min_size=1, max_size=4),
    st.lists(st.tuples(st.integers(0, 3), st.integers(-45, 45)), min_size=1, max_size=20),
    st.lists(st.integers(0, len(_INCREASING) - 1), min_size=4, max_size=4),
)
def test_calibrated_reward_is_invariant_under_increasing_transforms(rows, queries, choice):
    """Any increasing transform, even a different one per prompt, leaves C unchanged."""
    rows = np.array(rows, dtype=float) / 4.0  # quarter steps: ties happen
    index = np.array([p % len(rows) for p, _ in queries])
    rewards = np.array([r for _, r in queries], dtype=float) / 4.0
    before = calibrated_reward(np.sort(rows, axis=1), index, rewards)

    def transform(p, x):
        return _INCREASING[choice[p]](x)

    rows_t = np.stack([transform(p, row) for p, row in enumerate(rows)])
    rewards_t = np.array([transform(p, r) for p, r in zip(index, rewards)])
    after = calibrated_reward(np.sort(rows_t, axis=1), index, rewards_t)
    np.testing.assert_array_equal(before, after)


def test_nan_rewards_and_bad_indices_are_clear_errors():
    bank = np.array([[0.0, 1.0]])
    with pytest.raises(InfAlignError, match="NaN"):
        calibrated_reward(bank, [0, 0], [0.5, np.nan])
    with pytest.raises(InfAlignError, match="NaN"):
        ReferenceBank(["a"], np.array([[0.0, np.nan]]))
    with pytest.raises(InfAlignError, match="out of range"):
        calibrated_reward(bank, [1], [0.5])
    with pytest.raises(InfAlignError, match="2 prompts"):
        ReferenceBank(["a", "b"], np.zeros((1, 3)))


# --- diagnostics -------------------------------------------------------------------------


def _synthetic(num_prompts=24, m=48, h=48, seed=0, shift=0.0, ties=False):
    """A bank and held-out rewards from per-prompt normals with very different spreads."""
    rng = np.random.default_rng(seed)
    location = rng.normal(0, 2, (num_prompts, 1))
    scale = rng.uniform(0.1, 3.0, (num_prompts, 1))
    bank = location + scale * rng.normal(size=(num_prompts, m))
    held = location + scale * (rng.normal(size=(num_prompts, h)) + shift)
    if ties:
        bank, held = np.round(bank), np.round(held)
    prompts = [f"prompt {i}" for i in range(num_prompts)]
    return ReferenceBank(prompts, bank), np.repeat(np.arange(num_prompts), h), held.ravel()


@pytest.mark.parametrize("ties", [False, True])
def test_calibrated_reward_is_uniform_under_reference(ties):
    bank, index, held = _synthetic(ties=ties)
    check = uniformity_check(bank, index, held, num_permutations=400)
    assert check.ks_pvalue > 0.05
    assert check.num_samples == held.size and check.m == bank.m
    assert np.all(np.diff(check.pit) >= 0) and check.ecdf[-1] == 1.0


def test_uniformity_check_fails_for_a_miscalibrated_bank():
    bank, index, held = _synthetic(shift=0.3)
    check = uniformity_check(bank, index, held, num_permutations=400)
    assert check.ks_pvalue < 0.01 and check.ks_statistic > 0.08


def test_uniformity_pvalue_accounts_for_the_shared_bank():
    """Many held-out samples per small bank: the permutation p-value stays valid under the null."""
    pvalues = []
    for seed in range(40):
        bank, index, held = _synthetic(num_prompts=6, m=8, h=32, seed=seed)
        pvalues.append(uniformity_check(bank, index, held, num_permutations=200, seed=seed).ks_pvalue)
    assert np.mean(np.array(pvalues) < 0.1) < 0.3  # scipy's i.i.d. KS would reject most of these


def test_calibration_error_shrinks_like_theory():
    bank, index, held = _synthetic(num_prompts=16, m=128, h=32)
    curve = calibration_error_curve(bank, index, held, repeats=6)
    np.testing.assert_array_equal(curve.m_values, [1, 2, 4, 8, 16, 32, 64])
    assert np.all(np.diff(curve.rmse) < 0)
    ratio = curve.rmse / curve.theory_rmse
    assert np.all((ratio > 0.8) & (ratio < 1.25)), ratio
    assert np.all(curve.theory_rmse <= curve.theory_rmse_infinite)


def test_raw_spread_gives_prompts_different_kl_but_calibration_does_not():
    bank, _, _ = _synthetic(num_prompts=8, m=64)
    table = raw_reward_spread(bank, beta=0.5)
    assert list(table["prompt"]) == bank.prompts
    assert {"mean", "std", "min", "q10", "q25", "median", "q75", "q90", "max", "iqr"} <= set(table.columns)
    np.testing.assert_allclose(table["median"], np.median(bank.rewards, axis=1))
    assert table["kl_raw"].max() > 3 * table["kl_raw"].min()
    np.testing.assert_allclose(table["kl_calibrated"], table["kl_calibrated"].iloc[0])


def test_tilted_kl_is_zero_for_flat_rewards_and_log_m_in_the_greedy_limit():
    np.testing.assert_allclose(tilted_kl(np.zeros((2, 5)), 1.0), 0.0, atol=1e-12)
    np.testing.assert_allclose(tilted_kl(np.array([[0.0, 1.0, 2.0, 3.0]]), 1e-4), np.log(4), rtol=1e-6)


# --- cache keys and storage ---------------------------------------------------------------


class _Stub:
    def __init__(self, **kw):
        self.__dict__.update(kw)


_POLICY = _Stub(source="default", fingerprint="policy-sha", dtype="torch.float32")
_REWARD = _Stub(name="default", fingerprint="reward-sha")
_BASE = dict(prompts=["a", "b"], m=8, max_new_tokens=16, temperature=1.0, top_p=1.0, seed=0)


def _key(policy=_POLICY, reward=_REWARD, **changes):
    args = {**_BASE, **changes}
    prompts, m = args.pop("prompts"), args.pop("m")
    return settings_key(bank_settings(policy, reward, prompts, m, SamplingSettings(**args)))


@pytest.mark.parametrize(
    "change",
    [
        {"prompts": ["a", "c"]},
        {"prompts": ["b", "a"]},
        {"m": 16},
        {"seed": 1},
        {"temperature": 0.7},
        {"top_p": 0.9},
        {"max_new_tokens": 8},
        {"policy": _Stub(source="default", fingerprint="other", dtype="torch.float32")},
        {"policy": _Stub(source="default", fingerprint="policy-sha", dtype="torch.bfloat16")},
        {"reward": _Stub(name="default", fingerprint="other")},
    ],
)
def test_cache_key_changes_with_every_setting(change):
    assert _key(**change) != _key()


def test_cache_key_is_stable_for_identical_settings_however_the_models_were_named():
    assert _key() == _key(temperature=1, m=8)
    renamed_policy = _Stub(source="/abs/assets/world/policy", fingerprint="policy-sha", dtype="torch.float32")
    renamed_reward = _Stub(name="/abs/assets/world/reward", fingerprint="reward-sha")
    assert _key(policy=renamed_policy, reward=renamed_reward) == _key()


def test_reward_without_fingerprint_cannot_be_cached(tmp_path):
    with pytest.raises(InfAlignError, match="no fingerprint"):
        _build(_POLICY, _Stub(name="mine", fingerprint=""), tmp_path)


def test_saved_bank_round_trips_and_a_corrupt_one_is_reported(tmp_path):
    settings_ = bank_settings(
        _POLICY,
        _REWARD,
        ["a", "b"],
        3,
        SamplingSettings(max_new_tokens=4, temperature=1.0, top_p=1.0, seed=0),
    )
    key = settings_key(settings_)
    bank = ReferenceBank(["a", "b"], np.arange(6.0).reshape(2, 3), key=key, settings=settings_)
    path = calibration.save_bank(bank, tmp_path)
    loaded, notice = calibration.load_cached_bank(tmp_path, key, ["a", "b"])
    assert notice == "" and loaded.cached and loaded.path == path
    np.testing.assert_array_equal(loaded.rewards, bank.rewards)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["settings"]["m"] == 3 and sidecar["prompts"] == ["a", "b"]
    assert not list(tmp_path.glob(".*tmp"))

    path.write_bytes(b"not a zip file")
    loaded, notice = calibration.load_cached_bank(tmp_path, key, ["a", "b"])
    assert loaded is None and "unusable" in notice and "rebuilt" in notice
    assert not path.exists()  # removed, so the next build rewrites it
    assert calibration.load_cached_bank(tmp_path, key, ["a", "b"]) == (None, "")


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("INFALIGN_CACHE_DIR", str(tmp_path))
    assert calibration.default_cache_dir() == tmp_path
    monkeypatch.delenv("INFALIGN_CACHE_DIR")
    assert calibration.default_cache_dir().parts[-2:] == ("cache", "banks")


def test_cancelled_error_is_a_user_error():
    assert issubclass(CalibrationCancelled, InfAlignError)


# --- building banks from a real (tiny) policy ----------------------------------------------

_PROMPTS = ["the movie", "this film was", "the plot", "the acting is", "the ending", "the music felt"]


@pytest.fixture(scope="module")
def sentiment_reward():
    """The tiny world's graded toy sentiment of prompt + response (integer-valued: many ties)."""
    from conftest import tiny_sentiment

    from infalign_core.rewards import callable_reward

    return callable_reward(lambda prompt, response: tiny_sentiment(prompt + response), "tiny-sentiment")


def _build(policy, reward, cache_dir, **changes):
    args = {"m": 8, "max_new_tokens": 8, "seed": 0, "prompts": _PROMPTS[:3], **changes}
    prompts, m = args.pop("prompts"), args.pop("m")
    sampling = {k: args.pop(k) for k in list(args) if k in SamplingSettings.__dataclass_fields__}
    return calibration.build_reference_bank(
        policy, reward, prompts, m, SamplingSettings(**sampling), cache_dir=cache_dir, **args
    )


@pytest.mark.slow
def test_bank_is_reused_on_identical_settings_and_rebuilt_when_one_changes(
    tiny_policy, sentiment_reward, tmp_path
):
    first = _build(tiny_policy, sentiment_reward, tmp_path)
    assert not first.cached and first.rewards.shape == (3, 8) and first.path.exists()
    again = _build(tiny_policy, sentiment_reward, tmp_path)
    assert again.cached and again.path == first.path and again.key == first.key
    np.testing.assert_array_equal(again.rewards, first.rewards)
    for change in ({"m": 4}, {"seed": 1}, {"temperature": 0.7}, {"prompts": _PROMPTS[1:4]}):
        other = _build(tiny_policy, sentiment_reward, tmp_path, **change)
        assert not other.cached and other.key != first.key, change
    assert len(list(tmp_path.glob("bank-*.json"))) == 5


@pytest.mark.slow
@pytest.mark.parametrize("stop_during", ["sampling", "scoring"])
def test_interrupted_build_is_not_stored_as_complete(tiny_policy, sentiment_reward, tmp_path, stop_during):
    stages = []
    with pytest.raises(CalibrationCancelled, match="nothing was stored"):
        _build(
            tiny_policy,
            sentiment_reward,
            tmp_path,
            batch_size=8,
            score_batch_size=8,
            progress=lambda done, total, stage: stages.append(stage),
            should_stop=lambda: stop_during in stages,
        )
    assert not list(tmp_path.glob("bank-*"))
    assert not _build(tiny_policy, sentiment_reward, tmp_path, batch_size=8).cached  # built in full now


@pytest.mark.slow
def test_corrupt_cached_bank_is_rebuilt_with_a_notice(tiny_policy, sentiment_reward, tmp_path):
    first = _build(tiny_policy, sentiment_reward, tmp_path)
    first.path.write_bytes(first.path.read_bytes()[:40])  # a truncated write
    rebuilt = _build(tiny_policy, sentiment_reward, tmp_path)
    assert not rebuilt.cached and any("unusable" in n for n in rebuilt.notices)
    np.testing.assert_array_equal(rebuilt.rewards, first.rewards)  # same seed, same bank
    assert _build(tiny_policy, sentiment_reward, tmp_path).cached


@pytest.mark.slow
def test_fresh_reference_samples_are_uniform_and_a_mismatched_bank_is_not(
    tiny_policy, sentiment_reward, tmp_path
):
    result = calibration.calibrate(
        tiny_policy,
        sentiment_reward,
        _PROMPTS,
        32,
        sampling=SamplingSettings(max_new_tokens=10),
        cache_dir=tmp_path,
        num_permutations=500,
    )
    assert result.uniformity.ks_pvalue > 0.05
    assert result.heldout_rewards.size == len(_PROMPTS) * 32
    hot = calibration.build_reference_bank(
        tiny_policy,
        sentiment_reward,
        _PROMPTS,
        32,
        sampling=SamplingSettings(max_new_tokens=10, temperature=2.0),
        cache_dir=tmp_path,
    )
    mismatched = uniformity_check(
        hot, result.heldout_prompt_index, result.heldout_rewards, num_permutations=500
    )
    assert mismatched.ks_pvalue < 0.01


def test_bad_build_settings_are_clear_errors(tmp_path):
    for kwargs, message in (
        ({"prompts": []}, "No prompts"),
        ({"m": 0}, "at least 1"),
        ({"temperature": 0.0}, "temperature must be > 0"),
        ({"top_p": 1.5}, "top_p"),
    ):
        with pytest.raises(InfAlignError, match=message):
            _build(_POLICY, _REWARD, tmp_path, **kwargs)


@pytest.mark.slow
def test_cli_calibrate_prints_the_contract_keys_and_reuses_the_bank(tiny_world, tmp_path, capsys):
    from infalign_core.cli import main

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(_PROMPTS))
    argv = ["calibrate", "--prompts", str(prompts), "--num-prompts", "4", "--m", "8", "--max-new-tokens", "8"]
    argv += ["--policy", str(tiny_world.policy), "--reward", str(tiny_world.reward), "--device", "cpu"]
    argv += ["--cache-dir", str(tmp_path / "banks"), "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(out) == {"ks_statistic", "ks_pvalue", "num_prompts", "m", "bank_path", "cached"}
    assert (out["num_prompts"], out["m"], out["cached"]) == (4, 8, False)
    assert 0 <= out["ks_statistic"] <= 1 and 0 < out["ks_pvalue"] <= 1
    assert Path(out["bank_path"]).exists()
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["cached"] is True
    assert main([*argv[:-1], "--prompts", str(tmp_path / "missing.jsonl")]) == 2
    assert "No file or folder" in capsys.readouterr().err


def test_shipped_world_reward_is_calibrated_by_its_bank(tmp_path):
    from infalign_core import data
    from infalign_core.models import load_policy
    from infalign_core.rewards import load_reward
    from infalign_core.world import POLICY_DIR, PROMPTS_PATH

    if not (POLICY_DIR / "model.safetensors").exists() or not PROMPTS_PATH.exists():
        pytest.skip("bundled world not built")
    prompts = data.load_prompts("bundled", split="eval", limit=8).prompts
    policy, reward = load_policy("default", device="cpu"), load_reward("default", device="cpu")
    result = calibration.calibrate(
        policy,
        reward,
        prompts,
        24,
        sampling=SamplingSettings(max_new_tokens=16),
        cache_dir=tmp_path,
        num_permutations=500,
    )
    assert result.uniformity.ks_pvalue > 0.01
    spread = result.bank.rewards.std(axis=1, keepdims=True)
    shifted = ReferenceBank(prompts, result.bank.rewards - 0.5 * spread)  # a bank that undervalues
    check = uniformity_check(
        shifted, result.heldout_prompt_index, result.heldout_rewards, num_permutations=500
    )
    assert check.ks_pvalue < 0.01


def test_cache_key_changes_with_the_reward_models_dtype():
    def reward(dtype):
        return _Stub(name="rm", fingerprint="reward-sha", loaded=_Stub(dtype=dtype, tokenizer=None))

    assert _key(reward=reward("torch.bfloat16")) != _key(reward=reward("torch.float32"))
    assert _key(reward=reward("torch.float32")) == _key(reward=reward("torch.float32"))


def test_cache_key_changes_with_the_tokenizer_files_and_the_generation_config(tiny_world, tmp_path):
    import shutil

    from transformers import AutoTokenizer, GenerationConfig

    def policy(tokenizer, generation=None):
        return _Stub(
            source="p",
            fingerprint="policy-sha",
            dtype="torch.float32",
            tokenizer=tokenizer,
            model=_Stub(generation_config=generation or GenerationConfig(eos_token_id=0)),
        )

    same = tmp_path / "same"
    shutil.copytree(tiny_world.policy, same)
    base = _key(policy=policy(AutoTokenizer.from_pretrained(tiny_world.policy)))
    assert _key(policy=policy(AutoTokenizer.from_pretrained(same))) == base  # same files, same key

    edited = tmp_path / "edited"  # one more token in tokenizer.json: another tokenizer
    shutil.copytree(tiny_world.policy, edited)
    grown = AutoTokenizer.from_pretrained(edited)
    grown.add_tokens(["<extra>"])
    grown.save_pretrained(edited)
    assert _key(policy=policy(AutoTokenizer.from_pretrained(edited))) != base

    config = json.loads((same / "tokenizer_config.json").read_text())  # another EOS in tokenizer_config.json
    config["eos_token"] = "<pad>" if config.get("eos_token") != "<pad>" else config.get("bos_token")
    (same / "tokenizer_config.json").write_text(json.dumps(config))
    assert _key(policy=policy(AutoTokenizer.from_pretrained(same))) != base

    tokenizer = AutoTokenizer.from_pretrained(tiny_world.policy)  # generation_config.json's EOS ids
    assert _key(policy=policy(tokenizer, GenerationConfig(eos_token_id=[0, 5]))) != base

    reward_tokenizer = _Stub(name="rm", fingerprint="reward-sha", loaded=_Stub(dtype="f32", tokenizer=grown))
    reward_plain = _Stub(name="rm", fingerprint="reward-sha", loaded=_Stub(dtype="f32", tokenizer=tokenizer))
    assert _key(reward=reward_tokenizer) != _key(reward=reward_plain)


def test_the_bank_key_is_the_same_before_and_after_the_reward_scores(tiny_world):
    """Scoring pads and truncates, which a fast tokenizer keeps as state: the key must not see it."""
    from infalign_core import models
    from infalign_core.rewards import SequenceClassifierReward

    loaded = models.load_reward_model(str(tiny_world.reward), device="cpu")
    reward = SequenceClassifierReward(loaded)
    policy = _Stub(source="p", fingerprint="policy-sha", dtype="f32", tokenizer=None, model=None)
    before = _key(policy=policy, reward=reward)
    reward.score(["the movie was", "it is"], [" great fun and long", " bad"])
    loaded.tokenizer(["a", "a much longer text"], padding=True, truncation=True, max_length=4)
    assert _key(policy=policy, reward=reward) == before
