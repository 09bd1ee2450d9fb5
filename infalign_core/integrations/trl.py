"""CTRL on TRL: the calibrated, transformed reward as a TRL reward function, and an export for ``accelerate``.

TRL's ``RLOOTrainer`` (1.16) runs the same algorithm as ``ctrl.train`` once its knobs match: k samples
per prompt (``num_generations``), the per-sequence k1 KL to a frozen copy of the initial policy
subtracted from the reward (``beta``), the leave-one-out baseline, no advantage normalisation and one
gradient step per batch (``num_iterations=1``: PPO's ratio is 1, its clip inactive). What TRL lacks
comes from here: each prompt's reference bank travels as a dataset column (``reference_rewards``), and
``CTRLReward`` turns (prompt, completion, bank) into Φ(C(x, y)) with the project's own reward model,
mid-rank CDF and transform, so the numbers are the in-app trainer's for the same samples.

    python -m infalign_core export-trl --out DIR
    accelerate launch --config_file DIR/accelerate_config.yaml DIR/train_rloo.py

Pass ``CTRLReward`` (a callable), not the reward *model*: TRL scores a model as ``logits[:, 0]`` of the
text without special tokens, which for a two-label classifier is the negative class, and it knows no banks.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from infalign_core import calibration, ctrl
from infalign_core.ctrl import CTRLConfig
from infalign_core.errors import InfAlignError

REWARD_NAME = "ctrl_reward"
"""The reward function's ``__name__``: TRL logs its mean as ``rewards/ctrl_reward/mean``."""
BANK_COLUMN = "reference_rewards"
KEY_COLUMN = "bank_key"
FINGERPRINT_COLUMN = "reward_fingerprint"
ACCELERATE_BACKENDS = ("fsdp2", "zero2", "zero3", "multi_gpu")

CONFIG_FILE = "ctrl_config.json"
META_FILE = "ctrl_reward.json"
RLOO_FILE = "rloo_config.json"
DATASET_DIR = "dataset"
REWARD_MODULE = "ctrl_reward.py"
TRAIN_SCRIPT = "train_rloo.py"
ACCELERATE_FILE = "accelerate_config.yaml"
README_FILE = "README.md"
_WRITTEN = (
    CONFIG_FILE,
    META_FILE,
    RLOO_FILE,
    DATASET_DIR,
    REWARD_MODULE,
    TRAIN_SCRIPT,
    ACCELERATE_FILE,
    README_FILE,
)


def check_trl_compatible(config: CTRLConfig) -> CTRLConfig:
    """The resolved config if RLOOTrainer can run it as ctrl.train would, else InfAlignError saying what to change."""
    config = config.resolved()
    if config.kl_target is not None:
        raise InfAlignError(
            f"kl_target={config.kl_target} asks for an adaptive β, which TRL's RLOOTrainer does not have "
            "(RLOOConfig.beta is a fixed coefficient). Set kl_target to none and give a fixed beta, e.g. "
            "the last kl/beta that an in-app run with this target settled on (in its metrics.jsonl)."
        )
    if config.kl_penalty != "reward":
        raise InfAlignError(
            f"kl_penalty={config.kl_penalty!r} puts the KL in the loss, but the export targets TRL's "
            "RLOOTrainer, which subtracts β·KL from the reward. Set kl_penalty to 'reward' to export."
        )
    if config.reference not in (None, "", config.policy):
        raise InfAlignError(
            f"reference={config.reference!r} differs from policy={config.policy!r}, but TRL's RLOOTrainer "
            "always takes the KL against a frozen copy of the initial policy. Leave reference unset, or make "
            "the reference model the policy you train."
        )
    return config


# --- the reward function -------------------------------------------------------------------------


