"""Third-party adapters plug in through the ``owleval.adapters`` entry-point group, without touching OwlEval."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from owleval.adapters.base import AdapterError
from owleval.adapters.registry import available_adapters, get_adapter_class
from tests.timing import budget

ADAPTER_SOURCE = '''
from owleval.adapters.base import ModelAdapter

class ShoutAdapter(ModelAdapter):
    name = "shout"
    description = "answers every question in capitals"

    @classmethod
    def load(cls, options):
        return cls(options)

    def generate(self, conversations, config):
        return [c.current.text.upper() for c in conversations]
'''


def _install_fake_distribution(root: Path, entry_points: str) -> None:
    """A minimal installed distribution: a module plus a .dist-info folder with entry_points.txt."""
    (root / "shout_adapter.py").write_text(ADAPTER_SOURCE)
    info = root / "shout_adapter-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shout-adapter\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[owleval.adapters]\n{entry_points}\n")


def _owleval(args: list[str], pythonpath: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "owleval.cli", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=budget(120))


def test_entry_point_adapter_is_listed_and_generates(tmp_path: Path) -> None:
    _install_fake_distribution(tmp_path, "shout = shout_adapter:ShoutAdapter\nbroken = shout_adapter:NoSuchClass")
    listing = _owleval(["models"], tmp_path, tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert "shout" in listing.stdout and "shout-adapter" in listing.stdout and "capitals" in listing.stdout
    assert "broken" in listing.stdout and "cannot load" in listing.stdout  # listed, not fatal
    out = tmp_path / "shout.jsonl"
    run = _owleval(["generate", "--model", "shout", "--questions", "1-5", "--out", str(out)], tmp_path, tmp_path)
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["question_id"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["answer"] == rows[0]["question"].upper() and rows[0]["model_id"] == "shout"
    failing = _owleval(["generate", "--model", "broken", "--out", str(tmp_path / "b.jsonl")], tmp_path, tmp_path)
    assert failing.returncode == 1 and "cannot be loaded" in failing.stderr


def test_unknown_name_lists_what_is_there() -> None:
    assert {"answers-file", "openai", "llava", "minigpt4", "mplug-owl"} <= set(available_adapters())
    with pytest.raises(AdapterError, match="unknown model 'nope'; available: .*mplug-owl"):
        get_adapter_class("nope")
