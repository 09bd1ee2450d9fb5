"""CTRL on TRL: the reward function equals ctrl.train's reward, export-trl's folder trains under RLOOTrainer, bad input is refused."""

from __future__ import annotations

import json
import runpy
import sys

import numpy as np
import pytest

from infalign_core import calibration, cli, ctrl
from infalign_core.ctrl import CTRLConfig
from infalign_core.errors import InfAlignError
from infalign_core.integrations import trl as ctrl_trl
from infalign_core.rewards import callable_reward
from infalign_core.sampling_settings import SamplingSettings


def small_config(cache_dir, **overrides) -> CTRLConfig:
    """The bundled world at test size: 4 prompts, m = 8, 2 prompts × k = 4 per step, 8 tokens."""
    base = dict(
        num_prompts=4,
        m=8,
        k=4,
        prompts_per_step=2,
        max_new_tokens=8,
        steps=2,
        device="cpu",
        cache_dir=str(cache_dir),
        sample_every=1000,
    )
    return CTRLConfig(**{**base, **overrides})


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """An export-trl folder for the small config, written through the CLI (--json)."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("trl_export")
    config_path = root / "ctrl.json"
    small_config(root / "cache").save(config_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(
            ["export-trl", "--config", str(config_path), "--out", str(root / "export"), "--json"]
        )
    assert status == 0
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    return root / "export", summary


def project_reward(config: CTRLConfig, prompts, completions) -> np.ndarray:
    """Φ(C) of each completion by the project's own pieces: reward model, cached bank by prompt, make_phi."""
    from infalign_core.models import load_policy
    from infalign_core.rewards import load_reward

    reference = load_policy(config.policy, device="cpu", dtype="float32")
    reward_fn = load_reward(config.reward, device="cpu")
    bank = calibration.build_reference_bank(
        reference,
        reward_fn,
        ctrl.load_prompt_list(config),
        config.m,
        sampling=SamplingSettings(
            max_new_tokens=config.max_new_tokens, temperature=config.temperature, seed=config.seed
        ),
        cache_dir=config.cache_dir,
    )
    assert bank.cached  # the export built it: the same settings must hit the same cache entry
    rows = [bank.prompts.index(p) for p in prompts]
    raw = reward_fn.score(prompts, completions)
    calibrated = calibration.calibrated_reward(bank, rows, raw)
    return np.asarray(ctrl.make_phi(config, config.beta)(calibrated), dtype=np.float64)


# --- the reward function is ctrl.train's reward ------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("transform", ["exp", "log", "raw"])
def test_trl_reward_equals_ctrl_train_reward_for_the_same_samples(transform, exported, monkeypatch):
    """One ctrl.train step, its raw / calibrated / transformed rewards spied on; CTRLReward on the same samples agrees exactly."""
    export_dir, _ = exported
    config = CTRLConfig.load(export_dir / ctrl_trl.CONFIG_FILE)
    config = CTRLConfig.from_dict({**config.to_dict(), "transform": transform, "steps": 1})
    seen: dict[str, list] = {"pairs": [], "calibrated": [], "transformed": []}

    real_calibrated_reward, real_make_phi = calibration.calibrated_reward, ctrl.make_phi

    def spy_calibrated_reward(bank, rows, raw):
        out = real_calibrated_reward(bank, rows, raw)
        seen["calibrated"].append(out)
        return out

    def spy_make_phi(cfg, beta):
        phi = real_make_phi(cfg, beta)
        if phi is None:
            return None

        def recorded_phi(u):
            seen["transformed"].append(np.asarray(phi(u)))
            return seen["transformed"][-1]

        return recorded_phi

    models = ctrl.load_models(config)
    inner = models.reward_fn

    class SpyReward:
        name, fingerprint = inner.name, inner.fingerprint

        def score(self, prompts, responses):
            raw = inner.score(prompts, responses)
            seen["pairs"].append((list(prompts), list(responses), raw))
            return raw

    models.reward_fn = SpyReward()
    monkeypatch.setattr(calibration, "calibrated_reward", spy_calibrated_reward)
    monkeypatch.setattr(ctrl, "make_phi", spy_make_phi)
    metrics = ctrl.train(config, models=models)
    monkeypatch.undo()

    prompts, responses, ctrl_raw = seen["pairs"][-1]  # the step's (banks came from the cache)
    assert len(responses) == config.k * config.prompts_per_step
    ctrl_calibrated = seen["calibrated"][-1]
    ctrl_transformed = ctrl_raw if transform == "raw" else seen["transformed"][-1]
    assert metrics["reward/transformed"] == pytest.approx(float(np.mean(ctrl_transformed)), rel=1e-12)

    from datasets import load_from_disk

    dataset = load_from_disk(str(export_dir / ctrl_trl.DATASET_DIR))
    by_prompt = {row["prompt"]: row for row in dataset}
    column = lambda name: [by_prompt[p][name] for p in prompts]  # noqa: E731
    reward = ctrl_trl.CTRLReward(config, reward_fn=inner, bank_key=dataset[0][ctrl_trl.KEY_COLUMN])
    parts = reward.score(
        prompts,
        responses,
        column(ctrl_trl.BANK_COLUMN),
        bank_key=column(ctrl_trl.KEY_COLUMN),
        reward_fingerprint=column(ctrl_trl.FINGERPRINT_COLUMN),
    )
    np.testing.assert_array_equal(parts.raw, ctrl_raw)
    np.testing.assert_array_equal(parts.calibrated, ctrl_calibrated)
    np.testing.assert_array_equal(parts.transformed, ctrl_transformed)
    as_trl = reward(
        prompts=prompts,
        completions=responses,
        completion_ids=[[0]] * len(prompts),
        reference_rewards=column(ctrl_trl.BANK_COLUMN),
        bank_key=column(ctrl_trl.KEY_COLUMN),
        reward_fingerprint=column(ctrl_trl.FINGERPRINT_COLUMN),
        trainer_state=None,
    )
    assert isinstance(as_trl, list) and all(isinstance(v, float) for v in as_trl)
    np.testing.assert_array_equal(np.asarray(as_trl), ctrl_transformed)


