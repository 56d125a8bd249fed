"""The pairwise judge: which of two answers is better, asked in both orders, resumably.

Pairs come from :mod:`owleval.study.pairs` (the flags of a pairwise study). Each pair is asked twice, with
either answer first, because a pairwise judge's known failure is favouring a position. The pair's verdict: the
winner both orders agree on; ``both_bad`` only when both say so; any other disagreement a tie; an unparsed or
failed order leaves the pair without a vote. Two identical answer texts are not asked: a tie.

The machinery is the A-D judge's (:mod:`owleval.judge.run`): adapters, concurrency, parse retries with the cut bad
reply, context refusals, resume checks on judge, template and settings; and the resumable runner's
(:mod:`owleval.runner`): the synced append-only raw.jsonl, batches with progress, meta.json. The two
orders of a pair share a ``judgement`` id and are appended together; votes.csv and meta.json are rewritten from the
log at the end of every run, interrupted or not.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from owleval.adapters.base import LoadOptions, ModelAdapter
from owleval.adapters.registry import get_adapter_class
from owleval.answers import Answer
from owleval.csvio import frame_to_csv
from owleval.errors import OwlEvalError
from owleval.fileio import atomic_write_text
from owleval.judge.log import FAILED, PARSED, UNPARSED, read_log
from owleval.judge.parse import parse_pair_reply
from owleval.judge.prompt import PAIRWISE_TEMPLATE, judge_conversation, pair_side, render_pairwise_prompt
from owleval.judge.run import (
    CARRIED,
    META,
    RAW,
    FailureStreak,
    JudgeSettings,
    _check_resumable,
    _read_meta,
    answers_per_batch,
    ask_until_parsed,
    check_out_folder,
    judge_meta,
    load_answer_sets,
    prepare_folder,
    safe_name,
    sha256_text,
)
from owleval.study.pairs import PairDesign, PairItem, design_summary, select_pairs
from owleval.records.votes import VOTE_COLUMNS
from owleval.paths import default_data_dir
from owleval.provenance import now_iso
from owleval.questions import Question, image_path, load_questions
from owleval.redact import redact
from owleval.runner import ProgressCallback, ResumableRun, in_batches, start_meta
from owleval.stats import wilson_interval

VOTES = "votes.csv"
ORDERS = ("ab", "ba")  # which model's answer is shown first: model_a's, or model_b's
IDENTICAL_REASON = "identical answer texts: a tie, not asked"


@dataclass(frozen=True)
class PairJob:
    """One order of one pair: the prompt shown to the judge."""

    item: PairItem
    order: str
    image: Path
    prompt: str
    sha_a: str
    sha_b: str

    @property
    def first(self) -> str:
        return self.item[1] if self.order == "ab" else self.item[2]


@dataclass(frozen=True)
class PairJudgement:
    """What the judge made of one pair over both orders: ``status`` parsed (with a verdict), unparsed or failed."""

    item: PairItem
    sha_a: str
    sha_b: str
    status: str
    winner: str | None  # model_a, model_b, tie, both_bad
    orders: Mapping[str, str | None]  # order -> that order's verdict in pair terms (None: not parsed)
    reason: str
    judged_at: str


def in_pair_terms(winner: str, order: str) -> str:
    """An order's ``first`` / ``second`` as ``model_a`` / ``model_b`` (tie and both_bad stay)."""
    if winner in ("tie", "both_bad"):
        return winner
    return "model_a" if (winner == "first") == (order == "ab") else "model_b"


def verdict(ab: str, ba: str) -> str:
    """The pair's verdict from its two orders (in pair terms): agreed -> that; both both_bad -> both_bad; else tie."""
    return ab if ab == ba else "tie"


