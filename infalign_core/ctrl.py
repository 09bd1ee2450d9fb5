"""CTRL: calibrate-and-transform reinforcement learning (InfAlign, arXiv 2412.19792).

The loop, in the order it runs (one step):

    banks  ← m reference samples per prompt, scored and sorted (built once, cached)
    x      ← prompts_per_step prompts;   y_1..y_k ~ π(·|x)
    r      ← reward(x, y)
    c      ← C(x, y): the mid-rank of r among the bank of x           (calibrated reward)
    φ      ← Φ(c)                                                      (transformed reward)
    kl     ← Σ_t log π_T(y_t|x, y_<t) − log π_ref,T(y_t|x, y_<t)     (per-sequence KL, k1; π_T is
             the per-token log-softmax(logits/T) actually sampled, for policy and reference alike)
    R      ← φ − β·kl
    A_i    ← R_i − mean_{j≠i} R_j   within each prompt's k samples     (leave-one-out, RLOO)
    loss   ← −mean_i A_i · log π(y_i|x)   (log π summed over the response's tokens)
    θ      ← AdamW(θ, ∇loss)
    β      ← β·(1 + clip((KL − target)/target, ±0.2)·batch/horizon)   (kl_controller=proportional)
             or β₀·exp(kp·e + ki·Σe) on an EMA of the KL       (kl_controller=pi; PIController)

``algorithm=distil`` replaces steps A–θ by weighted max-likelihood on k fresh reference samples
per prompt, weights e^{Φ(C)/β}/Z within the prompt (``tilted_weights``): the forward KL to the
tilted optimum π* ∝ π_ref·e^{Φ(C)/β}. The policy's own k samples are still drawn to measure the
KL and the win rates. ``distil-rloo`` distils for the first half of the steps, then runs RLOO
from the configured β.

Baselines use the same loop: ``raw`` puts the raw reward where Φ(c) goes (standard RLHF),
``identity`` is calibrated RLHF (Φ(u) = u).

Randomness is derived from (seed, step), so a resumed run draws what the uninterrupted run
would have drawn; a checkpoint is the model, its tokenizer and ``trainer_state.pt`` (optimizer,
step, β, and the β the optimal Φ was last solved at, so a resumed run uses the same Φ).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from infalign_core import filememo
from infalign_core.chat import save_chat_format
from infalign_core.errors import InfAlignError
from infalign_core.sampling_settings import SamplingSettings

TRANSFORMS = ("raw", "identity", "log", "exp", "optimal")
MODES = ("best", "worst")
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16")
KL_PENALTIES = ("reward", "loss")
ALGORITHMS = ("rloo", "distil", "distil-rloo")
KL_CONTROLLERS = ("proportional", "pi")
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoint"
TRAINER_STATE = "trainer_state.pt"
TRANSFORM_FILE = "transform.json"  # in the checkpoint: the β its Φ was solved at (optimal Φ)
_KL_CLIP = 0.2  # the proportional controller's error clip (Ziegler et al. 2019)


# Each numeric field's accepted range (low, high, integer?, why), checked by CTRLConfig.validate so
# the CLI, the page and a YAML config get one message. Wide enough for any real run, narrow enough
# that a typo (learning rate 1e9, KL target 1e9) is refused before it trains on nonsense.
FIELD_RANGES: dict[str, tuple[float, float, bool, str]] = {
    "learning_rate": (1e-8, 0.1, False, " (AdamW beyond 0.1 diverges)"),
    "kl_target": (0.001, 20.0, False, " nats"),
    "beta": (1e-4, 100.0, False, ""),
    "t": (0.0, 500.0, False, ""),
    "steps": (1, 100_000, True, ""),
    "k": (2, 256, True, " (leave-one-out needs two samples)"),
    "m": (1, 4096, True, ""),
    "num_prompts": (1, 1_000_000, True, ""),
    "prompts_per_step": (1, 1024, True, ""),
    "n": (1, 1024, True, ""),
    "max_new_tokens": (1, 4096, True, ""),
    "temperature": (0.01, 10.0, False, ""),
    "kl_horizon": (1, 10_000_000, True, ""),
    "checkpoint_every": (1, 1_000_000, True, ""),
    "sample_every": (1, 1_000_000, True, ""),
    "max_grad_norm": (1e-6, 1e6, False, ""),
    "weight_decay": (0.0, 10.0, False, ""),
}


@dataclass
class CTRLConfig:
    """Everything that defines a CTRL run; saved as the run's config.json."""

    policy: str = field(
        default="default", metadata={"help": "policy to train: default, a preset, a folder or hub id"}
    )
    reference: str | None = field(
        default=None,
        metadata={"help": "frozen reference policy for the banks and the KL (default: the policy)"},
    )
    reward: str = field(
        default="default", metadata={"help": "reward: default, vader, oracle, a folder or hub id"}
    )
    reward_label: str | None = field(default=None, metadata={"help": "label of a multi-label reward model"})
    prompts: str = field(
        default="bundled", metadata={"help": "'bundled', a .jsonl/.csv/.txt file or a dataset id"}
    )
    prompt_column: str | None = field(
        default=None, metadata={"help": "column holding the prompts (default: guessed)"}
    )
    prompt_split: str | None = field(
        default=None, metadata={"help": "split of the prompt source (bundled: train unless given)"}
    )
    prompt_subset: str | None = field(
        default=None,
        metadata={"help": "dataset config name or data_dir (Anthropic HH: helpful-base, harmless-base)"},
    )
    completion_mode: bool = field(
        default=False,
        metadata={"help": "no chat templates: the policy continues and the reward scores the raw text"},
    )
    system_prompt: str | None = field(
        default=None, metadata={"help": "system prompt put before every prompt by the chat templates"}
    )
    num_prompts: int = field(default=64, metadata={"help": "train on the first P prompts"})
    m: int = field(default=64, metadata={"help": "reference samples per prompt in the calibration bank"})
    transform: str = field(
        default="exp",
        metadata={"help": "Φ: raw (standard RLHF), identity (calibrated RLHF), log, exp, optimal"},
    )
    t: float | None = field(
        default=None,
        metadata={"help": "exp transform's t (default: the theory's best t for N at kl_target or 0.5)"},
    )
    mode: str = field(default="best", metadata={"help": "best-of-N or worst-of-N (exp and optimal)"})
    n: int = field(default=4, metadata={"help": "N of the best-of-N / worst-of-N the run is aligned for"})
    procedure: str | None = field(
        default=None,
        metadata={
            "help": "inference procedure to align for instead of mode/n (bon:N, won:N, poisson:MU, mix:P:N, "
            "expr:T(x), soft:N:TAU, reject:Q:N); with optimal its optimal Φ, with exp its best t"
        },
    )
    beta: float = field(default=0.1, metadata={"help": "KL coefficient β (initial β when kl_target is set)"})
    kl_target: float | None = field(
        default=None, metadata={"help": "adapt β so the per-sequence KL approaches this many nats"}
    )
    kl_horizon: int = field(
        default=1000, metadata={"help": "adaptive-β horizon in samples (smaller: faster)"}
    )
    kl_penalty: str = field(
        default="reward",
        metadata={
            "help": "where β·KL goes: reward (subtract the sequence KL from the reward, RLOO) or loss "
            "(a per-token k3 term in the loss, as GRPO)"
        },
    )
    algorithm: str = field(
        default="rloo",
        metadata={
            "help": "update rule: rloo (policy gradient on Φ − β·KL), distil (weighted max-likelihood on k "
            "fresh reference samples per prompt, weights e^{Φ(C)/β}/Z: fits the tilted optimum), "
            "distil-rloo (distil for the first half of the steps, then rloo)"
        },
    )
    kl_controller: str = field(
        default="proportional",
        metadata={
            "help": "how β follows kl_target: proportional (β·(1 ± 0.2·batch/horizon), Ziegler et al.) or pi "
            "(PI on log β from the starting β; β is not cut while the KL still lags below half the target)"
        },
    )
    k: int = field(default=8, metadata={"help": "samples per prompt per step (leave-one-out needs ≥ 2)"})
    prompts_per_step: int = field(default=8, metadata={"help": "prompts per step"})
    learning_rate: float = field(default=2e-4, metadata={"help": "AdamW learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    steps: int = field(default=100, metadata={"help": "policy-gradient steps"})
    max_new_tokens: int = field(default=24, metadata={"help": "tokens per response"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature (also for the banks)"})
    seed: int = field(default=0, metadata={"help": "seed for prompts, sampling and banks"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or mps"})
    dtype: str = field(default="auto", metadata={"help": "auto (bf16 autocast on CUDA), float32 or bfloat16"})
    checkpoint_every: int = field(default=50, metadata={"help": "save a checkpoint every this many steps"})
    sample_every: int = field(default=10, metadata={"help": "log example responses every this many steps"})
    cache_dir: str | None = field(default=None, metadata={"help": "bank cache folder (default: cache/banks)"})
    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "recompute activations in the backward pass: less memory, a slower step"},
    )
    lora_rank: int | None = field(
        default=None,
        metadata={
            "help": "train LoRA adapters of this rank (alpha = 2·rank) through peft instead of all weights"
        },
    )

    @property
    def chat(self):
        """How prompts are rendered for the run's models (chat.ChatFormat)."""
        from infalign_core.chat import ChatFormat

        return ChatFormat(completion=bool(self.completion_mode), system_prompt=self.system_prompt or None)

    def sampling(self, seed: int | None = None) -> SamplingSettings:
        """How the run samples (its banks, its steps, its arena): length and temperature, at ``seed`` (default the run's)."""
        return SamplingSettings(
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            seed=self.seed if seed is None else seed,
        )

    def validate(self) -> CTRLConfig:
        """Raise InfAlignError naming the first bad field and its accepted range; return self."""
        _check(
            self.transform in TRANSFORMS,
            f"unknown transform {self.transform!r}; choose one of {', '.join(TRANSFORMS)}",
        )
        _check(self.mode in MODES, f"mode must be 'best' or 'worst', got {self.mode!r}")
        _check(
            self.kl_penalty in KL_PENALTIES,
            f"kl_penalty must be 'reward' or 'loss', got {self.kl_penalty!r}",
        )
        _check(
            self.algorithm in ALGORITHMS,
            f"unknown algorithm {self.algorithm!r}; choose one of {', '.join(ALGORITHMS)}",
        )
        _check(
            self.kl_controller in KL_CONTROLLERS,
            f"unknown kl_controller {self.kl_controller!r}; choose one of {', '.join(KL_CONTROLLERS)}",
        )
        for name, (low, high, integer, why) in FIELD_RANGES.items():
            value = getattr(self, name)
            if value is None and name in ("kl_target", "t"):
                continue  # unset: fixed β / the theory's best t
            kind = "an integer" if integer else "a number"
            _check(
                (_int(value) if integer else _finite(value)) and low <= value <= high,
                f"{name} must be {kind} in [{low:g}, {high:g}]{why}, got {value}",
            )
        _check(_int(self.seed), f"seed must be an integer, got {self.seed}")
        for name in ("completion_mode", "gradient_checkpointing"):
            _check(
                isinstance(getattr(self, name), bool),
                f"{name} must be true or false, got {getattr(self, name)!r}",
            )
        if self.lora_rank is not None:
            _check(
                _int(self.lora_rank) and 1 <= self.lora_rank <= 1024,
                f"lora_rank must be an integer in [1, 1024] (or unset for full fine-tuning), got {self.lora_rank}",
            )
        for name in ("system_prompt", "prompt_subset"):
            value = getattr(self, name)
            _check(value is None or isinstance(value, str), f"{name} must be text, got {value!r}")
        if self.procedure is not None:
            from infalign_core.procedures import parse_procedure

            parse_procedure(self.procedure)  # its own message names what is wrong with the spec
            _check(
                self.transform in ("exp", "optimal"),
                f"procedure {self.procedure!r} shapes only the exp (its best t) and optimal transforms, "
                f"not {self.transform!r}; pick one of those or drop the procedure",
            )
        _check(
            self.device in DEVICES or str(self.device).startswith("cuda:"),
            f"device must be one of {', '.join(DEVICES)}, got {self.device!r}",
        )
        _check(self.dtype in DTYPES, f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        _check(
            self.prompts_per_step <= self.num_prompts,
            f"prompts_per_step ({self.prompts_per_step}) cannot exceed num_prompts ({self.num_prompts})",
        )
        for name in ("policy", "reward", "prompts"):
            _check(
                isinstance(getattr(self, name), str) and getattr(self, name).strip(),
                f"{name} must not be empty",
            )
        return self

    def resolved(self) -> CTRLConfig:
        """A validated copy with defaults that depend on other fields filled in (the exp transform's t)."""
        self.validate()
        if self.transform == "exp" and self.t is None and self.procedure is not None:
            from infalign_core import procedures

            choice = procedures.best_exponential_t(
                procedures.parse_procedure(self.procedure), self.kl_target or RECOMMENDED_RUN["kl_target"]
            )
            return dataclasses.replace(self, t=round(float(choice.t), 4), mode=choice.mode)
        if self.transform == "exp" and self.t is None:
            from infalign_core import procedures

            budget = self.kl_target or RECOMMENDED_RUN["kl_target"]
            t = procedures.best_exponential_t(procedures.of_n(self.n, self.mode), budget).t
            return dataclasses.replace(self, t=round(float(t), 4))
        return dataclasses.replace(self)

    def to_dict(self) -> dict:
        """The config as a plain dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CTRLConfig:
        """Build a config from a dict, rejecting unknown keys with their names."""
        if not isinstance(data, dict):
            raise InfAlignError("a CTRL config must be a mapping of field names to values")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(key) for key in set(data) - names)  # YAML keys may be numbers
        if unknown:
            raise InfAlignError(
                f"unknown config field(s): {', '.join(unknown)}; known: {', '.join(sorted(names))}"
            )
        return cls(**data)

    def to_json(self) -> str:
        """The config as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    def to_yaml(self) -> str:
        """The config as YAML."""
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def load(cls, path: str | Path) -> CTRLConfig:
        """Read a config from a .json, .yaml or .yml file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise InfAlignError(f"cannot read the config file {path}: {err.strerror or err}") from None
        except UnicodeDecodeError:
            raise InfAlignError(
                f"the config file {path} is not UTF-8 text: give a .json or .yaml file"
            ) from None
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except Exception as err:  # both parsers' errors mean the same to the user
            raise InfAlignError(
                f"{path} is not valid {'YAML' if path.suffix.lower() in ('.yaml', '.yml') else 'JSON'}: "
                f"{_parse_problem(err)}; fix that line or write the config again with `train --help` in hand."
            ) from None
        return cls.from_dict(data or {})

    def save(self, path: str | Path) -> None:
        """Write the config as JSON or YAML, by the file's suffix."""
        path = Path(path)
        path.write_text(
            self.to_yaml() if path.suffix.lower() in (".yaml", ".yml") else self.to_json(), encoding="utf-8"
        )


def _parse_problem(err: Exception) -> str:
    """A YAML or JSON parser's complaint on one line, with the line and column it points at."""
    mark = getattr(err, "problem_mark", None)  # yaml.MarkedYAMLError
    if mark is not None:
        problem = getattr(err, "problem", None) or getattr(err, "context", None) or type(err).__name__
        return f"{' '.join(str(problem).split())} at line {mark.line + 1}, column {mark.column + 1}"
    if isinstance(err, json.JSONDecodeError):
        return f"{err.msg} at line {err.lineno}, column {err.colno}"
    return " ".join(str(err).split()) or type(err).__name__


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InfAlignError(message)


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def help_texts() -> dict[str, str]:
    """Field name → help text, for the CLI and the page."""
    texts = {f.name: f.metadata.get("help", "") for f in dataclasses.fields(CTRLConfig)}
    for name, (low, high, _integer, _why) in FIELD_RANGES.items():
        texts[name] += f" (accepted: {low:g} to {high:g})"
    return texts


PRESETS: dict[str, dict] = {
    "standard RLHF": {"transform": "raw", "beta": 0.1},
    "calibrated RLHF": {"transform": "identity", "beta": 0.1},
    "CTRL for best-of-4": {"transform": "exp", "mode": "best", "n": 4, "t": None, "beta": 0.1},
    "CTRL for worst-of-4": {"transform": "exp", "mode": "worst", "n": 4, "t": None, "beta": 0.1},
}
"""Named starting points for the page: fields that differ from the defaults."""

RECOMMENDED_RUN: dict = {"steps": 300, "kl_target": 0.5, "kl_controller": "pi"}
"""The recommended run: what differs from ``CTRLConfig``'s defaults (``recommended_config``).

A 0.5-nat KL target, which the exp transform's default t is tuned for (a fixed β overshoots it),
and 300 steps, by which the KL controller settles near its target (at 100 it lags: the gallery's
100-step runs ended at 0.33-0.99 nats). The PI KL controller (issue 17): the proportional one cut β
while the policy still lagged and overshot (0.27 → 0.90 → 0.35 nats on the gallery's worst-of-4
run); the PI one ended that run at 0.46 nats, its 10-step mean never above 0.83. The CTRL page's form, the gallery (``make gallery``,
``build-gallery``) and the headline experiment all start from it: change the recommendation here.
"""


def recommended_config(**overrides) -> CTRLConfig:
    """The recommended run (``CTRLConfig``'s defaults with ``RECOMMENDED_RUN``), with ``overrides``."""
    return CTRLConfig(**{**RECOMMENDED_RUN, **overrides})


def preset_config(name: str, **overrides) -> CTRLConfig:
    """A run for a model preset (models.PRESETS): its policy, reward, prompt set and procedure."""
    from infalign_core.models import PRESETS as MODEL_PRESETS

    if name not in MODEL_PRESETS:
        raise InfAlignError(f"unknown model preset {name!r}; choose one of {', '.join(MODEL_PRESETS)}")
    preset = MODEL_PRESETS[name]
    fields = {
        "policy": preset.policy,
        "reward": preset.reward,
        "reward_label": preset.reward_label,
        "prompts": preset.prompts,
        "mode": preset.mode,
        "n": preset.n,
        "lora_rank": preset.lora_rank,
        "gradient_checkpointing": preset.lora_rank is not None,
    }
    return CTRLConfig(**{**fields, **overrides})


# --- pieces of the loop ----------------------------------------------------------------------


def load_prompt_list(config: CTRLConfig) -> list[str]:
    """The run's prompts, validated (unreadable sources raise InfAlignError)."""
    from infalign_core import data

    split = config.prompt_split or ("train" if config.prompts == "bundled" else None)
    prompt_set = data.load_prompts(
        config.prompts,
        column=config.prompt_column,
        split=split,
        limit=config.num_prompts,
        subset=config.prompt_subset,
    )
    if len(prompt_set.prompts) < config.prompts_per_step:
        raise InfAlignError(
            f"{prompt_set.source} has {len(prompt_set.prompts)} usable prompts, fewer than "
            f"prompts_per_step={config.prompts_per_step}."
        )
    return prompt_set.prompts


def make_phi(config: CTRLConfig, beta: float) -> Callable[[np.ndarray], np.ndarray] | None:
    """Φ for the run at KL coefficient β (None for ``raw``: the raw reward is used as is).

    The one map from (config, β) to Φ that the trainer, the TRL reward and the arena's overlay
    share. Only the optimal Φ depends on β (the optimum is a fixed point, so Φ and β come as a
    pair); it is solved exactly at β, and a solve is cached, so asking again for a β already
    seen costs nothing. ``phi_beta`` decides at which β a run with an adaptive β asks.
    """
    from infalign_core import transforms

    if config.transform == "raw":
        return None
    if config.transform == "optimal" and config.procedure is not None:
        return _procedure_phi(str(config.procedure), float(beta))
    if config.transform == "optimal":
        return _optimal_phi(int(config.n), str(config.mode), float(beta))
    if config.transform == "log":
        # log 0 = −inf; a response below every bank reward is clipped to half a rank.
        floor = 0.5 / config.m
        return lambda u: transforms.log_transform(np.maximum(u, floor))
    return transforms.make_transform(config.transform, t=config.t, mode=config.mode)


@functools.lru_cache(maxsize=256)
def _optimal_phi(n: int, mode: str, beta: float):
    from infalign_core.optimal import optimal_transform

    return optimal_transform(n, beta, mode)


@functools.lru_cache(maxsize=256)
def _procedure_phi(spec: str, beta: float):
    from infalign_core import procedures

    return procedures.optimal_for_procedure(procedures.parse_procedure(spec), beta=beta)


PHI_BETA_TOLERANCE = 0.03
"""Re-solve the optimal Φ once β has moved more than this fraction from the β it was solved at."""


def phi_beta(config: CTRLConfig, solved_at: float | None, beta: float) -> float | None:
    """The β the run's Φ is solved at, given the last one and the current β (None: Φ does not depend on β).

    Φ follows an adaptive β: the current β once it has moved more than PHI_BETA_TOLERANCE
    (relative) from ``solved_at``, else ``solved_at``. A pure function of the two, so a resumed
    run that restores ``solved_at`` from its checkpoint picks the same Φ as an uninterrupted one.
    """
    if config.transform != "optimal":
        return None
    if solved_at is None or abs(math.log(beta / solved_at)) > math.log1p(PHI_BETA_TOLERANCE):
        return float(beta)
    return float(solved_at)


def rloo_advantages(rewards: np.ndarray, k: int) -> np.ndarray:
    """A_i = R_i − mean of the other k−1 rewards of the same prompt (rows are contiguous groups of k)."""
    grouped = np.asarray(rewards, dtype=np.float64).reshape(-1, k)
    others = (grouped.sum(axis=1, keepdims=True) - grouped) / (k - 1)
    return (grouped - others).ravel()


def bank_win_rate_gap(k: int, m: int, n: int) -> str | None:
    """Why the in-training best-of-N estimate is missing for k samples and a bank of m (None: it is logged)."""
    if k >= n and m >= n:
        return None
    short = [name for name, value in (("k", k), ("m", m)) if value < n]
    values = " and ".join(f"{name} = {k if name == 'k' else m}" for name in short)
    return (
        f"no in-training best-of-{n} / worst-of-{n} estimate: it needs k ≥ N and m ≥ N, but {values} "
        f"{'are' if len(short) > 1 else 'is'} below N = {n}; set {' and '.join(short)} to at least {n} (or measure the run in the arena)"
    )


def bank_win_rates(policy_rewards, bank_rewards, n: int) -> tuple[float, float] | None:
    """Unbiased best-of-N and worst-of-N win rates of [P, k] policy rewards against [P, m] bank rewards.

    The bank's rewards are reference samples, so the arena's all-subsets estimator (ties ½) on
    the two sets compares like with like. None when k < N or m < N (see ``bank_win_rate_gap``).
    """
    from infalign_core import winrate

    ours = np.asarray(policy_rewards, dtype=np.float64)
    theirs = np.asarray(bank_rewards, dtype=np.float64)
    if bank_win_rate_gap(ours.shape[-1], theirs.shape[-1], n) is not None:
        return None
    bon = winrate.win_rate(ours, theirs, n, "best")
    won = winrate.win_rate(ours, theirs, n, "worst")
    return bon, won


def saturation_warning(metrics: Sequence[dict], window: int = 10, threshold: float = 0.5) -> str | None:
    """A message when, over the last ``window`` steps, most samples beat their whole reference bank."""
    recent = [row["reward/above_bank"] for row in metrics[-window:] if "reward/above_bank" in row]
    if len(recent) < window or float(np.mean(recent)) < threshold:
        return None
    first = next(
        (row["step"] for row in metrics if row.get("reward/above_bank", 0.0) >= threshold),
        metrics[-1]["step"],
    )
    return (
        f"Saturated since about step {first}: {np.mean(recent):.0%} of recent samples out-score every "
        "reference sample of their prompt, so the reward model can no longer rank them (more steps "
        "mostly spend KL). Stop here, raise β, or use a larger bank m."
    )


def adapt_beta(beta: float, kl: float, target: float, batch: int, horizon: int) -> float:
    """Proportional KL controller: β·(1 + clip((KL − target)/target, ±0.2)·batch/horizon)."""
    error = float(np.clip((kl - target) / target, -_KL_CLIP, _KL_CLIP))
    return beta * (1.0 + error * batch / horizon)


@dataclass
class PIController:
    """PI control of log β toward a KL target, with anti-windup for the policy's lag.

    log β = log β₀ + kp·e + ki·Σe, e = clip((KL̄ − target)/target, ±1), KL̄ an EMA of the step's
    KL. The proportional controller lowers β during the first tens of steps, when the KL is low
    only because the policy has not moved yet; that windup is what made the KL overshoot to
    nearly twice the target (0.27 → 0.90 → 0.35 nats in the gallery's worst-of-4 run). Here the
    controller is *armed* only once KL̄ reaches half the target (or after ``warmup`` steps), and
    until then it may raise β but never lower it. The state is a plain dict for the checkpoint.
    """

    beta0: float
    target: float
    kp: float = 1.0
    ki: float = 0.04
    smoothing: float = 0.2
    warmup: int = 60
    ema: float | None = None
    integral: float = 0.0
    armed: bool = False
    updates: int = 0

    def update(self, kl: float) -> float:
        """Feed one step's KL; return the next β."""
        kl = float(kl) if math.isfinite(kl) else (self.ema or 0.0)
        self.ema = kl if self.ema is None else (1 - self.smoothing) * self.ema + self.smoothing * kl
        self.updates += 1
        if self.ema >= 0.5 * self.target or self.updates >= self.warmup:
            self.armed = True
        error = float(np.clip((self.ema - self.target) / self.target, -1.0, 1.0))
        if not self.armed:
            return self.beta0 * math.exp(self.kp * max(error, 0.0))
        limit = math.log(20.0) / self.ki  # β stays within 1/20..20 × β₀ from the integral alone
        self.integral = float(np.clip(self.integral + error, -limit, limit))
        return self.beta0 * math.exp(self.kp * error + self.ki * self.integral)

    def state(self) -> dict:
        """What a checkpoint stores so a resumed run continues the same trajectory."""
        return {"ema": self.ema, "integral": self.integral, "armed": self.armed, "updates": self.updates}

    def load(self, state: dict | None) -> None:
        """Restore ``state()`` (a missing state leaves the controller fresh)."""
        if state:
            self.ema = None if state.get("ema") is None else float(state["ema"])
            self.integral = float(state.get("integral", 0.0))
            self.armed = bool(state.get("armed", False))
            self.updates = int(state.get("updates", 0))


def token_logprobs(
    model,
    prompt_ids: Sequence[Sequence[int]],
    targets: Sequence[Sequence[int]],
    pad_id: int,
    temperature: float = 1.0,
):
    """Teacher-forced log π_T(target_t | prompt, target_<t), the entropy there, and a validity mask.

    π_T is the distribution sampled at ``temperature``: log-softmax(logits / T) per token, so a
    KL or gradient built on these is that of what was drawn. Rows are left-padded so every
    response ends at the last column; returns three (rows × width) tensors. Gradients flow
    through the log-probs when enabled by the caller.
    """
    import torch

    device = next(model.parameters()).device
    rows = [list(p) + list(t) for p, t in zip(prompt_ids, targets)]
    length = max(map(len, rows))
    width = max(1, max(map(len, targets)))
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, length - len(row) :] = torch.as_tensor(row)
        mask[i, length - len(row) :] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = (
        model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -(width + 1) : -1].float()
    )
    if temperature != 1.0:
        logits = logits / float(temperature)
    logp_all = torch.log_softmax(logits, -1)
    target = ids[:, -width:]
    lengths = torch.as_tensor([len(t) for t in targets], device=device)
    valid = torch.arange(width, device=device)[None, :] >= (width - lengths)[:, None]
    logp = logp_all.gather(-1, target[..., None]).squeeze(-1) * valid
    with torch.no_grad():
        entropy = -(logp_all.exp() * logp_all).sum(-1) * valid
    return logp, entropy, valid


@dataclass
class GradientStats:
    """What one policy-gradient step measured, per row and in total."""

    kl_k1: np.ndarray
    kl_k3: np.ndarray
    tokens: np.ndarray
    entropy_sum: float
    loss: float
    grad_norm: float


def policy_gradient_step(
    model,
    reference_model,
    optimizer,
    prompt_ids,
    targets,
    pad_id: int,
    rewards: np.ndarray,
    beta: float,
    k: int,
    *,
    bf16: bool = False,
    max_grad_norm: float = 1.0,
    temperature: float = 1.0,
    micro: int | None = None,
    log: Callable[[str], None] | None = None,
    kl_in_loss: bool = False,
    advantages: np.ndarray | None = None,
) -> tuple[GradientStats, int | None]:
    """KL to the reference, RLOO advantages of rewards − β·KL, one clipped optimizer step on −mean A·log π.

    Both log-probs are taken at the sampling ``temperature``: the KL is KL(π_T‖π_ref,T), as TRL computes it.
    With ``kl_in_loss`` the advantages are of the rewards alone and β·Σ_t k3_t (per sequence,
    averaged) joins the loss instead, as GRPO does.

    Given ``advantages``, they are used as they are (weighted max-likelihood: A = weights).

    Out of memory, the rows are split into micro-batches of half the size (then half again),
    the step is redone and the run goes on; the size is returned so later steps start there.
    """
    from infalign_core.models import _is_oom

    def advantages_of(kl_k1: np.ndarray) -> np.ndarray:
        if advantages is not None:
            return np.asarray(advantages, dtype=np.float64)
        penalty = 0.0 if kl_in_loss else beta * kl_k1
        return rloo_advantages(np.asarray(rewards, dtype=np.float64) - penalty, k)

    kl_weight = float(beta) if kl_in_loss else 0.0

    rows = len(targets)
    while True:
        try:
            return _gradient_pass(
                model, reference_model, optimizer, prompt_ids, targets, pad_id, advantages_of, bf16,
                max_grad_norm, temperature, micro, kl_weight,
            ), micro  # fmt: skip
        except (RuntimeError, MemoryError) as err:
            if not _is_oom(err) or (micro or rows) <= 1:
                raise
            optimizer.zero_grad(set_to_none=True)
            _empty_device_cache()
            micro = max(1, (micro or rows) // 2)
            if log is not None:
                log(
                    f"out of memory on a {rows}-row policy-gradient pass: continuing in micro-batches of {micro}"
                )


def _empty_device_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _gradient_pass(
    model, reference_model, optimizer, prompt_ids, targets, pad_id, advantages_of, bf16, max_grad_norm,
    temperature, micro, kl_weight=0.0,
) -> GradientStats:  # fmt: skip
    """One step over all rows at once (``micro`` None) or in chunks of ``micro`` rows (two passes).

    ``kl_weight`` > 0 adds kl_weight · Σ_t k3_t per sequence (mean over sequences) to the loss.
    """
    import torch

    from infalign_core.models import checkpointed_layers

    device = next(model.parameters()).device
    rows = len(targets)
    size = micro or rows
    chunks = [slice(i, min(i + size, rows)) for i in range(0, rows, size)]
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def k3_loss(logp, ref_logp, valid):
        """Σ_t k3 per row with its gradient through log π; k3 = (r − 1) − log r, r = π_ref/π."""
        log_r = (ref_logp.float() - logp).clamp(max=20.0)
        return ((torch.expm1(log_r) - log_r) * valid).sum(-1)

    def stats(logp, ref_logp, valid):
        log_ratio = (logp.detach() - ref_logp).double()  # log π − log π_ref per token
        k3 = ((torch.expm1(-log_ratio) + log_ratio) * valid).sum(-1)
        return log_ratio.sum(-1).cpu().numpy(), k3.cpu().numpy(), valid.sum(-1).cpu().numpy()

    optimizer.zero_grad(set_to_none=True)
    if micro is None:
        with autocast, checkpointed_layers(model):
            logp, entropy, valid = token_logprobs(model, prompt_ids, targets, pad_id, temperature)
            with torch.no_grad():
                ref_logp, _, _ = token_logprobs(reference_model, prompt_ids, targets, pad_id, temperature)
        kl_k1, kl_k3, tokens = stats(logp, ref_logp, valid)
        advantages = torch.as_tensor(advantages_of(kl_k1), dtype=torch.float32, device=device)
        loss = -(advantages * logp.sum(-1)).mean()
        if kl_weight:
            loss = loss + kl_weight * k3_loss(logp, ref_logp, valid).mean()
        loss.backward()
        entropy_sum, loss_value = float(entropy.sum().item()), float(loss.item())
    else:
        parts, entropy_sum, references = [], 0.0, []
        with torch.no_grad(), autocast:  # pass 1: the KL of every row, so advantages are known
            for c in chunks:
                logp, entropy, valid = token_logprobs(model, prompt_ids[c], targets[c], pad_id, temperature)
                ref_logp, _, _ = token_logprobs(
                    reference_model, prompt_ids[c], targets[c], pad_id, temperature
                )
                parts.append(stats(logp, ref_logp, valid))
                references.append(ref_logp if kl_weight else None)
                entropy_sum += float(entropy.sum().item())
        kl_k1, kl_k3, tokens = (np.concatenate(p) for p in zip(*parts))
        advantages = torch.as_tensor(advantages_of(kl_k1), dtype=torch.float32, device=device)
        loss_value = 0.0
        for c, ref_logp in zip(chunks, references):  # pass 2: gradients accumulated chunk by chunk
            with autocast, checkpointed_layers(model):
                logp, _, valid = token_logprobs(model, prompt_ids[c], targets[c], pad_id, temperature)
            loss = -(advantages[c] * logp.sum(-1)).sum() / rows
            if kl_weight:
                loss = loss + kl_weight * k3_loss(logp, ref_logp, valid).sum() / rows
            loss.backward()
            loss_value += float(loss.item())
    params = [p for p in model.parameters() if p.requires_grad]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    return GradientStats(kl_k1, kl_k3, tokens, entropy_sum, loss_value, float(grad_norm))


def tilted_weights(transformed: np.ndarray, beta: float, k: int) -> np.ndarray:
    """Self-normalised weights e^{Φ/β}/Z within each prompt's k reference samples (rows in groups of k).

    Reference samples weighted so are a sample of the tilted optimum π* ∝ π_ref·e^{Φ(C)/β}:
    maximising Σ w·log π fits π by the forward KL to π* (reward-weighted regression, BOND).
    """
    grouped = np.asarray(transformed, dtype=np.float64).reshape(-1, int(k)) / float(beta)
    grouped = np.exp(grouped - grouped.max(axis=1, keepdims=True))
    return (grouped / grouped.sum(axis=1, keepdims=True)).ravel()


def distils_at(config: CTRLConfig, step: int) -> bool | None:
    """True when ``step`` (1-based) is a distillation step of the run, else None (an RLOO step)."""
    if config.algorithm == "distil" or (config.algorithm == "distil-rloo" and step <= config.steps // 2):
        return True
    return None


def measure_kl(
    model, reference_model, prompt_ids, targets, pad_id, temperature=1.0, bf16=False
) -> GradientStats:
    """Per-sequence KL (k1, k3), tokens and entropy of sampled rows, without a gradient (loss and norm 0)."""
    import torch

    device = next(model.parameters()).device
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        logp, entropy, valid = token_logprobs(model, prompt_ids, targets, pad_id, temperature)
        ref_logp, _, _ = token_logprobs(reference_model, prompt_ids, targets, pad_id, temperature)
    log_ratio = (logp.float() - ref_logp.float()).double()
    k3 = ((torch.expm1(-log_ratio) + log_ratio) * valid).sum(-1)
    return GradientStats(
        log_ratio.sum(-1).cpu().numpy(),
        k3.cpu().numpy(),
        valid.sum(-1).cpu().numpy(),
        float(entropy.sum().item()),
        0.0,
        0.0,
    )


def distil_step(
    config, models, optimizer, bank, chosen, batch_prompts, row_prompt_ids, targets, phi, beta, seed, bf16,
    micro, log, step=0,
) -> tuple[GradientStats, dict]:  # fmt: skip
    """One weighted max-likelihood step on fresh reference samples; stats are of the policy's own rows.

    The policy's rows (``targets``) give the KL and entropy the run logs, measured before the
    update. Then k reference samples per prompt are drawn (a stream of their own), calibrated
    against the bank, weighted by ``tilted_weights`` and fitted. Returns the stats and the
    step's distillation metrics: the weights' effective sample size per prompt (of k) and the
    reverse-direction KL(π_ref‖π) the update sees on reference samples.
    """
    from infalign_core import calibration, sampling

    policy, reference, reward_fn = models.policy, models.reference, models.reward_fn
    stats = measure_kl(
        policy.model, reference.model, row_prompt_ids, targets, policy.tokenizer.pad_token_id,
        config.temperature, bf16,
    )  # fmt: skip
    drawn = sampling.sample(
        reference, batch_prompts, config.k, config.sampling((int(seed) + 1) % (2**31 - 1))
    )
    raw = np.asarray(reward_fn.score(drawn.row_prompts(), drawn.responses), dtype=np.float64)
    check_finite_rewards(raw, drawn.row_prompts(), drawn.responses, step)
    calibrated = calibration.calibrated_reward(bank, chosen[drawn.prompt_index], raw)
    transformed = raw if phi is None else np.asarray(phi(calibrated), dtype=np.float64)
    weights = tilted_weights(transformed, beta, config.k)
    eos_ids = sampling.eos_token_ids(reference.model, reference.tokenizer)
    ref_targets = [
        [*ids, eos_ids[0]] if done and eos_ids else list(ids)
        for ids, done in zip(drawn.response_ids, drawn.finished)
    ]
    prompt_ids = sampling.encode_prompts(policy.tokenizer, batch_prompts, policy.chat)
    fitted, _ = policy_gradient_step(
        policy.model,
        reference.model,
        optimizer,
        [prompt_ids[i] for i in drawn.prompt_index],
        ref_targets,
        policy.tokenizer.pad_token_id,
        transformed,
        beta,
        config.k,
        bf16=bf16,
        max_grad_norm=config.max_grad_norm,
        temperature=config.temperature,
        micro=micro,
        log=log,
        advantages=weights * config.k,  # −mean(A·log π) = −Σ_prompts Σ_i w_i·log π_i / prompts
    )
    stats.loss, stats.grad_norm = fitted.loss, fitted.grad_norm
    ess = 1.0 / np.square(weights.reshape(-1, config.k)).sum(axis=1)
    return stats, {
        "distil/ess": float(ess.mean()),
        "distil/reverse_kl": float(-fitted.kl_k1.mean()),
    }


def _state_of(controller) -> dict | None:
    return None if controller is None else controller.state()


@dataclass
class Models:
    """What a run loads: the trained policy, the frozen reference and the reward function."""

    policy: object  # models.LoadedPolicy (trained in place)
    reference: object  # models.LoadedPolicy (frozen)
    reward_fn: object  # reward_base.RewardFunction


def load_models(config: CTRLConfig) -> Models:
    """Load policy (fp32 master weights), reference and reward on the run's device."""
    from infalign_core.models import load_policy
    from infalign_core.rewards import load_reward

    device = None if config.device == "auto" else config.device
    chat = config.chat
    policy = load_policy(config.policy, device=device, dtype="float32", chat=chat)
    ref_dtype = "bfloat16" if _use_bf16(config, policy.device) else "float32"
    reference = load_policy(
        config.reference or config.policy, device=str(policy.device), dtype=ref_dtype, chat=chat
    )
    for p in reference.model.parameters():
        p.requires_grad_(False)
    reward_fn = load_reward(config.reward, label=config.reward_label, device=str(policy.device), chat=chat)
    if config.lora_rank is not None:
        from infalign_core.models import add_lora

        add_lora(policy, config.lora_rank)
    if config.gradient_checkpointing:
        from infalign_core.models import enable_gradient_checkpointing

        enable_gradient_checkpointing(policy)
    return Models(policy, reference, reward_fn)


def _use_bf16(config: CTRLConfig, device) -> bool:
    import torch

    if device.type != "cuda":
        return False
    if config.dtype == "bfloat16":
        return True
    return config.dtype == "auto" and torch.cuda.is_bf16_supported()


def _step_seed(seed: int, step: int) -> int:
    return (int(seed) * 1_000_003 + int(step) * 7_919) % (2**31 - 1)


# --- checkpoints and the metrics file --------------------------------------------------------


def save_checkpoint(
    run_dir: Path,
    policy,
    optimizer,
    step: int,
    beta: float,
    *,
    phi_beta: float | None = None,
    controller: dict | None = None,
) -> Path:
    """Write model + tokenizer + trainer_state.pt to run_dir/checkpoint, atomically (tmp dir, rename).

    ``phi_beta`` is the β the run's optimal Φ was last solved at: stored in the trainer state so a
    resume continues with the same Φ, and in transform.json so the arena compares the checkpoint
    with the Φ it was trained on.
    """
    import torch

    final = Path(run_dir) / CHECKPOINT_DIR
    tmp, old = final.with_name(CHECKPOINT_DIR + ".tmp"), final.with_name(CHECKPOINT_DIR + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    policy.model.save_pretrained(tmp, safe_serialization=True)
    policy.tokenizer.save_pretrained(tmp)
    save_chat_format(tmp, policy.chat)
    state = {"step": int(step), "beta": float(beta), "optimizer": optimizer.state_dict()}
    if phi_beta is not None:
        state["phi_beta"] = float(phi_beta)
    if controller is not None:  # the PI controller's memory (EMA, integral), so a resume continues it
        state["controller"] = dict(controller)
    torch.save(state, tmp / TRAINER_STATE)
    (tmp / TRANSFORM_FILE).write_text(
        json.dumps({"step": int(step), "beta": float(beta), "phi_beta": phi_beta}), encoding="utf-8"
    )
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def trained_phi_beta(checkpoint: Path) -> float | None:
    """The β a checkpoint's optimal Φ was solved at (None for other transforms or older checkpoints)."""
    try:
        value = json.loads((Path(checkpoint) / TRANSFORM_FILE).read_text(encoding="utf-8")).get("phi_beta")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) and math.isfinite(value) and value > 0 else None


def checkpoint_path(run_dir: Path) -> Path | None:
    """The newest complete checkpoint folder of a run, or None.

    Complete means it has the trainer state, or (a weights-only checkpoint, as the gallery
    ships) its transform.json and weights: either is written last, inside the temporary
    folder that is renamed into place.
    """
    for name in (CHECKPOINT_DIR, CHECKPOINT_DIR + ".old"):  # .old survives a crash between two renames
        path = Path(run_dir) / name
        if (path / TRAINER_STATE).is_file():
            return path
        if (path / TRANSFORM_FILE).is_file() and any(path.glob("*.safetensors")):
            return path
    return None


def read_metrics(run_dir: Path) -> list[dict]:
    """All metric rows of a run (a torn last line from a crash is skipped); shared rows, read-only."""
    path = Path(run_dir) / METRICS_FILE
    # Every session's CTRL and arena pages read the same files: parse each version once.
    return list(filememo.memo("metrics", (str(path),), [path], lambda: _parse_metrics(path)))


def _parse_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def truncate_metrics(run_dir: Path, step: int) -> None:
    """Keep only metric rows with step ≤ ``step`` (rewritten atomically), so a resume leaves no duplicate."""
    path = Path(run_dir) / METRICS_FILE
    rows = [r for r in read_metrics(run_dir) if r.get("step", 0) <= step]
    tmp = path.with_name(METRICS_FILE + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, path)


# --- the trainer ---------------------------------------------------------------------------


def reference_bank(config: CTRLConfig, reference, reward_fn, prompts, *, progress=None, should_stop=None):
    """The run's reference banks, built (or reused from the cache) with the run's sampling settings.

    The one place that maps a config to bank settings, so the trainer and the TRL export share
    cache entries and their banks cannot drift apart.
    """
    from infalign_core import calibration

    return calibration.build_reference_bank(
        reference,
        reward_fn,
        prompts,
        config.m,
        sampling=config.sampling(),
        cache_dir=config.cache_dir,
        progress=progress,
        should_stop=should_stop,
    )


def train(
    config: CTRLConfig,
    run_dir: str | Path | None = None,
    *,
    resume: bool = False,
    on_metrics: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
    models: Models | None = None,
) -> dict:
    """Run CTRL; returns the last step's metrics plus ``checkpoint``, ``step`` and ``stopped``.

    With ``run_dir`` metrics are appended to metrics.jsonl (flushed every step) and checkpoints
    saved every ``checkpoint_every`` steps, at a stop and at the end; ``resume`` continues from
    the last checkpoint there. ``should_stop()`` is polled between steps.
    """
    import torch

    from infalign_core import calibration, sampling

    config = config.resolved()
    log = log or (lambda _msg: None)
    should_stop = should_stop or (lambda: False)
    prompts = load_prompt_list(config)
    run_dir = Path(run_dir) if run_dir is not None else None
    models = models or load_models(config)
    policy, reference, reward_fn = models.policy, models.reference, models.reward_fn
    device = policy.device
    bf16 = _use_bf16(config, device)
    tokenizer = policy.tokenizer
    eos_ids = sampling.eos_token_ids(policy.model, tokenizer)
    pad_id = tokenizer.pad_token_id

    # 1. Reference banks: m samples per prompt from π_ref, scored and sorted (cached on disk).
    log(f"building reference banks: {len(prompts)} prompts × m = {config.m}")
    bank = reference_bank(config, reference, reward_fn, prompts, should_stop=should_stop)

    optimizer = torch.optim.AdamW(
        [p for p in policy.model.parameters() if p.requires_grad],  # LoRA: the adapters only
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
    )
    step, beta, solved_at, controller_state = 0, float(config.beta), None, None
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        ckpt = checkpoint_path(run_dir) if resume else None
        if ckpt is not None:
            step, beta, solved_at, controller_state = _restore(ckpt, policy, optimizer, device)
            log(f"resumed from {ckpt} at step {step}")
        truncate_metrics(run_dir, step)
    controller = None
    if config.kl_target is not None and config.kl_controller == "pi":
        controller = PIController(float(config.beta), float(config.kl_target))
        controller.load(controller_state)
    phi, phi_solved_at = make_phi(config, beta), None
    micro = None  # rows per forward/backward pass; None = the whole batch at once
    policy.model.eval()  # dropout off: the sampled and the scored policy must be the same
    metrics_file = open(run_dir / METRICS_FILE, "a", encoding="utf-8") if run_dir is not None else None
    last: dict = {}
    stopped = False
    try:
        while step < config.steps:
            if should_stop():
                stopped = True
                break
            started = time.perf_counter()
            step += 1
            if config.algorithm == "distil-rloo" and step == config.steps // 2 + 1 and step > 1:
                # The β the controller found for distillation (a sharper tilt to fit) is no β for RL:
                # RLOO starts again from the configured β with a fresh controller.
                beta = float(config.beta)
                if controller is not None:
                    controller = PIController(float(config.beta), float(config.kl_target))
            seed = _step_seed(config.seed, step)
            rng = np.random.default_rng(seed)

            # 2. Sample k responses for each of prompts_per_step prompts from the current policy.
            chosen = rng.choice(len(prompts), size=config.prompts_per_step, replace=False)
            batch_prompts = [prompts[i] for i in chosen]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                samples = sampling.sample(
                    policy,
                    batch_prompts,
                    config.k,
                    sampling=config.sampling(seed),
                )
            for note in samples.notes:  # e.g. a batch halved after running out of memory
                log(note)
            row_prompts = [batch_prompts[i] for i in samples.prompt_index]
            bank_rows = chosen[samples.prompt_index]

            # 3. Reward, calibrated reward against the bank, transformed reward Φ(c).
            raw = np.asarray(reward_fn.score(row_prompts, samples.responses), dtype=np.float64)
            unscored = float(np.isnan(raw).mean()) if getattr(reward_fn, "may_abstain", False) else 0.0
            if unscored:  # a judge's unparseable answers: no push either way (logged as reward/unscored)
                raw = fill_unscored(raw, config.k, bank.rewards[bank_rows[:: config.k]])
            check_finite_rewards(raw, row_prompts, samples.responses, step)
            calibrated = calibration.calibrated_reward(bank, bank_rows, raw)
            # An optimal Φ follows the adaptive β: re-solved once β has moved a few percent.
            solved_at = phi_beta(config, solved_at, beta)
            if solved_at is not None and solved_at != phi_solved_at:
                phi, phi_solved_at = make_phi(config, solved_at), solved_at
            transformed = raw if phi is None else np.asarray(phi(calibrated), dtype=np.float64)

            # 4. Per-sequence KL to the frozen reference on the sampled tokens (EOS included when emitted).
            targets = [
                [*ids, eos_ids[0]] if done and eos_ids else list(ids)
                for ids, done in zip(samples.response_ids, samples.finished)
            ]
            prompt_ids = sampling.encode_prompts(tokenizer, batch_prompts, policy.chat)
            row_prompt_ids = [prompt_ids[i] for i in samples.prompt_index]

            # 5. Leave-one-out advantage, policy-gradient step (in micro-batches of `micro` rows once
            #    the full batch has run out of memory); β·KL either inside the reward (sequence k1)
            #    or, with kl_penalty=loss, as a per-token k3 loss term whose gradient flows through log π.
            distil = distils_at(config, step)
            if distil is None:
                grads, micro = policy_gradient_step(
                    policy.model,
                    reference.model,
                    optimizer,
                    row_prompt_ids,
                    targets,
                    pad_id,
                    transformed,
                    beta,
                    config.k,
                    bf16=bf16,
                    max_grad_norm=config.max_grad_norm,
                    temperature=config.temperature,
                    micro=micro,
                    log=log,
                    kl_in_loss=config.kl_penalty == "loss",
                )
            else:
                # 5'. Distil: the policy's own samples only measure (KL, win rates); the update is
                #     weighted max-likelihood on k fresh reference samples per prompt, each weighted
                #     e^{Φ(C)/β}/Z within its prompt: a sample of the tilted optimum π*.
                grads, distil = distil_step(
                    config, models, optimizer, bank, chosen, batch_prompts, row_prompt_ids, targets,
                    phi, beta, seed, bf16, micro, log, step,
                )  # fmt: skip
            kl_k1, kl_k3, tokens = grads.kl_k1, grads.kl_k3, grads.tokens
            total = transformed - beta * kl_k1 if config.kl_penalty == "reward" else transformed

            # 6. Metrics; then adapt β toward the KL target if one is set.
            bank_rates = bank_win_rates(raw.reshape(-1, config.k), bank.rewards[chosen], config.n)
            last = {
                "step": step,
                "reward/raw": float(raw.mean()),
                "reward/unscored": unscored,
                "reward/calibrated": float(calibrated.mean()),
                "reward/transformed": float(transformed.mean()),
                # Share of samples above every reference reward of their prompt: the reward
                # model can no longer rank them, so the signal is saturating.
                "reward/above_bank": float(np.mean(calibrated >= 1.0)),
                "reward/total": float(total.mean()),
                "kl/k1": float(kl_k1.mean()),
                "kl/k3": float(kl_k3.mean()),
                # The KL the reward sees: calibrated rewards against the bank's uniform law, one row
                # per prompt (they share its bank), so the jackknife is over prompts.
                "kl/calibrated": calibration.calibrated_kl(calibrated.reshape(-1, config.k), m=bank.m),
                "kl/beta": beta,
                "policy/entropy": grads.entropy_sum / max(1, int(tokens.sum())),
                "policy/response_length": float(tokens.mean()),
                "policy/finished": float(np.mean(samples.finished)),
                "loss/policy": grads.loss,
                "loss/grad_norm": grads.grad_norm,
                "winrate/standard": float(calibrated.mean()),
                # None (not NaN) when k < N or m < N: a plot shows a gap, not a biased value.
                "winrate/bon": None if bank_rates is None else bank_rates[0],
                "winrate/won": None if bank_rates is None else bank_rates[1],
                "time/step": time.perf_counter() - started,
                "time/tokens_per_s": float(tokens.sum()) / max(1e-9, time.perf_counter() - started),
            }
            if solved_at is not None:
                last["phi/beta"] = solved_at  # the β this step's Φ is optimal for
            if distil is not None:
                last.update(distil)
            if bank_rates is None:
                last["winrate/missing"] = bank_win_rate_gap(config.k, config.m, config.n)
            if config.sample_every and (step % config.sample_every == 0 or step == 1):
                best = int(np.argmax(raw))
                last["samples"] = [
                    {
                        "prompt": row_prompts[i],
                        "response": samples.responses[i],
                        "reward": float(raw[i]),
                        "calibrated": float(calibrated[i]),
                    }
                    for i in sorted({0, best})
                ]
            if controller is not None:
                beta = controller.update(last["kl/k1"])
            elif config.kl_target is not None:
                beta = adapt_beta(beta, last["kl/k1"], config.kl_target, len(raw), config.kl_horizon)
            if metrics_file is not None:
                metrics_file.write(json.dumps(last) + "\n")
                metrics_file.flush()
            if on_metrics is not None:
                on_metrics(last)
            if run_dir is not None and step % config.checkpoint_every == 0 and step < config.steps:
                save_checkpoint(
                    run_dir,
                    policy,
                    optimizer,
                    step,
                    beta,
                    phi_beta=solved_at,
                    controller=_state_of(controller),
                )
    finally:
        if metrics_file is not None:
            metrics_file.close()
    checkpoint = None
    if run_dir is not None:
        checkpoint = str(
            save_checkpoint(
                run_dir, policy, optimizer, step, beta, phi_beta=solved_at, controller=_state_of(controller)
            )
        )
        if not last:  # resumed with nothing left to do: report the last logged step
            last = (read_metrics(run_dir) or [{}])[-1]
    out = {k: v for k, v in last.items() if k != "samples"}
    out.update({"step": step, "stopped": stopped, "checkpoint": checkpoint})
    return out


def fill_unscored(raw: np.ndarray, k: int, banks: np.ndarray) -> np.ndarray:
    """Rewards with each unscored (NaN) sample set to its prompt group's mean scored reward.

    Such a sample then carries (about) zero leave-one-out advantage: it pushes the policy neither
    way, where a 0 would punish it for the judge's failure. A group with no scored sample takes its
    bank's median, so all its advantages are exactly 0. ``banks`` is [groups, m] (sorted bank rows).
    """
    grouped = np.asarray(raw, dtype=np.float64).reshape(-1, k).copy()
    for g, row in enumerate(grouped):
        missing = np.isnan(row)
        if missing.any():
            row[missing] = np.median(banks[g]) if missing.all() else row[~missing].mean()
    return grouped.ravel()


def check_finite_rewards(
    raw: np.ndarray, prompts: Sequence[str], responses: Sequence[str], step: int
) -> None:
    """Stop the run (before this step is logged or applied) when the reward returned NaN or ±inf."""
    bad = np.flatnonzero(~np.isfinite(raw))
    if bad.size:
        i = int(bad[0])
        raise InfAlignError(
            f"the reward returned {raw[i]} for {bad.size} of {raw.size} responses at step {step} "
            f"(first: {prompts[i] + responses[i]!r}); the run stopped, its metrics up to step {step - 1} "
            "are kept. Fix the reward so it returns a finite number for every text, then resume."
        )


def _restore(ckpt: Path, policy, optimizer, device) -> tuple[int, float, float | None, dict | None]:
    """Load weights and trainer state from a checkpoint into the live policy and optimizer."""
    import torch
    from safetensors.torch import load_file

    from infalign_core.models import is_lora

    try:
        state = torch.load(ckpt / TRAINER_STATE, map_location=device, weights_only=True)
        weights = {}
        for file in sorted(ckpt.glob("*.safetensors")):
            weights.update(load_file(str(file), device=str(device)))
    except Exception as err:  # torn or edited files: the same advice whatever the parser says
        raise InfAlignError(
            f"the checkpoint at {ckpt} is truncated or corrupt ({type(err).__name__}: "
            f"{' '.join(str(err).split())[:200]}): delete that folder to restart the run from step 0, "
            "or start a new run."
        ) from None
    if is_lora(policy.model):  # the checkpoint holds the adapters only
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(policy.model, weights)
        if getattr(result, "unexpected_keys", None) or not weights:
            raise InfAlignError(
                f"the checkpoint at {ckpt} does not hold this run's LoRA adapters; start a new run instead"
            )
    else:
        missing, unexpected = policy.model.load_state_dict(weights, strict=False)
        # Tied weights (lm_head = wte) are saved once; anything else missing means a different model.
        real_missing = [k for k in missing if "lm_head" not in k]
        if real_missing or unexpected:
            raise InfAlignError(
                f"the checkpoint at {ckpt} does not match the run's policy "
                f"(missing {real_missing[:3]}, unexpected {unexpected[:3]}); start a new run instead"
            )
    optimizer.load_state_dict(state["optimizer"])
    phi_beta = state.get("phi_beta")  # absent in checkpoints from before Φ followed β
    controller = state.get("controller")
    return (
        int(state["step"]),
        float(state["beta"]),
        None if phi_beta is None else float(phi_beta),
        controller if isinstance(controller, dict) else None,
    )
