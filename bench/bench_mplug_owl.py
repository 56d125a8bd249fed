"""Benchmark the bundled mPLUG-Owl on a mid-size random configuration, on the CPU, side by side in one run:

  1. greedy decoding with the KV cache (``model.generate``) vs without it (every step recomputes the whole
     sequence), batch 1: new tokens per second and the ratio; both must give the same tokens;
  2. batch 8 (left-padded, one ``generate`` call) vs batch 1 (eight calls): new tokens per second and the ratio;
     the batch must give the same tokens as the rows one by one;
  3. the adapter's image-feature cache on a 4-turn dialogue about one image: wall time with the cache (the image
     goes through the vision encoder and abstractor once) vs without (once per turn).

Configuration: LLM 512 wide, 8 layers, 8 heads, vocabulary 32000 (the 7B LLaMA scaled by 1/8 in width, 1/4 in
depth); vision encoder and abstractor scaled alike (128 wide, 6 and 2 layers, 224 px, 64 queries -> 65 slots).

Run: .venv/bin/python bench/bench_mplug_owl.py [--new-tokens 32] [--repeat 3] [--threads N]
Takes one to three minutes on two CPU cores.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from owleval.adapters.base import Conversation, GenerationConfig, ImageRef, LoadOptions, Turn  # noqa: E402
from owleval.adapters.mplug_owl import MplugOwlAdapter  # noqa: E402

from owleval.models.mplug_owl import MplugOwlForConditionalGeneration, MplugOwlImageProcessor  # noqa: E402
from tests.mplug_owl_helpers import (  # noqa: E402
    greedy_without_cache,
    make_tiny_tokenizer,
    pad_rows,
    randomize_weights,
    tiny_config,
)

MID_SIZE = {
    "vision_config": {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 6, "num_attention_heads": 4,
                      "image_size": 224, "patch_size": 14},
    "visual_abstractor_config": {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 2,
                                 "num_attention_heads": 4, "encoder_hidden_size": 128},
    "text_config": {"model_type": "llama", "vocab_size": 32000, "hidden_size": 512, "intermediate_size": 1376,
                    "num_hidden_layers": 8, "num_attention_heads": 8, "max_position_embeddings": 2048,
                    "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2},
    "num_query_tokens": 64,
}


def side_by_side(repeat: int, first, second):
    """Run the two sides alternately ``repeat`` times each (after one warm-up call of each, not timed);
    returns (fastest time, last result) per side, so background load hits both sides alike."""
    first(), second()
    times, results = [[], []], [None, None]
    for _ in range(repeat):
        for side, fn in enumerate((first, second)):
            start = time.perf_counter()
            results[side] = fn()
            times[side].append(time.perf_counter() - start)
    return (min(times[0]), results[0]), (min(times[1]), results[1])


def prompts(model, lengths: list[int]) -> tuple[list[torch.Tensor], torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    slots = model.config.image_placeholder_length
    rows = [torch.cat([torch.tensor([1]), torch.full((slots,), -1), torch.randint(3, 32000, (n,), generator=gen)])
            for n in lengths]
    features = model.get_image_features(torch.randn(len(lengths), 3, 224, 224, generator=gen))
    return rows, features


def generate(model, ids, mask, features, steps: int) -> torch.Tensor:
    return model.generate(input_ids=ids, attention_mask=mask, image_features=features, max_new_tokens=steps,
                          eos_token_id=None, prepend_bos=False)


def bench_kv_cache(model, steps: int, repeat: int) -> None:
    rows, features = prompts(model, [120])
    ids, mask = pad_rows(rows)
    (t_cache, with_cache), (t_plain, without) = side_by_side(
        repeat, lambda: generate(model, ids, mask, features, steps),
        lambda: greedy_without_cache(model, ids, mask, features, steps),
    )
    print(f"1. KV cache, batch 1, prompt {ids.shape[1]} positions, {steps} new tokens")
    print(f"   with cache    {steps / t_cache:8.1f} tokens/s")
    print(f"   without cache {steps / t_plain:8.1f} tokens/s")
    print(f"   ratio         {t_plain / t_cache:8.2f}x   same tokens: {torch.equal(with_cache, without)}")


def bench_batching(model, steps: int, repeat: int) -> None:
    rows, features = prompts(model, [40, 95, 60, 120, 75, 50, 110, 85])
    ids, mask = pad_rows(rows)

    def one_by_one():
        return [generate(model, r[None], torch.ones(1, len(r), dtype=torch.long), features[i : i + 1], steps)[0]
                for i, r in enumerate(rows)]

    (t_batch, batched), (t_single, singles) = side_by_side(
        repeat, lambda: generate(model, ids, mask, features, steps), one_by_one
    )
    total = steps * len(rows)
    same = all(torch.equal(batched[i], s) for i, s in enumerate(singles))
    print(f"2. batching, 8 prompts of {min(map(len, rows))}-{max(map(len, rows))} positions, {steps} new tokens each")
    print(f"   batch 8       {total / t_batch:8.1f} tokens/s")
    print(f"   batch 1 (x8)  {total / t_single:8.1f} tokens/s")
    print(f"   ratio         {t_single / t_batch:8.2f}x   batch == one by one: {same}")


def bench_image_cache(model, steps: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "picture.png"
        from PIL import Image

        gen = torch.Generator().manual_seed(1)
        pixels = (torch.rand(320, 480, 3, generator=gen) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(image)
        ref = ImageRef(image)
        questions = ["What is in the picture?", "What colour is it?", "Why is it there?", "Write a title for it."]
        config = GenerationConfig(max_new_tokens=steps)

        tokenizer = make_tiny_tokenizer()

        def dialogue_processor():
            from owleval.models.mplug_owl import MplugOwlProcessor

            return MplugOwlProcessor(MplugOwlImageProcessor(224), tokenizer, image_slots=65)

        def dialogue(cache_size: int) -> tuple[list[str], int]:
            processor = dialogue_processor()
            options = LoadOptions(device="cpu", options={"image_cache_size": str(cache_size)})
            adapter = MplugOwlAdapter(options, model, processor, None, "cpu", torch.float32)
            turns: list[Turn] = []
            answers = []
            for index, question in enumerate(questions):
                current = Turn(question, (ref,) if index == 0 else ())
                answer = adapter.generate([Conversation((*turns, current))], config)[0]
                answers.append(answer)
                turns.append(Turn(current.text, current.images, answer=answer))
            return answers, adapter.images_encoded

        (t_cached, (cached, encoded_cached)), (t_plain, (plain, encoded_plain)) = side_by_side(
            repeat, lambda: dialogue(256), lambda: dialogue(0)
        )
        pixels = MplugOwlImageProcessor(224)([Image.open(image)])
        (t_encode, _), (t_turn, _) = side_by_side(
            repeat, lambda: model.get_image_features(pixels),
            lambda: MplugOwlAdapter(LoadOptions(device="cpu"), model, dialogue_processor(), None, "cpu",
                                    torch.float32).generate([Conversation((Turn(questions[0], (ref,)),))], config),
        )
    print(f"3. image-feature cache, one {len(questions)}-turn dialogue, {steps} new tokens per turn")
    print(f"   with cache    {t_cached:8.2f} s  (image encoded {encoded_cached}x per dialogue)")
    print(f"   without cache {t_plain:8.2f} s  (image encoded {encoded_plain}x per dialogue)")
    print(f"   ratio         {t_plain / t_cached:8.2f}x   same answers: {cached == plain}")
    print(f"   (one image through vision + abstractor: {1000 * t_encode:.0f} ms; one first turn in all: "
          f"{1000 * t_turn:.0f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side; the fastest counts")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = MplugOwlForConditionalGeneration(tiny_config(**MID_SIZE))
    randomize_weights(model, seed=0)
    model.eval()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    threads = torch.get_num_threads()
    print(f"mPLUG-Owl mid-size random config: {params:.1f}M parameters, float32, CPU, {threads} threads")
    with torch.no_grad():
        bench_kv_cache(model, args.new_tokens, args.repeat)
        bench_batching(model, args.new_tokens, args.repeat)
        bench_image_cache(model, args.new_tokens // 2, args.repeat)


if __name__ == "__main__":
    main()
