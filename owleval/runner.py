"""The resumable runner shared by ``generate``, the A-D judge and the pairwise judge.

Each of them appends records to a log (answers JSONL, raw.jsonl) one batch at a time, synced before the next
batch starts, so a kill loses at most the batch in flight; a re-run reads the log, drops a torn last line, and
asks only for what is missing. Its settings and provenance go to a meta file, written atomically when the run
starts and again when it ends, whether it finished, failed or was interrupted. What an item is, how a batch is
asked and what the log adds up to stay with each caller.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from owleval.adapters.base import ModelAdapter
from owleval.errors import OwlEvalError
from owleval.fileio import atomic_write_text
from owleval.manifest import load_manifest
from owleval.provenance import dumps, git_commit, now_iso, package_versions
from owleval.redact import redact

#: ``on_progress(done, total)``, called once a run knows its total and after every batch
ProgressCallback = Callable[[int, int], None]

T = TypeVar("T")
R = TypeVar("R")


def repair_torn_tail(path: Path) -> str | None:
    """Drop a last line that has no line ending (a write cut short by a kill). Returns a warning, or None."""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return None
    keep = data[: data.rfind(b"\n") + 1]
    atomic_write_text(path, keep.decode("utf-8", errors="strict"))
    return f"{path}: dropped a torn last line ({len(data) - len(keep)} bytes) left by an interrupted run"


class SyncedAppender:
    """Appends lines (JSONL records) to a file; each batch is flushed and fsync'ed before the next one starts, so
    a kill loses at most the batch in flight (and leaves at most a torn last line: see :func:`repair_torn_tail`)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "a", encoding="utf-8")

    def write_lines(self, lines: Sequence[str]) -> None:
        self._fh.write("".join(line + "\n" for line in lines))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def in_batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of ``size`` (the last may be shorter)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def read_meta(meta_path: Path) -> dict[str, Any] | None:
    """An earlier run's meta file, or None when there is none."""
    if not meta_path.is_file():
        return None
    try:
        return json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OwlEvalError(f"{meta_path}: not valid JSON ({exc}); repair or delete it, or pass --overwrite") from exc


def refuse_changes(settings: Iterable[tuple[str, Any, Any]], message: Callable[[str, Any, Any], str]) -> None:
    """Raise ``message(what, before, now)`` for the first setting whose earlier value differs from this run's:
    a log is continued only under the settings it was started with."""
    for what, before, now in settings:
        if before != now:
            raise OwlEvalError(message(what, before, now))


def start_meta(own: Mapping[str, Any], old: Mapping[str, Any] | None, carried: Sequence[str]) -> dict[str, Any]:
    """A run's meta: the caller's ``own`` settings, then the data set, packages, commit, start time and run count;
    a resumed log keeps the ``carried`` fields of every earlier run under ``previous_runs``."""
    meta: dict[str, Any] = {
        **own,
        "dataset": {"name": load_manifest().name, "version": load_manifest().digest},
        "packages": package_versions(),
        "git_commit": git_commit(),
        "started_at": now_iso(),
        "status": "running",
        "runs": (old or {}).get("runs", 0) + 1,
    }
    if old:
        meta["previous_runs"] = [*old.get("previous_runs", []), {k: old.get(k) for k in carried}]
    return meta


def _status(exc_type: type[BaseException] | None) -> str:
    if exc_type is None:
        return "finished"
    return "interrupted" if issubclass(exc_type, KeyboardInterrupt) else "failed"


class ResumableRun:
    """One run appending to ``log_path``: a context manager that writes ``meta`` to ``meta_path`` on entry, and on
    exit (finished, failed or interrupted: ``meta["status"]`` says which) closes the log, lets ``finish(meta)``
    add what the log now adds up to, stamps the end time and the adapter's provenance, and writes ``meta`` again.

    ``asked`` counts the items and ``written`` the log lines of this run (see :meth:`batches`)."""

    def __init__(self, meta_path: Path, meta: dict[str, Any], log_path: Path, adapter: ModelAdapter,
                 finish: Callable[[dict[str, Any]], None] | None = None):
        self.meta_path, self.meta, self.log_path = meta_path, meta, log_path
        self.adapter, self.finish = adapter, finish
        self.asked = self.written = 0
        self._log: SyncedAppender | None = None

    def __enter__(self) -> ResumableRun:
        atomic_write_text(self.meta_path, dumps(self.meta))
        self._log = SyncedAppender(self.log_path)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.meta["status"] = _status(exc_type)
        if self._log is not None:
            self._log.close()
        if self.finish is not None:
            self.finish(self.meta)
        self.meta["finished_at"] = now_iso()
        try:
            self.meta["provenance"] = self.adapter.provenance()
        except Exception as error:  # provenance must never hide the real outcome
            self.meta["provenance"] = {"error": redact(repr(error))}
        atomic_write_text(self.meta_path, dumps(self.meta))

    def batches(
        self,
        batches: Iterable[Sequence[T]],
        ask: Callable[[Sequence[T]], Sequence[R]],
        *,
        resumed: int,
        total: int,
        on_progress: ProgressCallback | None = None,
        to_line: Callable[[R], str] = lambda record: json.dumps(record, ensure_ascii=False),
    ) -> Iterator[tuple[Sequence[T], Sequence[R]]]:
        """Ask each batch, append its records to the log (synced), count and report progress, then yield
        ``(batch, records)``. ``batches`` is iterated lazily, so it may depend on what earlier batches yielded."""
        assert self._log is not None, "batches() runs inside the run's with block"
        if on_progress:
            on_progress(resumed, total)
        for batch in batches:
            records = ask(batch)
            self._log.write_lines([to_line(r) for r in records])
            self.written += len(records)
            self.asked += len(batch)
            if on_progress:
                on_progress(resumed + self.asked, total)
            yield batch, records

