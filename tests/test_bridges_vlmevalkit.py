"""The VLMEvalKit bridge against VLMEvalKit's documented file layouts (VLMEvalKit is not on PyPI; nothing here runs
it). Sources, read at open-compass/VLMEvalKit commit e8e78f05 (2026-08-18):

- vlmeval/dataset/image_base.py ``ImageBaseDataset.__init__``: the TSV's ``index`` is read as text; an ``image``
  cell of 64 characters or fewer is the index of the row that holds the image (base64);
- vlmeval/smp/misc.py ``toliststr``: a cell ``[...]`` is a list (VLMEvalKit evals it; here ``ast.literal_eval``);
- vlmeval/dataset/image_mt.py ``ImageMTDataset.build_prompt``: list-valued ``question``/``answer``, one per turn,
  ``<ImageHere>`` where the image goes, as many answers as questions;
- vlmeval/inference_mt.py ``chat_mt`` / ``infer_data_job_mt``: the model's own replies are fed back turn by turn;
  the prediction file is the data less ``image`` plus ``prediction`` (the per-turn list), failed calls read
  ``Failed to obtain answer via API.``;
- vlmeval/smp/file.py ``dump``: ``.xlsx`` through pandas' xlsxwriter engine (the default ``PRED_FORMAT``), ``.tsv``
  with every cell quoted, ``.json`` as records; run.py names it ``<work_dir>/<model>/T<stamp>/<model>_<data>.xlsx``
  and links it from ``<work_dir>/<model>/``;
- vlmeval/dataset/__init__.py ``build_dataset`` walks ``DATASET_CLASSES`` (what the launcher registers into).
"""

from __future__ import annotations

import ast
import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from owleval.cli import app
from owleval.manifest import load_manifest
from owleval.questions import load_questions
from tests.timing import budget

