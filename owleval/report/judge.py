"""Judge grades against human grades: reading `owleval judge` output, agreement with image-bootstrap CIs, the
human x judge confusion counts, and the answers they disagree on most.

The judge's grades.csv has the columns of `owleval grades export` and is read by the same reader as human
grades, so a bad row fails with its file and line. The meta.json beside it says how many replies could not be
parsed or failed; those answers have no row in grades.csv and are counted, never guessed.

Humans are compared with the judge per answer on their lower-median grade (the ``median`` combine rule), whatever
``--combine`` is: an agreement measure compares one grade with one grade.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from owleval.errors import InputFileError, Problem
from owleval.questions import Question
from owleval.records.frames import resolve_in_folder
from owleval.report import combine
from owleval.report.agreement import CATEGORIES, _cohen
from owleval.records.grades import GRADE_SCORES
from owleval.report.grades import read_grades
from owleval.stats import bootstrap_counts, kappa_from_confusion, kappa_weights, percentile_ci, weighted_spearman

JUDGE_AGREEMENT_COLUMNS = ("model", "measure", "value", "ci_low", "ci_high", "n")
JUDGE_MEASURES = ("exact_agreement", "cohen_kappa", "cohen_kappa_quadratic", "spearman", "mean_shift")
CONFUSION_LETTERS = tuple(GRADE_SCORES)  # A, B, C, D
JUDGE_FILE = "grades.csv"
JUDGE_META = "meta.json"
#: the reasons of the answers the judge and the humans disagree on most, shown in the report
MAX_DISAGREEMENTS = 20


@dataclass
class JudgeInput:
    """Validated judge grades and what its meta.json says about the answers it could not grade."""

    path: Path
    grades: pd.DataFrame  # the frame of grades.read_grades
    annotator: str
    meta_path: Path | None = None
    counts: dict[str, int] | None = None  # judged / unparsed / failed, as meta.json states them
    missing: pd.DataFrame | None = None  # model_id, question_id, kind ("unparsed" | "failed")
    settings: dict[str, Any] = field(default_factory=dict)  # meta.json's plain values: adapter, checkpoint, prompt hash ...

    def missing_by_model(self) -> pd.DataFrame | None:
        """Per model: unparsed and failed counts (None when no meta.json lists them)."""
        if self.missing is None:
            return None
        table = self.missing.groupby(["model_id", "kind"]).size().unstack(fill_value=0)
        return table.reindex(columns=["unparsed", "failed"], fill_value=0)


def resolve_judge_path(path: Path) -> Path:
    """``--judge`` names grades.csv or the folder holding it."""
    return resolve_in_folder(path, JUDGE_FILE, "--judge", "owleval judge")


def read_judge(
    path: Path, questions: Sequence[Question], *, models: Collection[str] | None, models_origin: str, dataset_version: str | None = None
) -> JudgeInput:
    """The judge's grades (one annotator, models among ``models``) and its meta.json when one sits beside it.

    ``dataset_version``: the data set the report uses; a meta.json that names another version is refused (the judge
    graded other questions or images, so its grades cannot be paired with these)."""
    path = resolve_judge_path(path)
    frame = read_grades(path, questions, models=models, models_origin=models_origin)
    annotators = sorted(frame["annotator"].unique())
    if len(annotators) != 1:
        found = f"this one has {len(annotators)}: {', '.join(annotators)}"
        raise InputFileError([Problem(path, None, "annotator", f"a judge file holds one judge's grades, {found}")])
    judge = JudgeInput(path, _with_soft_scores(frame, path), annotators[0])
    meta_path = path.with_name(JUDGE_META)
    if meta_path.is_file():
        _read_meta(judge, meta_path, {q.question_id for q in questions}, dataset_version)
    return judge


def active_judge_reader(path: Path) -> Callable[[Sequence[Question], set[str]], tuple[Path, pd.DataFrame]]:
    """The reader ``create_study`` calls for an active design: the judge's grades of ``path`` (a grades.csv or its
    folder), checked against the study's questions and models."""

    def read(questions: Sequence[Question], models: set[str]) -> tuple[Path, pd.DataFrame]:
        judge = read_judge(Path(path), questions, models=models, models_origin="--answers")
        return judge.path, judge.grades

    return read


