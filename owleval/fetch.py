"""Install the OwlEval files from a local folder or the pinned upstream URL, verifying every checksum.

Each file is written to a temporary name beside its target, hashed while it is written, and renamed into
place only when size and sha256 match the manifest: an interrupted or failed fetch leaves no partial file,
and a re-run skips what is already verified.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from owleval.errors import OwlEvalError
from owleval.manifest import Manifest, ManifestEntry, load_manifest, sha256_of
from owleval.paths import default_data_dir

_CHUNK = 1 << 16


@dataclass(frozen=True)
class FileStatus:
    entry: ManifestEntry
    state: str  # ok | missing | wrong-size | wrong-checksum
    detail: str = ""


@dataclass
class FetchReport:
    dest: Path
    installed: list[str] = field(default_factory=list)
    already_present: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def check_file(root: Path, entry: ManifestEntry) -> FileStatus:
    path = root / entry.path
    if not path.is_file():
        return FileStatus(entry, "missing")
    size = path.stat().st_size
    if size != entry.size:
        return FileStatus(entry, "wrong-size", f"{size} bytes, expected {entry.size}")
    digest = sha256_of(path)
    if digest != entry.sha256:
        return FileStatus(entry, "wrong-checksum", f"sha256 {digest[:12]}..., expected {entry.sha256[:12]}...")
    return FileStatus(entry, "ok")


def verify_dataset(root: Path | None = None, manifest: Manifest | None = None) -> list[FileStatus]:
    """The status of every manifest file under ``root``."""
    root = root or default_data_dir()
    manifest = manifest or load_manifest()
    return [check_file(root, e) for e in manifest.files]


def _safe_target(dest: Path, entry: ManifestEntry) -> Path:
    target = (dest / entry.path).resolve()
    if dest.resolve() not in target.parents:
        raise OwlEvalError(f"manifest entry {entry.path!r} points outside {dest}")
    return target


def _chunks_from_file(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            yield block


def _chunks_from_url(url: str, timeout: float) -> Iterator[bytes]:
    import httpx

    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
            if response.status_code != 200:
                raise OSError(f"HTTP {response.status_code} for {url}")
            yield from response.iter_bytes(_CHUNK)
    except httpx.HTTPError as exc:  # connection refused, reset, cut short, timed out
        raise OSError(f"{type(exc).__name__} for {url}: {exc}") from exc


def _install_one(entry: ManifestEntry, target: Path, chunks: Iterator[bytes]) -> None:
    """Stream ``chunks`` into a temporary file beside ``target``; rename only if size and hash match."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as fh:
            for block in chunks:
                digest.update(block)
                size += len(block)
                if size > entry.size:
                    raise OSError(f"more than the expected {entry.size} bytes")
                fh.write(block)
            fh.flush()
            os.fsync(fh.fileno())
        if size != entry.size:
            raise OSError(f"got {size} bytes, expected {entry.size}")
        if digest.hexdigest() != entry.sha256:
            raise OSError(f"sha256 {digest.hexdigest()[:12]}... does not match the manifest's {entry.sha256[:12]}...")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def install_dataset(
    dest: Path | None = None,
    source: Path | None = None,
    *,
    mirror: str | None = None,
    manifest: Manifest | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    on_file: Callable[[ManifestEntry, str], None] | None = None,
) -> FetchReport:
    """Install every manifest file into ``dest`` from the folder ``source``, or download it.

    Downloads use the manifest's pinned URL, or ``mirror`` + the file's relative path. ``on_file(entry,
    outcome)`` is called after each file (outcome: installed, present, failed). Raises :class:`OwlEvalError`
    naming every file that could not be installed; the ones that could stay installed for the next run.
    """
    dest = dest or default_data_dir()
    manifest = manifest or load_manifest()
    if source is not None and not source.is_dir():
        raise OwlEvalError(f"--from {source}: no such folder")
    report = FetchReport(dest)
    remove_stray_parts(dest)
    for entry in manifest.files:
        target = _safe_target(dest, entry)
        if check_file(dest, entry).state == "ok":
            report.already_present.append(entry.path)
            if on_file:
                on_file(entry, "present")
            continue
        try:
            if source is not None:
                src = source / entry.path
                if not src.is_file():
                    raise OSError(f"not in {source}")
                _install_one(entry, target, _chunks_from_file(src))
            else:
                url = mirror.rstrip("/") + "/" + entry.path if mirror else manifest.url_for(entry)
                for attempt in range(retries):
                    try:
                        _install_one(entry, target, _chunks_from_url(url, timeout))
                        break
                    except OSError as exc:
                        if attempt == retries - 1 or "does not match" in str(exc):
                            raise
                        time.sleep(0.5 * 2**attempt)
            report.installed.append(entry.path)
            if on_file:
                on_file(entry, "installed")
        except Exception as exc:  # one bad file must not stop the others; all are named at the end
            report.failed[entry.path] = str(exc) or type(exc).__name__
            if on_file:
                on_file(entry, "failed")
    if report.failed:
        lines = "\n".join(f"  {path}: {why}" for path, why in report.failed.items())
        raise OwlEvalError(
            f"{len(report.failed)} of {len(manifest.files)} files could not be installed into {dest} "
            f"({len(report.installed) + len(report.already_present)} are in place; re-run to resume):\n{lines}"
        )
    return report


def remove_stray_parts(dest: Path) -> int:
    """Delete ``*.part`` files left by a fetch that was killed hard (the rename never happened)."""
    removed = 0
    if dest.is_dir():
        for part in dest.rglob(".*.part"):
            part.unlink(missing_ok=True)
            removed += 1
    return removed

