"""sha256 of weight files, each hashed once: the digest is cached by the file's resolved path, size and mtime, so a
14 GB checkpoint costs its full read the first time (35-70 s at the 200-420 MB/s measured on these 2 shared cores,
bench/bench_weight_fingerprint.py) and a stat per file afterwards. A file that changes in place gets a new size or mtime and is hashed again.

The cache is one JSON file, ``$OWLEVAL_CACHE_DIR/weight-sha256.json`` (default ``$XDG_CACHE_HOME/owleval/`` or
``~/.cache/owleval/``); it is only a cache: delete it at will, and a cache that cannot be read or written is
ignored (the hash is then computed every run).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from owleval.fileio import atomic_write_text

log = logging.getLogger(__name__)
_CHUNK = 1 << 24
#: files larger than this are announced before hashing (the first hash of a large checkpoint takes a while)
_ANNOUNCE_BYTES = 1 << 30


def cache_path() -> Path:
    root = os.environ.get("OWLEVAL_CACHE_DIR")
    if root:
        return Path(root).expanduser() / "weight-sha256.json"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "owleval" / "weight-sha256.json"


def _read_cache(path: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def weight_sha256(files: list[Path]) -> dict[Path, str]:
    """The sha256 of each file, from the cache where its path, size and mtime match, else computed (and cached)."""
    store = cache_path()
    cache = _read_cache(store)
    found: dict[Path, str] = {}
    changed = False
    for file in files:
        real = file.resolve()
        stat = real.stat()
        key = str(real)
        entry = cache.get(key)
        if isinstance(entry, dict) and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
            found[file] = str(entry["sha256"])
            continue
        if stat.st_size > _ANNOUNCE_BYTES:
            log.warning("hashing %s (%.1f GB) once for the checkpoint fingerprint; cached in %s", file,
                        stat.st_size / 1e9, store)
        found[file] = sha256_file(real)
        cache[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": found[file]}
        changed = True
    if changed:
        try:
            store.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(store, json.dumps(cache, indent=1, sort_keys=True) + "\n")
        except OSError as exc:  # a read-only home: the fingerprint is still right, only not cached
            log.warning("cannot write the weight hash cache %s: %s", store, exc)
    return found
