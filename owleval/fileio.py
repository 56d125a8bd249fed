"""Writing files and folders the way a plain ``open()`` / ``mkdir`` would, but atomically.

``tempfile.mkstemp`` creates files 0600 and ``mkdtemp`` folders 0700 whatever the umask. Results that a team shares
(answers, grades, reports, studies) must get the mode the user's umask asks for, so every writer in the project goes
through these helpers: a file ends up ``0666 & ~umask``, a folder ``0777 & ~umask``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def current_umask() -> int:
    """The process umask (read by setting and restoring it: there is no read-only call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    return 0o666 & ~current_umask()


def dir_mode() -> int:
    return 0o777 & ~current_umask()


def temp_file_beside(path: Path, *, suffix: str = ".tmp") -> tuple[int, Path]:
    """An open descriptor and the name of a new file next to ``path`` (same folder, so a rename is atomic),
    already given the mode a plain ``open()`` would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        os.fchmod(fd, file_mode())
    except BaseException:
        os.close(fd)
        Path(name).unlink(missing_ok=True)
        raise
    return fd, Path(name)


def temp_dir_beside(path: Path, *, suffix: str = ".tmp") -> Path:
    """A new folder next to ``path`` with the mode a plain ``mkdir`` would give."""
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent))
    os.chmod(folder, dir_mode())
    return folder


def write_temp_beside(path: Path, text: str) -> Path:
    """``text`` in a synced temporary file next to ``path``; on failure none is left."""
    fd, tmp = temp_file_beside(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: readers never see half a file."""
    tmp = write_temp_beside(path, text)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
