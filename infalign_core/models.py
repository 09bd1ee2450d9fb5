"""Loading a reference policy and a reward model: bundled default, preset, local folder or hub id.

Everything goes through ``AutoTokenizer`` / ``AutoModelForCausalLM`` /
``AutoModelForSequenceClassification`` with safetensors only and ``trust_remote_code`` off
unless asked, so the bundled world and a hub model take the same code path. Every failure a
user can fix becomes an ``InfAlignError`` whose message says what to do instead.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import torch

from infalign_core import classroom
from infalign_core.chat import ChatFormat, saved_chat_format
from infalign_core.errors import InfAlignError

ASSETS_WORLD_DIR = Path(__file__).resolve().parent.parent / "assets" / "world"
BUNDLED = {"policy": ASSETS_WORLD_DIR / "policy", "reward": ASSETS_WORLD_DIR / "reward"}


@dataclass(frozen=True)
class Preset:
    """A (policy, reward model, prompt set, procedure) tuple on the hub (needs internet the first time).

    ``prompts`` is a prompt source (a ``data.PROMPT_PRESETS`` name or "bundled"); ``mode`` and
    ``n`` are the inference procedure the paper aligns for on that set.
    """

    name: str
    policy: str
    reward: str
    reward_label: str | None
    policy_size: str
    reward_size: str
    note: str
    prompts: str = "bundled"
    mode: str = "best"
    n: int = 4
    lora_rank: int | None = None  # advised above ~1 B parameters


_SKYWORK = "Skywork/Skywork-Reward-V2-Qwen3-0.6B"
_SKYWORK_SIZE = "0.6B parameters, ~1.2 GB (bf16 on disk); scores a chat-formatted conversation"

PRESETS: dict[str, Preset] = {
    "gpt2-sentiment": Preset(
        name="gpt2-sentiment",
        policy="openai-community/gpt2",
        reward="distilbert/distilbert-base-uncased-finetuned-sst-2-english",
        reward_label="POSITIVE",
        policy_size="124M parameters, ~0.5 GB",
        reward_size="67M parameters, ~0.27 GB",
        note="GPT-2 continues a review opening; an SST-2 classifier's POSITIVE logit is the reward. "
        "Completion mode (no chat templates); runs on a CPU.",
    ),
    "smollm2-135m-instruct": Preset(
        name="smollm2-135m-instruct",
        policy="HuggingFaceTB/SmolLM2-135M-Instruct",
        reward=_SKYWORK,
        reward_label=None,
        policy_size="135M parameters, ~0.27 GB (bf16 on disk)",
        reward_size=_SKYWORK_SIZE,
        note="A small instruct model with an open scalar reward model on HH helpfulness, best-of-4; "
        "fits a 4 GB laptop GPU (bf16), slow but possible on a CPU.",
        prompts="hh-helpful",
    ),
    "smollm2-360m-hh-harmless": Preset(
        name="smollm2-360m-hh-harmless",
        policy="HuggingFaceTB/SmolLM2-360M-Instruct",
        reward=_SKYWORK,
        reward_label=None,
        policy_size="362M parameters, ~0.72 GB (bf16 on disk)",
        reward_size=_SKYWORK_SIZE,
        note="The paper's harmlessness setting: HH harmless-base dialogues aligned for worst-of-4 "
        "(jailbreak robustness); a 6–8 GB GPU.",
        prompts="hh-harmless",
        mode="worst",
    ),
    "qwen2.5-0.5b-tldr": Preset(
        name="qwen2.5-0.5b-tldr",
        policy="Qwen/Qwen2.5-0.5B-Instruct",
        reward=_SKYWORK,
        reward_label=None,
        policy_size="494M parameters, ~1.0 GB (bf16 on disk)",
        reward_size=_SKYWORK_SIZE,
        note="TL;DR summarisation prompts (trl-lib/tldr) for best-of-4; an 8 GB GPU.",
        prompts="tldr",
    ),
    "qwen2.5-1.5b-hh-helpful-lora": Preset(
        name="qwen2.5-1.5b-hh-helpful-lora",
        policy="Qwen/Qwen2.5-1.5B-Instruct",
        reward=_SKYWORK,
        reward_label=None,
        policy_size="1.5B parameters, ~3.1 GB (bf16 on disk)",
        reward_size=_SKYWORK_SIZE,
        note="Above 1 B parameters: LoRA rank 16 and gradient checkpointing keep HH helpfulness, "
        "best-of-4, on a 12–16 GB GPU.",
        prompts="hh-helpful",
        lora_rank=16,
    ),
}

_OFFLINE_HINT = (
    "Use the bundled default world (source 'default'), or download the model elsewhere and give "
    "its local folder (saved with save_pretrained, safetensors)."
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
_WEIGHT_SUFFIXES = (".safetensors",)
ADAPTER_CONFIG = "adapter_config.json"
_UNSAFE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


@dataclass
class LoadedPolicy:
    """A causal language model ready to sample from, with what the UI shows about it."""

    model: torch.nn.Module
    tokenizer: object
    source: str
    device: torch.device
    dtype: torch.dtype
    num_parameters: int
    size_bytes: int
    load_seconds: float
    fingerprint: str
    notes: list[str] = field(default_factory=list)
    chat: ChatFormat = field(default_factory=ChatFormat)  # how prompts are rendered for it


@dataclass
class LoadedRewardModel:
    """A sequence-classification reward model and its label names (``labels[i]`` is logit i)."""

    model: torch.nn.Module
    tokenizer: object
    source: str
    device: torch.device
    dtype: torch.dtype
    num_parameters: int
    size_bytes: int
    load_seconds: float
    fingerprint: str
    labels: list[str]
    notes: list[str] = field(default_factory=list)


# --- device and dtype ---------------------------------------------------------


def resolve_device(device: str | None = None) -> torch.device:
    """Pick the device: the override if given and available, else CUDA, then MPS, then CPU."""
    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise InfAlignError(
            f"Unknown device {device!r}: use 'cpu', 'cuda', 'cuda:1', 'mps' or 'auto'."
        ) from None
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise InfAlignError(
                "CUDA was requested but no CUDA GPU is visible to torch: use 'cpu' or 'auto'."
            )
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise InfAlignError(
                f"{device!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)."
            )
    elif chosen.type == "mps" and not _mps_available():
        raise InfAlignError("MPS was requested but is not available here: use 'cpu' or 'auto'.")
    elif chosen.type not in ("cpu", "cuda", "mps"):
        raise InfAlignError(f"Unsupported device {device!r}: use 'cpu', 'cuda' or 'mps'.")
    return chosen


def _mps_available() -> bool:
    """Whether Apple's MPS backend can be used."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """fp32 unless asked otherwise, except bf16 by default on a CUDA GPU that supports it."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "", "auto"):
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        # transformers 5 keeps a checkpoint's fp16/bf16 unless told; CPU kernels want fp32.
        return torch.float32
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise InfAlignError(
            f"Unknown dtype {dtype!r}: use one of float32, bfloat16, float16 or auto."
        ) from None