def _fold(lines: Sequence[dict[str, Any]]) -> PairJudgement | None:
    """One pair's judgement from its log lines, or None while an order lacks its final line."""
    first = lines[0]
    finals = {rec["order"]: rec for rec in lines if rec.get("final")}
    if set(finals) != set(ORDERS):
        return None
    item = (int(first["question_id"]), first["model_a"], first["model_b"])
    orders = {o: finals[o]["winner_pair"] if finals[o]["status"] == PARSED else None for o in ORDERS}
    statuses = {finals[o]["status"] for o in ORDERS}
    when = max(finals[o]["at"] for o in ORDERS)
    if FAILED in statuses:
        status, winner, reason = FAILED, None, ""
    elif UNPARSED in statuses:
        status, winner, reason = UNPARSED, None, ""
    else:
        status, winner = PARSED, verdict(orders["ab"], orders["ba"])
        reason = f"{finals['ab']['reason']} | swapped: {finals['ba']['reason']}"
    return PairJudgement(item, first["answer_a_sha256"], first["answer_b_sha256"], status, winner, orders, reason, when)


def pair_judgements(records: Sequence[dict[str, Any]]) -> dict[PairItem, PairJudgement]:
    """The latest complete judgement of each pair, in log order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(record["judgement"], []).append(record)
    latest: dict[PairItem, PairJudgement] = {}
    for lines in groups.values():
        found = _fold(lines)
        if found is not None:
            latest[found.item] = found
    return dict(sorted(latest.items()))


def read_pair_log(path: Path) -> list[dict[str, Any]]:
    records = read_log(path)
    for n, record in enumerate(records, 1):
        if not {"order", "model_a", "model_b"} <= record.keys():
            raise OwlEvalError(f"{path}: record {n} is not a pairwise judge record (an A-D judgement folder?); choose another --out")
    return records


def consistency(found: Mapping[PairItem, PairJudgement]) -> dict[str, Any]:
    """The position-consistency rate: the share of pairs (both orders parsed) whose two orders agree, with its n
    and a 95% Wilson interval; and how often a decisive reply named the answer shown first."""
    parsed = [j for j in found.values() if j.status == PARSED]
    agree = sum(j.orders["ab"] == j.orders["ba"] for j in parsed)
    decisive = [(o, w) for j in parsed for o, w in j.orders.items() if w in ("model_a", "model_b")]
    first = sum((w == "model_a") == (o == "ab") for o, w in decisive)
    out: dict[str, Any] = {"pairs": len(parsed), "agree": agree, "rate": agree / len(parsed) if parsed else None,
                           "ci95": None, "first_position_share": first / len(decisive) if decisive else None,
                           "decisive_replies": len(decisive)}
    if parsed:
        low, high = wilson_interval([agree], [len(parsed)])
        out["ci95"] = [float(low[0]), float(high[0])]
    return out


def votes_frame(found: Mapping[PairItem, PairJudgement], identical: Sequence[PairItem], annotator: str, at: str) -> pd.DataFrame:
    """The parsed pairs' verdicts (and identical texts as ties) in the votes.csv columns. The judge saw both orders:
    ``left`` names model_a, the model shown first in the first order asked."""
    rows = [(annotator, q, a, b, a, j.winner, j.reason, j.judged_at) for (q, a, b), j in found.items() if j.status == PARSED]
    rows += [(annotator, q, a, b, a, "tie", IDENTICAL_REASON, at) for q, a, b in identical if (q, a, b) not in found]
    frame = pd.DataFrame(sorted(rows, key=lambda r: (r[1], r[2], r[3])), columns=list(VOTE_COLUMNS))
    return frame.astype({"question_id": "int64"})


def make_jobs(items: Sequence[PairItem], sets: Mapping[str, tuple[Path, list[Answer]]], questions: Sequence[Question],
              data_dir: Path) -> tuple[list[tuple[PairItem, str, str]], list[PairItem], dict[PairItem, list[PairJob]]]:
    """Per item: its answers' hashes; the identical ones; and the two orders' prompts of the others."""
    by_id = {q.question_id: q for q in questions}
    own = {m: {a.question_id: a for a in answers} for m, (_, answers) in sets.items()}
    hashes, identical, jobs = [], [], {}
    for item in items:
        q, a, b = item
        answer_a, answer_b = own[a][q], own[b][q]
        sha_a, sha_b = sha256_text(answer_a.answer), sha256_text(answer_b.answer)
        hashes.append((item, sha_a, sha_b))
        if sha_a == sha_b:
            identical.append(item)
            continue
        question = by_id[q]
        side_a, side_b = pair_side(question, answer_a, own[a], by_id), pair_side(question, answer_b, own[b], by_id)
        image = image_path(question, data_dir)
        jobs[item] = [PairJob(item, "ab", image, render_pairwise_prompt(question, side_a, side_b), sha_a, sha_b),
                      PairJob(item, "ba", image, render_pairwise_prompt(question, side_b, side_a), sha_a, sha_b)]
    return hashes, identical, jobs


def judge_pairs(adapter: ModelAdapter, batch: Sequence[list[PairJob]], settings: JudgeSettings) -> list[dict[str, Any]]:
    """Ask both orders of each pair of ``batch`` (with parse retries); the log records, grouped by pair."""
    ids = {jobs[0].item: uuid.uuid4().hex[:16] for jobs in batch}
    flat = [job for jobs in batch for job in jobs]
    attempts = ask_until_parsed(
        adapter, flat, settings,
        conversation=lambda job, bad: judge_conversation(job.prompt, job.image, f"q{job.item[0]} pair order {job.order}", bad,
                                                         template=PAIRWISE_TEMPLATE),
        config=lambda job: settings.config(0),
        parse=parse_pair_reply,
    )
    records: dict[PairItem, list[dict[str, Any]]] = {item: [] for item in ids}
    for a in attempts:
        job, reply = a.job, a.reply
        q, model_a, model_b = job.item
        records[job.item].append({
            "judgement": ids[job.item], "question_id": q, "model_a": model_a, "model_b": model_b, "order": job.order,
            "model_id": job.first, "sample": 0, "samples": 1,
            "answer_a_sha256": job.sha_a, "answer_b_sha256": job.sha_b, "prompt_sha256": sha256_text(job.prompt),
            "attempt": a.attempt, "temperature": 0.0, "seed": a.config.seed, "status": a.status, "final": a.final,
            "winner": a.parsed.winner if a.parsed else None,
            "winner_pair": in_pair_terms(a.parsed.winner, job.order) if a.parsed else None,
            "reason": a.parsed.reason if a.parsed else None, "error": a.error,
            "reply": redact(reply.text) if reply.text else reply.text,
            "seconds": round(reply.seconds, 4), "usage": reply.usage, "finish_reason": reply.finish_reason, "at": now_iso(),
        })
    return [r for item in ids for r in sorted(records[item], key=lambda r: (r["order"], r["attempt"]))]


def needs_asking(sha_a: str, sha_b: str, done: PairJudgement | None, retry_unparsed: bool) -> bool:
    """Whether a run asks about a pair: no complete judgement, a failed one, one of other answer texts, or
    (``retry_unparsed``) an unparsed one."""
    if done is None or done.status == FAILED or (done.sha_a, done.sha_b) != (sha_a, sha_b):
        return True
    return retry_unparsed and done.status == UNPARSED


@dataclass
class PairJudgeResult:
    out: Path
    asked: int  # pairs asked this run
    resumed: int  # pairs the log had already judged
    identical: int  # pairs of identical texts (ties, not asked)
    requests: int
    counts: dict[str, int]  # over the selected pairs: judged / unparsed / failed
    consistency: dict[str, Any]
    warnings: list[str]
    unparsed: list[dict[str, Any]]  # the pairs whose replies named neither answer (or could not be read)


def run_pairwise_judge(
    judge: str,
    *,
    answers: Sequence[Path],
    load_options: LoadOptions,
    settings: JudgeSettings,
    design: PairDesign,
    out: Path | None = None,
    models: Collection[str] | None = None,
    overwrite: bool = False,
    retry_unparsed: bool = False,
    data_dir: Path | None = None,
    adapter: ModelAdapter | None = None,
    on_progress: ProgressCallback | None = None,
) -> PairJudgeResult:
    """Judge the pairs ``design`` selects from ``answers`` in both orders; write ``out`` (default
    ``judgements/<checkpoint>-pairwise``): raw.jsonl, votes.csv, meta.json."""
    if settings.samples != 1:
        raise OwlEvalError("the pairwise judge asks each order once (greedy); --samples is for the A-D judge")
    data_dir = data_dir or default_data_dir()
    questions = load_questions(data_dir)
    sets = load_answer_sets(answers, questions, models)
    items = select_pairs({m: {a.question_id for a in ans} for m, (_, ans) in sets.items()}, questions, design)
    hashes, identical, jobs = make_jobs(items, sets, questions, data_dir)

    adapter = adapter or get_adapter_class(judge).open(load_options)
    try:
        checkpoint = adapter.options.checkpoint or adapter.default_checkpoint or judge
        out = out or Path("judgements") / f"{safe_name(checkpoint)}-pairwise"
        raw_path, meta_path = out / RAW, out / META
        check_out_folder(out, overwrite, VOTES)
        old = None if overwrite else _read_meta(out)
        meta = start_meta({
            "mode": "pairwise",
            **judge_meta(judge, checkpoint, adapter, load_options, settings, PAIRWISE_TEMPLATE, sets),
            "pairs": {"design": json.loads(design.to_json()), "described": design.describe(), **design_summary(items)},
            "verdict_rule": "both orders agree -> that winner; both both_bad -> both_bad; any other disagreement -> tie; "
                            "an unparsed or failed order -> no vote",
            "retry_unparsed": retry_unparsed,
        }, old, CARRIED)
        if old is not None and old.get("mode") != "pairwise":
            raise OwlEvalError(f"{out} holds A-D judgements; choose another --out for the pairwise judge")
        _check_resumable(old, meta, out)
        warnings = prepare_folder(out, overwrite, VOTES)
        done = pair_judgements(read_pair_log(raw_path))
        pending = [jobs[item] for item, sha_a, sha_b in hashes
                   if item in jobs and needs_asking(sha_a, sha_b, done.get(item), retry_unparsed)]
        out.mkdir(parents=True, exist_ok=True)

        total, resumed = len(jobs), len(jobs) - len(pending)
        batch_size = max(1, (answers_per_batch(load_options, adapter) + 1) // 2)  # two requests a pair
        streak = FailureStreak(max(8, batch_size), "pairs",
                               lambda pair, records: any(r["status"] == FAILED for r in records
                                                         if (r["question_id"], r["model_a"], r["model_b"]) == pair[0].item))

        def finish(meta: dict[str, Any]) -> None:
            selected = {item for item, _, _ in hashes}
            found = {item: j for item, j in pair_judgements(read_pair_log(raw_path)).items() if item in selected and item in jobs}
            atomic_write_text(out / VOTES, frame_to_csv(votes_frame(found, identical, meta["annotator"], now_iso())))
            listed = {s: [{"question_id": q, "model_a": a, "model_b": b} for (q, a, b), j in found.items() if j.status == s]
                      for s in (UNPARSED, FAILED)}
            verdicts = [j.winner for j in found.values() if j.status == PARSED]
            meta.update({
                "counts": {"judged": len(verdicts), "unparsed": len(listed[UNPARSED]), "failed": len(listed[FAILED]),
                           "identical": len(identical)},
                "verdicts": {w: verdicts.count(w) for w in ("model_a", "model_b", "tie", "both_bad")},
                "position_consistency": consistency(found),
                "unparsed": listed[UNPARSED],
                "failed": listed[FAILED],
                "requests": run.written,
                "pairs_asked": run.asked,
            })

        with ResumableRun(meta_path, meta, raw_path, adapter, finish) as run:
            for batch, records in run.batches(in_batches(pending, batch_size), lambda batch: judge_pairs(adapter, batch, settings),
                                              resumed=resumed, total=total, on_progress=on_progress):
                streak.see(batch, records)
    finally:
        adapter.close()
    return PairJudgeResult(out, run.asked, resumed, len(identical), run.written, meta["counts"], meta["position_consistency"], warnings,
                           meta["unparsed"])
