"""The image of a grading screen, prepared once per file for ``st.image``.

Given a path, ``st.image`` re-reads the file on every rerun of the app (each grade click, each flag ticked)
and decodes, shrinks and re-encodes an image that is wider than it shows, or whose format is not the one it
would pick (30 ms for the widest OwlEval image, 11 ms for the PNG among its JPEGs). Bytes that are already in
that format and at most that wide pass straight through, so the app caches what this returns.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from owleval.imagefiles import CASES, confined, decoding, open_image

#: st.image shrinks wider images to this (streamlit's MAXIMUM_CONTENT_WIDTH); its full-screen view shows the same
MAX_WIDTH = 2 * 730


def display_format(image: Image.Image) -> str:
    """The format st.image picks for image bytes: GIF stays GIF, PNG when it may be transparent, else JPEG."""
    if image.format == "GIF":
        return "GIF"
    return "PNG" if image.mode in ("RGBA", "LA", "P") else "JPEG"


def screen_image(path: Path, data_dir: Path) -> bytes:
    """The file's bytes when st.image would send them as they are, else the image as st.image would send it.

    The file must lie inside ``data_dir/cases``, keep to the pixel budget and decode, else :class:`ImageRefused`
    (an ``OSError``, like a missing file)."""
    path = confined(Path(path), Path(data_dir) / CASES)
    with open_image(path) as image, decoding(path):
        image.load()  # every chunk read now, inside decoding(): a bad one is a refusal, not a traceback
        fmt = display_format(image)
        if image.format == fmt and image.width <= MAX_WIDTH:
            return path.read_bytes()
        image.thumbnail((MAX_WIDTH, image.height))  # keeps the aspect ratio; never enlarges
        out = io.BytesIO()
        (image.convert("RGB") if fmt == "JPEG" else image).save(out, format=fmt, quality=90)
    return out.getvalue()