# --- where a source lives -----------------------------------------------------


@dataclass(frozen=True)
class _Location:
    """Where to load from: a local folder or a hub id."""

    path: str
    is_local: bool
    label: str  # how messages name it


def locate(source: str, role: str) -> _Location:
    """Turn 'default', a preset name, a folder or a hub id into a loadable location."""
    source = (source or "").strip()
    if not source:
        raise InfAlignError(f"No {role} model given: use 'default', a preset, a local folder or a hub id.")
    if source == "default":
        folder = BUNDLED[role]
        if not folder.is_dir():
            raise InfAlignError(
                f"The bundled default {role} is missing at {folder}. Rebuild the world with "
                "infalign_core.world.build_world (see README), or give a local folder."
            )
        return _Location(str(folder), True, f"bundled default {role}")
    if source in PRESETS:
        preset = PRESETS[source]
        return locate(preset.policy if role == "policy" else preset.reward, role)
    classroom.guard_source(source, f"{role} model folder")
    expanded = Path(os.path.expanduser(source))
    if expanded.is_dir():
        _check_local_weights(expanded)
        return _Location(str(expanded.resolve()), True, f"folder {source}")
    if expanded.exists():
        raise InfAlignError(f"{source} is a file, not a model folder: give the folder save_pretrained wrote.")
    looks_like_path = (
        source.startswith((".", "/", "~", "\\"))
        or os.sep in source.replace("/", "", 1)
        or source.count("/") > 1
        or re.match(r"^[A-Za-z]:", source) is not None
    )
    if looks_like_path or not _HUB_ID.match(source):
        raise InfAlignError(
            f"Folder not found: {source}. Give an existing folder saved with save_pretrained, "
            f"a hub id like 'openai-community/gpt2', a preset ({', '.join(PRESETS)}), or 'default'."
        )
    return _Location(source, False, f"hub model {source}")