# --- the acceptance test: TRL's RLOOTrainer on the exported folder -----------------------------


@pytest.mark.slow
def test_rloo_trainer_on_the_export_logs_the_projects_calibrated_transformed_reward(
    exported, tmp_path, monkeypatch
):
    """The exported train script runs RLOOTrainer two steps; each logged reward is the mean project reward of its completions."""
    import trl

    export_dir, summary = exported
    calls: list[dict] = []
    trainers: list = []

    class RecordingRLOOTrainer(trl.RLOOTrainer):
        """RLOOTrainer whose reward functions record what TRL passed them and what they returned."""

        def __init__(self, *args, reward_funcs, **kwargs):
            def recorded(func):
                def wrapper(prompts, completions, **columns):
                    out = func(prompts, completions, **columns)
                    calls.append({"prompts": list(prompts), "completions": list(completions), "rewards": out})
                    return out

                wrapper.__name__ = func.__name__
                return wrapper

            super().__init__(*args, reward_funcs=[recorded(f) for f in reward_funcs], **kwargs)
            trainers.append(self)

    monkeypatch.setattr(trl, "RLOOTrainer", RecordingRLOOTrainer)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "ctrl_reward", raising=False)
    script = runpy.run_path(summary["files"][ctrl_trl.TRAIN_SCRIPT], run_name="exported_train_script")
    script["main"]([f"output_dir={tmp_path / 'out'}", "max_steps=2", "save_strategy=no"])
    sys.modules.pop("ctrl_reward", None)

    logged = [row for row in trainers[0].state.log_history if "reward" in row]
    assert len(calls) == 2 and len(logged) == 2
    config = CTRLConfig.load(export_dir / ctrl_trl.CONFIG_FILE)
    for call, row in zip(calls, logged):
        assert len(call["completions"]) == config.k * config.prompts_per_step
        expected = project_reward(config, call["prompts"], call["completions"])
        np.testing.assert_allclose(call["rewards"], expected, rtol=0, atol=1e-12)
        assert row["reward"] == pytest.approx(float(expected.mean()), rel=1e-5, abs=1e-6)
        assert row[f"rewards/{ctrl_trl.REWARD_NAME}/mean"] == pytest.approx(row["reward"])
        assert 0.0 <= row["reward/calibrated"] <= 1.0
    assert (tmp_path / "out" / "model.safetensors").is_file()  # a checkpoint the win-rate arena can load


# --- the export itself ---------------------------------------------------------------------------