#: optional soft-score columns of a judge's grades.csv -> the highest value (the lowest is 0)
SOFT_COLUMNS = {"judge_score": 3.0, "p_acceptable": 1.0}


def _with_soft_scores(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Add ``judge_score`` (the expected score 0-3 under the judge's grade distribution) and ``p_acceptable`` (its
    probability of A or B) where grades.csv has them; NaN where a cell is empty (the letter then stands)."""
    from owleval.records.grades import csv_records as _csv_records

    soft: dict[int, dict[str, float]] = {}
    problems: list[Problem] = []
    for line, rec in _csv_records(path):
        values = {}
        for column, highest in SOFT_COLUMNS.items():
            text = str(rec.get(column) or "").strip()
            if not text:
                continue
            try:
                value = float(text)
            except ValueError:
                value = float("nan")
            if not 0.0 <= value <= highest:  # NaN fails too
                problems.append(Problem(path, line, column, f"must be a number from 0 to {highest:g}, got {text!r}"))
                continue
            values[column] = value
        if values and line is not None:
            soft[line] = values
    if problems:
        raise InputFileError(problems)
    if not soft:
        return frame
    out = frame.copy()
    for column in SOFT_COLUMNS:
        out[column] = [soft.get(int(line), {}).get(column, np.nan) if line is not None else np.nan for line in frame["source_line"]]
    return out


def _read_meta(judge: JudgeInput, meta_path: Path, qids: Collection[int], dataset_version: str | None = None) -> None:
    try:
        doc = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputFileError([Problem(meta_path, None, None, f"not readable JSON ({exc})")]) from None
    if not isinstance(doc, dict):
        raise InputFileError([Problem(meta_path, None, None, "must be a JSON object")])
    problems: list[Problem] = []
    dataset = doc.get("dataset")
    judged_version = dataset.get("version") if isinstance(dataset, dict) else None
    if dataset_version not in (None, "unknown") and isinstance(judged_version, str) and judged_version != dataset_version:
        problems.append(Problem(meta_path, None, "dataset.version",
                                f"the judge graded data-set version {judged_version}, this report uses {dataset_version}: "
                                "judge the answers again on this data set"))  # fmt: skip
    counts = doc.get("counts")
    if counts is not None:
        if not isinstance(counts, dict) or any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in counts.values()):
            problems.append(Problem(meta_path, None, "counts", "must be an object of non-negative whole numbers"))
        else:
            judge.counts = {str(k): int(v) for k, v in counts.items()}
    rows: list[tuple[str, int, str]] = []
    listed = False
    for kind in ("unparsed", "failed"):
        entries = doc.get(kind)
        if entries is None:
            continue
        listed = True
        if not isinstance(entries, list):
            problems.append(Problem(meta_path, None, kind, "must be a list of {model_id, question_id} objects"))
            continue
        for i, entry in enumerate(entries):
            model = entry.get("model_id") if isinstance(entry, dict) else None
            qid = entry.get("question_id") if isinstance(entry, dict) else None
            if not isinstance(model, str) or not model or not isinstance(qid, int) or isinstance(qid, bool) or qid not in qids:
                problems.append(Problem(meta_path, None, f"{kind}[{i}]", f"needs a model_id and a known question_id, got {entry!r}"))
                continue
            rows.append((model, qid, kind))
    if problems:
        raise InputFileError(problems)
    judge.meta_path = meta_path
    if listed:
        judge.missing = pd.DataFrame(rows, columns=["model_id", "question_id", "kind"])
    # the judge's provenance as meta.json states it (adapter, checkpoint, prompt hash, ...): its plain values only
    judge.settings = {str(k): v for k, v in doc.items() if isinstance(v, (str, int, float, bool)) and k not in ("unparsed", "failed")}


def check_answer_texts(judge: JudgeInput, answers: dict[str, dict[int, str]], answers_origin: str) -> None:
    """Refuse a judge whose raw.jsonl shows it graded other texts than the answer files hold now (the answers were
    regenerated or edited after judging): its grades would anchor PPI to answers nobody is scoring."""
    import hashlib

    from owleval.judge.log import judgements, read_log

    raw = judge.path.with_name("raw.jsonl")
    if not raw.is_file():
        return
    problems = []
    for (model, qid), j in judgements(read_log(raw)).items():
        text = answers.get(model, {}).get(qid)
        if text is None or j.status != "parsed":
            continue
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != j.answer_sha256:
            problems.append(Problem(raw, None, "answer_sha256", f"model {model!r} question {qid}: the judge graded another text of this "
                                    f"answer than {answers_origin} holds now; judge the changed answers again"))  # fmt: skip
    if problems:
        raise InputFileError(problems)


def pair_answers(human: pd.DataFrame, judge: pd.DataFrame) -> pd.DataFrame:
    """Answers that have both: model_id, question_id, human (lower-median score), judge (score), reason."""
    people = combine.lower_median_scores(human)[["model_id", "question_id", "score"]].rename(columns={"score": "human"})
    machine = judge[["model_id", "question_id", "score", "comment"]].rename(columns={"score": "judge", "comment": "reason"})
    pairs = people.merge(machine, on=["model_id", "question_id"], how="inner")
    return pairs.astype({"human": "int64", "judge": "int64"}).sort_values(["model_id", "question_id"]).reset_index(drop=True)


K = len(CATEGORIES)
_UNWEIGHTED = kappa_weights(K)
_QUADRATIC = kappa_weights(K, "quadratic")


def weighted_measures(human: np.ndarray, judge: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Every measure on the sample where answer i appears ``weights[b, i]`` times, for each row b at once."""
    total = weights.sum(axis=-1)
    onehot = np.zeros((human.size, K * K))
    onehot[np.arange(human.size), human * K + judge] = 1.0
    conf = (weights @ onehot).reshape(*weights.shape[:-1], K, K)
    with np.errstate(invalid="ignore", divide="ignore"):
        exact = (weights @ (human == judge).astype(float)) / total
        shift = (weights @ (judge - human).astype(float)) / total
    return {
        "exact_agreement": exact,
        "cohen_kappa": kappa_from_confusion(conf, _UNWEIGHTED),
        "cohen_kappa_quadratic": kappa_from_confusion(conf, _QUADRATIC),
        "spearman": weighted_spearman(human.astype(float), judge.astype(float), weights),
        "mean_shift": shift,
    }


def point_measures(human: np.ndarray, judge: np.ndarray) -> dict[str, float]:
    """The measures on the answers as they are, through scikit-learn and scipy."""
    from scipy.stats import spearmanr

    n = human.size
    if n < 2:
        nan = float("nan")
        return {"exact_agreement": float(np.mean(human == judge)) if n else nan, "cohen_kappa": nan, "cohen_kappa_quadratic": nan,
                "spearman": nan, "mean_shift": float(np.mean(judge - human)) if n else nan}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant grade: scipy warns and gives NaN, which we report
        rho = float(spearmanr(human, judge).statistic)
    return {
        "exact_agreement": float(np.mean(human == judge)),
        "cohen_kappa": _cohen(human, judge, None),
        "cohen_kappa_quadratic": _cohen(human, judge, "quadratic"),
        "spearman": rho,
        "mean_shift": float(np.mean(judge - human)),
    }


def agreement_table(pairs: pd.DataFrame, info: pd.DataFrame, models: Sequence[str], *, n_boot: int, seed: int) -> pd.DataFrame:
    """Long form (model, measure, value, ci_low, ci_high, n): every model, then ``all`` (all models together).

    CIs resample images, the same draw for every model (as the score tables do).
    """
    codes, images = pd.factorize(info.loc[pairs["question_id"], "image"].to_numpy())
    counts = bootstrap_counts(len(images), n_boot, np.random.default_rng([seed, 300]))
    weights = counts[:, codes]
    human = pairs["human"].to_numpy(dtype=np.int64)
    judge = pairs["judge"].to_numpy(dtype=np.int64)
    rows = []
    for model in [*models, "all"]:
        keep = np.ones(len(pairs), dtype=bool) if model == "all" else (pairs["model_id"] == model).to_numpy()
        n = int(keep.sum())
        point = point_measures(human[keep], judge[keep])
        boot = weighted_measures(human[keep], judge[keep], weights[:, keep]) if n >= 2 else {}
        for measure in JUDGE_MEASURES:
            low, high = percentile_ci(boot[measure]) if measure in boot else (np.nan, np.nan)
            rows.append((model, measure, point[measure], float(low), float(high), n))
    return pd.DataFrame(rows, columns=list(JUDGE_AGREEMENT_COLUMNS))


def confusion_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """Rows: the human grade (A..D); columns judge_A..judge_D: how many answers got that pair; then the total."""
    letters = {v: k for k, v in GRADE_SCORES.items()}
    human = pairs["human"].map(letters)
    judge = pairs["judge"].map(letters)
    table = pd.crosstab(human, judge).reindex(index=list(CONFUSION_LETTERS), columns=list(CONFUSION_LETTERS), fill_value=0)
    out = table.rename(columns={g: f"judge_{g}" for g in CONFUSION_LETTERS}).rename_axis(index="human_grade", columns=None).reset_index()
    out["total"] = table.sum(axis=1).to_numpy()
    return out.astype({f"judge_{g}": "int64" for g in CONFUSION_LETTERS})


def disagreements(pairs: pd.DataFrame, limit: int = MAX_DISAGREEMENTS) -> pd.DataFrame:
    """The answers where the judge is two or more grades from the humans, largest gap first."""
    gap = (pairs["judge"] - pairs["human"]).abs()
    worst = pairs.assign(gap=gap)[gap >= 2].sort_values(["gap", "model_id", "question_id"], ascending=[False, True, True])
    return worst.head(limit).reset_index(drop=True)


def coverage_table(human: pd.DataFrame, judge: JudgeInput, models: Sequence[str]) -> pd.DataFrame:
    """Per model: answers graded by people, by the judge, by both, and the judge's unparsed / failed replies
    (empty when no meta.json lists them)."""
    people = human.drop_duplicates(["model_id", "question_id"])
    keys = ["model_id", "question_id"]
    both = people[keys].merge(judge.grades[keys], on=keys)
    missing = judge.missing_by_model()
    rows = []
    for model in models:
        row = {
            "model": model,
            "human": int((people["model_id"] == model).sum()),
            "judge": int((judge.grades["model_id"] == model).sum()),
            "both": int((both["model_id"] == model).sum()),
            "unparsed": None,
            "failed": None,
        }
        if missing is not None:
            row["unparsed"] = int(missing["unparsed"].get(model, 0))
            row["failed"] = int(missing["failed"].get(model, 0))
        rows.append(row)
    return pd.DataFrame(rows, columns=["model", "human", "judge", "both", "unparsed", "failed"])


def sampling_info(grades_path: Path, from_database: bool, grades: pd.DataFrame | None = None) -> dict[str, Any]:
    """How the human-graded answers were chosen: a study file knows (``--sample``); a CSV cannot tell.

    With ``grades``, a sampled study also says how many drawn answers have a grade yet: PPI's labelled set is the
    graded part of the sample, which is a random sample only once the whole sample is graded.
    """
    if not from_database:
        return {
            "source": "grades CSV",
            "design": None,
            "text": "unknown: the grades come from a CSV, which does not record how the graded answers were chosen; "
            "the PPI estimates assume they are a uniform random sample of the answers of each model",
        }
    from owleval.study.sample import describe, study_design

    from owleval.study.sample import sampled_slots

    design = study_design(grades_path)
    text = describe(design)
    if design is not None and grades is not None:
        drawn = sampled_slots(design)
        graded = set(zip(grades["model_id"], grades["question_id"].astype(int), strict=True)) & drawn
        text += f"; {len(graded)} of the {len(drawn)} drawn answers have a human grade"
        if len(graded) < len(drawn):
            text += " (PPI assumes the graded ones are a random part of the sample: finish grading it)"
    return {"source": "study database", "design": design, "text": text}