def _check_local_weights(folder: Path) -> None:
    """Refuse folders without safetensors weights, naming the pickle files if that is what they hold."""
    names = [p.name for p in folder.iterdir() if p.is_file()]
    if (folder / ADAPTER_CONFIG).is_file():
        if "adapter_model.safetensors" in names:
            return  # LoRA adapters (a CTRL checkpoint): the base model is named inside
        raise InfAlignError(
            f"{folder} holds LoRA adapters without adapter_model.safetensors; InfAlign Studio loads "
            "safetensors only. Save the adapters again with save_pretrained (safe_serialization=True)."
        )
    if not (folder / "config.json").is_file():
        raise InfAlignError(f"{folder} has no config.json: give the folder that save_pretrained wrote.")
    if any(n.endswith(_WEIGHT_SUFFIXES) for n in names):
        return
    unsafe = sorted(n for n in names if n.endswith(_UNSAFE_SUFFIXES))
    if unsafe:
        raise InfAlignError(
            f"{folder} holds only pickle weights ({', '.join(unsafe[:3])}); InfAlign Studio loads "
            "safetensors only, because pickle files can run code. Convert them once where you trust "
            "the file: model.save_pretrained(folder) writes model.safetensors."
        )
    raise InfAlignError(f"{folder} has no *.safetensors weight files.")


# --- error mapping ------------------------------------------------------------


def _endpoint_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe of the hub, so an offline machine fails in seconds, not after minutes of retries."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # a proxy may reach what a direct connection cannot
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _is_oom(err: BaseException) -> bool:
    """Whether an exception is the allocator running out of memory."""
    if isinstance(err, MemoryError | torch.OutOfMemoryError):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


class OutOfMemory(InfAlignError):
    """An InfAlignError raised for an allocator out-of-memory (callers may retry with a smaller batch)."""