def fill_unscored_by_prompt(prompts: Sequence[str], raw: np.ndarray, banks) -> np.ndarray:
    """A judge's unscored completions (NaN) take the mean scored reward of the same prompt in the batch.

    TRL's leave-one-out baseline groups a prompt's completions, so such a completion then has about
    zero advantage: it pushes neither way (as in the app's trainer, ``ctrl.fill_unscored``). A prompt
    with no scored completion takes its bank's median, else the batch's mean scored reward.
    """
    raw = np.asarray(raw, dtype=np.float64).copy()
    scored = raw[~np.isnan(raw)]
    for i in np.flatnonzero(np.isnan(raw)):
        same = [raw[j] for j, p in enumerate(prompts) if p == prompts[i] and not np.isnan(raw[j])]
        if same:
            raw[i] = float(np.mean(same))
        elif banks is not None:
            raw[i] = float(np.median(banks[i]))
        else:
            raw[i] = float(scored.mean()) if scored.size else 0.0
    return raw


@dataclass
class RewardBreakdown:
    """Per-completion rewards: raw r(x, y), calibrated C(x, y) (None without banks), transformed Φ(C)."""

    raw: np.ndarray
    calibrated: np.ndarray | None
    transformed: np.ndarray
    banks: np.ndarray | None = None  # [rows, m] sorted bank of each row (None without banks)


