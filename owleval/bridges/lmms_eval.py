"""lmms-eval: OwlEval as an external task folder, and its sample logs back as answers.

Export (``owleval export lmms-eval --out DIR``; run with ``lmms-eval --include_path DIR --tasks owleval``):

- ``owleval.yaml``: task ``owleval``, ``generate_until_multi_round``, one document per dialogue;
- ``owleval_single.yaml``: task ``owleval_single``, ``generate_until``, one document per question (the fallback for
  backends without multi-round support: later turns lose their dialogue);
- ``owleval_dialogues.jsonl`` / ``owleval_questions.jsonl``: the documents (absolute paths: lmms-eval resolves
  ``data_files`` against its working directory, not the YAML);
- ``owleval_utils.py``: the task functions (:mod:`owleval.bridges.kit_files.lmms_eval_utils`);
- ``owleval_export.json``: the data-set digest and versions.

Import reads ``<date>_samples_owleval[_single].jsonl`` (``--log_samples``) with the ``<date>_results.json`` beside
it (model, model arguments, lmms-eval's version). Each sample line holds ``owleval_answered`` as the task's
``process_results`` wrote it: sample id, question ids, one reply per question id, data-set digest.
"""

from __future__ import annotations

import base64
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from owleval import __version__
from owleval.bridges.common import (EXPORT_INFO, MULTI_TURN, SINGLE_PASS, SINGLE_TASK_NAME, TASK_NAME, dataset_stamp, dialogues,
                                    export_info, image_file, prepare_out_dir)
from owleval.bridges.importing import KitRun, KitSample
from owleval.errors import OwlEvalError, Problem
from owleval.questions import load_questions

KIT = "lmms-eval"
UTILS_MODULE = "owleval_utils"
DIALOGUES_FILE = "owleval_dialogues.jsonl"
QUESTIONS_FILE = "owleval_questions.jsonl"
METRIC = "owleval_answered"
SAMPLES_RE = re.compile(r"^(?P<date>.+)_samples_(?P<task>owleval(?:_single)?)\.jsonl$")

_YAML = """\
# OwlEval {version}: data set {dataset} (manifest digest {digest}), exported by `owleval export lmms-eval`.
# Run: lmms-eval --include_path {folder} --tasks {task} --model ... --log_samples --output_path OUT
# then: owleval answers import --from lmms-eval OUT --out answers/
{note}task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data_file}
test_split: test
output_type: {output_type}
doc_to_messages: !function {module}.doc_to_messages
doc_to_visual: !function {module}.doc_to_visual
doc_to_text: !function {module}.doc_to_text
doc_to_target: !function {module}.doc_to_target
process_results: !function {module}.process_results
generation_kwargs:
  max_new_tokens: {max_new_tokens}
  temperature: 0
  do_sample: false
  until: []  # without it lmms-eval stops at the first blank line: OwlEval answers run to paragraphs
metric_list:
  - metric: {metric}
    aggregation: !function {module}.aggregate_answered
    higher_is_better: true
metadata:
  version: 1.0
  owleval_version: "{version}"
  dataset_digest: "{digest}"
"""
_SINGLE_NOTE = ("# owleval_single asks each of the 82 questions alone with its image, for backends without\n"
                "# generate_until_multi_round: later turns of a dialogue do not see the earlier ones, so answers imported\n"
                "# from it carry `protocol: single-pass` and the report says so.\n")


def _documents(data_dir: Path | None, *, single_pass: bool, embed: bool) -> list[dict[str, Any]]:
    questions = load_questions(data_dir)
    stamp = {**dataset_stamp(), "owleval_version": __version__, "protocol": SINGLE_PASS if single_pass else MULTI_TURN}
    docs = []
    for dialogue in dialogues(questions, single_pass=single_pass):
        path = image_file(dialogue.questions[0], data_dir)
        image = {"image_b64": base64.b64encode(path.read_bytes()).decode("ascii")} if embed else {"image_path": str(path)}
        docs.append({"sample_id": dialogue.sample_id, "question_ids": dialogue.question_ids,
                     "questions": [q.question for q in dialogue.questions], "image_file": dialogue.image, **image, **stamp})
    return docs


def export_files(out: Path, data_dir: Path | None = None, *, embed_images: bool = False, max_new_tokens: int = 512) -> dict[Path, str]:
    """Every file of the task folder, by path (written by the caller, all or nothing)."""
    folder = out.resolve()
    stamp = dataset_stamp()
    files: dict[Path, str] = {}
    counts: dict[str, int] = {}
    for task, data_name, single in ((TASK_NAME, DIALOGUES_FILE, False), (SINGLE_TASK_NAME, QUESTIONS_FILE, True)):
        docs = _documents(data_dir, single_pass=single, embed=embed_images)
        counts[task] = len(docs)
        files[out / data_name] = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs)
        files[out / f"{task}.yaml"] = _YAML.format(
            version=__version__, dataset=stamp["dataset"], digest=stamp["dataset_digest"], folder=folder, task=task,
            note=_SINGLE_NOTE if single else "", data_file=json.dumps(str(folder / data_name)),
            output_type="generate_until" if single else "generate_until_multi_round", module=UTILS_MODULE,
            max_new_tokens=max_new_tokens, metric=METRIC)
    files[out / f"{UTILS_MODULE}.py"] = resources.files("owleval.bridges.kit_files").joinpath("lmms_eval_utils.py").read_text(encoding="utf-8")
    files[out / EXPORT_INFO] = export_info(KIT, counts, images="embedded" if embed_images else "absolute paths")
    return files