def halve_batch(batch_size: int, what: str, *note_lists: list[str]) -> int:
    """Half the batch after an out-of-memory error; the note, said once, goes in each notes list."""
    smaller = max(1, int(batch_size) // 2)
    head = f"Out of memory while {what}"
    message = f"{head}: batches halved to {smaller} rows, continuing."
    for notes in note_lists:
        notes[:] = [n for n in notes if not n.startswith(head)] + [message]
    return smaller


@contextmanager
def memory_errors(what: str) -> Iterator[None]:
    """Turn an out-of-memory error during ``what`` into an InfAlignError that says what to try."""
    try:
        yield
    except (MemoryError, RuntimeError) as err:
        if not _is_oom(err):
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise OutOfMemory(
            f"Not enough memory for {what}. Try a smaller model or batch size, bfloat16 on a GPU, "
            "or close other programs."
        ) from None


@contextmanager
def _load_errors(loc: _Location, role: str) -> Iterator[None]:
    """Map what transformers raises into one actionable InfAlignError."""
    try:
        with memory_errors(f"loading the {loc.label}"):
            yield
    except InfAlignError:
        raise
    except (OSError, ValueError, KeyError, ImportError) as err:
        raise InfAlignError(_explain_load_error(err, loc, role)) from None
    except Exception as err:
        if type(err).__name__ != "SafetensorError":  # a truncated or corrupt weights file
            raise
        raise InfAlignError(
            f"The weights of {loc.label} are truncated or corrupt ({' '.join(str(err).split())}): "
            "save the model again, or pick another checkpoint or folder."
        ) from None


def _explain_load_error(err: BaseException, loc: _Location, role: str) -> str:
    """The sentence a user needs for a failed from_pretrained."""
    text = str(err)
    low = text.lower()
    if "couldn't connect" in low or "offline" in low or "connection" in low:
        return f"Cannot reach the Hugging Face hub to load {loc.label}. {_OFFLINE_HINT}"
    if "trust_remote_code" in low or "custom code" in low:
        return (
            f"{loc.label} needs custom code from its repository. Tick 'trust remote code' "
            "(--trust-remote-code) only if you trust its authors."
        )
    if "safetensors" in low or "pytorch_model.bin" in low or "does not appear to have a file named" in low:
        return (
            f"{loc.label} has no safetensors weights; InfAlign Studio loads safetensors only "
            "because pickle files can run code. Pick a repository or folder with model.safetensors."
        )
    if "gated" in low or "401" in low or "403" in low:
        return f"{loc.label} is gated or private: log in with `hf auth login` after accepting its terms."
    if "not a valid model identifier" in low or "404" in low or "repository not found" in low:
        return f"No such model on the hub: {loc.path}. Check the id, or give a local folder."
    if "unrecognized configuration class" in low or "unrecognized model" in low:
        kind = "causal language model" if role == "policy" else "sequence-classification reward model"
        return f"{loc.label} cannot be loaded as a {kind}: {text.splitlines()[0]}"
    first = text.splitlines()[0] if text else type(err).__name__
    return f"Could not load the {loc.label}: {first}"


# --- fingerprints -------------------------------------------------------------

_FINGERPRINTS: dict[tuple, str] = {}


def folder_fingerprint(folder: str | Path) -> str:
    """sha256 over config.json and the safetensors files, cached per path and file mtimes/sizes."""
    folder = Path(folder)
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and (p.name in ("config.json", ADAPTER_CONFIG) or p.suffix == ".safetensors")
    )
    key = (str(folder.resolve()), tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in files))
    if key not in _FINGERPRINTS:
        digest = hashlib.sha256()
        for path in files:
            digest.update(path.name.encode())
            with path.open("rb") as handle:
                for block in iter(lambda h=handle: h.read(1 << 20), b""):
                    digest.update(block)
        _FINGERPRINTS[key] = digest.hexdigest()
    return _FINGERPRINTS[key]


def _fingerprint(loc: _Location, model: torch.nn.Module) -> str:
    """Folder hash for local models, ``id@commit`` for hub models."""
    if loc.is_local:
        return folder_fingerprint(loc.path)
    commit = getattr(model.config, "_commit_hash", None) or "unknown-revision"
    return f"{loc.path}@{commit}"


# --- loading ------------------------------------------------------------------


def _from_pretrained(loader, loc: _Location, **kwargs):
    """Call a transformers loader: from the local hub cache first, the network only when needed."""
    if loc.is_local:
        return loader.from_pretrained(loc.path, **kwargs)
    try:
        return loader.from_pretrained(loc.path, local_files_only=True, **kwargs)
    except OSError:
        if not _endpoint_reachable():
            raise InfAlignError(
                f"{loc.label} is not in the local cache and the Hugging Face hub cannot be reached. "
                f"{_OFFLINE_HINT}"
            ) from None
    return loader.from_pretrained(loc.path, **kwargs)


def _check_architecture(config, loc: _Location, role: str) -> None:
    """Refuse a classifier given as policy (and vice versa) before transformers bolts a random head on."""
    archs = list(getattr(config, "architectures", None) or [])
    if not archs:
        return
    if role == "policy":
        ok = any(("CausalLM" in a or "LMHead" in a or "ForConditionalGeneration" in a) for a in archs)
        if not ok:
            raise InfAlignError(
                f"{loc.label} is not a causal language model (its config says {', '.join(archs)}). "
                "Choose it as the reward model instead, or pick a model that generates text."
            )
    elif not any("ForSequenceClassification" in a for a in archs):
        raise InfAlignError(
            f"{loc.label} is not a sequence-classification reward model (its config says "
            f"{', '.join(archs)}). Choose it as the policy instead, or pick a reward model."
        )


def _ensure_pad_token(tokenizer, loc: _Location, notes: list[str]) -> None:
    """Batching needs a pad token: reuse EOS (or another special token) and say so."""
    if tokenizer.pad_token is not None:
        return
    for name in ("eos_token", "bos_token", "unk_token"):
        token = getattr(tokenizer, name, None)
        if token is not None:
            tokenizer.pad_token = token
            notes.append(f"The tokenizer of the {loc.label} had no pad token; using its {name} {token!r}.")
            return
    raise InfAlignError(
        f"The tokenizer of the {loc.label} has no pad, EOS, BOS or UNK token to pad batches with; "
        "add a pad token to it and save it again."
    )