class CTRLReward:
    """A TRL reward function: Φ(C(x, y)) per completion, C against the bank in the row's ``reference_rewards``.

    TRL calls it as ``reward(prompts=..., completions=..., reference_rewards=..., bank_key=...,
    reward_fingerprint=..., log_metric=..., ...)`` and gets one float per completion. With the ``raw``
    transform (standard RLHF) the reward is r itself and banks are optional (used for metrics only).
    The reward model loads on first use, on this process's GPU under ``accelerate``.
    """

    def __init__(
        self,
        config: CTRLConfig,
        *,
        reward_fn=None,
        bank_key: str | None = None,
        reward_dtype: str | None = None,
        device: str | None = None,
    ):
        self.config = check_trl_compatible(config)
        self.__name__ = REWARD_NAME
        self.bank_key = bank_key or None
        self.reward_dtype = reward_dtype
        self.device = device
        self._reward_fn = reward_fn
        # Φ is fixed for the run, as in ctrl.train (the optimal Φ is solved once, at the fixed β).
        self.phi = ctrl.make_phi(self.config, self.config.beta)

    @property
    def reward_fn(self):
        """The project's RewardFunction for the config's reward (loaded on first use)."""
        if self._reward_fn is None:
            from infalign_core.rewards import load_reward

            self._reward_fn = load_reward(
                self.config.reward,
                label=self.config.reward_label,
                device=self.device or _process_device(self.config.device),
                dtype=self.reward_dtype,
                chat=self.config.chat,
            )
        return self._reward_fn

    def __call__(
        self,
        prompts,
        completions,
        reference_rewards=None,
        bank_key=None,
        reward_fingerprint=None,
        log_metric: Callable[[str, float], None] | None = None,
        **_columns,
    ) -> list[float]:
        """Φ(C) of each completion as TRL's reward; logs raw, calibrated and win-rate metrics if TRL offers."""
        parts = self.score(
            prompts,
            completions,
            reference_rewards,
            bank_key=bank_key,
            reward_fingerprint=reward_fingerprint,
        )
        if log_metric is not None:
            log_metric("reward/raw", float(parts.raw.mean()))
            if parts.calibrated is not None:
                log_metric("reward/calibrated", float(parts.calibrated.mean()))
                rates = grouped_bank_win_rates(prompts, parts.raw, parts.banks, self.config.n)
                if rates is not None:  # no biased stand-in when no prompt has N completions
                    log_metric("winrate/bon", rates[0])
                    log_metric("winrate/won", rates[1])
        return parts.transformed.tolist()

    def score(
        self,
        prompts: Sequence[str],
        completions: Sequence[str],
        reference_rewards: Sequence[Sequence[float]] | None = None,
        *,
        bank_key: Sequence[str] | None = None,
        reward_fingerprint: Sequence[str] | None = None,
    ) -> RewardBreakdown:
        """Raw, calibrated and transformed reward of each (prompt, completion), row i calibrated on bank i."""
        prompts, completions = _texts(prompts, "prompts"), _texts(completions, "completions")
        if len(prompts) != len(completions):
            raise InfAlignError(f"{len(prompts)} prompts but {len(completions)} completions.")
        banks = self._banks(reference_rewards, bank_key, reward_fingerprint, len(prompts))
        raw = np.asarray(self.reward_fn.score(prompts, completions), dtype=np.float64)
        if getattr(self.reward_fn, "may_abstain", False) and np.isnan(raw).any():
            raw = fill_unscored_by_prompt(prompts, raw, banks)
        calibrated = None
        if banks is not None:
            calibrated = calibration.calibrated_reward(banks, np.arange(len(raw)), raw)
        transformed = raw if self.phi is None else np.asarray(self.phi(calibrated), dtype=np.float64)
        return RewardBreakdown(raw, calibrated, transformed, banks)

    def check_dataset(self, dataset) -> None:
        """Fail before training if ``dataset`` lacks the bank columns or holds banks this reward cannot use."""
        columns = list(getattr(dataset, "column_names", []) or [])
        if "prompt" not in columns:
            raise InfAlignError(
                f"The dataset has no 'prompt' column (columns: {', '.join(columns) or 'none'}); "
                "RLOOTrainer samples completions for the text in 'prompt'."
            )
        if BANK_COLUMN not in columns and self.phi is None:
            return  # raw reward: banks only feed the calibrated metrics
        self._banks(
            list(dataset[BANK_COLUMN]) if BANK_COLUMN in columns else None,
            list(dataset[KEY_COLUMN]) if KEY_COLUMN in columns else None,
            list(dataset[FINGERPRINT_COLUMN]) if FINGERPRINT_COLUMN in columns else None,
            len(dataset),
            columns=columns,
        )

    def _banks(
        self, reference_rewards, bank_keys, fingerprints, rows: int, *, columns=None
    ) -> np.ndarray | None:
        """The [rows, m] sorted bank array after checking it is the right bank for this reward; None for raw without one."""
        if reference_rewards is None:
            if self.phi is None:
                return None
            seen = f" (the dataset's columns: {', '.join(columns)})" if columns is not None else ""
            raise InfAlignError(
                f"No '{BANK_COLUMN}' column reached the reward function{seen}: the {self.config.transform} "
                "transform calibrates each completion against its prompt's reference bank. Train on the "
                "dataset written by `python -m infalign_core export-trl` (columns prompt, reference_rewards, "
                "bank_key, reward_fingerprint) and keep RLOOConfig(remove_unused_columns=False)."
            )
        if bank_keys is None:
            raise InfAlignError(
                f"The dataset has '{BANK_COLUMN}' but no '{KEY_COLUMN}' column, so nothing says which reward "
                "model, prompts and settings built those banks. Export the dataset with "
                "`python -m infalign_core export-trl`, which writes both."
            )
        if fingerprints is not None:
            theirs = sorted({str(f) for f in fingerprints})
            mine = str(self.reward_fn.fingerprint)
            if theirs != [mine]:
                raise InfAlignError(
                    f"The reference banks were scored by another reward model ({_short(theirs[0])}) than the "
                    f"one this reward function uses ({self.reward_fn.name}, {_short(mine)}); calibrating "
                    "against them would rank completions among another model's scores. Export again with "
                    f"this reward (export-trl --config with reward={self.config.reward!r})."
                )
        if self.bank_key is not None:
            keys = sorted({str(k) for k in bank_keys})
            if keys != [self.bank_key]:
                raise InfAlignError(
                    f"The dataset's bank_key ({_short(keys[0])}) is not the bank this reward function was "
                    f"exported with ({_short(self.bank_key)}): the banks come from other settings (reward "
                    "model, reference policy, prompts, m, sampling or seed). Use the dataset and reward "
                    "module from the same export-trl folder, or export again."
                )
        if len(reference_rewards) != rows:
            raise InfAlignError(
                f"{len(reference_rewards)} reference banks for {rows} rows: give one per row."
            )
        sizes = sorted({len(b) if b is not None else 0 for b in reference_rewards})
        if sizes != [self.config.m]:
            raise InfAlignError(
                f"Reference banks hold {', '.join(map(str, sizes))} rewards per prompt, but the config says "
                f"m = {self.config.m}; every row needs a bank of m sorted reference rewards."
            )
        return np.sort(np.asarray(reference_rewards, dtype=np.float64), axis=1)


