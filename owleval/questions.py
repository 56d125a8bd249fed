"""The 82 OwlEval questions with their dialogues, as typed records, a pandas DataFrame or a datasets.Dataset.

A dialogue is a run of consecutive question ids asked about one image. Its first question opens the dialogue
(category ``single_turn`` and ``multi_turn``); the rest are later turns (``multi_turn`` only). Questions that
are ``single_turn`` only stand alone.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from owleval.errors import InputFileError, OwlEvalError, Problem
from owleval.imagefiles import case_image_path, decoding, open_image, plain_name_problem
from owleval.paths import default_data_dir

if TYPE_CHECKING:
    import datasets
    import pandas as pd
    from PIL import Image

ABILITIES: dict[str, str] = {
    "a": "instruction understanding",
    "b": "visual understanding",
    "c": "optical character recognition",
    "d": "knowledge transfer",
    "e": "reasoning",
    "f": "multi-turn dialogue",
}
GRADES: dict[str, str] = {
    "A": "correct and satisfying",
    "B": "some imperfections but acceptable",
    "C": "understood the instruction but the answer has obvious errors",
    "D": "irrelevant or incorrect",
}
CATEGORIES = ("single_turn", "multi_turn")
QUESTIONS_FILENAME = "questions.jsonl"


@dataclass(frozen=True)
class Question:
    question_id: int
    image: str  # file name inside cases/
    question: str
    abilities: tuple[str, ...]
    categories: tuple[str, ...]
    dialogue_id: int  # question id of the dialogue's first turn (the question itself when it stands alone)
    turn_index: int  # 0 for a first or stand-alone turn
    earlier_turns: tuple[int, ...]  # question ids of the earlier turns of the dialogue, in order

    @property
    def turn_type(self) -> str:
        """``single`` (stands alone), ``first`` (opens a dialogue) or ``later`` (a later turn)."""
        if self.turn_index > 0:
            return "later"
        return "first" if "multi_turn" in self.categories else "single"


def _parse_row(row: object, path: Path, line: int) -> tuple[dict, list[Problem]]:
    problems: list[Problem] = []
    if not isinstance(row, dict):
        return {}, [Problem(path, line, None, "a question must be a JSON object")]
    expected = {"image": str, "question_id": int, "question": str, "ability": str, "category": list}
    for field, kind in expected.items():
        if field not in row:
            problems.append(Problem(path, line, field, "missing"))
        elif not isinstance(row[field], kind) or isinstance(row[field], bool):
            problems.append(Problem(path, line, field, f"must be {kind.__name__}, got {type(row[field]).__name__}"))
    if problems:
        return {}, problems
    name_problem = plain_name_problem(row["image"])
    if name_problem:
        problems.append(Problem(path, line, "image", name_problem))
    abilities = tuple(a.strip() for a in row["ability"].split(",") if a.strip())
    bad = [a for a in abilities if a not in ABILITIES]
    if bad:
        problems.append(Problem(path, line, "ability", f"unknown ability {bad}; allowed a-f"))
    cats = tuple(row["category"])
    if not cats or any(c not in CATEGORIES for c in cats):
        problems.append(Problem(path, line, "category", f"must be a non-empty subset of {list(CATEGORIES)}"))
    return {**row, "abilities": abilities, "categories": cats}, problems


def parse_questions(path: Path) -> tuple[Question, ...]:
    """Read and validate a questions.jsonl file and link each question to its dialogue."""
    rows: list[dict] = []
    problems: list[Problem] = []
    with open(path, encoding="utf-8") as fh:
        for line_no, text in enumerate(fh, 1):
            if not text.strip():
                continue
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as exc:
                problems.append(Problem(path, line_no, None, f"malformed JSON: {exc.msg}"))
                continue
            row, found = _parse_row(raw, path, line_no)
            problems += found
            if not found:
                rows.append(row)
    if problems:
        raise InputFileError(problems)
    rows.sort(key=lambda r: r["question_id"])
    questions: list[Question] = []
    dialogue: list[int] = []
    for i, row in enumerate(rows):
        prev = rows[i - 1] if i else None
        continues = (
            prev is not None
            and "single_turn" not in row["categories"]
            and "multi_turn" in prev["categories"]
            and prev["image"] == row["image"]
            and prev["question_id"] == row["question_id"] - 1
        )
        if not continues:
            dialogue = []
        questions.append(
            Question(
                question_id=row["question_id"],
                image=row["image"],
                question=row["question"],
                abilities=row["abilities"],
                categories=row["categories"],
                dialogue_id=dialogue[0] if dialogue else row["question_id"],
                turn_index=len(dialogue),
                earlier_turns=tuple(dialogue),
            )
        )
        dialogue = dialogue + [row["question_id"]]
    return tuple(questions)


@lru_cache(maxsize=8)
def _cached_questions(path: Path, mtime_ns: int) -> tuple[Question, ...]:
    return parse_questions(path)


def load_questions(data_dir: Path | None = None) -> tuple[Question, ...]:
    """The questions of the installed data set, in question-id order."""
    path = (data_dir or default_data_dir()) / QUESTIONS_FILENAME
    if not path.is_file():
        raise OwlEvalError(f"{path} not found: install the data set with `owleval data fetch`")
    return _cached_questions(path.resolve(), path.stat().st_mtime_ns)


#: a question id as a cell holds it: digits, or digits and ".0" as a spreadsheet writes a whole number
_QUESTION_ID_CELL = re.compile(r"[0-9]{1,9}(?:\.0+)?")


def parse_question_id(cell: str) -> int | None:
    """The question id a CSV cell holds, matched whole; None for anything else. (``int``/``float`` alone would take
    "1_0" as 10, Arabic-Indic digits, "1e1" or "7.0\n".)"""
    return int(float(cell)) if _QUESTION_ID_CELL.fullmatch(cell) else None


def questions_by_id(data_dir: Path | None = None) -> dict[int, Question]:
    return {q.question_id: q for q in load_questions(data_dir)}


def load_image(path: Path) -> Image.Image:
    """Open an image by its content, whatever its extension says (cases/49.jpg is a PNG), as RGB; an image over
    the pixel budget is refused before it is decoded (:mod:`owleval.imagefiles`)."""
    with open_image(path) as img, decoding(path):
        img.load()
        return img.convert("RGB")


def _checked_bytes(path: Path) -> bytes:
    """The file's bytes, once its header shows it keeps to the pixel budget (the dataset decodes it later)."""
    with open_image(path):
        pass
    return path.read_bytes()


