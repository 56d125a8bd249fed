"""LLaVA-1.5 as released: images padded to a square in the image processor's mean colour before resizing
(``image_aspect_ratio: pad``), checked against an expand-to-square done by hand; ``-o image_aspect=crop`` gives
the llava-hf processor's centre crop; the choice is in provenance and in the resume check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from owleval.adapters.base import AdapterError, ImageRef, LoadOptions
from owleval.adapters.llava import LlavaAdapter
from owleval.adapters.untrusted import SCHEME
from owleval.cli import app
from owleval.questions import load_image
from tests.llava_minigpt4_helpers import make_tiny_llava_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llava_checkpoint(tmp_path_factory.mktemp("llava_pad"))


def by_hand(path: Path, mean: tuple[float, ...], std: tuple[float, ...], side: int) -> np.ndarray:
    """Expand to a square by hand (numpy), resize to the model's input (bicubic), normalise: CHW float32."""
    pixels = np.asarray(load_image(path).convert("RGB"))
    height, width, _ = pixels.shape
    edge = max(height, width)
    square = np.empty((edge, edge, 3), dtype=np.uint8)
    square[:] = [int(round(255 * m)) for m in mean]
    top, left = (edge - height) // 2, (edge - width) // 2
    square[top : top + height, left : left + width] = pixels
    resized = np.asarray(Image.fromarray(square).resize((side, side), Image.Resampling.BICUBIC), dtype=np.float32) / 255
    return ((resized - np.array(mean, dtype=np.float32)) / np.array(std, dtype=np.float32)).transpose(2, 0, 1)


def pixels(adapter: LlavaAdapter, path: Path) -> np.ndarray:
    return adapter.processor.image_processor(images=[adapter.image(ImageRef(path))], return_tensors="np")["pixel_values"][0]


@pytest.mark.parametrize("name", ["19.jpg", "12.jpg"], ids=["wide", "tall"])
def test_pad_is_an_expand_to_square_in_the_mean_colour(checkpoint: Path, owl_data: Path, name: str) -> None:
    path = owl_data / "cases" / name
    padded = LlavaAdapter.load(LoadOptions(str(checkpoint), device="cpu"))
    assert padded.image_aspect == "pad" and padded.provenance()["image_aspect"] == "pad (default)"
    processor = padded.processor.image_processor
    expected = by_hand(path, tuple(processor.image_mean), tuple(processor.image_std), 32)
    got = pixels(padded, path)
    assert got.shape == expected.shape == (3, 32, 32)
    assert np.abs(got - expected).max() < 0.02, "padded pixels differ from the expand-to-square done by hand"
    # the bands added by the padding hold the mean colour, which normalises to zero
    band = got[:, :, :4] if name == "12.jpg" else got[:, :4, :]
    assert np.abs(band).max() < 0.02

    cropped = LlavaAdapter.load(LoadOptions(str(checkpoint), device="cpu", options={"image_aspect": "crop"}))
    assert cropped.provenance()["image_aspect"] == "crop"
    plain = processor(images=[load_image(path)], return_tensors="np")["pixel_values"][0]
    assert np.array_equal(pixels(cropped, path), plain), "crop leaves the image to the processor"
    assert np.abs(pixels(cropped, path) - got).max() > 0.5


def test_bad_image_aspect_is_refused_before_loading(checkpoint: Path) -> None:
    with pytest.raises(AdapterError, match="option image_aspect='square': use pad or crop"):
        LlavaAdapter.load(LoadOptions(str(checkpoint), device="cpu", options={"image_aspect": "square"}))


def test_answers_made_under_crop_are_not_continued_under_pad(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "llava.jsonl"
    meta_path = out.with_name(out.name + ".meta.json")
    base = ["generate", "--model", "llava", "--checkpoint", str(checkpoint), "--out", str(out), "--device", "cpu",
            "--max-new-tokens", "2"]
    first = CliRunner().invoke(app, [*base, "--questions", "1", "-o", "image_aspect=crop"])
    assert first.exit_code == 0, first.output
    assert json.loads(meta_path.read_text())["answer_settings"] == {"image_aspect": "crop", "prompt_format": "llava-1.5",
                                                             "untrusted_text": SCHEME}
    default = CliRunner().invoke(app, [*base, "--questions", "1-2"])
    assert default.exit_code != 0 and "image_aspect" in default.output and "--overwrite" in default.output
    # a file written before the option existed (the processor's crop, no answer_settings) is refused too
    meta = json.loads(meta_path.read_text())
    del meta["answer_settings"]
    meta_path.write_text(json.dumps(meta))
    old = CliRunner().invoke(app, [*base, "--questions", "1-2"])
    assert old.exit_code != 0 and "made before OwlEval recorded answer_settings.image_aspect" in " ".join(old.output.split())
    assert len(out.read_text().splitlines()) == 1, "nothing was added"
