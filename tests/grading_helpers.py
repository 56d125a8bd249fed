"""Small studies for the grading tests: synthetic answer files with model names that are easy to spot."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from owleval.study.manage import CreatedStudy, create_study
from owleval.questions import load_questions

#: names that never occur in questions or answers, so finding one on a page means the page leaks it
MODELS = ("zebra-model-x1", "quokka-model-y2", "narwhal-model-z3")
#: a stand-alone question, a three-turn dialogue (6, 7, 8) and Q32, which asks for HTML
QIDS = (1, 6, 7, 8, 32)
HOSTILE = (
    "<script>window.__owned = 1</script>"
    '<img src=x onerror="window.__owned = 2">'
    "[click](javascript:window.__owned=3) **not bold**\n"
    "second line of the answer"
)


def default_text(model: str, qid: int) -> str:
    if qid == 32:
        return HOSTILE
    return f"answer {qid} by {model[:5]}"  # never the full model name


def write_answer_files(
    folder: Path,
    data_dir: Path,
    models: Sequence[str] = MODELS,
    qids: Sequence[int] = QIDS,
    text: Callable[[str, int], str] = default_text,
) -> list[Path]:
    """One valid answer file per model, answering ``qids``."""
    by_id = {q.question_id: q for q in load_questions(data_dir)}
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for model in models:
        path = folder / f"{model}.jsonl"
        rows = [
            {"image": by_id[q].image, "question_id": q, "question": by_id[q].question, "answer": text(model, q), "model_id": model}
            for q in qids
        ]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        paths.append(path)
    return paths


def make_study(
    tmp_path: Path,
    data_dir: Path,
    annotators: Sequence[str] = ("ann", "bob"),
    *,
    overlap: int | None = None,
    seed: int = 0,
    qids: Sequence[int] = QIDS,
    models: Sequence[str] = MODELS,
    auth: str = "token",
    name: str = "study.sqlite",
) -> CreatedStudy:
    answers = write_answer_files(tmp_path / f"answers-{name}", data_dir, models, qids)
    return create_study(tmp_path / name, answers, annotators=annotators, overlap=overlap, seed=seed, data_dir=data_dir, auth=auth)


def grade_everything(db: str, annotator: str, worker: str, start_file: str, regrade_every: int = 3) -> int:
    """A grading client for the concurrency test (runs in its own process): grades its whole queue, clicks
    every grade twice (the same request id, as a double click), and changes every n-th grade. Returns the
    number of distinct grading requests made."""
    from owleval.study.queue import load_queue, record_grade
    from owleval.study.store import Store

    store = Store(Path(db))
    who = store.conn.execute("SELECT annotator_id FROM annotators WHERE name = ?", (annotator,)).fetchone()[0]
    items = load_queue(store, who)
    Path(f"{start_file}.{worker}.ready").touch()
    deadline = time.monotonic() + 60
    while not Path(start_file).exists() and time.monotonic() < deadline:  # start all clients together
        time.sleep(0.005)
    requests = 0
    for i, item in enumerate(items):
        for _click in range(2):
            record_grade(store, who, item.answer_id, "ABCD"[i % 4], f"{worker} {i}", request_id=f"{worker}:{i}")
        requests += 1
        if i % regrade_every == 0:
            record_grade(store, who, item.answer_id, "D", f"{worker} {i} changed", request_id=f"{worker}:{i}:again")
            requests += 1
    store.close()
    return requests


def page_text(node) -> str:
    """Everything an AppTest page was sent: the protos of every element and block, recursively."""
    parts = [str(node.proto)] if getattr(node, "proto", None) is not None else []
    for child in getattr(node, "children", {}).values():
        parts.append(page_text(child))
    return "\n".join(parts)


def bar_data(at) -> dict:
    """What the grade bar was given in an AppTest run: the answer's place, its current grade, the actions applied."""
    return json.loads(at.get("bidi_component")[0].proto.json)


def shown_answer(at) -> dict:
    """The answer on screen as the grade bar reads it: from the key of the box around it."""
    import re

    index, answer, seen = map(int, re.search(r"-shown_(\d+)_(\d+)_(\d+)", page_text(at._tree)).groups())
    return {"index": index, "answer": answer, "seen": seen}


def send_bar_state(at, pending: list[dict], window: str = "apptest") -> None:
    """The grade bar's state as the browser sends it (its widget value), and the AppTest run that follows."""
    states = at._tree.get_widget_states()
    state = states.widgets.add()
    state.id = at.get("bidi_component")[0].proto.id
    state.json_value = json.dumps({"actions": {"window": window, "attempt": len(pending), "pending": pending}})
    at._run(states)


def bar_action(at, kind: str, grade: str | None = None) -> int:
    """Do in an AppTest what the grade bar does for a key or click: tag the action with the answer on screen,
    number it in this window, send it with every action not yet confirmed. Returns the answer's place."""
    shown = shown_answer(at)
    sent: list[dict] = at.__dict__.setdefault("_bar_actions", [])
    applied = bar_data(at)["applied"].get("apptest", 0)
    sent[:] = [a for a in sent if a["seq"] > applied]
    seq = at.__dict__["_bar_seq"] = at.__dict__.get("_bar_seq", 0) + 1
    sent.append({"seq": seq, "kind": kind, "grade": grade, **shown})
    send_bar_state(at, sent)
    return shown["index"]


def oversized_chunk_png(kind: bytes) -> bytes:
    """A small valid PNG plus an ``iCCP`` (before the pixels) or ``zTXt`` (after them) chunk that decompresses to
    300 MB: about 300 KB on disk; Pillow stops at its chunk limit with a ``ValueError``."""
    import io
    import struct
    import zlib

    from PIL import Image

    def chunk(name: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + name + data + struct.pack(">I", zlib.crc32(name + data))

    out = io.BytesIO()
    Image.new("RGB", (40, 30), "red").save(out, "PNG")
    png = out.getvalue()
    huge = zlib.compress(b"\0" * (300 << 20), 9)
    if kind == b"iCCP":
        at = png.index(b"IDAT") - 4
        return png[:at] + chunk(b"iCCP", b"icc\0\0" + huge) + png[at:]
    at = png.index(b"IEND") - 4
    return png[:at] + chunk(kind, b"Comment\0\0" + huge) + png[at:]
