"""From a kit's run to OwlEval answers files: the checks and the writing every kit shares.

Each kit module reads its own files into :class:`KitRun` records (one per model and task found); this module
checks them as any answers file is checked (every problem with its file and line, all or nothing), refuses a run
made on another data-set version or holding samples without OwlEval's ids, and writes one ``<model>.jsonl`` per
model with a ``<model>.jsonl.meta.json`` beside it (provenance: a fingerprint of kind ``imported``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from owleval.answers import Answer, check_answer_record, format_answers, write_files_all_or_nothing
from owleval.bridges.common import MULTI_TURN, SINGLE_PASS, model_ids_for
from owleval.errors import InputFileError, OwlEvalError, Problem
from owleval.manifest import load_manifest, sha256_of
from owleval.provenance import dumps, git_commit, now_iso, package_versions
from owleval.questions import Question


@dataclass
class KitSample:
    """One sample of a kit's run: the question ids it asked, in turn order, and the model's reply to each."""

    sample_id: str
    question_ids: list[int]
    outputs: list[str | None]  # None: the kit recorded a failure for that turn (imported as a missing answer)
    line: int | None  # where in the run file (a JSONL line, a table row); None for a member of an archive
    where: str | None = None  # the field or archive member, for messages


@dataclass
class KitRun:
    """What a kit recorded for one model on one OwlEval task."""

    kit: str
    kit_version: str | None
    run_file: Path
    model: str  # the kit's own name for the model (normalised into a model id on import)
    protocol: str  # MULTI_TURN or SINGLE_PASS
    dataset_digest: str | None
    samples: list[KitSample] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)  # what the kit recorded: model args, generation settings
    problems: list[Problem] = field(default_factory=list)


@dataclass
class ImportedModel:
    model_id: str
    path: Path
    runs: list[KitRun]
    answers: int
    missing: list[int]  # question ids the run did not answer (a partial run)
    total: int


def _check_run(run: KitRun, digest: str, by_id: dict[int, Question], model_id: str) -> tuple[list[Answer], list[Problem]]:
    problems = list(run.problems)
    if run.dataset_digest != digest:
        problems.append(Problem(run.run_file, None, "dataset_digest",
                                f"the run used data set {run.dataset_digest or 'unknown'}, the installed one is {digest}: "
                                "export the task again from this install and rerun it"))
        return [], problems
    answers: list[Answer] = []
    seen: dict[int, str] = {}
    for sample in run.samples:
        if len(sample.outputs) != len(sample.question_ids):
            problems.append(Problem(run.run_file, sample.line, sample.where or "outputs",
                                    f"sample {sample.sample_id}: {len(sample.outputs)} replies for question ids {sample.question_ids}"))
            continue
        for turn, (qid, text) in enumerate(zip(sample.question_ids, sample.outputs)):
            if text is None:
                continue
            question = by_id.get(qid) if isinstance(qid, int) else None
            raw = {"image": question.image if question else "", "question_id": qid, "question": question.question if question else "",
                   "answer": text, "model_id": model_id,
                   "metadata": {"kit": run.kit, "sample_id": sample.sample_id, "turn": turn, "protocol": run.protocol}}
            answer, found = check_answer_record(raw, run.run_file, sample.line, by_id)
            problems += found
            if answer is None:
                continue
            if qid in seen:
                problems.append(Problem(run.run_file, sample.line, "question_id", f"question {qid} answered twice (samples {seen[qid]} and {sample.sample_id})"))
                continue
            seen[qid] = sample.sample_id
            answers.append(answer)
    return answers, problems


def fingerprint(run: KitRun) -> dict[str, Any]:
    """The provenance of imported answers: which kit (and version) made them, from which run file (its sha256)."""
    return {"kind": "imported", "kit": run.kit, "kit_version": run.kit_version, "run_file": str(run.run_file),
            "sha256": sha256_of(run.run_file)}


def _meta(model_id: str, runs: Sequence[KitRun], answered: int, missing: list[int], total: int) -> dict[str, Any]:
    run = runs[0]
    manifest = load_manifest()
    return {
        "adapter": "imported",
        "model_id": model_id,
        "checkpoint": run.model,
        "checkpoint_fingerprint": fingerprint(run),
        "protocol": run.protocol,
        "protocol_note": None if run.protocol == MULTI_TURN else
        "each question was asked alone with its image: later turns of a dialogue did not see the earlier ones",
        "kit": {"name": run.kit, "version": run.kit_version, "model": run.model, "settings": run.settings,
                "run_files": [{"path": str(r.run_file), "sha256": sha256_of(r.run_file)} for r in runs]},
        "dataset": {"name": manifest.name, "version": manifest.digest},
        "answers_in_file": answered,
        "questions_total": total,
        "missing_question_ids": missing,
        "packages": package_versions(),
        "git_commit": git_commit(),
        "imported_at": now_iso(),
        "status": "finished" if not missing else "partial",
    }


def import_kit_runs(runs: Sequence[KitRun], out_dir: Path, questions: Sequence[Question], *,
                    model_id: str | None = None, overwrite: bool = False) -> list[ImportedModel]:
    """Check every run, then write one answers file (with its meta) per model into ``out_dir``; all or nothing."""
    if not runs:
        raise OwlEvalError("no OwlEval run found")
    digest = load_manifest().digest
    by_id = {q.question_id: q for q in questions}
    ids = model_ids_for([r.model for r in runs], model_id)
    grouped: dict[str, list[KitRun]] = {}
    for run in runs:
        grouped.setdefault(ids[run.model], []).append(run)
    for name, group in grouped.items():
        if len(group) > 1:
            files = ", ".join(f"{r.run_file} ({r.protocol})" for r in group)
            raise OwlEvalError(f"model {name!r} has more than one run ({files}): import them one at a time with --model-id")
    problems: list[Problem] = []
    planned: dict[str, tuple[KitRun, list[Answer]]] = {}
    for name, (run,) in grouped.items():
        answers, found = _check_run(run, digest, by_id, name)
        problems += found
        planned[name] = (run, answers)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise InputFileError(errors)
    texts: dict[Path, str] = {}
    result: list[ImportedModel] = []
    for name, (run, answers) in planned.items():
        if not answers:
            raise OwlEvalError(f"{run.run_file}: the run holds no answers for model {run.model!r}")
        path = out_dir / f"{name}.jsonl"
        missing = sorted(set(by_id) - {a.question_id for a in answers})
        texts[path] = format_answers(answers)
        texts[path.with_name(path.name + ".meta.json")] = dumps(_meta(name, [run], len(answers), missing, len(by_id)))
        result.append(ImportedModel(name, path, [run], len(answers), missing, len(by_id)))
    write_files_all_or_nothing(texts, overwrite=overwrite)
    return result




def single_pass_models(answers: Path | None) -> list[str]:
    """Models among the answers files (a file or a folder) whose provenance says ``protocol: single-pass``."""
    import json

    from owleval.answers import answer_files_in

    if answers is None:
        return []
    found = []
    for path in answer_files_in([answers]):
        meta = path.with_name(path.name + ".meta.json")
        try:
            doc = json.loads(meta.read_text(encoding="utf-8")) if meta.is_file() else {}
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("protocol") == SINGLE_PASS:
            found.append(str(doc.get("model_id") or path.stem))
    return sorted(found)
