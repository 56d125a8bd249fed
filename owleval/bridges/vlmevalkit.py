"""VLMEvalKit: OwlEval as a multi-turn TSV with its launcher, and the prediction files back as answers.

Export (``owleval export vlmevalkit --out DIR``; run ``python DIR/run_owleval.py --model M`` where VLMEvalKit is
installed):

- ``LMUData/OwlEval.tsv``: VLMEvalKit's ``ImageMTDataset`` layout, one row per dialogue: ``index`` (the first
  question id), ``image`` (base64, stored once: a row whose image another row already holds has that row's index,
  a cell of 64 characters or fewer), ``question`` and ``answer`` (Python list literals, one item per turn, the first
  question led by ``<ImageHere>``), ``category``, and OwlEval's own ``owleval_sample_id``, ``owleval_question_ids``
  (a JSON list) and ``owleval_dataset_digest``, which VLMEvalKit copies into its predictions;
- ``run_owleval.py``: registers the data set class and calls VLMEvalKit's ``run.main()`` in inference mode
  (:mod:`owleval.bridges.kit_files.vlmevalkit_launcher`);
- ``owleval_export.json``: the data-set digest and versions.

Import reads ``<model>_OwlEval.xlsx`` (VLMEvalKit's default), ``.tsv`` or ``.json`` (``PRED_FORMAT``): the TSV's
columns less ``image``, plus ``prediction``, a per-turn list written as a Python literal (parsed with
``ast.literal_eval``, never ``eval``). The kit's version comes from ``owleval_kit.json``, which the launcher writes
into the work dir.
"""

from __future__ import annotations

import ast
import base64
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

from owleval.bridges.common import EXPORT_INFO, MULTI_TURN, TASK_NAME, dataset_stamp, dialogues, export_info, image_file, prepare_out_dir
from owleval.bridges.importing import KitRun, KitSample
from owleval.errors import MissingDependencyError, OwlEvalError, Problem
from owleval.questions import load_questions

KIT = "vlmevalkit"
DATASET = "OwlEval"
TSV = f"LMUData/{DATASET}.tsv"
LAUNCHER = "run_owleval.py"
KIT_RECORD = "owleval_kit.json"
IMAGE_TAG = "<ImageHere>"
#: what VLMEvalKit writes in place of a reply when an API call failed (vlmeval/inference_mt.py FAIL_MSG)
FAIL_MSG = "Failed to obtain answer via API."
PREDICTION_SUFFIXES = (".xlsx", ".tsv", ".json")


def _rows(data_dir: Path | None) -> list[dict[str, Any]]:
    stamp = dataset_stamp()
    holder: dict[str, int] = {}  # image file -> index of the row that holds its bytes
    rows = []
    for dialogue in dialogues(load_questions(data_dir)):
        index = dialogue.question_ids[0]
        if dialogue.image in holder:
            image = str(holder[dialogue.image])
        else:
            holder[dialogue.image] = index
            image = base64.b64encode(image_file(dialogue.questions[0], data_dir).read_bytes()).decode("ascii")
        questions = [q.question for q in dialogue.questions]
        rows.append({
            "index": index,
            "image": image,
            "question": repr([IMAGE_TAG + questions[0], *questions[1:]]),
            "answer": repr([""] * len(questions)),
            "category": "owleval",
            "owleval_sample_id": dialogue.sample_id,
            "owleval_question_ids": json.dumps(dialogue.question_ids),
            "owleval_dataset_digest": stamp["dataset_digest"],
        })
    return rows


def export_files(out: Path, data_dir: Path | None = None) -> dict[Path, str]:
    import pandas as pd

    rows = _rows(data_dir)
    tsv = pd.DataFrame(rows).to_csv(sep="\t", index=False, lineterminator="\n")
    return {
        out / TSV: tsv,
        out / LAUNCHER: resources.files("owleval.bridges.kit_files").joinpath("vlmevalkit_launcher.py").read_text(encoding="utf-8"),
        out / EXPORT_INFO: export_info(KIT, {TASK_NAME: len(rows)}, images="embedded once per image (base64)"),
    }


def write_export(out: Path, data_dir: Path | None, *, overwrite: bool) -> dict[Path, str]:
    from owleval.answers import write_files_all_or_nothing

    prepare_out_dir(out, [TSV, LAUNCHER, EXPORT_INFO], overwrite)
    files = export_files(out, data_dir)
    write_files_all_or_nothing(files, overwrite=overwrite)
    return files


# ---- import -------------------------------------------------------------------------------------------------------

def _model_of(path: Path) -> str | None:
    stem = path.name[: -len(path.suffix)]
    suffix = f"_{DATASET}"
    return stem[: -len(suffix)] if stem.endswith(suffix) and len(stem) > len(suffix) else None


