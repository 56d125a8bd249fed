"""Inspect AI: OwlEval as a task file, and ``.eval`` logs back as answers.

Export (``owleval export inspect --out DIR``; run with ``inspect eval DIR/owleval_task.py --model ...``):

- ``owleval_task.py``: ``@task def owleval()``, a solver that asks each dialogue's turns in order
  (:mod:`owleval.bridges.kit_files.inspect_task`);
- ``owleval.jsonl``: one sample per dialogue (``id`` ``owleval-<first question id>``, ``input`` the first user turn
  with the image as ``{"type": "image", "image": ...}`` content, ``metadata`` the question ids and texts and the
  data-set digest);
- ``owleval_export.json``: the data-set digest and versions.

Import reads ``.eval`` logs (zip archives of JSON: ``header.json``, ``samples/<id>_epoch_<n>.json``) with the
standard library; each sample's store holds ``owleval_replies`` (question id and reply per turn). Only epoch 1 is
imported (a log with more epochs says so in the provenance).
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any

from owleval import __version__
from owleval.bridges.common import EXPORT_INFO, MULTI_TURN, TASK_NAME, dataset_stamp, dialogues, export_info, image_data_uri, image_file, prepare_out_dir
from owleval.bridges.importing import KitRun, KitSample
from owleval.errors import MissingDependencyError, OwlEvalError, Problem
from owleval.questions import load_questions

KIT = "inspect"
TASK_FILE = "owleval_task.py"
DATA_FILE = "owleval.jsonl"
STORE_KEY = "owleval_replies"


def _samples(data_dir: Path | None, embed: bool) -> list[dict[str, Any]]:
    stamp = {**dataset_stamp(), "owleval_version": __version__, "protocol": MULTI_TURN}
    rows = []
    for dialogue in dialogues(load_questions(data_dir)):
        path = image_file(dialogue.questions[0], data_dir)
        image = image_data_uri(path) if embed else str(path)
        first = {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": dialogue.questions[0].question}]}
        rows.append({"id": dialogue.sample_id, "input": [first], "target": "",
                     "metadata": {"question_ids": dialogue.question_ids, "questions": [q.question for q in dialogue.questions],
                                  "image_file": dialogue.image, **stamp}})
    return rows


def export_files(out: Path, data_dir: Path | None = None, *, embed_images: bool = False) -> dict[Path, str]:
    rows = _samples(data_dir, embed_images)
    return {
        out / DATA_FILE: "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
        out / TASK_FILE: resources.files("owleval.bridges.kit_files").joinpath("inspect_task.py").read_text(encoding="utf-8"),
        out / EXPORT_INFO: export_info(KIT, {TASK_NAME: len(rows)}, images="embedded" if embed_images else "absolute paths"),
    }


def write_export(out: Path, data_dir: Path | None, *, embed_images: bool, overwrite: bool) -> dict[Path, str]:
    from owleval.answers import write_files_all_or_nothing

    prepare_out_dir(out, [DATA_FILE, TASK_FILE, EXPORT_INFO], overwrite)
    files = export_files(out, data_dir, embed_images=embed_images)
    write_files_all_or_nothing(files, overwrite=overwrite)
    return files


# ---- import -------------------------------------------------------------------------------------------------------

ZIP_ZSTANDARD = 93  # the compression Inspect writes its logs with; Python's zipfile reads it from 3.14 on


def _zstd_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """A zstd-compressed member's bytes: its raw data after the local header, through ``zstandard``."""
    try:
        import zstandard
    except ImportError:
        raise MissingDependencyError("zstandard", "reading Inspect's zstd-compressed .eval logs") from None
    fp = archive.fp
    assert fp is not None
    fp.seek(info.header_offset)
    header = fp.read(30)
    if header[:4] != b"PK\x03\x04":
        raise OwlEvalError(f"{archive.filename}: {info.filename}: bad local header")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    fp.seek(info.header_offset + 30 + name_len + extra_len)
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(fp.read(info.compress_size)), read_across_frames=True)
    return reader.read()


