"""Samples per second of infalign_core.sampling.sample against model.generate and a one-at-a-time loop.

Run: ``python bench/bench_sampling.py [--policy default] [--threads 1,2] [--repeats 5]``.
``--policy llama-20m`` / ``llama-100m`` builds a random Llama-architecture model (32k vocabulary,
prompts of ``--prompt-tokens`` tokens) in memory, to time the generic path; e.g.
``python bench/bench_sampling.py --policy llama-20m,llama-100m --threads 1 --batches 64``.
Prints, never asserts. All three methods are measured side by side in one process, interleaved
repeat by repeat, with the same prompts and settings (temperature, top-p, no top-k,
max_new_tokens, stop at EOS); ``cat /proc/loadavg`` and the torch thread count are printed
beside every figure because on a small shared machine they move the numbers more than the code.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infalign_core.models import LoadedPolicy, load_policy  # noqa: E402
from infalign_core.sampling import sample  # noqa: E402
from infalign_core.sampling_settings import SamplingSettings  # noqa: E402

RANDOM_LLAMAS = {  # name: (hidden, layers, heads, kv heads, intermediate); 32k vocabulary, untied
    "llama-20m": (256, 4, 4, 4, 688),
    "llama-100m": (768, 8, 12, 4, 2048),
}

FALLBACK_PROMPTS = ["The movie was", "I expected", "The acting felt", "This film is", "The plot"]


def loadavg() -> str:
    """The 1-minute load average, as /proc/loadavg reports it."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "n/a"


def bench_prompts(count: int) -> list[str]:
    """The first ``count`` bundled prompts (or a few fixed openings when the world is not built)."""
    path = ROOT / "assets" / "world" / "prompts.jsonl"
    if path.is_file():
        rows = [json.loads(line)["prompt"] for line in path.read_text().splitlines() if line.strip()]
    else:
        rows = FALLBACK_PROMPTS
    return [rows[i % len(rows)] for i in range(count)]


def random_llama(name: str) -> LoadedPolicy:
    """A randomly initialised Llama of the named size with a 32k word-level tokenizer, on CPU."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    hidden, layers, heads, kv_heads, inter = RANDOM_LLAMAS[name]
    vocab = {f"w{i}": i for i in range(32000)}
    raw = Tokenizer(models.WordLevel(vocab=vocab, unk_token="w0"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="w1", eos_token="w2", pad_token="w0")
    config = LlamaConfig(
        vocab_size=32000, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=kv_heads, intermediate_size=inter, max_position_embeddings=2048,
        bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    count = sum(p.numel() for p in model.parameters())
    return LoadedPolicy(
        model=model, tokenizer=tok, source=name, device=torch.device("cpu"), dtype=torch.float32,
        num_parameters=count, size_bytes=count * 4, load_seconds=0.0, fingerprint=name,
    )  # fmt: skip


def word_prompts(count: int, length: int) -> list[str]:
    """Distinct prompts of ``length`` word tokens for the random Llama."""
    return [" ".join(f"w{3 + (i * 131 + j * 17) % 31000}" for j in range(length)) for i in range(count)]


def run_ours(policy, prompts, n, args) -> int:
    """Our sampler: all rows in one batch."""
    s = sample(
        policy,
        prompts,
        n,
        sampling=SamplingSettings(
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            seed=0,
            batch_size=len(prompts) * n,
        ),
    )
    return len(s.responses)


def _generate(policy, rows: list[str], args) -> list[str]:
    """model.generate on left-padded rows with the same settings, decoded like ours."""
    tok = policy.tokenizer
    enc = tok(rows, return_tensors="pt", padding=True, padding_side="left").to(policy.device)
    with torch.inference_mode():
        out = policy.model.generate(
            **enc,
            do_sample=args.temperature > 0,
            temperature=args.temperature if args.temperature > 0 else None,
            top_p=args.top_p,
            top_k=0,
            max_new_tokens=args.max_new_tokens,
            pad_token_id=tok.pad_token_id,
        )
    return tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)


def run_generate(policy, prompts, n, args) -> int:
    """model.generate with every row in one batch."""
    rows = [p for p in prompts for _ in range(n)]
    return len(_generate(policy, rows, args))


def run_one_at_a_time(policy, prompts, n, args, limit: int = 32) -> int:
    """model.generate called once per sample (the first ``limit`` rows; rate extrapolates)."""
    rows = [p for p in prompts for _ in range(n)][:limit]
    for row in rows:
        _generate(policy, [row], args)
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="default")
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    parser.add_argument("--batches", default="64,256", help="comma-separated batch sizes (rows)")
    parser.add_argument("--n", type=int, default=8, help="samples per prompt (prompts = batch / n)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--prompt-tokens", type=int, default=32, help="prompt length for the random Llamas")
    parser.add_argument("--skip-one-at-a-time", action="store_true", help="time only ours and generate")
    args = parser.parse_args()
    for name in args.policy.split(","):
        bench_policy(name, args)


def bench_policy(name: str, args) -> None:
    """Print the side-by-side rates for one policy."""
    policy = random_llama(name) if name in RANDOM_LLAMAS else load_policy(name, device="cpu")
    print(
        f"policy {name} ({type(policy.model).__name__}): {policy.num_parameters / 1e6:.2f} M parameters, "
        f"temperature {args.temperature}, top_p {args.top_p}, top_k off, max_new_tokens {args.max_new_tokens}"
    )
    methods = {"ours": run_ours, "generate": run_generate, "one-at-a-time": run_one_at_a_time}
    if args.skip_one_at_a_time:
        methods.pop("one-at-a-time")
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for batch in [int(b) for b in args.batches.split(",")]:
            count = max(1, batch // args.n)
            prompts = (
                word_prompts(count, args.prompt_tokens) if name in RANDOM_LLAMAS else bench_prompts(count)
            )
            n = batch // len(prompts)
            for fn in methods.values():  # warm-up: first calls allocate and import
                fn(policy, prompts[:1], 2, args)
            rates: dict[str, list[float]] = {name: [] for name in methods}
            loads: list[str] = []
            for _ in range(args.repeats):
                for name, fn in methods.items():
                    start = time.perf_counter()
                    count = fn(policy, prompts, n, args)
                    rates[name].append(count / (time.perf_counter() - start))
                loads.append(loadavg())
            med = {name: statistics.median(values) for name, values in rates.items()}
            tail = (
                f"  one-at-a-time {med['one-at-a-time']:6.1f}  vs one-at-a-time "
                f"{med['ours'] / med['one-at-a-time']:.1f}x"
                if "one-at-a-time" in med
                else ""
            )
            print(
                f"threads={torch.get_num_threads()} batch={len(prompts) * n:>4} k={n} "
                f"loadavg[{' '.join(loads)}]  samples/s: ours {med['ours']:8.1f}  "
                f"generate {med['generate']:8.1f}  ratio vs generate {med['ours'] / med['generate']:.2f}x{tail}"
            )
            sys.stdout.flush()


if __name__ == "__main__":
    main()