def image_path(question: Question, data_dir: Path | None = None) -> Path:
    """The question's image file, refused when it would leave ``data_dir/cases`` (a symlink included)."""
    return case_image_path(data_dir or default_data_dir(), question.image)


def questions_frame(data_dir: Path | None = None) -> pd.DataFrame:
    """One row per question: ids, text, abilities, categories, dialogue and turn, image path."""
    import pandas as pd

    root = data_dir or default_data_dir()
    frame = pd.DataFrame(
        {
            "question_id": q.question_id,
            "image": q.image,
            "image_path": str(image_path(q, root)),
            "question": q.question,
            "abilities": list(q.abilities),
            "categories": list(q.categories),
            "dialogue_id": q.dialogue_id,
            "turn_index": q.turn_index,
            "turn_type": q.turn_type,
            "earlier_turns": list(q.earlier_turns),
        }
        for q in load_questions(root)
    )
    return frame.set_index("question_id", drop=False)


def questions_dataset(data_dir: Path | None = None) -> datasets.Dataset:
    """The questions as a ``datasets.Dataset`` whose ``image`` column is an Image feature."""
    import datasets

    frame = questions_frame(data_dir).reset_index(drop=True)
    features = datasets.Features(
        {
            "question_id": datasets.Value("int64"),
            "image": datasets.Image(),
            "image_file": datasets.Value("string"),
            "question": datasets.Value("string"),
            "abilities": datasets.Sequence(datasets.Value("string")),
            "categories": datasets.Sequence(datasets.Value("string")),
            "dialogue_id": datasets.Value("int64"),
            "turn_index": datasets.Value("int64"),
            "turn_type": datasets.Value("string"),
            "earlier_turns": datasets.Sequence(datasets.Value("int64")),
        }
    )
    # The image bytes go in as they are and are decoded lazily by PIL, which goes by content (49.jpg is a PNG).
    records = {
        "question_id": frame["question_id"].tolist(),
        "image": [{"bytes": _checked_bytes(Path(p)), "path": Path(p).name} for p in frame["image_path"]],
        "image_file": frame["image"].tolist(),
        "question": frame["question"].tolist(),
        "abilities": frame["abilities"].tolist(),
        "categories": frame["categories"].tolist(),
        "dialogue_id": frame["dialogue_id"].tolist(),
        "turn_index": frame["turn_index"].tolist(),
        "turn_type": frame["turn_type"].tolist(),
        "earlier_turns": frame["earlier_turns"].tolist(),
    }
    return datasets.Dataset.from_dict(records, features=features)
