"""Loading policies and reward models: sources, dtypes, fingerprints and every user-facing failure."""

from __future__ import annotations

import shutil

import pytest
import torch

from infalign_core import models
from infalign_core.errors import InfAlignError
from infalign_core.models import (
    PRESETS,
    folder_fingerprint,
    load_policy,
    load_reward_model,
    resolve_device,
    resolve_dtype,
)

WORLD_READY = (models.BUNDLED["policy"] / "config.json").is_file() and (
    models.BUNDLED["reward"] / "config.json"
).is_file()


def test_local_policy_loads_in_eval_mode_with_what_the_page_shows(tiny_world):
    policy = load_policy(str(tiny_world.policy), device="cpu")
    assert not policy.model.training
    assert policy.device == torch.device("cpu")
    assert policy.dtype == torch.float32
    assert policy.num_parameters == sum(p.numel() for p in policy.model.parameters())
    assert policy.size_bytes == 4 * policy.num_parameters
    assert policy.load_seconds > 0
    assert len(policy.fingerprint) == 64
    assert policy.notes == []


def test_fingerprint_is_stable_and_changes_when_weights_change(tiny_world, tmp_path):
    first = folder_fingerprint(tiny_world.policy)
    assert folder_fingerprint(tiny_world.policy) == first
    copy = tmp_path / "copy"
    shutil.copytree(tiny_world.policy, copy)
    assert folder_fingerprint(copy) == first  # content, not location
    weights = next(copy.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert folder_fingerprint(copy) != first


def test_half_precision_checkpoint_is_loaded_as_float32_on_cpu(tiny_world, tmp_path):
    policy = load_policy(str(tiny_world.policy), device="cpu")
    folder = tmp_path / "bf16"
    policy.model.to(torch.bfloat16).save_pretrained(folder)
    policy.tokenizer.save_pretrained(folder)
    policy.model.to(torch.float32)
    loaded = load_policy(str(folder), device="cpu")
    assert loaded.dtype == torch.float32
    assert next(loaded.model.parameters()).dtype == torch.float32


def test_tokenizer_without_pad_token_gets_eos_and_says_so(tiny_world):
    policy = load_policy(str(tiny_world.policy_no_pad), device="cpu")
    assert policy.tokenizer.pad_token == policy.tokenizer.eos_token
    assert any("no pad token" in note for note in policy.notes)


def test_missing_folder_is_named_in_the_error(tmp_path):
    with pytest.raises(InfAlignError, match=r"Folder not found: .*nope"):
        load_policy(str(tmp_path / "nope"))


def test_folder_without_config_is_refused(tiny_world):
    with pytest.raises(InfAlignError, match=r"no config.json"):
        load_policy(str(tiny_world.empty))


def test_pickle_only_folder_is_refused_as_safetensors_only(tiny_world):
    with pytest.raises(InfAlignError, match=r"only pickle weights \(pytorch_model.bin\).*safetensors"):
        load_policy(str(tiny_world.bin_only))


def test_classifier_given_as_policy_is_not_a_causal_lm(tiny_world):
    with pytest.raises(InfAlignError, match=r"not a causal language model.*GPT2ForSequenceClassification"):
        load_policy(str(tiny_world.reward))


def test_policy_given_as_reward_model_is_refused(tiny_world):
    with pytest.raises(InfAlignError, match="not a sequence-classification reward model"):
        load_reward_model(str(tiny_world.policy))


def test_reward_model_reports_labels_and_sets_pad_token_in_config(tiny_world):
    scalar = load_reward_model(str(tiny_world.reward), device="cpu")
    assert scalar.labels == ["LABEL_0"]
    assert scalar.model.config.pad_token_id == scalar.tokenizer.pad_token_id
    two = load_reward_model(str(tiny_world.reward_two_labels), device="cpu")
    assert two.labels == ["NEGATIVE", "POSITIVE"]


def test_hub_id_offline_fails_fast_naming_the_alternatives(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InfAlignError, match=r"cannot be reached.*bundled default.*local folder"):
        load_policy("someone/some-model-that-is-not-cached")


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_offline_fail_with_a_message_naming_what_to_do(monkeypatch, preset):
    monkeypatch.setattr(models, "_endpoint_reachable", lambda timeout=3.0: False)
    with pytest.raises(InfAlignError, match="bundled default"):
        load_policy(preset)
    with pytest.raises(InfAlignError, match="bundled default"):
        load_reward_model(preset)


def test_presets_name_a_policy_a_reward_model_and_their_sizes():
    for preset in PRESETS.values():
        assert "/" in preset.policy and "/" in preset.reward
        assert preset.policy_size and preset.reward_size


def test_out_of_memory_while_loading_becomes_an_actionable_error(tiny_world, monkeypatch):
    import transformers

    def boom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", boom)
    with pytest.raises(InfAlignError, match=r"Not enough memory.*smaller model"):
        load_policy(str(tiny_world.policy))


def test_resolve_device_defaults_to_an_available_device_and_rejects_nonsense():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type in ("cpu", "cuda", "mps")
    with pytest.raises(InfAlignError, match="Unknown device"):
        resolve_device("tpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(InfAlignError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_dtype_is_float32_on_cpu_unless_asked():
    cpu = torch.device("cpu")
    assert resolve_dtype(None, cpu) == torch.float32
    assert resolve_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(InfAlignError, match="Unknown dtype"):
        resolve_dtype("float8", cpu)


@pytest.mark.skipif(not WORLD_READY, reason="the bundled world has not been built yet")
def test_bundled_default_world_loads_as_policy_and_reward_model():
    policy = load_policy("default", device="cpu")
    assert type(policy.model).__name__ == "GPT2LMHeadModel"
    assert policy.tokenizer.pad_token_id is not None and policy.tokenizer.eos_token_id is not None
    reward = load_reward_model("default", device="cpu")
    assert reward.labels and len(reward.labels) == 1
    assert policy.size_bytes < 20_000_000 and reward.size_bytes < 20_000_000


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (OSError("We couldn't connect to 'https://huggingface.co' to load the files"), "Cannot reach"),
        (OSError("org/x is not a local folder and is not a valid model identifier"), "No such model"),
        (OSError("org/x does not appear to have a file named model.safetensors"), "safetensors only"),
        (OSError("You are trying to access a gated repo."), "gated or private"),
        (
            ValueError("Unrecognized configuration class BertConfig for AutoModelForCausalLM"),
            "causal language",
        ),
        (ValueError("requires you to execute custom code; set trust_remote_code=True"), "trust remote code"),
    ],
)
def test_hub_errors_from_transformers_are_explained(raised, expected):
    loc = models._Location("org/x", False, "hub model org/x")
    assert expected in models._explain_load_error(raised, loc, "policy")