def grouped_bank_win_rates(prompts, raw, banks, n: int) -> tuple[float, float] | None:
    """Best-of-N / worst-of-N of each prompt's completions against its bank, averaged over prompts.

    TRL repeats a prompt once per completion; rows of the same prompt form its group of k. Groups
    with k < N (or banks with m < N) are left out; None when none is left.
    """
    groups: dict[str, list[int]] = {}
    for row, prompt in enumerate(prompts):
        groups.setdefault(str(prompt), []).append(row)
    rates = []
    for rows in groups.values():
        got = ctrl.bank_win_rates(raw[rows][None, :], banks[rows[0]][None, :], n)
        if got is not None:
            rates.append(got)
    if not rates:
        return None
    bon, won = np.mean(rates, axis=0)
    return float(bon), float(won)


def _texts(values, what: str) -> list[str]:
    """Prompts or completions as the strings the project's rewards take.

    Conversational rows (what TRL passes for a chat-template policy) become the prompt's
    transcript form, or a completion's assistant text; the reward renders them with its own template.
    """
    from infalign_core.chat import prompt_text

    out = []
    for value in values:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, list | tuple) and all(isinstance(m, dict) for m in value):
            if what == "completions":
                out.append("".join(str(m.get("content", "")) for m in value if m.get("role") == "assistant"))
            else:
                out.append(prompt_text(list(value)))
        else:
            raise InfAlignError(
                f"The {what} are neither text nor chat messages (got {type(value).__name__}); "
                "use the dataset export-trl wrote."
            )
    return out


def trl_prompts(prompts: Sequence[str], tokenizer, chat) -> list:
    """The dataset's prompt column: chat messages when the policy renders through its template, else text.

    TRL applies the policy's chat template (with the generation prompt, no second BOS) to
    conversational prompts itself, so the policy sees in TRL exactly what it sees in ``ctrl.train``.
    """
    from infalign_core.chat import to_messages, uses_template

    if not uses_template(tokenizer, chat):
        return list(prompts)
    rows = []
    for prompt in prompts:
        messages = to_messages(prompt)
        if chat.system_prompt and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": chat.system_prompt}, *messages]
        rows.append(messages)
    return rows


def _short(text: str, width: int = 20) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _process_device(device: str) -> str | None:
    """This process's device for the reward model: its own GPU (LOCAL_RANK) under accelerate, else the config's."""
    if device not in ("auto", "cuda"):
        return device
    import torch

    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return None if device == "auto" else device


# --- TRL's config ----------------------------------------------------------------------------------


def rloo_settings(config: CTRLConfig, *, output_dir: str = "output") -> dict:
    """RLOOConfig keyword arguments that make TRL's RLOOTrainer run ``config`` as ctrl.train does, in one process.

    TRL's defaults that differ from the project's are set explicitly: bf16 on, gradient
    checkpointing on, learning rate 1e-6, β = 0.05, a linearly decaying learning rate, logging
    every 10 steps. ``load_rloo_config`` splits the batch over processes and falls back to the CPU.
    """
    config = check_trl_compatible(config)
    on_cpu = config.device == "cpu"
    return {
        "output_dir": output_dir,
        "beta": config.beta,
        "num_generations": config.k,
        # TRL's batch counts completions: prompts_per_step prompts × k samples, one generation per step.
        "per_device_train_batch_size": config.k * config.prompts_per_step,
        "gradient_accumulation_steps": 1,
        "steps_per_generation": 1,
        "num_iterations": 1,
        "normalize_advantages": False,
        "max_steps": config.steps,
        "learning_rate": config.learning_rate,
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        "optim": "adamw_torch",
        "weight_decay": config.weight_decay,
        "max_grad_norm": config.max_grad_norm,
        "max_completion_length": config.max_new_tokens,
        "temperature": config.temperature,
        "top_p": 1.0,
        "top_k": 0,
        "disable_dropout": True,
        "seed": config.seed,
        "use_cpu": on_cpu,
        "bf16": not on_cpu and config.dtype in ("auto", "bfloat16"),
        "fp16": False,
        "gradient_checkpointing": False,
        "model_init_kwargs": {"dtype": "float32", "use_safetensors": True},
        "trust_remote_code": False,
        "remove_unused_columns": False,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": config.checkpoint_every,
        "report_to": "none",
    }


