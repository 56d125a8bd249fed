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


def checkpoint_fingerprint(checkpoint: str | None, local: bool = True) -> dict[str, Any] | None:
    """A hash of a local checkpoint's config and weight index (or weight file names and sizes).

    Hashing the config and index rather than the weights keeps this instant for 14 GB checkpoints while still
    telling two checkpoints apart. Hub ids are not resolved (no network): only the id is recorded. A served
    model's name (``local=False``: the adapter runs nothing here) is only a name and is never looked up on disk,
    even when a file or folder of that name happens to be in the working directory.
    """
    if not checkpoint:
        return None
    if not local:
        return {"kind": "served", "name": checkpoint}
    path = Path(checkpoint).expanduser()
    if path.is_file():
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
        return {"kind": "file", "sha256": h.hexdigest()}
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
