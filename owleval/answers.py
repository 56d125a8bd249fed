"""Answer files: JSONL, one answer a line, compatible with the published OwlEval files.

Required fields: ``image``, ``question_id``, ``question``, ``answer``, ``model_id``. Optional: ``metadata``
(an object: timings, token counts...). Reading validates every line against the question set and reports
every problem with its file, line and field.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from owleval.items import CHECK_MODEL
from owleval.errors import InputFileError, OwlEvalError, Problem
from owleval.fileio import write_temp_beside
from owleval.imagefiles import plain_name_problem
from owleval.questions import Question

REQUIRED_FIELDS: dict[str, type] = {
    "image": str,
    "question_id": int,
    "question": str,
    "answer": str,
    "model_id": str,
}

#: published file name -> canonical model name
PUBLISHED_MODELS: dict[str, str] = {
    "mPLUG_Owl_7b_answer.jsonl": "mplug-owl-7b",
    "llava_13b_answer.jsonl": "llava-13b",
    "minigpt4_13b_answer.jsonl": "minigpt4-13b",
    "blip2_13b_answer.jsonl": "blip2-13b",
    "openflanmingo_answer.jsonl": "openflamingo",
    "MMreact_answer.jsonl": "mm-react",
}
#: a whole model id (matched with fullmatch: "$" would let a trailing newline through)
_MODEL_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,99}")


@dataclass(frozen=True)
class Answer:
    question_id: int
    image: str
    question: str
    answer: str
    model_id: str
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_json(self) -> str:
        row: dict[str, Any] = {
            "image": self.image,
            "question_id": self.question_id,
            "question": self.question,
            "answer": self.answer,
            "model_id": self.model_id,
        }
        if self.metadata:
            row["metadata"] = self.metadata
        return json.dumps(row, ensure_ascii=False)


@dataclass
class AnswerFile:
    """A validated answer file: its answers (normalised), and the warnings and errors found."""

    path: Path
    answers: list[Answer]
    problems: list[Problem]
    total_questions: int

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def partial(self) -> bool:
        return len(self.answers) < self.total_questions

    @property
    def model_ids(self) -> list[str]:
        return sorted({a.model_id for a in self.answers})


def _check_image(name: str, question: Question, path: Path, line: int) -> tuple[str, list[Problem]]:
    """Return the normalised image name and the problems of ``name`` for ``question``."""
    if plain_name_problem(name):  # the same rule as questions.jsonl's names
        return name, [Problem(path, line, "image", f"image name {name!r} leaves the data folder")]
    pure = PurePosixPath(name)
    if name == question.image:
        return name, []
    expected = PurePosixPath(question.image)
    if pure.stem == expected.stem and pure.suffix.lower() in {".png", ".jpg", ".jpeg"}:
        note = f"image {name!r} normalised to {question.image!r} (the published files use the wrong extension)"
        return question.image, [Problem(path, line, "image", note, "warning")]
    return name, [Problem(path, line, "image", f"image {name!r} is not question {question.question_id}'s image {question.image!r}")]


def _comparable(text: str) -> str:
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", text).lower())


def _check_question_text(text: str, question: Question, path: Path, line: int) -> list[Problem]:
    """Exact text is fine; the published files' small slips (spacing, full-width '？', a typo, a question split
    across two lines) are accepted with a warning; anything else is a different question: an error."""
    if text == question.question:
        return []
    given, expected = _comparable(text), _comparable(question.question)
    if given == expected:
        return [Problem(path, line, "question", f"spacing or punctuation differs from question {question.question_id}; the set's text is used", "warning")]
    similar = difflib.SequenceMatcher(None, given, expected).ratio() >= 0.9
    overlaps = len(given) >= 12 and (given in expected or expected in given)
    if similar or overlaps:
        return [Problem(path, line, "question", f"text {text!r} differs from question {question.question_id} {question.question!r}; the set's text is used", "warning")]
    return [Problem(path, line, "question", f"text {text!r} does not match question {question.question_id}: expected {question.question!r}")]


def _check_line(raw: Any, path: Path, line: int, questions: dict[int, Question]) -> tuple[Answer | None, list[Problem]]:
    if not isinstance(raw, dict):
        return None, [Problem(path, line, None, "an answer must be a JSON object")]
    problems: list[Problem] = []
    for name, kind in REQUIRED_FIELDS.items():
        if name not in raw:
            problems.append(Problem(path, line, name, "missing"))
        elif not isinstance(raw[name], kind) or isinstance(raw[name], bool):
            problems.append(Problem(path, line, name, f"must be {kind.__name__}, got {type(raw[name]).__name__}"))
    if "metadata" in raw and not isinstance(raw["metadata"], dict):
        problems.append(Problem(path, line, "metadata", "must be an object"))
    if problems:
        return None, problems
    qid = raw["question_id"]
    question = questions.get(qid)
    if question is None:
        return None, [Problem(path, line, "question_id", f"unknown question id {qid}; the set has ids 1-{max(questions)}")]
    problems += _check_question_text(raw["question"], question, path, line)
    image, found = _check_image(raw["image"], question, path, line)
    problems += found
    if not _MODEL_NAME_RE.fullmatch(raw["model_id"]):
        problems.append(Problem(path, line, "model_id", f"{raw['model_id']!r} is not a usable model name (letters, digits, . _ : + -)"))
    elif is_reserved_model_id(raw["model_id"]):
        problems.append(Problem(path, line, "model_id", f"{raw['model_id']!r} is reserved: model ids beginning with "
                                                        f"{RESERVED_MODEL_PREFIX!r} mark OwlEval's own attention checks"))
    answer = Answer(qid, image, question.question, raw["answer"], raw["model_id"], dict(raw.get("metadata") or {}))
    return answer, problems


#: model ids OwlEval keeps for itself: the attention checks of a grading study (owleval.study.special) are answers
#: of :data:`CHECK_MODEL`, which belongs to no model and is left out of every score
RESERVED_MODEL_PREFIX = "owleval:"


def is_reserved_model_id(model_id: str) -> bool:
    return model_id.strip().lower().startswith(RESERVED_MODEL_PREFIX)


def read_answer_file(path: Path, questions: Sequence[Question]) -> AnswerFile:
    """Validate ``path`` line by line; never raises for bad content (see ``AnswerFile.problems``)."""
    by_id = {q.question_id: q for q in questions}
    answers: list[Answer] = []
    problems: list[Problem] = []
    seen: dict[int, int] = {}
    try:
        data = path.read_bytes()
    except OSError as exc:
        return AnswerFile(path, [], [Problem(path, None, None, f"cannot read: {exc.strerror}")], len(by_id))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return AnswerFile(path, [], [Problem(path, None, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})")], len(by_id))
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif lines:
        problems.append(Problem(path, len(lines), None, "last line has no line ending (the file may be truncated)", "warning"))
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(path, line_no, None, f"malformed JSON: {exc.msg} (column {exc.colno})"))
            continue
        answer, found = _check_line(raw, path, line_no, by_id)
        problems += found
        if answer is None:
            continue
        if answer.question_id in seen:
            problems.append(Problem(path, line_no, "question_id", f"duplicate question id {answer.question_id} (first on line {seen[answer.question_id]})"))
            continue
        seen[answer.question_id] = line_no
        answers.append(answer)
    if not answers and not problems:
        problems.append(Problem(path, None, None, "file holds no answers"))
    models = {a.model_id for a in answers}
    if len(models) > 1:
        problems.append(Problem(path, None, "model_id", f"one file must hold one model, found {sorted(models)}"))
    answers.sort(key=lambda a: a.question_id)
    return AnswerFile(path, answers, problems, len(by_id))


def load_answers(path: Path, questions: Sequence[Question]) -> AnswerFile:
    """Read ``path`` and raise :class:`InputFileError` listing every error when it is not valid."""
    result = read_answer_file(path, questions)
    if not result.ok:
        raise InputFileError(result.errors)
    return result


def answer_files_in(sources: Iterable[Path]) -> list[Path]:
    """Expand folders into their ``*.jsonl`` files (sorted); keep files as given."""
    files: list[Path] = []
    for src in sources:
        if src.is_dir():
            found = sorted(src.glob("*.jsonl"))
            if not found:
                raise OwlEvalError(f"{src}: folder holds no *.jsonl answer files")
            files += found
        elif src.is_file():
            files.append(src)
        else:
            raise OwlEvalError(f"{src}: no such file or folder")
    return files


def format_answers(answers: Iterable[Answer]) -> str:
    return "".join(a.to_json() + "\n" for a in sorted(answers, key=lambda a: a.question_id))


def canonical_model_name(path: Path, model_ids: Sequence[str]) -> str:
    """The published files get fixed names; any other file keeps the model_id it declares."""
    if path.name in PUBLISHED_MODELS:
        return PUBLISHED_MODELS[path.name]
    return model_ids[0]


def import_answer_files(sources: Sequence[Path], out_dir: Path, questions: Sequence[Question], *, overwrite: bool = False) -> dict[str, AnswerFile]:
    """Validate every source, then write one normalised ``<model>.jsonl`` per model into ``out_dir``.

    All or nothing: when any source has an error, or two sources name the same model, or a target exists
    (without ``overwrite``), nothing is written.
    """
    checked = [read_answer_file(p, questions) for p in sources]
    errors = [p for f in checked for p in f.errors]
    if errors:
        raise InputFileError(errors)
    planned: dict[str, AnswerFile] = {}
    for f in checked:
        name = canonical_model_name(f.path, f.model_ids)
        if name in planned:
            raise OwlEvalError(f"{f.path} and {planned[name].path} both hold model {name!r}: import them separately")
        planned[name] = f
    texts = {
        out_dir / f"{name}.jsonl": format_answers(Answer(a.question_id, a.image, a.question, a.answer, name, a.metadata) for a in f.answers)
        for name, f in planned.items()
    }
    write_files_all_or_nothing(texts, overwrite=overwrite)
    return planned


def write_files_all_or_nothing(texts: dict[Path, str], *, overwrite: bool = False) -> None:
    """Write every ``path -> text`` or none: a target that exists (without ``overwrite``) refuses the lot, and
    every file is staged beside its target before any is renamed into place."""
    if not overwrite:
        existing = [str(t) for t in texts if t.exists()]
        if existing:
            raise OwlEvalError(f"would overwrite {', '.join(existing)}; pass --overwrite to replace")
    staged: list[tuple[Path, Path]] = []
    try:
        for target, text in texts.items():
            staged.append((write_temp_beside(target, text), target))
        for tmp, target in staged:
            os.replace(tmp, target)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def check_answer_record(raw: Any, path: Path, line: int | None, questions: dict[int, Question]) -> tuple[Answer | None, list[Problem]]:
    """One answer record built elsewhere (a kit's run file) checked as an answers-file line: ``path`` and ``line``
    name where it came from in the problems found."""
    return _check_line(raw, path, line, questions)  # type: ignore[arg-type]