@pytest.mark.slow  # shares the export fixture (bank building)
def test_export_writes_dataset_config_module_script_accelerate_config_and_readme(exported):
    """Every promised file is there; the dataset carries sorted banks of m; RLOOConfig gets the project's knobs."""
    from datasets import load_from_disk

    export_dir, summary = exported
    config = CTRLConfig.load(export_dir / ctrl_trl.CONFIG_FILE)
    for name in ctrl_trl._WRITTEN:
        assert (export_dir / name).exists(), name
    dataset = load_from_disk(str(export_dir / ctrl_trl.DATASET_DIR))
    assert set(dataset.column_names) == {"prompt", "reference_rewards", "bank_key", "reward_fingerprint"}
    assert len(dataset) == config.num_prompts == summary["num_prompts"]
    banks = np.asarray(dataset["reference_rewards"])
    assert banks.shape == (config.num_prompts, config.m)
    assert np.all(np.diff(banks, axis=1) >= 0)
    assert set(dataset["bank_key"]) == {summary["bank_key"]}

    settings = json.loads((export_dir / ctrl_trl.RLOO_FILE).read_text())
    assert settings["beta"] == config.beta and settings["num_generations"] == config.k
    assert settings["learning_rate"] == config.learning_rate
    assert settings["max_completion_length"] == config.max_new_tokens
    assert settings["per_device_train_batch_size"] == config.k * config.prompts_per_step
    assert settings["use_cpu"] is True and settings["bf16"] is False
    assert settings["gradient_checkpointing"] is False and settings["remove_unused_columns"] is False

    readme = (export_dir / ctrl_trl.README_FILE).read_text()
    assert summary["launch_command"] in readme
    assert summary["launch_command"].startswith("accelerate launch --config_file ")
    module = (export_dir / ctrl_trl.REWARD_MODULE).read_text()
    assert "reward = load_exported_reward(" in module


@pytest.mark.slow  # shares the export fixture (bank building)
def test_rloo_config_loads_in_trl_with_the_batch_split_over_processes(exported, monkeypatch):
    """The exported settings build a real RLOOConfig; under WORLD_SIZE = 2 each process takes half the completions."""
    export_dir, _ = exported
    args = ctrl_trl.load_rloo_config(export_dir)
    assert args.generation_batch_size == 8 and args.num_generations == 4
    assert args.lr_scheduler_type == "constant" and not args.gradient_checkpointing
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(InfAlignError, match="do not split evenly over 3 processes"):
        ctrl_trl.load_rloo_config(export_dir)


@pytest.mark.parametrize("backend", ctrl_trl.ACCELERATE_BACKENDS)
def test_accelerate_config_is_read_by_accelerate(backend, tmp_path):
    """Each backend's YAML parses as an accelerate ClusterConfig with the asked process count."""
    from accelerate.commands.config.config_args import ClusterConfig

    path = tmp_path / "accelerate.yaml"
    path.write_text(ctrl_trl.accelerate_config_yaml(backend, 4, bf16=True))
    loaded = ClusterConfig.from_yaml_file(str(path))
    assert loaded.num_processes == 4 and str(loaded.mixed_precision) in ("bf16", "PrecisionType.BF16")
    expected = {"fsdp2": "FSDP", "zero2": "DEEPSPEED", "zero3": "DEEPSPEED", "multi_gpu": "MULTI_GPU"}[
        backend
    ]
    assert expected in str(loaded.distributed_type)


# --- bad input -----------------------------------------------------------------------------------


def toy_reward():
    """A cheap reward with a fingerprint: the response's length."""
    return callable_reward(lambda prompt, response: float(len(response)), "length")


def toy_bank_rows(reward, rows=2, m=8, key="k" * 64):
    """Columns TRL would pass for ``rows`` completions."""
    return {
        "reference_rewards": [list(np.arange(m, dtype=float))] * rows,
        "bank_key": [key] * rows,
        "reward_fingerprint": [reward.fingerprint] * rows,
    }


def test_dataset_without_banks_is_refused_with_what_to_do(tmp_path):
    from datasets import Dataset

    reward_fn = toy_reward()
    reward = ctrl_trl.CTRLReward(small_config(tmp_path, reward="oracle"), reward_fn=reward_fn)
    with pytest.raises(
        InfAlignError, match=r"No 'reference_rewards' column.*export-trl.*remove_unused_columns"
    ):
        reward.check_dataset(Dataset.from_dict({"prompt": ["a", "b"]}))
    with pytest.raises(InfAlignError, match="No 'reference_rewards' column"):
        reward(prompts=["a"], completions=["b"], completion_ids=[[1]])
    columns = toy_bank_rows(reward_fn)
    del columns["bank_key"]
    with pytest.raises(InfAlignError, match="no 'bank_key' column"):
        reward(prompts=["a", "b"], completions=["x", "y"], **columns)


