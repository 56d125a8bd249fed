"""The `hf` adapter on a GPU: every tested family, float32 and bfloat16, batched vs one at a time, eager vs compiled.

Builds tiny random checkpoints of each family the tests cover (tests/hf_family_helpers.py; nothing is downloaded),
opens each through the `hf` adapter on the device, answers the first 8 single-turn OwlEval questions batched and one
at a time, and prints ONE JSON object: per family and dtype, the share of answers equal between batched and
one-at-a-time greedy decoding, whether compiled decoding gives the same answers as eager, the wall time of each,
and the adapter's provenance (device, dtype, attention). Random weights give near-tied logits, so bfloat16 answers
may differ between paths where float32 ones must not.

Run: python bench/bench_hf_gpu.py [--device cuda] [--data DIR] [--families a,b]   (about a minute on a GPU)
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

import torch  # noqa: E402

from owleval.adapters.base import GenerationConfig, LoadOptions  # noqa: E402
from owleval.adapters.hf import HFAdapter  # noqa: E402
from owleval.generate import build_conversation  # noqa: E402
from owleval.questions import load_questions  # noqa: E402
from tests.hf_family_helpers import FAMILIES, make_tiny_checkpoint  # noqa: E402


def timed(adapter: HFAdapter, conversations: list, config: GenerationConfig, one_at_a_time: bool) -> tuple[list[str], float]:
    start = time.perf_counter()
    answers = [adapter.generate([c], config)[0] for c in conversations] if one_at_a_time else adapter.generate(conversations, config)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return answers, round(time.perf_counter() - start, 3)


def run_family(family: str, checkpoint: Path, device: str, dtype: str, conversations: list, config: GenerationConfig) -> dict:
    eager = HFAdapter.open(LoadOptions(str(checkpoint), device=device, dtype=dtype, batch_size=len(conversations),
                                       options={"decode": "eager"}))
    batched, batched_s = timed(eager, conversations, config, one_at_a_time=False)
    single, single_s = timed(eager, conversations, config, one_at_a_time=True)
    record = {"batched_s": batched_s, "one_at_a_time_s": single_s,
              "batched_equals_single": sum(a == b for a, b in zip(batched, single)) / len(batched)}
    try:
        compiled = HFAdapter.open(LoadOptions(str(checkpoint), device=device, dtype=dtype, batch_size=len(conversations),
                                              options={"decode": "compiled"}))
        first, first_s = timed(compiled, conversations, config, one_at_a_time=False)
        again, again_s = timed(compiled, conversations, config, one_at_a_time=False)
        info = compiled.provenance()
        record.update(compiled_first_s=first_s, compiled_warm_s=again_s,
                      compiled_equals_eager=sum(a == b for a, b in zip(again, batched)) / len(batched),
                      decode=info.get("decode"), decode_fallback=info.get("decode_fallback"))
    except Exception as exc:  # a bench reports what broke and goes on with the next family
        record["compiled_error"] = f"{type(exc).__name__}: {exc}"[:500]
    info = eager.provenance()
    record["provenance"] = {k: info.get(k) for k in ("device", "dtype", "attn_implementation", "model_type", "processor")}
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data", default=None, help="installed data set or ../shared/owleval_82q (default)")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=12)
    parser.add_argument("--out", default=None, help="also write the JSON here after each family (a cut-off run keeps what it did)")
    args = parser.parse_args()
    data = Path(args.data) if args.data else ROOT.parent / "shared" / "owleval_82q"
    questions = [q for q in load_questions(data) if not q.earlier_turns][: args.questions]
    conversations = [build_conversation(q, {}, data) for q in questions]
    config = GenerationConfig(max_new_tokens=args.new_tokens)
    result: dict = {"device": args.device, "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None, "families": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families.split(","):
            checkpoint = make_tiny_checkpoint(family, Path(tmp) / family)
            result["families"][family] = {}
            for dtype in ("float32", "bfloat16"):
                print(f"[bench_hf_gpu] {family} {dtype}", file=sys.stderr, flush=True)
                try:
                    result["families"][family][dtype] = run_family(family, checkpoint, args.device, dtype, conversations, config)
                except Exception as exc:
                    result["families"][family][dtype] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                if args.out:
                    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
