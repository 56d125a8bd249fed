"""The captioning metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D) through pycocoevalcap, for comparison only.

OwlEval has no reference answers, so references come from a reference answers file, from the other models'
answers (``leave-one-out``) or from the answers humans graded A (``graded:DB_OR_CSV``). Scores are computed
per model over its whole answer set (CIDEr's IDF needs the corpus) and kept per answer too, so ``owleval
report`` can correlate them with the human grades.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from owleval.answers import answer_files_in, canonical_model_name, read_answer_file
from owleval.errors import InputFileError, MissingDependencyError, OwlEvalError
from owleval.questions import Question

if TYPE_CHECKING:
    import pandas as pd

#: metric family (the --metrics names) -> columns it fills
METRICS: dict[str, tuple[str, ...]] = {
    "bleu": ("bleu_1", "bleu_2", "bleu_3", "bleu_4"),
    "meteor": ("meteor",),
    "rouge": ("rouge_l",),
    "cider": ("cider",),
}
METRIC_COLUMNS: tuple[str, ...] = tuple(c for cols in METRICS.values() for c in cols)
LEGACY_COLUMNS = ("model", "scope", "question_id", "n", *METRIC_COLUMNS)
LEAVE_ONE_OUT = "leave-one-out"
GRADED_PREFIX = "graded:"

_METEOR: Any = None
_METEOR_LOCK = threading.Lock()


@dataclass
class LegacyInputs:
    """What gets scored: candidate text per (model, question id) and the reference texts for it."""

    candidates: dict[tuple[str, int], str]
    references: dict[tuple[str, int], list[str]]
    description: str
    unscored: list[tuple[str, int]] = field(default_factory=list)  # candidates with no usable reference


def parse_metrics(spec: str) -> list[str]:
    names = [s.strip().lower() for s in spec.split(",") if s.strip()]
    bad = [n for n in names if n not in METRICS]
    if bad or not names:
        raise OwlEvalError(f"unknown metric(s) {bad or spec!r}; choose from {', '.join(METRICS)}")
    return [n for n in METRICS if n in names]


def cider_variant() -> str:
    """'CIDEr-D' when the installed pycocoevalcap scorer has CIDEr-D's Gaussian length penalty (sigma), else 'CIDEr'."""
    from pycocoevalcap.cider.cider_scorer import CiderScorer

    return "CIDEr-D" if "sigma" in inspect.signature(CiderScorer.__init__).parameters else "CIDEr"


def load_model_answers(answers: Path | Sequence[Path], questions: Sequence[Question]) -> dict[str, dict[int, str]]:
    """model name -> question id -> answer text, from answer files or folders (validated)."""
    sources = [answers] if isinstance(answers, Path) else list(answers)
    out: dict[str, dict[int, str]] = {}
    origin: dict[str, Path] = {}
    errors = []
    for path in answer_files_in(sources):
        found = read_answer_file(path, questions)
        errors += found.errors
        if not found.ok:
            continue
        name = canonical_model_name(path, found.model_ids)
        if name in out:
            raise OwlEvalError(f"{path} and {origin[name]} both hold model {name!r}")
        origin[name] = path
        out[name] = {a.question_id: a.answer for a in found.answers}
    if errors:
        raise InputFileError(errors)
    return out


def build_inputs(spec: str, answers: dict[str, dict[int, str]], questions: Sequence[Question]) -> LegacyInputs:
    """References for every candidate answer from ``spec`` (a file/folder, ``leave-one-out`` or ``graded:PATH``)."""
    candidates = {(m, q): text for m, by_q in answers.items() for q, text in by_q.items()}
    refs: dict[tuple[str, int], list[str]] = {}
    if spec == LEAVE_ONE_OUT:
        if len(answers) < 2:
            raise OwlEvalError("leave-one-out references need the answers of at least two models")
        for m, q in candidates:
            refs[(m, q)] = [by_q[q] for other, by_q in answers.items() if other != m and q in by_q]
        description = "leave-one-out: each answer is scored against the other models' answers to the same question"
    elif spec.startswith(GRADED_PREFIX):
        path = Path(spec[len(GRADED_PREFIX) :])
        from owleval.report.combine import lower_median_scores
        from owleval.report.grades import read_grades

        from owleval.items import regular_grades

        grades = regular_grades(read_grades(path, questions, models=set(answers), models_origin="the answers given"))
        best = lower_median_scores(grades)
        best = best[best["grade"] == "A"]
        good: dict[int, list[tuple[str, str]]] = {}
        for m, q in zip(best["model_id"], best["question_id"], strict=True):
            if q in answers[m]:
                good.setdefault(int(q), []).append((m, answers[m][q]))
        for m, q in candidates:
            refs[(m, q)] = [text for other, text in good.get(q, []) if other != m]
        description = f"graded: answers graded A (per-answer median) in {path}, other models' only"
    else:
        path = Path(spec)
        if not path.exists():
            raise OwlEvalError(f"--references {spec!r}: not a file or folder, nor 'leave-one-out' or 'graded:PATH'")
        reference_sets = load_model_answers(path, questions)
        by_q: dict[int, list[str]] = {}
        for texts in reference_sets.values():
            for q, text in texts.items():
                by_q.setdefault(q, []).append(text)
        for key in candidates:
            refs[key] = list(by_q.get(key[1], []))
        description = f"reference answers from {path}"
    return LegacyInputs(candidates, refs, description)