def load_rloo_config(export_dir: str | Path, **overrides):
    """The exported RLOOConfig for this process: batch split over WORLD_SIZE, CPU fallback without CUDA."""
    import torch
    from trl import RLOOConfig

    export_dir = Path(export_dir)
    settings = json.loads((export_dir / RLOO_FILE).read_text(encoding="utf-8"))
    settings.update(overrides)
    if not Path(settings["output_dir"]).is_absolute():
        settings["output_dir"] = str(export_dir / settings["output_dir"])
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and "per_device_train_batch_size" not in overrides:
        total = int(settings["per_device_train_batch_size"])
        if total % world:
            raise InfAlignError(
                f"{total} completions per step (prompts_per_step × k) do not split evenly over {world} "
                "processes; launch with a process count that divides it, or pass "
                "per_device_train_batch_size=... to train_rloo.py."
            )
        settings["per_device_train_batch_size"] = total // world
    if not settings.get("use_cpu") and not torch.cuda.is_available():
        print("infalign: no CUDA GPU visible, so this run uses the CPU (use_cpu=True, bf16=False).")
        settings.update(use_cpu=True, bf16=False)
    elif settings.get("bf16") and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        print("infalign: this GPU has no bf16, so this run trains in float32.")
        settings["bf16"] = False
    return RLOOConfig(**settings)