def test_bank_from_another_reward_model_is_detected_by_fingerprint_and_key(tmp_path):
    reward_fn = toy_reward()
    reward = ctrl_trl.CTRLReward(small_config(tmp_path), reward_fn=reward_fn, bank_key="k" * 64)
    columns = toy_bank_rows(reward_fn)
    columns["reward_fingerprint"] = ["rm:some-other-model"] * 2
    with pytest.raises(InfAlignError, match="scored by another reward model"):
        reward(prompts=["a", "b"], completions=["x", "y"], **columns)
    columns = toy_bank_rows(reward_fn, key="z" * 64)
    with pytest.raises(
        InfAlignError, match=r"bank_key .* is not the bank this reward function was exported with"
    ):
        reward(prompts=["a", "b"], completions=["x", "y"], **columns)
    columns = toy_bank_rows(reward_fn, m=5)
    with pytest.raises(InfAlignError, match=r"hold 5 rewards per prompt.*m = 8"):
        reward(prompts=["a", "b"], completions=["x", "y"], **columns)


def test_settings_trl_cannot_reproduce_are_refused_before_anything_is_written(tmp_path):
    with pytest.raises(InfAlignError, match=r"adaptive β.*RLOOTrainer.*fixed beta"):
        ctrl_trl.export_trl(small_config(tmp_path, kl_target=2.0), tmp_path / "out")
    with pytest.raises(InfAlignError, match="frozen copy of the initial policy"):
        ctrl_trl.export_trl(small_config(tmp_path, reference="oracle-policy"), tmp_path / "out")
    with pytest.raises(InfAlignError, match="do not split evenly over 3 processes"):
        ctrl_trl.export_trl(small_config(tmp_path), tmp_path / "out", num_processes=3)
    assert not (tmp_path / "out").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(InfAlignError, match="not empty and holds no earlier export"):
        ctrl_trl.export_trl(small_config(tmp_path), foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_cli_export_trl_prints_the_error_and_exits_2(tmp_path, capsys):
    config_path = tmp_path / "c.json"
    small_config(tmp_path, kl_target=1.0).save(config_path)
    assert cli.main(["export-trl", "--config", str(config_path), "--out", str(tmp_path / "o")]) == 2
    assert "adaptive β" in capsys.readouterr().err


def test_raw_reward_needs_no_bank_and_takes_chat_rows_as_trl_passes_them(tmp_path):
    """Standard RLHF (raw) is r itself, bank or not; TRL's conversational rows score as their text."""
    reward_fn = toy_reward()
    reward = ctrl_trl.CTRLReward(small_config(tmp_path, transform="raw"), reward_fn=reward_fn)
    assert reward(prompts=["a", "b"], completions=["xy", "xyz"]) == [2.0, 3.0]
    logged = {}
    out = reward(
        prompts=["a", "b"],
        completions=["xy", "xyz"],
        log_metric=logged.__setitem__,
        **toy_bank_rows(reward_fn),
    )
    assert out == [2.0, 3.0] and logged["reward/calibrated"] == pytest.approx((2.5 + 3.5) / 2 / 8)
    chat = reward(
        prompts=[[{"role": "user", "content": "a"}]], completions=[[{"role": "assistant", "content": "xyz"}]]
    )
    assert chat == [3.0]
    with pytest.raises(InfAlignError, match="neither text nor chat messages"):
        reward(prompts=[5], completions=["b"])


def test_logged_win_rates_rank_each_prompts_completions_against_its_bank_or_are_left_out(tmp_path):
    """Four completions per prompt against the bank [0..7] (length reward): the all-subsets estimate, per prompt."""
    from infalign_core import winrate

    reward_fn = toy_reward()
    reward = ctrl_trl.CTRLReward(small_config(tmp_path), reward_fn=reward_fn)
    prompts = ["a"] * 4 + ["b"] * 4
    completions = ["x" * n for n in (8, 9, 10, 11, 0, 1, 2, 3)]
    logged = {}
    reward(
        prompts=prompts, completions=completions, log_metric=logged.__setitem__, **toy_bank_rows(reward_fn, 8)
    )
    bank = np.arange(8.0)[None, :]
    for key, mode in (("winrate/bon", "best"), ("winrate/won", "worst")):
        expected = np.mean([1.0, winrate.win_rate(np.arange(4.0)[None, :], bank, 4, mode)])
        assert logged[key] == pytest.approx(expected)
    logged.clear()  # two completions per prompt cannot form a best-of-4: no number, not a biased one
    reward(
        prompts=prompts[2:6],
        completions=completions[2:6],
        log_metric=logged.__setitem__,
        **toy_bank_rows(reward_fn, 4),
    )
    assert "winrate/bon" not in logged and "reward/calibrated" in logged