def export_names() -> list[str]:
    return [DIALOGUES_FILE, QUESTIONS_FILE, f"{TASK_NAME}.yaml", f"{SINGLE_TASK_NAME}.yaml", f"{UTILS_MODULE}.py", EXPORT_INFO]


# ---- import -------------------------------------------------------------------------------------------------------

def find_sample_files(path: Path) -> list[Path]:
    """``path`` itself, or every OwlEval samples file under the folder ``path``."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise OwlEvalError(f"{path}: no such file or folder")
    found = sorted(p for p in path.rglob("*.jsonl") if SAMPLES_RE.match(p.name))
    if not found:
        raise OwlEvalError(f"{path}: no lmms-eval samples file of an OwlEval task (*_samples_owleval.jsonl, "
                           "*_samples_owleval_single.jsonl; run lmms-eval with --log_samples)")
    return found


def _results_for(samples: Path) -> dict[str, Any]:
    """The ``<date>_results.json`` written with ``samples`` (empty when it is not there)."""
    match = SAMPLES_RE.match(samples.name)
    if not match:
        return {}
    results = samples.with_name(f"{match['date']}_results.json")
    try:
        doc = json.loads(results.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _model_of(results: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    config = results.get("config") if isinstance(results.get("config"), dict) else {}
    model, args = config.get("model"), config.get("model_args")
    settings = {"model": model, "model_args": args, "gen_kwargs": config.get("gen_kwargs"), "batch_size": config.get("batch_size")}
    configs = results.get("configs", {}) if isinstance(results.get("configs"), dict) else {}
    for task in (TASK_NAME, SINGLE_TASK_NAME):
        if isinstance(configs.get(task), dict):
            settings["generation_kwargs"] = configs[task].get("generation_kwargs")
    name = args if isinstance(args, str) and args.strip() else model
    return (str(name) if name else None), {k: v for k, v in settings.items() if v is not None}


def read_run(samples: Path) -> KitRun:
    """One samples file (and its results file) as a :class:`KitRun`; problems are collected, not raised."""
    results = _results_for(samples)
    model, settings = _model_of(results)
    match = SAMPLES_RE.match(samples.name)
    protocol = SINGLE_PASS if match and match["task"] == SINGLE_TASK_NAME else MULTI_TURN
    version = results.get("lmms_eval_version")
    run = KitRun(KIT, str(version) if version else None, samples, model or samples.parent.name, protocol, None, settings=settings)
    digests: set[str] = set()
    try:
        lines = samples.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        run.problems.append(Problem(samples, None, None, f"cannot read: {exc}"))
        return run
    for line_no, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            run.problems.append(Problem(samples, line_no, None, f"malformed JSON: {exc.msg}"))
            continue
        record = row.get(METRIC) if isinstance(row, dict) else None
        if not isinstance(record, dict):
            run.problems.append(Problem(samples, line_no, METRIC, "missing: not a sample of OwlEval's exported task "
                                        "(its process_results writes OwlEval's ids)"))
            continue
        ids, outputs = record.get("question_ids"), record.get("outputs")
        if not isinstance(ids, list) or not isinstance(outputs, list) or not isinstance(record.get("sample_id"), str):
            run.problems.append(Problem(samples, line_no, METRIC, "needs sample_id, question_ids and outputs"))
            continue
        if record.get("protocol") in (MULTI_TURN, SINGLE_PASS):
            run.protocol = record["protocol"]
        digests.add(str(record.get("dataset_digest")))
        if isinstance(record.get("kit_version"), str):
            run.kit_version = record["kit_version"]  # the installed package's version, as the task read it
        run.samples.append(KitSample(record["sample_id"], ids, [o if isinstance(o, str) else "" for o in outputs], line_no, METRIC))
    if len(digests) > 1:
        run.problems.append(Problem(samples, None, "dataset_digest", f"samples from more than one data-set version: {sorted(digests)}"))
    run.dataset_digest = next(iter(digests)) if len(digests) == 1 else None
    return run


def read_runs(path: Path) -> list[KitRun]:
    return [read_run(p) for p in find_sample_files(path)]


def write_export(out: Path, data_dir: Path | None, *, embed_images: bool, overwrite: bool) -> dict[Path, str]:
    from owleval.answers import write_files_all_or_nothing

    prepare_out_dir(out, export_names(), overwrite)
    files = export_files(out, data_dir, embed_images=embed_images)
    write_files_all_or_nothing(files, overwrite=overwrite)
    return files
