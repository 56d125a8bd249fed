"""GPU benchmark of the bundled mPLUG-Owl at the released 7B shape: eager vs compiled decoding, side by side.

Builds its own model (ViT-L/14, 6-layer abstractor, LLaMA-7B; random weights, the LM head's end-of-sequence row
zeroed so every answer runs to its limit), downloads nothing, and prints ONE JSON object on stdout (progress goes
to stderr):

- ``device``: name, torch/transformers versions; ``bandwidth``: measured device-to-device copy GB/s;
- ``decode``: ms per decode step for eager (transformers ``generate``) and compiled (static KV cache, decode step
  compiled with CUDA graphs) at batch 1 (125-token prompt) and batch 16 (prompts 125-900 left-padded), each with
  the bandwidth bound of a step (weights + the KV cache of the real tokens, at the measured bandwidth), the
  share of it reached, the ratio eager/compiled, the first call's seconds apart (warm-up: compilation and CUDA
  graph capture), and how many greedy tokens agree between the two paths (bf16 kernels differ);
- ``generate``: the whole 82-question evaluation through the generate runner (what ``owleval generate`` runs,
  model load excluded) with ``--batch-size auto`` and ``decode=compiled``: wall time of a first (cold) and a
  second (warm) run, new tokens per second, generate calls; ``--eager-generate`` adds today's path
  (``--batch-size 16``, eager) for the ratio (about 3 more minutes on an H200);
- peak GPU memory per phase.

Run: python bench/bench_gpu.py [--data DIR]             one CUDA GPU, about 5 minutes
     python bench/bench_gpu.py --small                  tiny model on the CPU, about a minute: checks it runs
The data set (for ``generate``) is the installed one, else ../shared/owleval_82q; without either that part is
skipped and says why.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from owleval.adapters.base import GenerationConfig, LoadOptions  # noqa: E402
from owleval.adapters.mplug_owl import MplugOwlAdapter  # noqa: E402
from owleval.models.mplug_owl import (  # noqa: E402
    MplugOwlConfig,
    MplugOwlForConditionalGeneration,
    MplugOwlImageProcessor,
    MplugOwlProcessor,
)
from owleval.models.mplug_owl.static_decode import StaticCacheDecoder  # noqa: E402
from tests.mplug_owl_helpers import make_tiny_tokenizer, tiny_config  # noqa: E402

EOS = 2


def log(message: str) -> None:
    print(f"[bench_gpu {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_gib(device: str) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def build_model(small: bool, device: str, dtype: torch.dtype) -> MplugOwlForConditionalGeneration:
    """Random weights at the 7B shape (``--small``: the tests' tiny shape), built on the device in ``dtype``."""
    llama = {"model_type": "llama", "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}  # LLaMA-7B defaults
    config = tiny_config() if small else MplugOwlConfig(text_config=llama)
    previous = torch.get_default_dtype()
    torch.manual_seed(0)
    try:
        torch.set_default_dtype(dtype)
        with torch.device(device):
            model = MplugOwlForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    with torch.no_grad():
        model.language_model.lm_head.weight[EOS].zero_()  # no answer ends early
    return model.eval()


def copy_bandwidth(device: str, small: bool) -> float:
    """Device-to-device copy bandwidth in GB/s (bytes read + bytes written, best of 10)."""
    size = (64 if small else 2048) << 20
    src = torch.empty(size, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = float("inf")
    for _ in range(10):
        sync(device)
        start = time.perf_counter()
        dst.copy_(src)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size / best / 1e9


def make_prompts(model, lengths: list[int], device: str, dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-padded rows of ``lengths`` tokens: BOS, one image's placeholder slots, then random text ids."""
    gen = torch.Generator().manual_seed(0)
    slots = model.config.image_placeholder_length
    text_vocab = min(400, model.config.text_config.vocab_size)
    rows = [torch.cat([torch.tensor([1]), torch.full((slots,), -1),
                       torch.randint(3, text_vocab, (max(1, n - 1 - slots),), generator=gen)]) for n in lengths]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), EOS)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row):], mask[i, width - len(row):] = row, 1
    hidden = model.config.text_config.hidden_size
    features = torch.randn(len(rows), slots, hidden, generator=gen).to(device, dtype)
    return ids.to(device), mask.to(device), features


def timed(device: str, fn) -> tuple[float, Any]:
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return time.perf_counter() - start, result


