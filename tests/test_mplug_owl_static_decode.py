"""The static-cache decoder (``-o decode=compiled``) gives the eager path's greedy tokens: on the upstream fixtures,
on left-padded batches with end-of-sequence tokens, and through the adapter on left-padded multi-turn batches.

Most tests run the decode step uncompiled (the same code ``torch.compile`` compiles); the two ``slow`` ones compile
it with inductor on the CPU (tens of seconds the first time; inductor's on-disk cache makes later runs quicker).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from owleval.adapters.base import AdapterError, Conversation, GenerationConfig, ImageRef, LoadOptions, Turn
from owleval.adapters.mplug_owl import MplugOwlAdapter
from owleval.models.mplug_owl import MplugOwlForConditionalGeneration
from owleval.models.mplug_owl.static_decode import StaticCacheDecoder, batch_bucket, length_bucket
from tests.mplug_owl_helpers import UPSTREAM_FIXTURES, make_tiny_model, make_tiny_mplug_owl_checkpoint, pad_rows

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _fixture_args(fixture_dir: Path) -> tuple[dict, torch.Tensor]:
    expected = torch.load(fixture_dir / "expected.pt", weights_only=False)
    args = {key: expected[key] for key in ("pixel_values", "input_ids", "attention_mask")}
    return args, expected["generated_ids"]


def _prompts(model, lengths=(5, 11, 8), seed=1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    slots = model.config.image_placeholder_length
    rows = []
    for n in lengths:
        text = torch.randint(3, model.config.text_config.vocab_size, (n,), generator=gen)
        rows.append(torch.cat([torch.tensor([1]), text[:2], torch.full((slots,), -1), text[2:]]))
    ids, mask = pad_rows(rows, "left")
    return ids, mask, torch.randn(len(lengths), 3, 56, 56, generator=gen)


@pytest.mark.parametrize("fixture_dir", UPSTREAM_FIXTURES, ids=lambda p: p.name)
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_static_cache_matches_upstream_fixture(fixture_dir, attn):
    model = MplugOwlForConditionalGeneration.from_pretrained(fixture_dir, attn_implementation=attn).eval()
    args, want = _fixture_args(fixture_dir)
    decoder = StaticCacheDecoder(model.language_model, compile=False)
    got = model.generate(**args, max_new_tokens=want.shape[1] - 1, static_decoder=decoder)
    assert torch.equal(got, want)


@torch.no_grad()
def test_static_cache_equals_eager_with_end_of_sequence_and_left_padding():
    model = make_tiny_model(vocab_size=120, seed=3)
    ids, mask, pixels = _prompts(model)
    free = model.generate(input_ids=ids, attention_mask=mask, pixel_values=pixels, max_new_tokens=12,
                          prepend_bos=False, eos_token_id=None)
    eos = int(free[0, 3])  # a token the first row emits early: rows stop at different steps, or run to the end
    decoder = StaticCacheDecoder(model.language_model, compile=False, check_every=2)
    for steps in (12, 5, 12):  # a second shape, then the first one again (the cache is reused)
        eager = model.generate(input_ids=ids, attention_mask=mask, pixel_values=pixels, max_new_tokens=steps,
                               prepend_bos=False, eos_token_id=eos, pad_token_id=0)
        static = model.generate(input_ids=ids, attention_mask=mask, pixel_values=pixels, max_new_tokens=steps,
                                prepend_bos=False, eos_token_id=eos, pad_token_id=0, static_decoder=decoder)
        assert torch.equal(static, eager)
    assert decoder.stats.shapes == {f"b4xl{length_bucket(ids.shape[1] + 12)}": 3}


@torch.no_grad()
def test_both_paths_stop_once_every_row_has_ended():
    """Neither path runs on to max_new_tokens once every row has emitted end-of-sequence."""
    model = make_tiny_model(vocab_size=120, seed=3)
    ids, mask, pixels = _prompts(model, lengths=(6,))
    ids, mask, pixels = ids.repeat(2, 1), mask.repeat(2, 1), pixels.repeat(2, 1, 1, 1)  # both rows end together
    calls = []
    hook = model.language_model.model.register_forward_hook(lambda *_: calls.append(1))
    try:
        free = model.generate(input_ids=ids, attention_mask=mask, pixel_values=pixels, max_new_tokens=40,
                              prepend_bos=False, eos_token_id=None)
        assert len(calls) == 40
        eos = int(free[0, 5])
        end = int((free[0] == eos).nonzero()[0])  # the first step that emits it
        for decoder, slack in ((None, 0), (StaticCacheDecoder(model.language_model, compile=False, check_every=4), 4)):
            calls.clear()
            out = model.generate(input_ids=ids, attention_mask=mask, pixel_values=pixels, max_new_tokens=40,
                                 prepend_bos=False, eos_token_id=eos, pad_token_id=0, static_decoder=decoder)
            assert torch.equal(out, free[:, : end + 1])
            assert end + 1 <= len(calls) <= end + 1 + slack
    finally:
        hook.remove()


def test_static_decoder_refuses_settings_it_cannot_follow():
    model = make_tiny_model(vocab_size=120, seed=3)
    ids, mask, pixels = _prompts(model, lengths=(4,))
    decoder = StaticCacheDecoder(model.language_model, compile=False)
    with pytest.raises(ValueError, match="do_sample=True"):
        model.generate(input_ids=ids, pixel_values=pixels, max_new_tokens=3, do_sample=True, static_decoder=decoder)
    with pytest.raises(ValueError, match="num_beams=2"):
        model.generate(input_ids=ids, pixel_values=pixels, max_new_tokens=3, num_beams=2, static_decoder=decoder)


def test_buckets_round_up():
    assert [batch_bucket(n) for n in (1, 3, 5, 9, 13, 17, 33, 300)] == [2, 4, 8, 12, 16, 24, 48, 320]
    assert length_bucket(1) == 128 and length_bucket(128) == 128 and length_bucket(129) == 256


# -- the adapter -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_tiny_mplug_owl_checkpoint(tmp_path_factory.mktemp("tiny_mplug_owl_static"))


@pytest.fixture(scope="module")
def dialogue(owl_data) -> list[Conversation]:
    """Left-padded once batched: first turns of different lengths and a three-turn dialogue."""
    images = [ImageRef(owl_data / "cases" / name) for name in ("1.jpg", "10.jpg", "11.jpg")]
    return [
        Conversation((Turn("Describe this image in detail, please.", (images[0],)),), key="a"),
        Conversation((Turn("What?", (images[1],)),), key="b"),
        Conversation((Turn("What is it?", (images[2],), answer="A chart."),
                      Turn("Read the numbers.", answer="Ten and twenty five."), Turn("Why?")), key="c"),
    ]


def _adapter(checkpoint: Path, **options: str) -> MplugOwlAdapter:
    return MplugOwlAdapter.load(LoadOptions(checkpoint=str(checkpoint), device="cpu", batch_size=4, options=options))


def test_decode_option_default_and_errors(checkpoint):
    adapter = _adapter(checkpoint)
    assert adapter.decode_log.requested == "eager" and adapter.decode_log.default  # CPU default
    assert "decode" in MplugOwlAdapter.option_help
    with pytest.raises(AdapterError, match="decode='fast'"):
        _adapter(checkpoint, decode="fast")


def test_sampling_falls_back_to_eager_and_says_why(checkpoint, dialogue):
    adapter = _adapter(checkpoint, decode="compiled")
    sampled = GenerationConfig(max_new_tokens=4, do_sample=True, top_k=5, seed=3)
    eager = _adapter(checkpoint, decode="eager")
    assert adapter.generate(dialogue, sampled) == eager.generate(dialogue, sampled)
    info = adapter.provenance()
    assert info["decode"] == "eager" and info["decode_requested"] == "compiled"
    assert "sampling" in info["decode_fallback"] and info["decode_batches"] == {"compiled": 0, "eager": 1}


def test_a_compiler_failure_falls_back_to_eager(checkpoint, dialogue):
    adapter = _adapter(checkpoint, decode="compiled")
    config = GenerationConfig(max_new_tokens=5)
    import torch._inductor.config

    torch._dynamo.reset()  # nothing compiled earlier may be reused
    with torch._inductor.config.patch({"cpp.cxx": ("/nonexistent/c++",)}):  # inductor finds no C++ compiler
        answers = adapter.generate(dialogue, config)
    assert answers == _adapter(checkpoint).generate(dialogue, config)
    info = adapter.provenance()
    assert info["decode"] == "eager" and "No working C++ compiler" in info["decode_fallback"]


@pytest.mark.slow
def test_compiled_adapter_equals_eager_on_left_padded_multi_turn_batches(checkpoint, dialogue):
    """Long (~40 s on a cold inductor cache, a few seconds warm) and kept: the only test of what ``-o decode=compiled``
    runs, inductor's code through the adapter, for the left-padded batch bucket and length the adapter picks; the
    compile is one graph (the second batch reuses it), nothing here can be shared with the fixture test below (another
    model, other shapes)."""
    compiled = _adapter(checkpoint, decode="compiled")
    eager = _adapter(checkpoint, decode="eager")
    config = GenerationConfig(max_new_tokens=10)
    assert compiled.generate(dialogue, config) == eager.generate(dialogue, config)
    assert compiled.generate(dialogue[::-1], config) == eager.generate(dialogue[::-1], config)  # graph reused
    info = compiled.provenance()
    assert info["decode"] == "compiled", info.get("decode_fallback")
    assert info["decode_batches"] == {"compiled": 2, "eager": 0}
    assert info["decode_compile_mode"] == "default" and info["decode_stats"]["calls"] == 2
    assert "decode_fallback" not in info


@pytest.mark.slow
def test_compiled_decode_matches_upstream_fixture():
    """Long (~20 s on a cold inductor cache) and kept: the compiled step against the upstream code's own tokens, the
    only check of compiled decoding that no eager path of ours stands between."""
    fixture_dir = UPSTREAM_FIXTURES[0]
    model = MplugOwlForConditionalGeneration.from_pretrained(fixture_dir).eval()
    args, want = _fixture_args(fixture_dir)
    decoder = StaticCacheDecoder(model.language_model, compile=True)
    assert torch.equal(model.generate(**args, max_new_tokens=want.shape[1] - 1, static_decoder=decoder), want)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@torch.no_grad()
def test_cuda_graph_decode_agrees_with_eager_on_the_gpu(dtype):
    """On CUDA the step runs as a CUDA graph; kernels differ from eager ones, so ask for >= 95% equal tokens."""
    model = make_tiny_model(vocab_size=120, seed=3).to("cuda", dtype)
    ids, mask, pixels = _prompts(model, lengths=(5, 30, 11, 18, 7))
    ids, mask, pixels = ids.cuda(), mask.cuda(), pixels.cuda()
    decoder = StaticCacheDecoder(model.language_model, compile=True)
    assert decoder.mode == "reduce-overhead"
    eager = model.generate(input_ids=ids, attention_mask=mask, pixel_values=pixels, max_new_tokens=24,
                           prepend_bos=False, eos_token_id=None)
    for _ in range(2):  # the first call captures the graph, the second replays it
        static = model.generate(input_ids=ids, attention_mask=mask, pixel_values=pixels, max_new_tokens=24,
                                prepend_bos=False, eos_token_id=None, static_decoder=decoder)
        assert static.shape == eager.shape
        assert (static == eager).float().mean() >= 0.95
