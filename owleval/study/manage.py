"""Create a grading study from answer files, refresh it with regenerated answers, add annotators.

A study is built in a temporary file next to the target and linked into place at the end, so a failed
``study create`` leaves nothing behind and two concurrent creations cannot overwrite each other.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from owleval.answers import (
    Answer,
    answer_files_in,
    canonical_model_name,
    read_answer_file,
)
from owleval.csvio import formula_like
from owleval.errors import InputFileError, OwlEvalError
from owleval.fileio import temp_file_beside
from owleval.study import assign, sample, special
from owleval.study import gold as gold_module
from owleval.study.store import Store, answer_sha256, initialise, open_connection, utc_now, write_transaction
from owleval.study.tokens import new_token
from owleval.study import pair_gold, pairs
from owleval.study import pair_study as pairwise_study
from owleval.study.pairs import PairDesign
from owleval.paths import default_data_dir
from owleval.questions import Question, load_questions
from owleval.textsafety import format_chars_in

if TYPE_CHECKING:
    import pandas as pd

#: (questions, model ids) -> (the judge's grades file, its grades frame); see ``create_study``
JudgeReader = Callable[[Sequence[Question], set[str]], "tuple[Path, pd.DataFrame]"]

AUTH_TOKEN, AUTH_NAME = "token", "name"
MAX_NAME_LEN = 80


@dataclass
class CreatedStudy:
    """What a new study prints once: its admin token and one token per annotator (empty for name sign-in)."""

    path: Path
    admin_token: str
    tokens: dict[str, str] = field(default_factory=dict)
    models: dict[str, int] = field(default_factory=dict)  # model -> number of answers
    sample_design: dict | None = None  # how the answers to grade were drawn (``--sample``); None: all of them
    pairs: dict | None = None  # a pairwise study: its design and items (see owleval.study.pairs)


def read_study_answers(sources: Sequence[Path], questions: Sequence[Question]) -> dict[str, tuple[Path, list[Answer]]]:
    """Validate answer files as ``owleval answers check`` does; model name -> (its file, its answers)."""
    files = answer_files_in(sources)
    checked = [read_answer_file(p, questions) for p in files]
    errors = [p for f in checked for p in f.errors]
    if errors:
        raise InputFileError(errors)
    by_model: dict[str, tuple[Path, list[Answer]]] = {}
    for f in checked:
        name, path = canonical_model_name(f.path, f.model_ids), f.path.resolve()
        if name in by_model:
            raise OwlEvalError(f"{path} and {by_model[name][0]} both hold model {name!r}")
        by_model[name] = (path, list(f.answers))
    return by_model


def collapse_name(name: str) -> str:
    """The name with its whitespace collapsed, so "Ann  Lee" and "Ann Lee" are one annotator."""
    return " ".join(name.split())


def check_name(name: str) -> str:
    """A new annotator's name, whitespace collapsed (:func:`collapse_name`). Refused: invisible format characters
    (bidi controls, zero-width: a name could pass for another), and a start a spreadsheet would run as a formula
    (``=``, ``+``, ``-``, ``@`` or a look-alike of them, a NUL): names go into every grades CSV."""
    clean = collapse_name(name)
    hidden = format_chars_in(clean)
    if hidden:
        raise OwlEvalError(f"annotator name may not hold invisible format characters ({', '.join(hidden)}), got {name!r}")
    if not clean or len(clean) > MAX_NAME_LEN or any(not ch.isprintable() for ch in clean):
        raise OwlEvalError(f"annotator name must be 1-{MAX_NAME_LEN} printable characters, got {name!r}")
    if formula_like(clean):
        raise OwlEvalError(f"annotator name may not begin with = + - or @ or a look-alike of them (spreadsheets run such cells as formulas), got {name!r}")
    return clean


def _insert_questions(conn: sqlite3.Connection, questions: Sequence[Question]) -> None:
    """Copy the questions into the study (the app shows them without reading the data set); known ones stay."""
    conn.executemany(
        "INSERT OR IGNORE INTO questions(question_id, image, question, earlier_turns) VALUES (?, ?, ?, ?)",
        [(q.question_id, q.image, q.question, json.dumps(list(q.earlier_turns))) for q in questions],
    )


def _insert_answers(conn: sqlite3.Connection, by_model: dict[str, tuple[Path, list[Answer]]]) -> None:
    now = utc_now()
    conn.executemany(
        "INSERT INTO answers(model_id, question_id, answer, answer_sha256, source, added_at) VALUES (?, ?, ?, ?, ?, ?)",
        [
            (model, a.question_id, a.answer, answer_sha256(a.answer), str(path), now)
            for model, (path, answers) in sorted(by_model.items())
            for a in answers
        ],
    )


def _insert_annotator(conn: sqlite3.Connection, name: str, with_token: bool) -> tuple[int, str | None]:
    token = token_id = token_hash = None
    if with_token:
        token, token_id, token_hash = new_token()
    try:
        cur = conn.execute(
            "INSERT INTO annotators(name, token_id, token_hash, created_at) VALUES (?, ?, ?, ?)",
            (name, token_id, token_hash, utc_now()),
        )
    except sqlite3.IntegrityError as exc:
        raise OwlEvalError(f"annotator {name!r} already exists in this study") from exc
    return int(cur.lastrowid), token


def active_slots(conn: sqlite3.Connection) -> list[assign.Slot]:
    """Every (model, question) that has a current answer."""
    return [(r[0], int(r[1])) for r in conn.execute("SELECT model_id, question_id FROM answers WHERE active = 1")]


def gradable_slots(conn: sqlite3.Connection, meta: dict[str, str]) -> list[assign.Slot]:
    """The current answers people grade: all of them, or the drawn ones in a study made with ``--sample``."""
    slots = active_slots(conn)
    design = sample.read_design(meta)
    if design is None:
        return slots
    drawn = sample.sampled_slots(design)
    return [s for s in slots if s in drawn]


def create_study(
    db_path: Path,
    sources: Sequence[Path],
    *,
    annotators: Sequence[str] = (),
    overlap: int | None = None,
    seed: int = 0,
    data_dir: Path | None = None,
    auth: str = AUTH_TOKEN,
    sample_size: int | None = None,
    pairwise: PairDesign | None = None,
    judgements: JudgeReader | None = None,
    gold: Path | None = None,
    quality: special.QcSettings | None = None,
) -> CreatedStudy:
    """Build a new study file; refuses to touch an existing one.

    ``sample_size``: grade only that many answers per model, drawn at random and stratified by turn type (see
    :mod:`owleval.study.sample`); None grades all of them. ``pairwise``: a pairwise study whose items are the
    design's (question, model A, model B) pairs (its own ``sample`` draws per model pair; see :mod:`owleval.study.pairs`).
    ``judgements``: for an active design, reads the judge's grades once the questions and models are known (the
    caller supplies it, e.g. :func:`owleval.report.judge.active_judge_reader`, so studies do not depend on reports).
    """
    db_path = Path(db_path)
    if db_path.is_dir():
        raise OwlEvalError(f"--db {db_path} is a folder; give the path of the study file to create (e.g. grades.sqlite)")
    if db_path.exists():
        raise OwlEvalError(f"{db_path} already exists; use `owleval study refresh` to load new answers into it")
    data_dir = (data_dir or default_data_dir()).resolve()
    questions = load_questions(data_dir)
    by_model = read_study_answers(sources, questions)
    names = [check_name(n) for n in annotators]
    if len(set(names)) != len(names):
        raise OwlEvalError(f"annotator names repeat: {names}")
    if overlap is not None and not names:
        raise OwlEvalError("--overlap needs --annotators (who shares the answers?)")
    if overlap is not None and not 1 <= overlap <= len(names):
        raise OwlEvalError(f"--overlap must be between 1 and the number of annotators ({len(names)}), got {overlap}")
    quality = quality or special.QcSettings()
    if pairwise is None and quality.onboarding and gold is None:
        raise OwlEvalError("--onboarding K shows K gold answers first: give the gold answers with --gold FILE")
    if pairwise is not None and quality.any:
        raise OwlEvalError("--onboarding, --attention-checks and --retest are for A-D studies; a pairwise study takes gold "
                           "pairs with --gold (question_id, model_a, model_b, winner[, note]) and --gold-rate")
    design = None
    if pairwise is not None and sample_size is not None:
        raise OwlEvalError("a pairwise study takes its --sample in the pair design (items per model pair)")
    if judgements is not None and sample_size is None:
        raise OwlEvalError("--design active draws a --sample: give --sample K with it")
    if sample_size is not None:
        slots = [(m, a.question_id) for m, (_, answers) in by_model.items() for a in answers]
        uncertainty = None
        if judgements is not None:
            judgements, judge_grades = judgements(questions, set(by_model))
            uncertainty = sample.judge_uncertainty(judge_grades)
        design = sample.draw_sample(slots, questions, sample_size, seed, uncertainty=uncertainty,
                                    judgements=str(judgements) if judgements is not None else None)
    admin_token, admin_id, admin_hash = new_token()
    meta = {
        "study_id": uuid.uuid4().hex,
        "created_at": utc_now(),
        "auth": auth,
        "overlap": "all" if overlap is None else str(overlap),
        "seed": str(seed),
        "data_dir": str(data_dir),
        "revision": "1",
        "admin_token_id": admin_id,
        "admin_token_hash": admin_hash,
    }
    if design is not None:
        meta[sample.META_KEY] = json.dumps(design, sort_keys=True)
    if pairwise is not None:
        meta.update({pairwise_study.MODE_KEY: pairwise_study.PAIRWISE, pairs.META_KEY: pairwise.to_json()})
    meta[special.META_KEY] = quality.to_json()
    pair_info = None
    try:
        fd, tmp = temp_file_beside(db_path, suffix=".creating")
    except OSError as exc:
        raise OwlEvalError(f"cannot create {db_path}: {exc.strerror or exc}") from exc
    os.close(fd)
    tokens: dict[str, str] = {}
    try:
        conn = open_connection(tmp)
        try:
            initialise(conn, meta)
            with write_transaction(conn):
                _insert_questions(conn, questions)
                _insert_answers(conn, by_model)
                if pairwise is not None:
                    synced = pairwise_study.sync_pair_items(conn, pairwise, questions)
                    asked = pairwise_study.askable_items(conn)
                    pair_info = {"design": pairwise.describe(), "asked": len(asked), "identical": synced.identical}
                    pair_plan = pairwise_study.deal(asked, names, overlap, seed)
                plan = assign.spread(gradable_slots(conn, meta), names, overlap, seed) if pairwise is None else {}
                if gold is not None and pairwise is not None:
                    pair_gold.insert_gold_pairs(conn, pair_gold.read_gold_pairs(gold, conn), Path(gold))
                elif gold is not None:
                    gold_module.insert_gold(conn, gold_module.read_gold_csv(gold, conn), gold)
                for name in names:
                    annotator_id, token = _insert_annotator(conn, name, auth == AUTH_TOKEN)
                    if token:
                        tokens[name] = token
                    if pairwise is not None:
                        pairwise_study.append_pair_assignments(conn, annotator_id, name, pair_plan[name], seed)
                        _add_gold_pairs(conn, annotator_id, name, quality.gold_rate, seed)
                    else:
                        assign.append_assignments(conn, annotator_id, assign.shuffled(plan[name], name, seed))
                        special.plan_new_annotator(conn, annotator_id, name, quality, seed)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        try:
            os.link(tmp, db_path)  # no-clobber: fails when someone created the study meanwhile
        except FileExistsError:
            raise OwlEvalError(f"{db_path} already exists; use `owleval study refresh` to load new answers into it") from None
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)
    models = {m: len(a) for m, (_, a) in sorted(by_model.items())}
    return CreatedStudy(db_path, admin_token, tokens, models, design, pair_info)


def _add_gold_pairs(conn: sqlite3.Connection, annotator_id: int, name: str, gold_rate: float, seed: int) -> None:
    pair_gold.add_gold_items(conn, annotator_id, name, gold_rate, seed)


def enrol_annotator(conn: sqlite3.Connection, name: str, meta: dict[str, str]) -> tuple[int, str | None]:
    """Insert an annotator with their share of the work, inside the caller's transaction.

    Returns their id and token (None in name sign-in studies). With full overlap the share is every current
    answer; with ``--overlap K`` it is taken from the others' ungraded work, so each answer keeps K annotators.
    """
    annotator_id, token = _insert_annotator(conn, name, meta["auth"] == AUTH_TOKEN)
    if pairwise_study.is_pairwise(meta):
        pairwise_study.enrol(conn, annotator_id, name, meta)
        _add_gold_pairs(conn, annotator_id, name, special.read_settings(meta).gold_rate, int(meta["seed"]))
        return annotator_id, token
    slots = gradable_slots(conn, meta) if meta["overlap"] == "all" else assign.take_share(conn, annotator_id)
    assign.append_assignments(conn, annotator_id, assign.shuffled(slots, name, int(meta["seed"])))
    special.plan_new_annotator(conn, annotator_id, name, special.read_settings(meta), int(meta["seed"]))
    return annotator_id, token


def create_annotator(conn: sqlite3.Connection, name: str, meta: dict[str, str]) -> tuple[int, str | None]:
    """Insert an annotator with an empty queue, inside the caller's transaction (``owleval grades import``: the
    grades they gave elsewhere fill it). Returns their id and token (None in name sign-in studies)."""
    return _insert_annotator(conn, check_name(name), meta["auth"] == AUTH_TOKEN)


def add_annotator(store: Store, name: str) -> str | None:
    """Add an annotator with their share of the work; returns their token (None in name sign-in studies)."""
    name = check_name(name)
    meta = store.meta()
    with store.write() as conn:
        _, token = enrol_annotator(conn, name, meta)
    return token


@dataclass
class RefreshSummary:
    """Counts of what a refresh did, per answer (``owleval study refresh`` prints them)."""

    kept: int = 0
    changed: int = 0
    added: int = 0
    retired: int = 0
    restored: int = 0
    grades_set_aside: int = 0  # current grades that belonged to a changed answer text
    pairs: pairwise_study.PairSync | None = None  # a pairwise study: what happened to its pair items


def refresh_study(store: Store, sources: Sequence[Path]) -> RefreshSummary:
    """Load regenerated answers: unchanged texts keep their grades, changed ones start ungraded.

    Only the models present in ``sources`` are touched; an answer missing from a model's new file is retired.
    """
    meta = store.meta()
    questions = load_questions(Path(meta["data_dir"]))
    by_model = read_study_answers(sources, questions)
    summary = RefreshSummary()
    now = utc_now()
    with store.write() as conn:
        _insert_questions(conn, questions)
        new_slots: list[assign.Slot] = []
        for model, (path, answers) in sorted(by_model.items()):
            wanted = {a.question_id: a for a in answers}
            current = {
                int(r["question_id"]): r
                for r in conn.execute("SELECT answer_id, question_id, answer_sha256 FROM answers WHERE model_id = ? AND active = 1", (model,))
            }
            for qid, row in current.items():
                if qid not in wanted or row["answer_sha256"] != answer_sha256(wanted[qid].answer):
                    conn.execute("UPDATE answers SET active = 0, retired_at = ? WHERE answer_id = ?", (now, row["answer_id"]))
                    summary.grades_set_aside += conn.execute(
                        "SELECT COUNT(*) FROM current_grades WHERE answer_id = ?", (row["answer_id"],)
                    ).fetchone()[0]
                    summary.retired += qid not in wanted
            for qid, answer in sorted(wanted.items()):
                digest = answer_sha256(answer.answer)
                old = current.get(qid)
                if old is not None and old["answer_sha256"] == digest:
                    summary.kept += 1
                    continue
                summary.changed += old is not None
                earlier = conn.execute(
                    "SELECT answer_id FROM answers WHERE model_id = ? AND question_id = ? AND answer_sha256 = ? AND active = 0 "
                    "ORDER BY answer_id DESC LIMIT 1",
                    (model, qid, digest),
                ).fetchone()
                if earlier is not None:  # the same text as before: its grades are valid again
                    conn.execute("UPDATE answers SET active = 1, retired_at = NULL WHERE answer_id = ?", (earlier[0],))
                    summary.restored += 1
                else:
                    conn.execute(
                        "INSERT INTO answers(model_id, question_id, answer, answer_sha256, source, added_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (model, qid, answer.answer, digest, str(path), now),
                    )
                held = conn.execute("SELECT 1 FROM assignments WHERE model_id = ? AND question_id = ? LIMIT 1", (model, qid)).fetchone()
                if held is None:
                    summary.added += old is None
                    new_slots.append((model, qid))
        if pairwise_study.is_pairwise(meta):  # the pair items follow the answers; new ones join the queues
            synced = pairwise_study.sync_pair_items(conn, pairwise_study.read_design(meta), questions)
            pairwise_study.assign_new_items(conn, synced.new_to_queue or [], meta)
            summary.pairs = synced
        else:
            _assign_new_slots(conn, _sampled_new_slots(conn, new_slots, meta, questions), meta)
        conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'revision'")
    return summary


def _sampled_new_slots(
    conn: sqlite3.Connection, slots: list[assign.Slot], meta: dict[str, str], questions: Sequence[Question]
) -> list[assign.Slot]:
    """In a sampled study, new answers are graded only when drawn: a model new to the study gets its own draw of
    the same design (recorded); new answers of a model drawn before are not graded."""
    design = sample.read_design(meta)
    if design is None:
        return slots
    turn = {q.question_id: q.turn_type for q in questions}
    new_models = sorted({m for m, _ in slots} - set(design["models"]))
    for model in new_models:
        qids = [q for m, q in active_slots(conn) if m == model]
        if sample.design_kind(design) == "active":  # no judge grades here: the uniform rate, drawn Poisson, probabilities stored
            design["models"][model] = sample.draw_model_active(model, qids, turn, int(design["per_model"]), int(design["seed"]), {})
        else:
            design["models"][model] = sample.draw_model(model, qids, turn, int(design["per_model"]), int(design["seed"]))
    if new_models:
        conn.execute("UPDATE meta SET value = ? WHERE key = ?", (json.dumps(design, sort_keys=True), sample.META_KEY))
    drawn = sample.sampled_slots(design)
    return [s for s in slots if s in drawn]


def _assign_new_slots(conn: sqlite3.Connection, slots: list[assign.Slot], meta: dict[str, str]) -> None:
    """New answers go to everyone (full overlap) or to the K least loaded annotators."""
    if not slots:
        return
    people = {int(r[0]): r[1] for r in conn.execute("SELECT annotator_id, name FROM annotators")}
    if not people:
        return
    k = len(people) if meta["overlap"] == "all" else min(int(meta["overlap"]), len(people))
    load = assign.loads(conn)
    plan: dict[int, list[assign.Slot]] = {a: [] for a in people}
    for slot in sorted(slots):
        for who in sorted(people, key=lambda a: (load[a], a))[:k]:
            plan[who].append(slot)
            load[who] += 1
    for who, got in plan.items():
        assign.append_assignments(conn, who, assign.shuffled(got, people[who], int(meta["seed"])))
