"""The GPU path end to end: a 20-step CTRL run and TRL's RLOOTrainer on a random ~135 M Llama, on CUDA.

    python bench/gpu_check.py [--steps 20] [--size 135m] [--device cuda]

Builds a randomly initialised Llama with SmolLM2-135M's shape (576 wide, 30 layers, 49,152-word
vocabulary, a ChatML template) and a small random Llama reward head, saves both with
save_pretrained (safetensors) in a temporary folder, and runs on them, side by side:

* CTRL (``ctrl.train``, bf16 autocast where the GPU supports it) for ``--steps`` steps;
* TRL's RLOOTrainer on the ``export-trl`` folder of the same config (same banks, batch, reward).

It prints response tokens/s and peak GPU memory of each, and the CTRL/TRL throughput ratio, with
the GPU's name and the load beside them. Without a CUDA device it prints one ``error:`` line and
exits 2 (nothing is built). ``--device cpu --size tiny`` runs the same code on a CPU in seconds
(what the tests do); figures from it say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

SIZES = {  # name: (hidden, layers, heads, kv heads, intermediate, vocabulary)
    "135m": (576, 30, 9, 3, 1536, 49152),
    "tiny": (64, 2, 2, 1, 128, 512),
}
CHATML = (
    "{{ bos_token }}{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> "
    "{% endfor %}{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
)


def word_tokenizer(vocab_size: int):
    """A word-level tokenizer over w0..w{V-6} plus the chat specials, with a ChatML template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<bos>", "<eos>", "<|im_start|>", "<|im_end|>"]
    vocab = {token: i for i, token in enumerate(specials)}
    vocab |= {f"w{i}": len(specials) + i for i in range(vocab_size - len(specials))}
    raw = Tokenizer(models.WordLevel(vocab=vocab, unk_token="w0"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>"
    )
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template = CHATML
    return tok


def build_models(root: Path, size: str) -> tuple[Path, Path, int]:
    """Save a random policy and reward head under root; returns their folders and the policy's parameter count."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    hidden, layers, heads, kv_heads, inter, vocab = SIZES[size]
    tok = word_tokenizer(vocab)
    shape = {
        "vocab_size": vocab,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
        "max_position_embeddings": 2048,
        "tie_word_embeddings": True,
    }
    torch.manual_seed(0)
    policy = LlamaForCausalLM(
        LlamaConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                    num_key_value_heads=kv_heads, intermediate_size=inter, **shape)
    )  # fmt: skip
    policy.generation_config.eos_token_id = [2, 4]  # <eos> and <|im_end|>, as chat checkpoints list them
    reward = LlamaForSequenceClassification(
        LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                    intermediate_size=128, num_labels=1, **shape)
    )  # fmt: skip
    folders = root / "policy", root / "reward"
    for model, folder in zip((policy, reward), folders):
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
    return *folders, sum(p.numel() for p in policy.parameters())


def write_prompts(path: Path, count: int, words: int, vocab: int) -> Path:
    """Distinct prompts of ``words`` word tokens, one JSON object per line."""
    rows = [" ".join(f"w{5 + (i * 131 + j * 17) % (vocab - 10)}" for j in range(words)) for i in range(count)]
    path.write_text("".join(json.dumps({"prompt": r}) + "\n" for r in rows), encoding="utf-8")
    return path


def peak_memory_reset(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_memory_gb(device) -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", choices=sorted(SIZES), default="135m")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (a smoke test of the code)")
    parser.add_argument("--k", type=int, default=8, help="samples per prompt")
    parser.add_argument("--prompts-per-step", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--skip-trl", action="store_true", help="only the CTRL run")
    args = parser.parse_args()

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            "error: no CUDA device is visible to torch, so there is nothing to measure here. Run this on a "
            "machine with an NVIDIA GPU (and a CUDA build of torch), or pass --device cpu --size tiny to "
            "smoke-test the code path.",
            file=sys.stderr,
        )
        return 2
    from bench_ctrl import loadavg, run_trl, summarise

    from infalign_core import ctrl
    from infalign_core.errors import InfAlignError
    from infalign_core.integrations import trl as ctrl_trl

    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        policy_dir, reward_dir, params = build_models(tmp, args.size)
        prompts = write_prompts(tmp / "prompts.jsonl", 64, 32, SIZES[args.size][5])
        config = ctrl.CTRLConfig(
            policy=str(policy_dir),
            reward=str(reward_dir),
            prompts=str(prompts),
            num_prompts=64,
            m=16,
            k=args.k,
            prompts_per_step=args.prompts_per_step,
            max_new_tokens=args.max_new_tokens,
            steps=args.steps,
            device=args.device,
            cache_dir=str(tmp / "banks"),
            sample_every=10_000,
            checkpoint_every=10_000,
        )
        print(
            f"device {name}  torch {torch.__version__}  policy {params / 1e6:.1f} M parameters (random Llama, "
            f"{args.size})  batch {config.prompts_per_step} prompts × k = {config.k}  max_new_tokens "
            f"{config.max_new_tokens}  steps {config.steps}  loadavg {loadavg()}"
        )
        try:
            export_dir = tmp / "export"
            started = time.perf_counter()
            ctrl_trl.export_trl(config, export_dir, num_processes=1)  # builds the banks both runs share
            print(f"banks and export: {time.perf_counter() - started:.1f} s")
            peak_memory_reset(device)
            rows: list[dict] = []
            ctrl.train(config, None, on_metrics=rows.append, log=lambda m: print(f"  ctrl: {m}"))
            batch = config.k * config.prompts_per_step
            ctrl_steps = [(r["time/step"], r["policy/response_length"] * batch) for r in rows]
            ctrl_memory = peak_memory_gb(device)
            ctrl_step_s, ctrl_tps = summarise(ctrl_steps)
            print(
                f"ctrl  step {ctrl_step_s * 1e3:8.1f} ms  tokens/s "
                f"{ctrl_tps:9,.0f}  peak memory {ctrl_memory:.2f} GiB  loadavg {loadavg()}"
            )
            if args.skip_trl:
                return 0
            peak_memory_reset(device)
            trl_step_s, trl_tps = summarise(run_trl(config, export_dir, tmp / "trl"))
            trl_memory = peak_memory_gb(device)
            print(
                f"trl   step {trl_step_s * 1e3:8.1f} ms  tokens/s {trl_tps:9,.0f}  peak memory "
                f"{trl_memory:.2f} GiB  loadavg {loadavg()}"
            )
            print(f"CTRL / TRL throughput (tokens/s) {ctrl_tps / trl_tps:.2f}x  on {name}")
        except InfAlignError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
