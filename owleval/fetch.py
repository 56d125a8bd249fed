"""Install the OwlEval files from a local folder or the pinned upstream URL, verifying every checksum.

Each file is written to a temporary name beside its target, hashed while it is written, and renamed into
place only when size and sha256 match the manifest: an interrupted or failed fetch leaves no partial file,
and a re-run skips what is already verified.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from owleval.errors import OwlEvalError
from owleval.fileio import temp_file_beside
from owleval.manifest import Manifest, ManifestEntry, load_manifest, sha256_of
from owleval.paths import default_data_dir

_CHUNK = 1 << 16
#: seconds to wait for a connection: a host that does not answer fails the fetch in seconds, not minutes
CONNECT_TIMEOUT_S = 5.0
#: tries per file for errors on a connection that was made (timeouts, 5xx, a transfer cut short)
TRANSIENT_TRIES = 3
#: tries per file when no connection could be made at all (refused, no route, timed out connecting)
CONNECT_TRIES = 2
#: environment variable naming a mirror to download from instead of the pinned upstream URL
MIRROR_ENV = "OWLEVAL_MIRROR"
FROM_FOLDER_HINT = (
    "To install without network: `owleval data fetch --from DIR` with a copy of the OwlEval folder (questions.jsonl, "
    "cases/, answer/); or name a reachable mirror with `--mirror URL` (or $OWLEVAL_MIRROR)."
)


class HostUnreachable(OSError):
    """No connection could be made to the download host: retrying the other files would only waste the user's time."""

    def __init__(self, host: str, cause: str, resolvable: bool):
        super().__init__(f"cannot reach {host}: {cause}")
        self.host, self.cause, self.resolvable = host, cause, resolvable


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


def _connect_failure(exc: BaseException, url: str) -> HostUnreachable:
    """Name the host and why no connection was made: a name that does not resolve, refused, timed out."""
    host = urlsplit(url).hostname or url
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    if any(isinstance(e, socket.gaierror) for e in chain):
        return HostUnreachable(host, f"the name does not resolve ({chain[-1]}); no network, or a wrong host name", resolvable=False)
    detail = str(chain[-1]) or type(chain[-1]).__name__
    if any("Timeout" in type(e).__name__ for e in chain):
        detail = f"no answer within {CONNECT_TIMEOUT_S:g} s"
    return HostUnreachable(host, f"connection failed ({detail})", resolvable=True)


def _chunks_from_url(url: str, timeout: float) -> Iterator[bytes]:
    import httpx

    limits = httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_S))
    try:
        with httpx.stream("GET", url, timeout=limits, follow_redirects=True) as response:
            if response.status_code != 200:
                raise OSError(f"HTTP {response.status_code} for {url}")
            yield from response.iter_bytes(_CHUNK)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # no connection at all: DNS, refused, unreachable
        raise _connect_failure(exc, url) from exc
    except httpx.HTTPError as exc:  # reset, cut short, read timeout
        raise OSError(f"{type(exc).__name__} for {url}: {exc}") from exc


def _download(entry: ManifestEntry, target: Path, url: str, timeout: float, tries: int) -> None:
    """Download with retries: ``tries`` for transient errors, fewer when the host cannot be reached at all."""
    attempt = 0
    while True:
        attempt += 1
        try:
            _install_one(entry, target, _chunks_from_url(url, timeout))
            return
        except HostUnreachable as exc:
            if not exc.resolvable or attempt >= min(tries, CONNECT_TRIES):
                raise
        except OSError as exc:
            if attempt >= tries or "does not match" in str(exc):
                raise
        time.sleep(0.5 * 2 ** (attempt - 1))


def _install_one(entry: ManifestEntry, target: Path, chunks: Iterator[bytes]) -> None:
    """Stream ``chunks`` into a temporary file beside ``target``; rename only if size and hash match."""
    fd, tmp = temp_file_beside(target, suffix=".part")
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
    retries: int = TRANSIENT_TRIES,
    timeout: float = 60.0,
    on_file: Callable[[ManifestEntry, str], None] | None = None,
) -> FetchReport:
    """Install every manifest file into ``dest`` from the folder ``source``, or download it.

    Downloads use the manifest's pinned URL, or ``mirror`` (default ``$OWLEVAL_MIRROR``) + the file's relative path.
    A host that cannot be reached stops the whole fetch at once with what to do instead. ``on_file(entry,
    outcome)`` is called after each file (outcome: installed, present, failed). Raises :class:`OwlEvalError`
    naming every file that could not be installed; the ones that could stay installed for the next run.
    """
    dest = dest or default_data_dir()
    manifest = manifest or load_manifest()
    mirror = mirror or os.environ.get(MIRROR_ENV) or None
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
                _download(entry, target, url, timeout, retries)
            report.installed.append(entry.path)
            if on_file:
                on_file(entry, "installed")
        except HostUnreachable as exc:  # every other file would fail the same way: stop now, say what to do
            in_place = len(report.installed) + len(report.already_present)
            raise OwlEvalError(f"{exc}. {in_place} of {len(manifest.files)} files are in place in {dest}. {FROM_FOLDER_HINT}") from None
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