def decode_scenario(model, lengths: list[int], steps: int, repeat: int, device: str, dtype,
                    decoder: StaticCacheDecoder, weight_bytes: int, kv_per_token: int, bandwidth: float) -> dict:
    """ms per decode step, eager vs compiled: (time for ``steps`` tokens - time for 1 token) / (steps - 1)."""
    ids, mask, features = make_prompts(model, lengths, device, dtype)

    def run(n: int, static: StaticCacheDecoder | None):
        return model.generate(input_ids=ids, attention_mask=mask, image_features=features, max_new_tokens=n,
                              prepend_bos=False, eos_token_id=EOS, pad_token_id=0, static_decoder=static)

    result: dict[str, Any] = {"batch": len(lengths), "prompt_tokens": [min(lengths), max(lengths)], "new_tokens": steps}
    tokens = {}
    for name, static in (("eager", None), ("compiled", decoder)):
        reset_peak(device)
        first, _ = timed(device, lambda: run(steps, static))  # warm-up: compilation, CUDA graph capture
        full, short = float("inf"), float("inf")
        for _ in range(repeat):  # alternate lengths so background load hits both alike
            t_full, out = timed(device, lambda: run(steps, static))
            t_short, _ = timed(device, lambda: run(1, static))
            full, short = min(full, t_full), min(short, t_short)
        tokens[name] = out
        step_ms = 1000 * (full - short) / (steps - 1)
        result[name] = {"ms_per_step": round(step_ms, 3), "first_call_s": round(first, 2),
                        "warmup_s": round(first - full, 2), "prefill_plus_one_token_ms": round(1000 * short, 1),
                        "tokens_per_s": round(len(lengths) * steps / full, 1), "peak_gib": peak_gib(device)}
    result["ratio_eager_over_compiled"] = round(result["eager"]["ms_per_step"] / result["compiled"]["ms_per_step"], 2)
    kv_bytes = kv_per_token * sum(n + steps / 2 for n in lengths)  # real tokens only, mid-answer
    bound_ms = 1000 * (weight_bytes + kv_bytes) / (bandwidth * 1e9)
    result["bound_ms_per_step"] = round(bound_ms, 3)
    for name in ("eager", "compiled"):
        result[name]["share_of_bound"] = round(bound_ms / result[name]["ms_per_step"], 3)
    eager, compiled = tokens["eager"], tokens["compiled"]
    same = eager == compiled
    diverged = [int((~row).nonzero()[0]) if (~row).any() else steps for row in same]
    result["same_tokens"] = {"share_of_positions": round(float(same.float().mean()), 4),
                             "first_divergence_step_min": min(diverged),
                             "rows_identical": sum(d == steps for d in diverged)}
    return result


def find_data(arg: str | None) -> tuple[Path | None, str | None]:
    from owleval.paths import default_data_dir

    if arg:
        return Path(arg), None
    installed = default_data_dir()
    if (installed / "questions.jsonl").is_file():
        return installed, None
    shared = ROOT.parent / "shared" / "owleval_82q"
    if shared.is_dir():
        from owleval.fetch import install_dataset

        dest = Path(tempfile.mkdtemp(prefix="owleval_bench_data_")) / "owleval_82q"
        install_dataset(dest, shared)
        return dest, None
    return None, f"no data set at {installed} nor {shared}: pass --data DIR (an installed owleval_82q)"


