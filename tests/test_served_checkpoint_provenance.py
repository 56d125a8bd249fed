"""A served model's name is a name: ``owleval generate --model openai --checkpoint NAME`` never reads a file or
folder called NAME from the working directory into its provenance, while a local adapter's checkpoint is hashed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from owleval.cli import app
from owleval.provenance import checkpoint_fingerprint
from tests.chat_server import ChatServer


@pytest.mark.parametrize("shadow", ["folder", "file"])
def test_openai_provenance_never_hashes_a_local_path_named_like_the_served_model(
    owl_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shadow: str
) -> None:
    monkeypatch.chdir(tmp_path)
    if shadow == "folder":  # e.g. the user downloaded the weights beside the run and served them from there
        (tmp_path / "tiny-vlm").mkdir()
        (tmp_path / "tiny-vlm" / "config.json").write_text('{"model_type": "llava"}')
    else:
        (tmp_path / "tiny-vlm").write_text("not a checkpoint")
    out = tmp_path / "answers" / "served.jsonl"
    with ChatServer() as server:
        result = CliRunner().invoke(app, ["generate", "--model", "openai", "--checkpoint", "tiny-vlm", "--base-url",
                                          server.base_url, "--out", str(out), "--questions", "1"])
    assert result.exit_code == 0, result.output
    meta = json.loads(out.with_name(out.name + ".meta.json").read_text())
    assert meta["checkpoint_fingerprint"] == {"kind": "served", "name": "tiny-vlm"}
    assert meta["provenance"]["served_model"] == "tiny-vlm-2024-05-01"


def test_local_checkpoints_are_still_fingerprinted(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "llava"}')
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 10)
    found = checkpoint_fingerprint(str(tmp_path))
    assert found["kind"] == "directory" and list(found["files"]) == ["config.json", "model.safetensors"]
    assert checkpoint_fingerprint("org/name") == {"kind": "hub", "id": "org/name"}
    assert checkpoint_fingerprint(str(tmp_path), local=False) == {"kind": "served", "name": str(tmp_path)}