def find_prediction_files(path: Path) -> list[Path]:
    """``path`` itself, or the prediction files under the folder ``path`` (a run's symlinked latest file wins over
    the timestamped copies it points into)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise OwlEvalError(f"{path}: no such file or folder")
    found = [p for p in sorted(path.rglob(f"*_{DATASET}.*")) if p.suffix in PREDICTION_SUFFIXES and _model_of(p)]
    by_model: dict[str, list[Path]] = {}
    for p in found:
        by_model.setdefault(_model_of(p) or "", []).append(p)
    chosen: list[Path] = []
    for model, paths in by_model.items():
        links = [p.resolve() for p in paths if p.is_symlink()]
        distinct = sorted(set(links) if links else {p.resolve() for p in paths})
        if len(distinct) > 1:
            raise OwlEvalError(f"{path}: {len(distinct)} prediction files for model {model!r} ({', '.join(map(str, distinct))}): "
                               "give the one to import")
        chosen += distinct
    if not chosen:
        raise OwlEvalError(f"{path}: no VLMEvalKit prediction file for OwlEval (*_{DATASET}.xlsx, .tsv or .json)")
    return chosen


def _kit_record(path: Path) -> dict[str, Any]:
    """``owleval_kit.json`` from the launcher, in the prediction file's folder or up to three above it."""
    for folder in [path.parent, *path.parent.parents][:4]:
        record = folder / KIT_RECORD
        if record.is_file():
            try:
                doc = json.loads(record.read_text(encoding="utf-8"))
                return doc if isinstance(doc, dict) else {}
            except (OSError, ValueError):
                return {}
    return {}


def _table(path: Path) -> list[dict[str, Any]]:
    import pandas as pd

    if path.suffix == ".json":
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, list):
            raise OwlEvalError(f"{path}: expected a JSON list of records")
        return doc
    if path.suffix == ".xlsx":
        try:
            import openpyxl  # noqa: F401  (pandas reads .xlsx through it)
        except ImportError:
            raise MissingDependencyError("openpyxl", "reading VLMEvalKit's .xlsx predictions") from None
        frame = pd.read_excel(path, dtype=str, keep_default_na=False)
    else:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return frame.to_dict("records")


def _listed(value: Any, field: str) -> list[Any]:
    """A list cell: a list already (JSON predictions) or its Python literal (xlsx/tsv), never evaluated as code."""
    if isinstance(value, list):
        return value
    if isinstance(value, float) and math.isnan(value):
        raise ValueError(f"{field} is empty")
    try:
        parsed = ast.literal_eval(str(value))
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"{field} is not a list literal ({exc.__class__.__name__})") from None
    if not isinstance(parsed, list):
        raise ValueError(f"{field} must be a list, one item per turn")
    return parsed


def read_predictions(path: Path) -> KitRun:
    record = _kit_record(path)
    run = KitRun(KIT, record.get("kit_version"), path, _model_of(path) or path.stem, MULTI_TURN, None,
                 settings={k: record[k] for k in ("argv",) if k in record})
    rows = _table(path)
    digests: set[str] = set()
    offset = 2 if path.suffix != ".json" else 1  # a table's first row is its header
    for i, row in enumerate(rows):
        line = i + offset
        if not isinstance(row, dict) or "owleval_question_ids" not in row:
            run.problems.append(Problem(path, line, "owleval_question_ids", "missing: not a prediction of OwlEval's exported data set"))
            continue
        if "prediction" not in row:
            run.problems.append(Problem(path, line, "prediction", "missing (is this VLMEvalKit's prediction file?)"))
            continue
        try:
            ids = json.loads(row["owleval_question_ids"]) if isinstance(row["owleval_question_ids"], str) else row["owleval_question_ids"]
            replies = _listed(row["prediction"], "prediction")
        except ValueError as exc:
            run.problems.append(Problem(path, line, "prediction", str(exc)))
            continue
        digests.add(str(row.get("owleval_dataset_digest")))
        outputs = [None if str(r).startswith(FAIL_MSG) else str(r) for r in replies]
        run.samples.append(KitSample(str(row.get("owleval_sample_id")), ids if isinstance(ids, list) else [ids], outputs, line, "prediction"))
    if len(digests) > 1:
        run.problems.append(Problem(path, None, "owleval_dataset_digest", f"rows from more than one data-set version: {sorted(digests)}"))
    run.dataset_digest = next(iter(digests)) if len(digests) == 1 else None
    return run


def read_runs(path: Path) -> list[KitRun]:
    return [read_predictions(p) for p in find_prediction_files(path)]
