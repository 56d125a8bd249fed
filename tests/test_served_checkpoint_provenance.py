"""A served model's name is a name: ``owleval generate --model openai --checkpoint NAME`` never reads a file or
folder called NAME from the working directory into its provenance, while a local checkpoint's content is hashed
(every file's sha256, cached by path, size and mtime) and joins the resume check."""

from __future__ import annotations

import hashlib
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


def _weights_folder(folder: Path, payload: bytes) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llava"}')
    (folder / "model.safetensors").write_bytes(payload)
    return folder


def test_checkpoints_that_differ_only_in_weights_differ(tmp_path: Path) -> None:
    one = checkpoint_fingerprint(str(_weights_folder(tmp_path / "one", b"\1" * 64)))
    two = checkpoint_fingerprint(str(_weights_folder(tmp_path / "two", b"\2" * 64)))
    assert one["sha256"] != two["sha256"] and one["files"]["config.json"] == two["files"]["config.json"]
    assert one["files"]["model.safetensors"] == hashlib.sha256(b"\1" * 64).hexdigest()


def test_weight_hashes_are_cached_by_path_size_and_mtime(tmp_path: Path) -> None:
    import os

    from owleval.weight_hashes import cache_path

    folder = _weights_folder(tmp_path / "ckpt", b"\3" * 64)
    weights = folder / "model.safetensors"
    real = checkpoint_fingerprint(str(folder))["files"]["model.safetensors"]
    cache = json.loads(cache_path().read_text())
    assert cache[str(weights.resolve())]["sha256"] == real
    cache[str(weights.resolve())]["sha256"] = "c" * 64  # the cached digest is what a second run reads
    cache_path().write_text(json.dumps(cache))
    assert checkpoint_fingerprint(str(folder))["files"]["model.safetensors"] == "c" * 64
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # same size, touched: hashed again
    assert checkpoint_fingerprint(str(folder))["files"]["model.safetensors"] == real


def _run(checkpoint: Path, out: Path, questions: str):
    return CliRunner().invoke(app, ["generate", "--model", "hf", "--checkpoint", str(checkpoint), "--out", str(out),
                                    "--device", "cpu", "--max-new-tokens", "2", "--questions", questions])


def test_older_answer_files_resume_or_are_refused_naming_the_key(tmp_path: Path) -> None:
    from owleval.provenance import legacy_fingerprint
    from tests.hf_family_helpers import make_tiny_checkpoint

    checkpoint = make_tiny_checkpoint("gemma3", tmp_path / "gemma3")
    out = tmp_path / "answers.jsonl"
    meta_path = out.with_name(out.name + ".meta.json")
    assert _run(checkpoint, out, "1").exit_code == 0
    meta = json.loads(meta_path.read_text())
    meta["checkpoint_fingerprint"] = legacy_fingerprint(str(checkpoint))  # as written before weights were hashed
    meta_path.write_text(json.dumps(meta))
    resumed = _run(checkpoint, out, "1-2")
    assert resumed.exit_code == 0, resumed.output
    meta = json.loads(meta_path.read_text())
    assert meta["checkpoint_fingerprint"]["scheme"] == "sha256-files-v2" and len(out.read_text().splitlines()) == 2
    del meta["answer_settings"]["untrusted_text"]  # as written before answers were neutralised
    meta_path.write_text(json.dumps(meta))
    refused = _run(checkpoint, out, "1-3")
    text = " ".join(refused.output.split())
    assert refused.exit_code != 0 and "made before OwlEval recorded answer_settings.untrusted_text" in text and "--overwrite" in text
    assert len(out.read_text().splitlines()) == 2
