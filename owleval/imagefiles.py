"""Image files of the data set: confined to ``data_dir/cases`` and bounded in pixels before they are decoded.

Every image the app shows, the judge sends or a model is given is found with :func:`case_image_path` and opened
with :func:`open_image`. A name that is not a plain file name, or a file (a symlink included) that resolves
outside ``cases/``, is refused; so is an image over :data:`MAX_PIXELS`, read from its header before anything is
decoded (a 389 KB PNG can hold 400 million pixels and take gigabytes to decode), and a file in any format but the
data set's own (:data:`FORMATS`). Every error of reading or decoding one (Pillow raises ``ValueError`` for a PNG
chunk that decompresses past its limit, ``SyntaxError`` for a broken PNG, ``struct.error`` and ``EOFError`` for cut
files) becomes an :class:`ImageRefused` naming the file, through :func:`decoding`. Refusals are
:class:`ImageRefused`, an ``OSError`` as well, so code that already handles an unreadable image handles them.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING

from owleval.errors import OwlEvalError

if TYPE_CHECKING:
    from PIL import Image

#: the pixel budget of one image: 40 megapixels (the largest OwlEval image has 2.0), about 120 MB decoded as RGB
MAX_PIXELS = 40_000_000
CASES = "cases"
#: the formats of the data set's images (JPEG, and one PNG named .jpg): nothing else is opened
FORMATS = ("JPEG", "PNG")
#: what reading or decoding a bad file raises in Pillow (besides its own DecompressionBombError)
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error, MemoryError)


class ImageRefused(OwlEvalError, OSError):
    """An image file that is not read: outside the data folder, or over the pixel budget. One line, naming it."""


def plain_name_problem(name: str) -> str | None:
    """Why ``name`` is not a plain file name (a path, ``..``, absolute, home-relative), or None when it is."""
    pure = PurePosixPath(name.replace("\\", "/"))
    if (not name.strip() or pure.is_absolute() or len(pure.parts) != 1 or pure.parts[0] in (".", "..")
            or name.startswith("~") or "\0" in name or (len(name) > 1 and name[1] == ":")):
        return f"image name {name!r} must be a plain file name inside {CASES}/ (no folders, '..' or absolute paths)"
    return None


def confined(path: Path, root: Path) -> Path:
    """``path`` when it resolves (symlinks followed) to a place inside ``root``; else :class:`ImageRefused`."""
    real, base = Path(path).resolve(), Path(root).resolve()
    if not real.is_relative_to(base):
        raise ImageRefused(f"{path}: refused, it resolves to {real}, outside {root}")
    return Path(path)


def case_image_path(data_dir: Path, name: str) -> Path:
    """The path of image ``name`` in ``data_dir/cases``, checked: a plain name that stays inside that folder."""
    problem = plain_name_problem(name)
    if problem:
        raise ImageRefused(f"{Path(data_dir) / CASES}: {problem}")
    cases = Path(data_dir) / CASES
    return confined(cases / name, cases)


def check_pixels(image: Image.Image, path: Path | str, budget: int = MAX_PIXELS) -> None:
    """:class:`ImageRefused` when the opened (not yet decoded) ``image`` has more pixels than ``budget``."""
    width, height = image.size
    if width * height > budget:
        raise ImageRefused(
            f"{path}: {width}x{height} = {width * height / 1e6:.0f} megapixels, over the budget of {budget / 1e6:.0f}; "
            "shrink the image"
        )


@contextmanager
def decoding(label: Path | str | IO[bytes]) -> Iterator[None]:
    """Turn any error of reading or decoding the image ``label`` inside the block into an :class:`ImageRefused`
    (a missing file stays a ``FileNotFoundError``)."""
    from PIL import Image

    try:
        yield
    except (ImageRefused, FileNotFoundError):
        raise
    except Image.DecompressionBombError as exc:
        raise ImageRefused(f"{label}: refused as a decompression bomb ({exc})") from None
    except _DECODE_ERRORS as exc:
        raise ImageRefused(f"cannot read image {label}: {type(exc).__name__}: {exc}") from None


def open_image(source: Path | IO[bytes], name: Path | str | None = None, budget: int = MAX_PIXELS,
               formats: tuple[str, ...] | None = FORMATS) -> Image.Image:
    """``PIL.Image.open`` for files of the data set: the header is read and the size checked before decoding.

    Only ``formats`` are opened (None: any Pillow reads); every error (PIL's ``DecompressionBombError`` and ``ValueError`` included)
    becomes an :class:`ImageRefused`. Decode the image inside :func:`decoding` too: Pillow reads most of the file
    only then. ``name`` names the file in messages when ``source`` is a stream.
    """
    from PIL import Image

    label = name if name is not None else source
    with decoding(label), warnings.catch_warnings():  # PIL warns about large images; the budget below decides
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(source, formats=formats)
    try:
        check_pixels(image, label, budget)
    except ImageRefused:
        image.close()
        raise
    return image