runner = CliRunner()


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("vlm_export")
    result = runner.invoke(app, ["export", "vlmevalkit", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _load_like_vlmevalkit(tsv: Path) -> pd.DataFrame:
    """The data as ImageBaseDataset.__init__ sees it: index as text, short image cells resolved to the image."""
    data = pd.read_csv(tsv, sep="\t")
    data["index"] = [str(x) for x in data["index"]]
    images = dict(zip(data["index"], data["image"].astype(str)))
    for key, value in list(images.items()):
        if len(value) <= 64:
            assert value in images and len(images[value]) > 64
            images[key] = images[value]
    data["image"] = [images[k] for k in data["index"]]
    return data


def _predictions(export_dir: Path, work: Path, model: str, fmt: str, *, fail_row: int | None = None, drop: int = 0) -> Path:
    """What infer_data_job_mt writes after chat_mt: the data less image, plus the per-turn replies."""
    data = _load_like_vlmevalkit(export_dir / "LMUData" / "OwlEval.tsv").iloc[drop:].copy()
    replies = []
    for i, (questions, ids) in enumerate(zip(data["question"], data["owleval_question_ids"])):
        turns = ast.literal_eval(questions)
        row = [f"{model} says {qid}: {turn.replace('<ImageHere>', '')[:20]}" for qid, turn in zip(json.loads(ids), turns)]
        if i == fail_row:
            row[-1] = "Failed to obtain answer via API. timeout"
        replies.append(row)
    data["prediction"] = replies
    data.pop("image")
    folder = work / model / "T20261204_G1234567"
    folder.mkdir(parents=True)
    path = folder / f"{model}_OwlEval.{fmt}"
    if fmt == "xlsx":
        with pd.ExcelWriter(path, engine="xlsxwriter", engine_kwargs={"options": {"strings_to_formulas": False}}) as writer:
            data.to_excel(writer, index=False)
    elif fmt == "tsv":
        data.to_csv(path, sep="\t", index=False, encoding="utf-8", quoting=csv.QUOTE_ALL)
    else:
        path.write_text(json.dumps(data.to_dict("records"), indent=4, ensure_ascii=False), encoding="utf-8")
    (work / model / path.name).symlink_to(path.relative_to(work / model))
    return path


def test_tsv_is_in_the_multi_turn_layout_with_each_image_once(export_dir: Path) -> None:
    raw = pd.read_csv(export_dir / "LMUData" / "OwlEval.tsv", sep="\t")
    data = _load_like_vlmevalkit(export_dir / "LMUData" / "OwlEval.tsv")
    questions = {q.question_id: q for q in load_questions()}
    stored = raw[raw["image"].str.len() > 64]
    assert stored["image"].is_unique  # each image's bytes once
    total = 0
    for _, row in data.iterrows():
        turns, answers, ids = ast.literal_eval(row["question"]), ast.literal_eval(row["answer"]), json.loads(row["owleval_question_ids"])
        assert len(turns) == len(answers) == len(ids) and turns[0].startswith("<ImageHere>") and "<ImageHere>" not in "".join(turns[1:])
        assert [t.replace("<ImageHere>", "") for t in turns] == [questions[i].question for i in ids]
        assert row["owleval_sample_id"] == f"owleval-{ids[0]}" and row["index"] == str(ids[0])
        assert row["owleval_dataset_digest"] == load_manifest().digest
        total += len(ids)
    assert total == 82


@pytest.mark.parametrize("fmt", ["xlsx", "tsv", "json"])
def test_predictions_come_back_as_answers(export_dir: Path, tmp_path: Path, fmt: str) -> None:
    _predictions(export_dir, tmp_path / "outputs", "Qwen2-VL-7B", fmt)
    (tmp_path / "outputs" / "owleval_kit.json").write_text(json.dumps({"kit": "vlmevalkit", "kit_version": "0.1.0", "argv": ["--model", "Qwen2-VL-7B"]}))
    result = runner.invoke(app, ["answers", "import", "--from", "vlmevalkit", str(tmp_path / "outputs"), "--out", str(tmp_path / "answers")])
    assert result.exit_code == 0, result.output
    answers = [json.loads(line) for line in (tmp_path / "answers" / "Qwen2-VL-7B.jsonl").read_text().splitlines()]
    assert len(answers) == 82 and all(a["answer"].startswith(f"Qwen2-VL-7B says {a['question_id']}:") for a in answers)
    meta = json.loads((tmp_path / "answers" / "Qwen2-VL-7B.jsonl.meta.json").read_text())
    assert meta["checkpoint_fingerprint"]["kit"] == "vlmevalkit" and meta["checkpoint_fingerprint"]["kit_version"] == "0.1.0"
    assert meta["checkpoint_fingerprint"]["run_file"].endswith(f"T20261204_G1234567/Qwen2-VL-7B_OwlEval.{fmt}")


def test_failed_turns_and_missing_rows_make_a_partial_run(export_dir: Path, tmp_path: Path) -> None:
    path = _predictions(export_dir, tmp_path / "outputs", "m", "tsv", fail_row=0, drop=1)
    result = runner.invoke(app, ["answers", "import", "--from", "vlmevalkit", str(path), "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "a" / "m.jsonl.meta.json").read_text())
    assert "80 of 82" in result.output and meta["missing_question_ids"] == [1, 2]  # row 1 (q1) not run, row 2's only turn failed


def test_a_prediction_that_is_not_a_list_literal_is_an_error(export_dir: Path, tmp_path: Path) -> None:
    path = _predictions(export_dir, tmp_path / "outputs", "m", "tsv")
    frame = pd.read_csv(path, sep="\t", dtype=str)
    frame.loc[3, "prediction"] = "__import__('os').system('echo pwned')"
    frame.to_csv(path, sep="\t", index=False, quoting=csv.QUOTE_ALL)
    result = runner.invoke(app, ["answers", "import", "--from", "vlmevalkit", str(path), "--out", str(tmp_path / "a")])
    assert result.exit_code == 1 and f"{path}:5 [prediction]" in result.output and "not a list literal" in result.output
    assert "pwned" not in result.output and not (tmp_path / "a").exists()


FAKE_VLMEVAL = {
    "vlmeval/__init__.py": "",
    "vlmeval/dataset/__init__.py": "DATASET_CLASSES = []\nSUPPORTED_DATASETS = []\n",
    "vlmeval/dataset/image_mt.py": "class ImageMTDataset:\n    TYPE = 'MT'\n",
    "run.py": textwrap.dedent("""\
        import json, os, sys
        import vlmeval.dataset as datasets

        def main():
            cls = datasets.OwlEvalDataset
            record = {"argv": sys.argv[1:], "LMUData": os.environ["LMUData"], "classes": [c.__name__ for c in datasets.DATASET_CLASSES],
                      "supported": datasets.SUPPORTED_DATASETS, "type": cls.TYPE, "urls": cls.DATASET_URL,
                      "base": [b.__name__ for b in cls.__mro__]}
            with open(os.environ["FAKE_RECORD"], "w") as fh:
                json.dump(record, fh)
        """),
}


def test_launcher_registers_the_data_set_and_runs_run_main(export_dir: Path, tmp_path: Path) -> None:
    """Against a minimal fake ``vlmeval`` package and run.py (not VLMEvalKit itself) that record what the launcher did."""
    kit = tmp_path / "VLMEvalKit"
    for name, text in FAKE_VLMEVAL.items():
        (kit / name).parent.mkdir(parents=True, exist_ok=True)
        (kit / name).write_text(text)
    record = tmp_path / "record.json"
    env = {**os.environ, "PYTHONPATH": str(kit), "FAKE_RECORD": str(record), "VLMEVALKIT_ROOT": str(kit)}
    done = subprocess.run([sys.executable, str(export_dir / "run_owleval.py"), "--model", "GPT4o", "--work-dir", str(tmp_path / "out")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=budget(60))
    assert done.returncode == 0, done.stderr
    seen = json.loads(record.read_text())
    assert seen["argv"] == ["--data", "OwlEval", "--model", "GPT4o", "--work-dir", str(tmp_path / "out"), "--mode", "infer"]
    assert seen["LMUData"] == str(export_dir / "LMUData") and (export_dir / "LMUData" / "OwlEval.tsv").is_file()
    assert seen["classes"] == ["OwlEvalDataset"] and seen["supported"] == ["OwlEval"] and seen["urls"] == {"OwlEval": ""}
    assert seen["type"] == "MT" and "ImageMTDataset" in seen["base"]
    kit_record = json.loads((tmp_path / "out" / "owleval_kit.json").read_text())
    assert kit_record["kit"] == "vlmevalkit" and kit_record["dataset_digest"] == load_manifest().digest
