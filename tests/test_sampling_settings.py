"""One value for what shapes a sample: checked once, passed whole, and the bank's cache key made from it."""

import dataclasses
import inspect
from types import SimpleNamespace

import pytest

from infalign_core import arena, calibration, optimum, sampling
from infalign_core.errors import InfAlignError
from infalign_core.sampling_settings import SamplingSettings

POLICY = SimpleNamespace(fingerprint="p1", dtype="float32", tokenizer=None, model=None, source="x")
REWARD = SimpleNamespace(fingerprint="r1", name="oracle")
SETTINGS = SamplingSettings(max_new_tokens=12, temperature=0.7, top_p=0.9, seed=3)


def key(settings: SamplingSettings) -> str:
    return calibration.settings_key(calibration.bank_settings(POLICY, REWARD, ["a", "b"], 16, settings))


@pytest.mark.parametrize(
    "change", [{"max_new_tokens": 13}, {"temperature": 0.8}, {"top_p": 0.95}, {"seed": 4}]
)
def test_changing_any_distribution_field_or_the_seed_changes_the_bank_key(change):
    assert key(dataclasses.replace(SETTINGS, **change)) != key(SETTINGS)


def test_the_batch_size_changes_the_stream_not_the_distribution_so_not_the_key():
    assert key(dataclasses.replace(SETTINGS, batch_size=7)) == key(SETTINGS)


def test_the_key_is_the_one_banks_were_stored_under_before_the_settings_became_one_value():
    # sha256 of the settings built field by field before SamplingSettings: cached banks stay valid.
    assert key(SETTINGS) == "9d9158d8ff682c7524152b01a303c8764db7382009f364a2471c5d17df2b55e4"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_new_tokens", 0, "max_new_tokens must be >= 1"),
        ("temperature", float("nan"), "temperature must be >= 0"),
        ("top_p", 1.5, r"top_p must be in \(0, 1\]"),
        ("batch_size", 0, "batch_size must be >= 1"),
    ],
)
def test_a_setting_out_of_range_is_refused_with_its_range(field, value, message):
    with pytest.raises(InfAlignError, match=message):
        dataclasses.replace(SETTINGS, **{field: value}).checked()


def test_settings_are_frozen_and_passed_whole_where_samples_are_drawn():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SETTINGS.seed = 5  # type: ignore[misc]
    for fn in (
        sampling.sample,
        calibration.build_reference_bank,
        calibration.score_reference_samples,
        calibration.calibrate,
        arena.run_arena,
        optimum.run_optimum,
    ):
        params = inspect.signature(fn).parameters
        assert "sampling" in params, fn.__name__
        assert not {"max_new_tokens", "temperature", "top_p", "seed"} & set(params), fn.__name__


def test_an_arena_records_settings_are_its_sampling_and_models_and_name_a_batch_only_when_not_the_default():
    from infalign_core import arena_results

    models = {
        "reference": SimpleNamespace(fingerprint="ref"),
        "reward_fn": SimpleNamespace(fingerprint="rew"),
    }
    settings = arena_results.record_settings(
        n=4, k=8, prompts="bundled:eval", num_prompts=3, sampling=SETTINGS, **models
    )
    assert settings == {
        "n": 4, "k": 8, "prompts": "bundled:eval", "num_prompts": 3, "max_new_tokens": 12,
        "temperature": 0.7, "top_p": 0.9, "seed": 3, "reference": "ref", "reward": "rew",
    }  # fmt: skip
    batched = arena_results.record_settings(
        n=4, k=8, prompts="bundled:eval", num_prompts=3, sampling=SETTINGS, prompts_per_batch=16, **models
    )
    assert batched == {**settings, "prompts_per_batch": 16}


def test_no_caller_threads_sampling_settings_as_separate_keywords():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    takers = {"sample", "build_reference_bank", "score_reference_samples", "calibrate", "run_arena"}
    takers |= {"run_to_end", "run_optimum", "evaluate_optimum", "bank_settings"}
    loose = {"max_new_tokens", "temperature", "top_p", "seed", "batch_size"}
    found = []
    for folder in ("infalign_core", "app_pages", "scripts", "bench", "tests"):
        for path in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                func = getattr(node, "func", None)
                name = getattr(func, "attr", None) or getattr(func, "id", None)
                if isinstance(node, ast.Call) and name in takers:
                    bad = sorted(k.arg for k in node.keywords if k.arg in loose)
                    if bad:
                        found.append(f"{path.relative_to(root)}:{node.lineno} {name}({', '.join(bad)}=...)")
    assert not found, "pass one SamplingSettings instead:\n" + "\n".join(found)
