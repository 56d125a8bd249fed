"""The grading screen's image is prepared once so that st.image has nothing left to do on a rerun."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from owleval.screens.images import MAX_WIDTH
from owleval.screens.images import screen_image as _screen_image


def _save(path: Path, size: tuple[int, int], fmt: str, mode: str = "RGB") -> Path:
    """An image in ``<data folder>/cases/`` (the data folder is ``path``'s parent), where screen_image looks."""
    path = path.parent / "cases" / path.name
    path.parent.mkdir(exist_ok=True)
    Image.new(mode, size, color="green").save(path, format=fmt)
    return path


def screen_image(path: Path) -> bytes:
    return _screen_image(path, path.parent.parent)


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def test_a_jpeg_that_fits_passes_through_untouched(tmp_path: Path) -> None:
    path = _save(tmp_path / "a.jpg", (800, 600), "JPEG")
    assert screen_image(path) == path.read_bytes()


def test_a_wide_image_is_shrunk_once_keeping_its_aspect(tmp_path: Path) -> None:
    image = _open(screen_image(_save(tmp_path / "wide.jpg", (2 * MAX_WIDTH, 1000), "JPEG")))
    assert (image.format, image.size) == ("JPEG", (MAX_WIDTH, 500))


def test_a_png_named_jpg_without_transparency_becomes_jpeg(tmp_path: Path) -> None:
    image = _open(screen_image(_save(tmp_path / "49.jpg", (578, 722), "PNG")))  # as OwlEval's image 49
    assert (image.format, image.size) == ("JPEG", (578, 722))


def test_transparent_images_stay_png(tmp_path: Path) -> None:
    path = _save(tmp_path / "alpha.png", (300, 200), "PNG", mode="RGBA")
    assert screen_image(path) == path.read_bytes()
    image = _open(screen_image(_save(tmp_path / "wide.png", (MAX_WIDTH + 100, 100), "PNG", mode="RGBA")))
    assert (image.format, image.mode, image.width) == ("PNG", "RGBA", MAX_WIDTH)