def _member_json(archive: zipfile.ZipFile, name: str) -> Any:
    info = archive.getinfo(name)
    if info.compress_type == ZIP_ZSTANDARD and not hasattr(zipfile, "ZIP_ZSTANDARD"):
        data = _zstd_member(archive, info)
    else:
        with archive.open(info) as fh:
            data = fh.read()
    return json.loads(data.decode("utf-8"))


def _sample(log: Path, name: str, doc: Any) -> tuple[KitSample | None, str | None, Problem | None]:
    where = name
    if not isinstance(doc, dict):
        return None, None, Problem(log, None, where, "a sample must be a JSON object")
    store, meta = doc.get("store") or {}, doc.get("metadata") or {}
    replies = store.get(STORE_KEY) if isinstance(store, dict) else None
    if not isinstance(replies, list) or not all(isinstance(r, dict) for r in replies):
        error = doc.get("error")
        why = f" (the sample failed: {error.get('message', error) if isinstance(error, dict) else error})" if error else ""
        return None, None, Problem(log, None, where, f"no {STORE_KEY} in the sample's store: not a sample of OwlEval's exported task{why}")
    ids = [r.get("question_id") for r in replies]
    outputs = [r.get("answer") if isinstance(r.get("answer"), str) else "" for r in replies]
    digest = meta.get("dataset_digest") if isinstance(meta, dict) else None
    return KitSample(str(doc.get("id")), ids, outputs, None, where), (str(digest) if digest else None), None


def read_log(log: Path) -> KitRun:
    """One ``.eval`` log as a :class:`KitRun` (problems collected, not raised)."""
    try:
        archive = zipfile.ZipFile(log)
    except (OSError, zipfile.BadZipFile) as exc:
        raise OwlEvalError(f"{log}: not an Inspect .eval log ({exc})") from exc
    with archive:
        names = archive.namelist()
        try:
            header = _member_json(archive, "header.json") if "header.json" in names else _member_json(archive, "_journal/start.json")
        except (KeyError, ValueError) as exc:
            raise OwlEvalError(f"{log}: no readable header.json ({exc})") from exc
        spec = header.get("eval", {}) if isinstance(header, dict) else {}
        task_meta = spec.get("metadata") or {}
        run = KitRun(KIT, (spec.get("packages") or {}).get("inspect_ai"), log, str(spec.get("model") or "unknown"), MULTI_TURN,
                     task_meta.get("dataset_digest"),
                     settings={k: spec.get(k) for k in ("task", "task_version", "model_args", "model_generate_config", "model_base_url", "run_id")
                               if spec.get(k) not in (None, {}, "")})
        if str(spec.get("task", "")).split("/")[-1] != TASK_NAME:
            run.problems.append(Problem(log, None, "eval.task", f"task {spec.get('task')!r} is not OwlEval's exported task {TASK_NAME!r}"))
        epochs: set[int] = set()
        digests: set[str] = set()
        for name in sorted(n for n in names if n.startswith("samples/") and n.endswith(".json")):
            doc = _member_json(archive, name)
            epoch = doc.get("epoch", 1) if isinstance(doc, dict) else 1
            epochs.add(epoch)
            if epoch != 1:
                continue
            sample, digest, problem = _sample(log, name, doc)
            if problem:
                run.problems.append(problem)
            elif sample:
                run.samples.append(sample)
                digests.add(digest or "unknown")
        if len(epochs) > 1:
            run.settings["epochs_in_log"] = sorted(epochs)
        if digests - {run.dataset_digest}:
            run.problems.append(Problem(log, None, "metadata.dataset_digest", f"samples name data set {sorted(digests)}, the task {run.dataset_digest}"))
    if not run.samples and not run.problems:
        run.problems.append(Problem(log, None, None, f"the log holds no samples (status {header.get('status')!r})"))
    return run


def read_runs(path: Path) -> list[KitRun]:
    if path.is_dir():
        logs = sorted(path.rglob("*.eval"))
        if not logs:
            raise OwlEvalError(f"{path}: no Inspect .eval logs")
        return [read_log(p) for p in logs]
    if not path.is_file():
        raise OwlEvalError(f"{path}: no such file or folder")
    return [read_log(path)]