def generate_run(model, processor, device: str, dtype, data: Path, new_tokens: int, batch_size: int | str,
                 decode: str, decoder: StaticCacheDecoder | None, workdir: Path) -> dict:
    """One whole evaluation through the generate runner with an in-memory adapter (no model load)."""
    from owleval.generate import run_generation

    options = LoadOptions(device=device, batch_size=batch_size, options={"decode": decode})
    adapter = MplugOwlAdapter(options, model, processor, None, device, dtype)
    adapter.static_decoder = decoder  # one decoder for the whole bench: compiled graphs are reused
    counted = {"calls": 0, "tokens": 0}
    original = model.generate

    def counting(**kwargs):
        out = original(**kwargs)
        counted["calls"] += 1
        counted["tokens"] += int((out != kwargs.get("pad_token_id", 0)).sum())
        return out

    waves = []
    adapter_generate = adapter.generate

    def wave(conversations, config):
        waves.append(len(conversations))
        return adapter_generate(conversations, config)

    model.generate, adapter.generate = counting, wave
    reset_peak(device)
    try:
        seconds, result = timed(device, lambda: run_generation(
            "mplug-owl", load_options=options, config=GenerationConfig(max_new_tokens=new_tokens),
            out=workdir / f"answers-{decode}.jsonl", overwrite=True, adapter=adapter, data_dir=data))
    finally:
        del model.generate
    meta = json.loads(result.meta_path.read_text())
    provenance = meta.get("provenance", {})
    return {"wall_s": round(seconds, 2), "answers": result.generated, "new_tokens": counted["tokens"],
            "tokens_per_s": round(counted["tokens"] / seconds, 1), "runner_calls": len(waves), "wave_sizes": waves,
            "model_generate_calls": counted["calls"], "batch_size": batch_size, "decode": provenance.get("decode"),
            "decode_fallback": provenance.get("decode_fallback"), "peak_gib": peak_gib(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="tiny model on the CPU (about a minute): checks it runs")
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --small)")
    parser.add_argument("--dtype", default=None, choices=["bfloat16", "float16", "float32"],
                        help="default: bfloat16 on CUDA, float32 on the CPU")
    parser.add_argument("--new-tokens", type=int, default=None, help="per answer in generate (default 256; small 8)")
    parser.add_argument("--step-tokens", type=int, default=None, help="per decode timing (default 128; small 8)")
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per side (default 3; small 1)")
    parser.add_argument("--data", default=None, help="installed OwlEval data set for the generate part")
    parser.add_argument("--skip-generate", action="store_true")
    parser.add_argument("--eager-generate", action="store_true",
                        help="also run the whole evaluation the eager way (--batch-size 16) for the ratio")
    args = parser.parse_args()
    device = args.device or ("cpu" if args.small else "cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("CUDA is not available here: run with --small (CPU) or on a machine with a GPU")
    dtype = getattr(torch, args.dtype or ("bfloat16" if device.startswith("cuda") else "float32"))
    new_tokens = args.new_tokens or (8 if args.small else 256)
    steps = args.step_tokens or (8 if args.small else 128)
    repeat = args.repeat or (1 if args.small else 3)
    report: dict[str, Any] = {
        "device": {"name": torch.cuda.get_device_name(device) if device.startswith("cuda") else platform.processor()
                   or platform.machine(), "kind": device, "dtype": str(dtype).removeprefix("torch."),
                   "torch": torch.__version__, "transformers": __import__("transformers").__version__,
                   "cpu_threads": torch.get_num_threads()},
        "shape": "tiny (tests)" if args.small else "mPLUG-Owl 7B (ViT-L/14, 6-layer abstractor, LLaMA-7B), random",
    }

    log(f"building the model on {device} ({report['device']['dtype']})")
    seconds, model = timed(device, lambda: build_model(args.small, device, dtype))
    lm = model.language_model
    weight_bytes = sum(p.numel() * p.element_size() for name, p in lm.named_parameters() if "embed_tokens" not in name)
    text = model.config.text_config
    kv_per_token = 2 * text.num_hidden_layers * text.hidden_size * torch.empty((), dtype=dtype).element_size()
    report["model"] = {"build_s": round(seconds, 1), "parameters": sum(p.numel() for p in model.parameters()),
                       "attn_implementation": lm.config._attn_implementation,
                       "decode_weight_bytes": weight_bytes, "kv_bytes_per_token": kv_per_token}

    log("measuring copy bandwidth")
    bandwidth = copy_bandwidth(device, args.small)
    report["bandwidth"] = {"copy_GBps": round(bandwidth, 1),
                           "bound_ms_per_step_weights_only": round(1000 * weight_bytes / (bandwidth * 1e9), 3)}

    decoder = StaticCacheDecoder(lm, compile=True)
    scenarios = {"batch1_short": [125]} if not args.small else {"batch1_short": [24]}
    scenarios["batch16_left_padded" if not args.small else "batch4_left_padded"] = (
        [round(125 + i * (900 - 125) / 15) for i in range(16)] if not args.small else [24, 60, 100, 150])
    report["decode"] = {}
    for name, lengths in scenarios.items():
        log(f"decode steps: {name} (eager vs compiled)")
        report["decode"][name] = decode_scenario(model, lengths, steps, repeat, device, dtype, decoder,
                                                 weight_bytes, kv_per_token, bandwidth)
    report["decode"]["compile"] = decoder.stats.to_dict()

    if not args.skip_generate:
        data, why = find_data(args.data)
        if data is None:
            report["generate"] = {"skipped": why}
        else:
            tokenizer = make_tiny_tokenizer()
            processor = MplugOwlProcessor(MplugOwlImageProcessor(model.config.vision_config.image_size), tokenizer,
                                          image_slots=model.config.image_placeholder_length)
            report["generate"] = {"new_tokens_per_answer": new_tokens}
            with tempfile.TemporaryDirectory() as tmp:
                for run in ("cold", "warm"):
                    log(f"whole evaluation, --batch-size auto, decode=compiled ({run})")
                    report["generate"][f"compiled_auto_{run}"] = generate_run(
                        model, processor, device, dtype, data, new_tokens, "auto", "compiled", decoder, Path(tmp))
                if args.eager_generate:
                    log("whole evaluation, --batch-size 16, decode=eager")
                    eager = generate_run(model, processor, device, dtype, data, new_tokens, 16, "eager", None,
                                         Path(tmp))
                    report["generate"]["eager_batch16"] = eager
                    report["generate"]["ratio_eager_over_compiled_warm"] = round(
                        eager["wall_s"] / report["generate"]["compiled_auto_warm"]["wall_s"], 2)
            report["generate"]["compile"] = decoder.stats.to_dict()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