def parse_overrides(argv: Sequence[str]) -> dict:
    """``key=value`` command-line pairs as RLOOConfig overrides (values parsed as JSON when they can be)."""
    out = {}
    for item in argv:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise InfAlignError(f"expected key=value (an RLOOConfig field), got {item!r}")
        try:
            out[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            out[key.strip()] = text
    return out


def exported_policy(export_dir: str | Path) -> str:
    """The policy an export trains, as a folder on this machine or a hub id ("default" is the bundled world's)."""
    from infalign_core.models import locate

    return locate(CTRLConfig.load(Path(export_dir) / CONFIG_FILE).policy, "policy").path


def load_exported_reward(export_dir: str | Path) -> CTRLReward:
    """The reward function an export-trl folder configures (its reward model loads on first call)."""
    export_dir = Path(export_dir)
    meta = json.loads((export_dir / META_FILE).read_text(encoding="utf-8"))
    return CTRLReward(
        CTRLConfig.load(export_dir / CONFIG_FILE),
        bank_key=meta.get("bank_key"),
        reward_dtype=meta.get("reward_dtype"),
    )


# --- the export ----------------------------------------------------------------------------------


@dataclass
class TRLExport:
    """What export_trl wrote, and the command that launches it."""

    out_dir: Path
    files: dict[str, Path]
    launch_command: str
    num_prompts: int
    m: int
    bank_key: str
    reward_fingerprint: str
    bank_cached: bool


def export_trl(
    config: CTRLConfig,
    out_dir: str | Path,
    *,
    accelerate: str = "fsdp2",
    num_processes: int = 8,
    progress: calibration.Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> TRLExport:
    """Write the prompts with their banks, RLOOConfig, reward module, train script, accelerate config and README.

    The banks are built exactly as ``ctrl.train`` builds them (same settings, so the same cache
    entry). ``out_dir`` must be new, empty or an earlier export (whose files are replaced).
    """
    import torch
    from datasets import Dataset

    from infalign_core.models import load_policy, locate, resolve_device
    from infalign_core.rewards import load_reward

    log = log or (lambda _msg: None)
    config = check_trl_compatible(config)
    if accelerate not in ACCELERATE_BACKENDS:
        raise InfAlignError(f"accelerate must be one of {', '.join(ACCELERATE_BACKENDS)}, got {accelerate!r}")
    if int(num_processes) < 1:
        raise InfAlignError(f"num_processes must be at least 1, got {num_processes}")
    completions = config.k * config.prompts_per_step
    if completions % int(num_processes):
        raise InfAlignError(
            f"prompts_per_step × k = {completions} completions per step do not split evenly over "
            f"{num_processes} processes; change num_processes or the batch."
        )
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    prompts = ctrl.load_prompt_list(config)
    policy_path = locate(config.policy, "policy").path

    # The reference on the device and in the dtype ctrl.load_models would use, so the bank's cache key matches.
    device = resolve_device(None if config.device == "auto" else config.device)
    ref_dtype = "bfloat16" if ctrl._use_bf16(config, device) else "float32"
    log(f"loading the reference policy and reward model on {device}")
    chat = config.chat  # as ctrl.load_models renders, so the bank key and the prompts match
    reference = load_policy(config.reference or config.policy, device=str(device), dtype=ref_dtype, chat=chat)
    reward_fn = load_reward(config.reward, label=config.reward_label, device=str(device), chat=chat)
    loaded = getattr(reward_fn, "loaded", None)
    reward_dtype = str(loaded.dtype).removeprefix("torch.") if loaded is not None else None
    log(f"reference banks: {len(prompts)} prompts × m = {config.m}")
    bank = ctrl.reference_bank(config, reference, reward_fn, prompts, progress=progress)
    prompt_column = trl_prompts(bank.prompts, reference.tokenizer, chat)
    del reference
    if device.type == "cuda":
        torch.cuda.empty_cache()

    dataset = Dataset.from_dict(
        {
            "prompt": prompt_column,
            BANK_COLUMN: bank.rewards.tolist(),
            KEY_COLUMN: [bank.key] * bank.num_prompts,
            FINGERPRINT_COLUMN: [str(reward_fn.fingerprint)] * bank.num_prompts,
        }
    )
    CTRLReward(config, reward_fn=reward_fn, bank_key=bank.key).check_dataset(dataset)

    out_dir.mkdir(parents=True, exist_ok=True)
    for name in _WRITTEN:  # an earlier export's files go; nothing else is touched
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    files = {name: out_dir / name for name in _WRITTEN}
    dataset.save_to_disk(str(files[DATASET_DIR]))
    config.save(files[CONFIG_FILE])
    meta = {
        "bank_key": bank.key,
        "reward_fingerprint": str(reward_fn.fingerprint),
        "reward_dtype": reward_dtype,
        "policy_path": policy_path,
        "accelerate": accelerate,
        "num_processes": int(num_processes),
        "bank_settings": bank.settings,
    }
    files[META_FILE].write_text(json.dumps(meta, indent=2), encoding="utf-8")
    settings = rloo_settings(config)
    files[RLOO_FILE].write_text(json.dumps(settings, indent=2), encoding="utf-8")
    files[REWARD_MODULE].write_text(_REWARD_MODULE_TEXT, encoding="utf-8")
    files[TRAIN_SCRIPT].write_text(_TRAIN_SCRIPT_TEXT, encoding="utf-8")
    files[ACCELERATE_FILE].write_text(
        accelerate_config_yaml(accelerate, int(num_processes), bf16=settings["bf16"]), encoding="utf-8"
    )
    launch = f"accelerate launch --config_file {out_dir / ACCELERATE_FILE} {out_dir / TRAIN_SCRIPT}"
    files[README_FILE].write_text(
        _readme(config, out_dir, launch, accelerate, int(num_processes), bank, policy_path), encoding="utf-8"
    )
    log(f"wrote {out_dir}")
    return TRLExport(
        out_dir=out_dir,
        files=files,
        launch_command=launch,
        num_prompts=bank.num_prompts,
        m=bank.m,
        bank_key=bank.key,
        reward_fingerprint=str(reward_fn.fingerprint),
        bank_cached=bool(bank.cached),
    )


def _check_out_dir(out_dir: Path) -> None:
    """Refuse a file, or a folder with other content than an earlier export's."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InfAlignError(f"{out_dir} is a file; give a folder for the export.")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / META_FILE).is_file():
        raise InfAlignError(
            f"{out_dir} is not empty and holds no earlier export; give a new or empty folder so that "
            "nothing of yours is overwritten."
        )


def accelerate_config_yaml(backend: str, num_processes: int, *, bf16: bool) -> str:
    """An ``accelerate launch --config_file`` YAML for one machine with ``num_processes`` GPUs."""
    import yaml

    body: dict = {
        "compute_environment": "LOCAL_MACHINE",
        "debug": False,
        "machine_rank": 0,
        "main_training_function": "main",
        "mixed_precision": "bf16" if bf16 else "no",
        "num_machines": 1,
        "num_processes": int(num_processes),
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": False,
    }
    if backend == "fsdp2":
        body["distributed_type"] = "FSDP"
        body["fsdp_config"] = {
            "fsdp_version": 2,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_activation_checkpointing": False,
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_offload_params": False,
            "fsdp_reshard_after_forward": True,
            "fsdp_state_dict_type": "FULL_STATE_DICT",
        }
    elif backend in ("zero2", "zero3"):
        body["distributed_type"] = "DEEPSPEED"
        body["deepspeed_config"] = {
            "zero_stage": int(backend[-1]),
            "offload_optimizer_device": "none",
            "offload_param_device": "none",
            "zero3_init_flag": backend == "zero3",
            "deepspeed_multinode_launcher": "standard",
        }
    else:
        body["distributed_type"] = "MULTI_GPU"
        body["gpu_ids"] = "all"
    return yaml.safe_dump(dict(sorted(body.items())), sort_keys=False)


_REWARD_MODULE_TEXT = '''"""CTRL's calibrated, transformed reward for TRL, as configured by ctrl_config.json (written by export-trl).

Import path: ``ctrl_reward.reward`` with this folder on sys.path, e.g. ``trl rloo --reward_funcs
ctrl_reward.reward``. It needs the dataset's reference_rewards, bank_key and reward_fingerprint columns.
"""

from pathlib import Path

from infalign_core.integrations.trl import load_exported_reward

reward = load_exported_reward(Path(__file__).resolve().parent)
'''


_TRAIN_SCRIPT_TEXT = '''"""RLOO with TRL on CTRL's calibrated, transformed reward (written by `python -m infalign_core export-trl`).

    accelerate launch --config_file accelerate_config.yaml train_rloo.py [key=value ...]
    python train_rloo.py [key=value ...]          # one process: one GPU, or the CPU

key=value pairs override RLOOConfig fields, e.g. max_steps=500 output_dir=/scratch/run1.
"""

import sys
from pathlib import Path

from datasets import load_from_disk
from trl import RLOOTrainer

from infalign_core.integrations.trl import exported_policy, load_rloo_config, parse_overrides

HERE = Path(__file__).resolve().parent

sys.path.insert(0, str(HERE))
from ctrl_reward import reward  # noqa: E402


def main(argv: list[str]) -> None:
    """Check the dataset's banks, train, and save the policy where the win-rate arena can load it."""
    args = load_rloo_config(HERE, **parse_overrides(argv))
    dataset = load_from_disk(str(HERE / "dataset"))
    reward.check_dataset(dataset)  # fail before any policy is loaded
    policy = exported_policy(HERE)  # ctrl_config.json's policy: a folder here, or a hub id
    trainer = RLOOTrainer(model=policy, reward_funcs=[reward], args=args, train_dataset=dataset)
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    trainer.save_model(args.output_dir)


if __name__ == "__main__":
    main(sys.argv[1:])
'''


def _readme(
    config: CTRLConfig, out_dir: Path, launch: str, backend: str, num_processes: int, bank, policy_path
) -> str:
    """The export folder's README: what is here, how to launch, how the knobs map."""
    extra = {
        "zero2": "DeepSpeed ZeRO-2, which needs `pip install deepspeed`",
        "zero3": "DeepSpeed ZeRO-3, which needs `pip install deepspeed`",
        "fsdp2": "PyTorch FSDP2, no extra package",
        "multi_gpu": "plain data parallel (DDP)",
    }[backend]
    temperature_note = (
        f"\nAt temperature {config.temperature} TRL takes the KL and the log-probabilities of the policy gradient "
        "from the temperature-scaled logits, CTRL from the model's own, so the two runs differ a little.\n"
        if config.temperature != 1.0
        else ""
    )
    transform = config.transform + (f", t = {config.t}" if config.transform == "exp" else "")
    if config.transform in ("exp", "optimal"):
        transform += f", {config.mode}-of-{config.n}"
    return f"""# CTRL on TRL: {config.transform} transform, β = {config.beta}

Written by `python -m infalign_core export-trl`. TRL's `RLOOTrainer` does the RL; InfAlign supplies
the reference banks, the calibrated reward C(x, y) and the transform Φ ({transform}).

## Launch

On {num_processes} GPUs of one machine ({extra}):

    {launch}

With another GPU count add `--num_processes N` after `accelerate launch` (N must divide
{config.k * config.prompts_per_step}, the completions per step). One GPU or the CPU (it falls back to the CPU when
no CUDA GPU is visible):

    python {out_dir / TRAIN_SCRIPT}

RLOOConfig fields can be overridden as `key=value` after the script, e.g. `max_steps=500`.
Needs, on every machine: this project installed (`pip install -e <repo>`, for `infalign_core`), `trl==1.16.0`,
`accelerate`, `datasets`. The trained policy is saved with `save_pretrained` in `{out_dir}/output`; evaluate
it against the reference like any other checkpoint folder: give that folder as the policy in the win-rate arena.

## What is here

| file | holds |
| --- | --- |
| `{DATASET_DIR}/` | `datasets` `save_to_disk`: {bank.num_prompts} prompts; `{BANK_COLUMN}` (the m = {bank.m} sorted reference rewards of each prompt), `{KEY_COLUMN}`, `{FINGERPRINT_COLUMN}` |
| `{RLOO_FILE}` | `RLOOConfig` keyword arguments (one process; `train_rloo.py` divides the batch by the process count) |
| `{REWARD_MODULE}` | `reward`: the calibrated, transformed reward function (dotted path `ctrl_reward.reward`) |
| `{TRAIN_SCRIPT}` | loads the three above and runs `RLOOTrainer` |
| `{ACCELERATE_FILE}` | the `accelerate` config ({backend}, {num_processes} processes) |
| `{CONFIG_FILE}`, `{META_FILE}` | the CTRL config and the bank's key, settings and reward fingerprint |

Policy: `{policy_path}` here (also the frozen KL reference). Reward: `{config.reward}`. Bank key `{bank.key[:16]}…`.

## How the knobs map

| CTRL (`ctrl_config.json`) | value | TRL `RLOOConfig` |
| --- | --- | --- |
| beta (β, KL coefficient) | {config.beta} | `beta` (per-sequence k1 KL subtracted from the reward, as in CTRL) |
| k (samples per prompt) | {config.k} | `num_generations` |
| prompts_per_step × k | {config.k * config.prompts_per_step} | `per_device_train_batch_size` × processes |
| learning_rate | {config.learning_rate} | `learning_rate` (+ `lr_scheduler_type="constant"`) |
| max_new_tokens | {config.max_new_tokens} | `max_completion_length` |
| temperature | {config.temperature} | `temperature` |
| steps | {config.steps} | `max_steps` |
| transform, t, mode, n, m | {transform}, m = {config.m} | the reward function (`{REWARD_MODULE}`) |
| leave-one-out advantage | always | RLOO's baseline; `normalize_advantages=False`, `num_iterations=1` |

Set explicitly because TRL's defaults differ: `bf16`, `gradient_checkpointing=False`, `learning_rate`,
`beta`, `disable_dropout=True`, `remove_unused_columns=False` (the reward needs the bank columns).
The reward function also logs `reward/raw`, `reward/calibrated`, `winrate/bon` and `winrate/won` per step;
TRL's own `reward` is the transformed reward Φ(C) before the KL penalty. The win rates rank each prompt's
completions against its own bank (all N-subsets, ties ½), so they need `num_generations` ≥ N and m ≥ N and
are left out otherwise; they score the policy against the bank it trains on, so they are optimistic for a
trained policy. The arena (`python -m infalign_core winrate`) is the real measurement.
{temperature_note}"""
