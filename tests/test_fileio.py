"""Files and folders written by owleval get the mode the umask asks for, not mkstemp's 0600 / mkdtemp's 0700."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from owleval.fileio import atomic_write_text, temp_dir_beside


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_gets_the_umask_mode(tmp_path: Path, umask_022) -> None:
    target = tmp_path / "x.txt"
    atomic_write_text(target, "hi")
    assert target.read_text() == "hi"
    assert mode(target) == 0o644


def test_atomic_write_follows_a_stricter_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        atomic_write_text(tmp_path / "x.txt", "hi")
    finally:
        os.umask(old)
    assert mode(tmp_path / "x.txt") == 0o600


def test_staged_folder_gets_the_umask_mode(tmp_path: Path, umask_022) -> None:
    assert mode(temp_dir_beside(tmp_path / "report")) == 0o755
