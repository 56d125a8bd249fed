"""What made a file: package versions, git commit, checkpoint fingerprint, times."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from owleval.paths import checkout_root

_PACKAGES = ("owleval", "torch", "transformers", "peft", "datasets", "pandas", "httpx")
_WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> str | None:
    """The commit of the checkout this package runs from (with ``+dirty`` when it has changes)."""
    root = checkout_root()
    if root is None or not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, timeout=5)
        return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


#: recorded in every directory fingerprint: how it was computed (files from before it existed have none)
FINGERPRINT_SCHEME = "sha256-files-v2"
_SETTING_SUFFIXES = (".json", ".jinja", ".model", ".txt", ".tiktoken")
_SETTINGS_MAX_BYTES = 64 << 20


def checkpoint_fingerprint(checkpoint: str | None, local: bool = True) -> dict[str, Any] | None:
    """What identifies a checkpoint's content: for a local folder, the sha256 of every weight file (full hashes,
    cached by path, size and mtime: :mod:`owleval.weight_hashes`) and of its settings files (config, generation
    config, tokenizer, processor, chat templates), combined into one ``sha256``; two checkpoints that differ only in
    weights differ. A hub id is fingerprinted through its local cache snapshot when there is one (no network), else
    only the id is recorded. A served model's name (``local=False``: the adapter runs nothing here) is only a name
    and is never looked up on disk, even when a file or folder of that name is in the working directory.
    """
    if not checkpoint:
        return None
    if not local:
        return {"kind": "served", "name": checkpoint}
    path = Path(checkpoint).expanduser()
    if path.is_file():
        from owleval.weight_hashes import weight_sha256

        return {"kind": "file", "sha256": weight_sha256([path])[path]}
    if not path.is_dir():
        snapshot = _hub_snapshot(checkpoint)
        if snapshot is None:
            return {"kind": "hub", "id": checkpoint}
        return {"kind": "hub", "id": checkpoint, "revision": snapshot.name, **_directory_fingerprint(snapshot)}
    return {"kind": "directory", **_directory_fingerprint(path)}


def _hub_snapshot(repo_id: str) -> Path | None:
    """The local cache's snapshot folder of a hub id, without the network; None when it is not cached."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached, not a valid id, no huggingface_hub: the id alone is recorded
        return None


def _directory_fingerprint(path: Path) -> dict[str, Any]:
    from owleval.weight_hashes import weight_sha256

    files = sorted(f for f in path.rglob("*") if f.is_file() and ".cache" not in f.relative_to(path).parts)
    weights = [f for f in files if f.suffix in _WEIGHT_SUFFIXES]
    settings = [f for f in files if f.suffix in _SETTING_SUFFIXES and f.stat().st_size <= _SETTINGS_MAX_BYTES]
    digests = {f.relative_to(path).as_posix(): d for f, d in weight_sha256(weights).items()}
    for f in settings:
        digests[f.relative_to(path).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()
    combined = hashlib.sha256("".join(f"{name}\0{digest}\n" for name, digest in sorted(digests.items())).encode())
    return {
        "scheme": FINGERPRINT_SCHEME,
        "sha256": combined.hexdigest(),
        "files": dict(sorted(digests.items())),  # file -> sha256: weights and settings files alike
    }


def legacy_fingerprint(checkpoint: str | None) -> dict[str, Any] | None:
    """The fingerprint OwlEval recorded before :data:`FINGERPRINT_SCHEME` (config, weight index, or weight file
    names and sizes): a file made then resumes when this still matches."""
    if not checkpoint:
        return None
    path = Path(checkpoint).expanduser()
    if path.is_file():
        return checkpoint_fingerprint(checkpoint)
    if not path.is_dir():
        return {"kind": "hub", "id": checkpoint}
    h = hashlib.sha256()
    hashed: list[str] = []
    for name in ("config.json", *_WEIGHT_INDEXES, "adapter_config.json"):
        f = path / name
        if f.is_file():
            h.update(name.encode() + b"\0" + f.read_bytes())
            hashed.append(name)
    if not any(n in hashed for n in _WEIGHT_INDEXES):
        for f in sorted(path.rglob("*")):
            if f.is_file() and f.suffix in _WEIGHT_SUFFIXES:
                rel = f.relative_to(path).as_posix()
                h.update(f"{rel}:{f.stat().st_size}".encode() + b"\0")
                hashed.append(rel)
    return {"kind": "directory", "sha256": h.hexdigest(), "files": hashed}


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n"