def _sizes(model: torch.nn.Module) -> tuple[int, int]:
    """Parameter count and in-memory bytes (tied weights counted once)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() * p.element_size() for p in params)


def load_policy(
    source: str = "default",
    *,
    device: str | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = False,
    chat: ChatFormat | None = None,
) -> LoadedPolicy:
    """Load a causal LM ("default", a preset name, a local folder or a hub id) in eval mode.

    ``chat`` says how prompts are rendered for it (default: its chat template, if it has one).
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    classroom.check_trust_remote_code(trust_remote_code)
    start = time.perf_counter()
    loc = locate(source, "policy")
    if chat is None and loc.is_local:
        chat = saved_chat_format(loc.path)  # a CTRL checkpoint renders as its run did
    if loc.is_local and (Path(loc.path) / ADAPTER_CONFIG).is_file():
        return _load_adapter_policy(
            loc, device=device, dtype=dtype, trust_remote_code=trust_remote_code, chat=chat
        )
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    notes: list[str] = []
    with _load_errors(loc, "policy"):
        config = _from_pretrained(AutoConfig, loc, trust_remote_code=trust_remote_code)
        _check_architecture(config, loc, "policy")
        tokenizer = _from_pretrained(AutoTokenizer, loc, trust_remote_code=trust_remote_code)
        model = _from_pretrained(
            AutoModelForCausalLM,
            loc,
            dtype=torch_dtype,
            use_safetensors=True,
            trust_remote_code=trust_remote_code,
        )
        model.to(dev).eval()
    _ensure_pad_token(tokenizer, loc, notes)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    if tokenizer.eos_token_id is None and model.generation_config.eos_token_id is None:
        notes.append(f"The {loc.label} has no EOS token: every sample runs to max_new_tokens.")
    num_parameters, size_bytes = _sizes(model)
    return LoadedPolicy(
        model=model,
        tokenizer=tokenizer,
        source=source,
        device=dev,
        dtype=torch_dtype,
        num_parameters=num_parameters,
        size_bytes=size_bytes,
        load_seconds=time.perf_counter() - start,
        fingerprint=_fingerprint(loc, model),
        notes=notes,
        chat=chat or ChatFormat(),
    )