def clean_text(text: str) -> str:
    """One line of text: every kind of line break becomes a space (the tokenizer keeps one sentence per line)."""
    return " ".join(part.strip() for part in text.splitlines()).replace("\x00", " ").strip()


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Send file descriptor 2 (the Java tokenizer's chatter) to ``path`` for the duration."""
    saved = os.dup(2)
    try:
        with open(path, "wb") as fh:
            os.dup2(fh.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def ptb_tokenize(texts: Sequence[str]) -> list[str]:
    """pycocoevalcap's PTB tokenizer (lower case, punctuation dropped) over many texts in one Java call.

    Empty texts are not sent (they stay empty); non-ASCII text passes through (Chinese stays unsegmented).
    """
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    cleaned = [clean_text(t) for t in texts]
    todo = {i: [{"caption": t}] for i, t in enumerate(cleaned) if t}
    if not todo:
        return [""] * len(texts)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "stderr.txt"
        try:
            with _stderr_to(log):
                done = PTBTokenizer().tokenize(todo)
        except FileNotFoundError as exc:
            raise MissingDependencyError("java (a Java runtime, e.g. default-jre-headless)", "the PTB tokenizer") from exc
        except PermissionError as exc:
            raise OwlEvalError(f"the PTB tokenizer writes a temporary file into pycocoevalcap's folder, which is not writable: {exc}") from exc
        chatter = log.read_text(errors="replace")
    if set(done) != set(todo) or any(len(v) != 1 for v in done.values()):
        raise OwlEvalError(f"the PTB tokenizer returned {len(done)} of {len(todo)} texts; its output:\n{chatter[-2000:]}")
    return [done[i][0] if i in done else "" for i in range(len(texts))]


def meteor_scorer() -> Any:
    """The process's one METEOR scorer (it starts a JVM and loads its tables: ~7-10 s)."""
    global _METEOR
    with _METEOR_LOCK:
        if _METEOR is None:
            from pycocoevalcap.meteor.meteor import Meteor

            try:
                _METEOR = Meteor()
            except FileNotFoundError as exc:
                raise MissingDependencyError("java (a Java runtime, e.g. default-jre-headless)", "METEOR") from exc
        return _METEOR


def score_corpus(gts: dict[Any, list[str]], res: dict[Any, list[str]], metrics: Sequence[str]) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Corpus and per-item scores of tokenized ``res`` against ``gts`` (pycocoevalcap's own scorers, unchanged)."""
    corpus: dict[str, float] = {}
    items: dict[str, list[float]] = {}
    if "bleu" in metrics:
        from pycocoevalcap.bleu.bleu import Bleu

        score, scores = Bleu(4).compute_score(gts, res, verbose=0)
        for k in range(4):
            corpus[f"bleu_{k + 1}"] = float(score[k])
            items[f"bleu_{k + 1}"] = [float(s) for s in scores[k]]
    if "meteor" in metrics:
        try:
            score, scores = meteor_scorer().compute_score(gts, res)
        except (ValueError, BrokenPipeError) as exc:
            raise OwlEvalError(f"METEOR failed ({exc}); is Java able to start with 2 GB of heap?") from exc
        corpus["meteor"] = float(score)
        items["meteor"] = [float(s) for s in scores]
    if "rouge" in metrics:
        from pycocoevalcap.rouge.rouge import Rouge

        score, scores = Rouge().compute_score(gts, res)
        corpus["rouge_l"] = float(score)
        items["rouge_l"] = [float(s) for s in scores]
    if "cider" in metrics:
        from pycocoevalcap.cider.cider import Cider

        score, scores = Cider().compute_score(gts, res)
        corpus["cider"] = float(score)
        items["cider"] = [float(s) for s in scores]
    return corpus, items


def score_legacy(inputs: LegacyInputs, metrics: Sequence[str]) -> pd.DataFrame:
    """legacy.csv's rows: per model one ``corpus`` row, then one ``answer`` row per scored answer."""
    import pandas as pd

    keys = sorted(inputs.candidates)
    texts: list[str] = [inputs.candidates[k] for k in keys]
    ref_slices: list[tuple[int, int]] = []
    for k in keys:
        start = len(texts)
        texts += inputs.references.get(k, [])
        ref_slices.append((start, len(texts)))
    tokens = ptb_tokenize(texts)
    per_model: dict[str, tuple[dict[int, list[str]], dict[int, list[str]]]] = {}
    inputs.unscored.clear()
    for i, (model, qid) in enumerate(keys):
        refs = [t for t in tokens[ref_slices[i][0] : ref_slices[i][1]] if t]
        if not refs:
            inputs.unscored.append((model, qid))
            continue
        gts, res = per_model.setdefault(model, ({}, {}))
        gts[qid] = refs
        res[qid] = [tokens[i]]
    rows: list[dict[str, Any]] = []
    for model in sorted({m for m, _ in keys}):
        if model not in per_model:
            rows.append({"model": model, "scope": "corpus", "question_id": None, "n": 0})
            continue
        gts, res = per_model[model]
        corpus, items = score_corpus(gts, res, metrics)
        rows.append({"model": model, "scope": "corpus", "question_id": None, "n": len(gts), **corpus})
        for j, qid in enumerate(gts):
            rows.append({"model": model, "scope": "answer", "question_id": qid, "n": len(gts[qid]), **{m: v[j] for m, v in items.items()}})
    columns = [*LEGACY_COLUMNS[:4], *(c for name in METRICS if name in metrics for c in METRICS[name])]
    frame = pd.DataFrame(rows, columns=columns)
    frame["question_id"] = frame["question_id"].astype("Int64")
    frame["n"] = frame["n"].astype("int64")
    return frame
