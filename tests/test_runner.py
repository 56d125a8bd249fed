"""The shared resumable runner (owleval/runner.py), driven directly: a small job that squares numbers uses it the way
generate and the judges do (meta, resume checks, the synced log, batches), so its guarantees are checked apart
from any model or server."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from owleval.errors import OwlEvalError
from owleval.runner import ResumableRun, in_batches, read_meta, refuse_changes, repair_torn_tail, start_meta

TESTS = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _tests_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TESTS))


def square_numbers(out: Path, numbers: Sequence[int], *, power: int = 2, batch_size: int = 3, stop_at: int | None = None,
                   error: BaseException | None = None) -> dict[str, Any]:
    """A resumable job: log ``n ** power`` for each number not logged yet. Raises ``error`` (default Ctrl-C)
    instead of asking the batch holding ``stop_at``. Returns what the run saw: asked numbers, warnings."""
    from generate_helpers import EchoAdapter

    log_path, meta_path = out / "log.jsonl", out / "meta.json"
    old = read_meta(meta_path)
    meta = start_meta({"power": power}, old, carried=("status", "asked"))
    if old is not None:
        refuse_changes([("power", old.get("power"), power)],
                       lambda what, before, now: f"{out} was made with {what} {before!r}, this run has {now!r}")
    warnings = [w for w in [repair_torn_tail(log_path)] if w] if log_path.is_file() else []
    done = {json.loads(line)["n"] for line in log_path.read_text().splitlines()} if log_path.is_file() else set()
    pending = [n for n in numbers if n not in done]
    asked: list[int] = []

    def ask(batch: Sequence[int]) -> list[dict[str, int]]:
        if stop_at is not None and stop_at in batch:
            raise error or KeyboardInterrupt
        asked.extend(batch)
        return [{"n": n, "value": n**power} for n in batch]

    def finish(meta: dict[str, Any]) -> None:
        meta["asked"] = run.asked
        meta["in_log"] = len(log_path.read_text().splitlines())

    progress: list[tuple[int, int]] = []
    out.mkdir(exist_ok=True)
    adapter = EchoAdapter()
    with ResumableRun(meta_path, meta, log_path, adapter, finish) as run:
        for _ in run.batches(in_batches(pending, batch_size), ask, resumed=len(numbers) - len(pending), total=len(numbers),
                             on_progress=lambda d, t: progress.append((d, t))):
            assert json.loads(meta_path.read_text())["status"] == "running"
    return {"asked": asked, "warnings": warnings, "progress": progress, "written": run.written}


def logged(out: Path) -> list[dict[str, int]]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_an_interrupted_run_keeps_its_batches_and_says_so_in_meta(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        square_numbers(tmp_path, range(10), stop_at=7)
    assert [r["n"] for r in logged(tmp_path)] == [0, 1, 2, 3, 4, 5]  # the two batches before the one in flight
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["status"] == "interrupted" and meta["asked"] == 6 and meta["in_log"] == 6
    assert meta["finished_at"] >= meta["started_at"] and meta["provenance"]["adapter"] == "echo"


def test_a_failed_run_writes_meta_with_status_failed(tmp_path: Path) -> None:
    with pytest.raises(OwlEvalError, match="server down"):
        square_numbers(tmp_path, range(5), stop_at=0, error=OwlEvalError("server down"))
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["status"] == "failed" and meta["asked"] == 0 and "finished_at" in meta


def test_a_rerun_asks_only_what_the_log_lacks_and_counts_its_runs(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        square_numbers(tmp_path, range(10), stop_at=7)
    second = square_numbers(tmp_path, range(10))
    assert second["asked"] == [6, 7, 8, 9] and second["progress"] == [(6, 10), (9, 10), (10, 10)]
    assert sorted(r["n"] for r in logged(tmp_path)) == list(range(10))
    assert all(r["value"] == r["n"] ** 2 for r in logged(tmp_path))
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["status"] == "finished" and meta["runs"] == 2 and meta["asked"] == 4 and meta["in_log"] == 10
    assert meta["previous_runs"] == [{"status": "interrupted", "asked": 6}]
    third = square_numbers(tmp_path, range(10))
    assert third["asked"] == [] and third["progress"] == [(10, 10)]
    assert json.loads((tmp_path / "meta.json").read_text())["runs"] == 3


def test_a_torn_last_line_is_dropped_and_asked_again(tmp_path: Path) -> None:
    square_numbers(tmp_path, range(4))
    with open(tmp_path / "log.jsonl", "a") as fh:
        fh.write('{"n": 4, "val')  # a write cut short by a kill
    again = square_numbers(tmp_path, range(6))
    assert again["asked"] == [4, 5] and "dropped a torn last line (13 bytes)" in again["warnings"][0]
    assert [r["n"] for r in logged(tmp_path)] == [0, 1, 2, 3, 4, 5]


def test_a_log_made_with_other_settings_is_refused_untouched(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        square_numbers(tmp_path, range(10), stop_at=4)
    before = ((tmp_path / "log.jsonl").read_bytes(), (tmp_path / "meta.json").read_bytes())
    with pytest.raises(OwlEvalError, match=f"^{tmp_path} was made with power 2, this run has 3$"):
        square_numbers(tmp_path, range(10), power=3)
    assert ((tmp_path / "log.jsonl").read_bytes(), (tmp_path / "meta.json").read_bytes()) == before


def test_refuse_changes_names_the_first_changed_setting() -> None:
    refuse_changes([("a", 1, 1), ("b", None, None)], lambda *_: "unused")  # equal settings pass
    with pytest.raises(OwlEvalError, match="^b: 2 -> 3$"):
        refuse_changes([("a", 1, 1), ("b", 2, 3), ("c", 4, 5)], lambda what, before, now: f"{what}: {before} -> {now}")


def test_a_meta_file_that_is_not_json_is_named(tmp_path: Path) -> None:
    assert read_meta(tmp_path / "meta.json") is None
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(OwlEvalError, match="meta.json: not valid JSON .*pass --overwrite"):
        square_numbers(tmp_path, range(3))


def test_batches_may_depend_on_what_earlier_batches_gave(tmp_path: Path) -> None:
    """Generate's waves: the next batch is chosen after the previous one's records are in."""
    from generate_helpers import EchoAdapter

    seen: list[int] = []

    def waves():
        while len(seen) < 5:
            yield [len(seen)]

    with ResumableRun(tmp_path / "meta.json", {"status": "running"}, tmp_path / "log.jsonl", EchoAdapter()) as run:
        for batch, records in run.batches(waves(), lambda batch: [{"n": n} for n in batch], resumed=0, total=5):
            seen.extend(r["n"] for r in records)
    assert seen == [0, 1, 2, 3, 4] and run.asked == run.written == 5
    assert json.loads((tmp_path / "meta.json").read_text())["status"] == "finished"