def _load_adapter_policy(loc: _Location, **kwargs) -> LoadedPolicy:
    """A LoRA checkpoint: its base model with the adapters merged in (sampled like any policy)."""
    import json

    try:
        import peft
    except ImportError:
        raise InfAlignError(
            f"{loc.label} holds LoRA adapters; loading them needs peft: pip install peft."
        ) from None
    folder = Path(loc.path)
    try:
        base = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))["base_model_name_or_path"]
    except (OSError, ValueError, KeyError):
        raise InfAlignError(f"{folder / ADAPTER_CONFIG} does not name its base model.") from None
    start = time.perf_counter()
    loaded = load_policy(base, **kwargs)
    with _load_errors(loc, "policy"):
        merged = peft.PeftModel.from_pretrained(loaded.model, str(folder)).merge_and_unload()
    tokenizer = loaded.tokenizer
    if (folder / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        with _load_errors(loc, "policy"):
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
        _ensure_pad_token(tokenizer, loc, loaded.notes)
    loaded.model, loaded.tokenizer, loaded.source = merged.eval(), tokenizer, str(folder)
    loaded.fingerprint = f"{loaded.fingerprint}+lora:{folder_fingerprint(folder)}"
    loaded.notes.append(f"LoRA adapters from {folder} merged into {base}.")
    loaded.load_seconds += time.perf_counter() - start
    return loaded


def load_reward_model(
    source: str = "default",
    *,
    device: str | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = False,
) -> LoadedRewardModel:
    """Load a sequence-classification reward model with its pad token set in the config."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    classroom.check_trust_remote_code(trust_remote_code)
    start = time.perf_counter()
    loc = locate(source, "reward")
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    notes: list[str] = []
    with _load_errors(loc, "reward"):
        config = _from_pretrained(AutoConfig, loc, trust_remote_code=trust_remote_code)
        _check_architecture(config, loc, "reward")
        tokenizer = _from_pretrained(AutoTokenizer, loc, trust_remote_code=trust_remote_code)
        model, info = _from_pretrained(
            AutoModelForSequenceClassification,
            loc,
            dtype=torch_dtype,
            use_safetensors=True,
            trust_remote_code=trust_remote_code,
            output_loading_info=True,
        )
        model.to(dev).eval()
    head_missing = [k for k in info.get("missing_keys", []) if k.split(".")[0] in ("score", "classifier")]
    if head_missing:
        raise InfAlignError(
            f"{loc.label} has no trained classification head ({', '.join(sorted(head_missing)[:3])} "
            "missing): it is not a reward model. Pick a sequence-classification checkpoint."
        )
    _ensure_pad_token(tokenizer, loc, notes)
    # Decoder classifiers (GPT-2, Llama, ...) pool the last non-pad token; that needs pad_token_id.
    model.config.pad_token_id = tokenizer.pad_token_id
    id2label = getattr(model.config, "id2label", None) or {}
    num_labels = int(getattr(model.config, "num_labels", 1))
    labels = [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(num_labels)]
    num_parameters, size_bytes = _sizes(model)
    return LoadedRewardModel(
        model=model,
        tokenizer=tokenizer,
        source=source,
        device=dev,
        dtype=torch_dtype,
        num_parameters=num_parameters,
        size_bytes=size_bytes,
        load_seconds=time.perf_counter() - start,
        fingerprint=_fingerprint(loc, model),
        labels=labels,
        notes=notes,
    )


# --- training options: LoRA adapters and gradient checkpointing ------------------------------

LORA_ALPHA_PER_RANK = 2  # lora_alpha = 2·rank, the usual scale (updates ~ rank-independent)


def add_lora(policy: LoadedPolicy, rank: int) -> None:
    """Wrap the policy's model in LoRA adapters of ``rank`` on every linear layer (peft); base weights freeze."""
    try:
        import peft
    except ImportError:
        raise InfAlignError(
            "LoRA needs the peft package: pip install peft==0.21.2 (see requirements.txt)."
        ) from None
    config = peft.LoraConfig(
        r=int(rank),
        lora_alpha=LORA_ALPHA_PER_RANK * int(rank),
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    try:
        policy.model = peft.get_peft_model(policy.model, config)
    except ValueError as err:
        raise InfAlignError(
            f"LoRA cannot wrap the {policy.source} policy: {str(err).splitlines()[0]}"
        ) from None
    trainable = sum(p.numel() for p in policy.model.parameters() if p.requires_grad)
    policy.notes.append(
        f"LoRA rank {rank}: training {trainable:,} adapter parameters "
        f"({trainable / max(1, policy.num_parameters):.2%} of {policy.num_parameters:,})."
    )


def is_lora(model) -> bool:
    """Whether a model is a peft adapter wrapper."""
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def enable_gradient_checkpointing(policy: LoadedPolicy) -> None:
    """Recompute each layer's activations in the backward pass instead of storing them."""
    model = policy.model
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise InfAlignError(f"The {policy.source} policy does not support gradient checkpointing.")
    # transformers 5.x renamed the switch; the old name still works but warns.
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable({"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    policy.notes.append("Gradient checkpointing on: less activation memory, a slower backward pass.")


@contextmanager
def checkpointed_layers(model) -> Iterator[None]:
    """Let gradient checkpointing act in eval mode (dropout off) for the forward inside.

    transformers checkpoints a layer only while that layer is in training mode, and training
    mode would switch dropout on; so only the checkpointed layers' own flags are raised.
    """
    from transformers.modeling_layers import GradientCheckpointingLayer

    layers = [
        m for m in model.modules() if isinstance(m, GradientCheckpointingLayer) and m.gradient_checkpointing
    ]
    flags = [m.training for m in layers]
    for m in layers:
        m.training = True
    try:
        yield
    finally:
        for m, flag in zip(layers, flags):
            m.training = flag


def describe_size(num_bytes: int) -> str:
    """Human-readable size, e.g. '2.2 MB'."""
    value = float(num_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1000
    return f"{value:.1f} GB"
