"""Several processes grading into one study at once: no grade lost, none duplicated."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from owleval.study.export import current_grades_frame
from owleval.study.queue import load_queue
from owleval.study.store import Store
from tests.grading_helpers import MODELS, make_study
from tests.timing import budget, wait_until

QIDS = tuple(range(1, 41))
TESTS = str(Path(__file__).resolve().parent)
CLIENT = "import sys; sys.path.insert(0, sys.argv[1]); from grading_helpers import grade_everything; print(grade_everything(*sys.argv[2:]))"


def test_parallel_graders_lose_and_duplicate_nothing(tmp_path: Path, owl_data: Path) -> None:
    created = make_study(tmp_path, owl_data, ("ann", "bob", "cy"), qids=QIDS)
    start = tmp_path / "start"
    # ann grades from two processes at once, as from two browser tabs
    jobs = [("ann", "w1"), ("ann", "w2"), ("bob", "w3"), ("cy", "w4")]
    procs = [
        subprocess.Popen([sys.executable, "-c", CLIENT, TESTS, str(created.path), who, worker, str(start)], stdout=subprocess.PIPE, text=True)
        for who, worker in jobs
    ]
    wait_until(lambda: all(Path(f"{start}.{w}.ready").exists() for _, w in jobs), 60, "every client ready",
               interval_s=0.01)
    start.touch()
    outputs = [p.communicate(timeout=budget(120))[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * len(jobs)
    requests = sum(int(out.strip()) for out in outputs)
    store = Store(created.path)
    events = store.conn.execute("SELECT COUNT(*), COUNT(DISTINCT request_id) FROM grade_events").fetchone()
    assert tuple(events) == (requests, requests), "a grade was lost or recorded twice"
    per_worker = dict(store.conn.execute("SELECT substr(request_id, 1, 2), COUNT(*) FROM grade_events GROUP BY 1").fetchall())
    per_item = len(MODELS) * len(QIDS)
    expected = per_item + len(range(0, per_item, 3))
    assert per_worker == {"w1": expected, "w2": expected, "w3": expected, "w4": expected}
    frame = current_grades_frame(created.path)
    assert len(frame) == 3 * per_item
    assert not frame.duplicated(["annotator", "model_id", "question_id"]).any()
    for name in ("ann", "bob", "cy"):
        who = store.conn.execute("SELECT annotator_id FROM annotators WHERE name = ?", (name,)).fetchone()[0]
        assert all(item.grade is not None for item in load_queue(store, who))
    # the current grade is the latest event, whichever process wrote it
    latest = store.conn.execute(
        "SELECT grade, comment FROM grade_events e WHERE event_id = (SELECT MAX(event_id) FROM grade_events x "
        "WHERE x.annotator_id = e.annotator_id AND x.answer_id = e.answer_id)"
    ).fetchall()
    assert sorted(frame["comment"]) == sorted(r[1] for r in latest)
