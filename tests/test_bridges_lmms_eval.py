"""The lmms-eval bridge without lmms-eval: the exported task folder, its task functions (run here on the exported
documents), and imports of sample logs in the layout lmms-eval 0.7.3 writes with --log_samples (one JSON object a
line: doc_id, filtered_resps, ... plus what the task's process_results returned). The same export runs end to end
in the real lmms-eval in tests/integration/test_lmms_eval_bridge.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from owleval.bridges.common import model_ids_for, normalise_model_name
from owleval.bridges.kit_files import lmms_eval_utils as task_functions
from owleval.cli import app
from owleval.errors import OwlEvalError
from owleval.manifest import load_manifest

runner = CliRunner()


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lmms_task")
    result = runner.invoke(app, ["export", "lmms-eval", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _docs(task_dir: Path, name: str = "owleval_dialogues.jsonl") -> list[dict]:
    return [json.loads(line) for line in (task_dir / name).read_text(encoding="utf-8").splitlines()]


def _samples_file(task_dir: Path, out: Path, *, drop: int = 0, model_args: str = "pretrained=org/my-model", digest: str | None = None,
                  task: str = "owleval") -> Path:
    """A run's samples and results files, each reply made by the exported task functions' own process_results."""
    docs = _docs(task_dir, "owleval_dialogues.jsonl" if task == "owleval" else "owleval_questions.jsonl")
    folder = out / "org__my-model"
    folder.mkdir(parents=True)
    lines = []
    for doc_id, doc in enumerate(docs[drop:]):
        if digest:
            doc = {**doc, "dataset_digest": digest}
        replies = [f"reply to {qid}" for qid in doc["question_ids"]]
        record = task_functions.process_results(doc, [replies] if task == "owleval" else replies)
        record["owleval_answered"]["kit_version"] = "0.7.3"  # what the task reads from the installed lmms-eval
        lines.append(json.dumps({"doc_id": doc_id, "target": "", "filtered_resps": replies, "doc_hash": "x", **record}))
    samples = folder / f"20261204_120000_samples_{task}.jsonl"
    samples.write_text("\n".join(lines) + "\n", encoding="utf-8")
    results = {"config": {"model": "hf_chat", "model_args": model_args, "batch_size": 1}, "lmms_eval_version": "a-branch@123",
               "configs": {task: {"generation_kwargs": {"max_new_tokens": 512}}}}
    (folder / "20261204_120000_results.json").write_text(json.dumps(results), encoding="utf-8")
    return samples


def test_export_is_one_document_per_dialogue_with_ids_and_digest(task_dir: Path) -> None:
    docs, single = _docs(task_dir), _docs(task_dir, "owleval_questions.jsonl")
    assert sum(len(d["question_ids"]) for d in docs) == 82 and len(single) == 82 and len(docs) < 82
    assert all(d["sample_id"] == f"owleval-{d['question_ids'][0]}" for d in docs)
    assert {d["dataset_digest"] for d in docs + single} == {load_manifest().digest}
    assert all(Path(d["image_path"]).is_absolute() and Path(d["image_path"]).is_file() for d in docs)
    multi = (task_dir / "owleval.yaml").read_text(encoding="utf-8")
    assert "task: owleval\n" in multi and "output_type: generate_until_multi_round" in multi
    assert f'test: "{(task_dir / "owleval_dialogues.jsonl").resolve()}"' in multi  # absolute: lmms-eval resolves against its cwd
    config = yaml.load(multi.replace("!function ", ""), Loader=yaml.SafeLoader)  # lmms-eval reads it with PyYAML
    assert config["generation_kwargs"]["until"] == [] and config["metadata"]["dataset_digest"] == load_manifest().digest
    single_yaml = (task_dir / "owleval_single.yaml").read_text(encoding="utf-8")
    assert "task: owleval_single\n" in single_yaml and "output_type: generate_until\n" in single_yaml and "single-pass" in single_yaml
    assert json.loads((task_dir / "owleval_export.json").read_text())["dataset_digest"] == load_manifest().digest


def test_export_refuses_to_overwrite_and_embeds_images_on_request(task_dir: Path, tmp_path: Path) -> None:
    again = runner.invoke(app, ["export", "lmms-eval", "--out", str(task_dir)])
    assert again.exit_code == 1 and "--overwrite" in again.output
    runner.invoke(app, ["export", "lmms-eval", "--out", str(tmp_path), "--embed-images"])
    doc = _docs(tmp_path)[0]
    assert "image_path" not in doc and task_functions.doc_to_visual(doc)[0].size[0] > 0


def test_later_rounds_carry_the_models_own_replies(task_dir: Path) -> None:
    doc = next(d for d in _docs(task_dir) if len(d["question_ids"]) >= 3)
    first = task_functions.doc_to_messages(doc)
    assert [m["role"] for m in first] == ["user"] and first[0]["content"][0]["type"] == "image"
    messages, terminal, _, _ = task_functions.doc_to_messages(doc, round_idx=2, previous_output=["one", "two"], previous_round_info=None)
    assert not terminal and [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    assert [m["content"][0]["text"] for m in messages if m["role"] == "assistant"] == ["one", "two"]
    assert messages[-1]["content"][-1]["text"] == doc["questions"][2]
    assert task_functions.doc_to_messages(doc, round_idx=len(doc["questions"]), previous_output=["a"] * 9)[1] is True


@pytest.mark.parametrize(("raw", "expected"), [
    ("pretrained=org/name,dtype=float16", "org--name"),
    ("model=gpt-4o", "gpt-4o"),
    ("/models/llava-1.5-7b/", "models--llava-1.5-7b"),
    ("./ckpt/my model", "ckpt--my-model"),
    ("mockllm/model", "mockllm--model"),
])
def test_model_name_normalisation(raw: str, expected: str) -> None:
    assert normalise_model_name(raw) == expected


def test_model_names_that_collide_are_refused_and_model_id_overrides() -> None:
    with pytest.raises(OwlEvalError, match="both become model id 'org--a'"):
        model_ids_for(["pretrained=org/a", "org/a"], None)
    assert model_ids_for(["pretrained=org/a"], "mine") == {"pretrained=org/a": "mine"}


def test_import_writes_answers_with_imported_provenance(task_dir: Path, tmp_path: Path) -> None:
    samples = _samples_file(task_dir, tmp_path / "runs")
    result = runner.invoke(app, ["answers", "import", "--from", "lmms-eval", str(tmp_path / "runs"), "--out", str(tmp_path / "answers")])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in (tmp_path / "answers" / "org--my-model.jsonl").read_text().splitlines()]
    assert len(lines) == 82 and all(a["answer"] == f"reply to {a['question_id']}" for a in lines)
    meta = json.loads((tmp_path / "answers" / "org--my-model.jsonl.meta.json").read_text())
    import hashlib

    assert meta["checkpoint_fingerprint"] == {"kind": "imported", "kit": "lmms-eval", "kit_version": "0.7.3",
                                              "run_file": str(samples), "sha256": hashlib.sha256(samples.read_bytes()).hexdigest()}
    assert meta["protocol"] == "multi-turn" and meta["kit"]["settings"]["model_args"] == "pretrained=org/my-model"
    assert meta["dataset"]["version"] == load_manifest().digest and meta["missing_question_ids"] == []
    check = runner.invoke(app, ["answers", "check", str(tmp_path / "answers" / "org--my-model.jsonl")])
    assert check.exit_code == 0 and "all 82 questions" in check.output


def test_single_pass_run_says_so(task_dir: Path, tmp_path: Path) -> None:
    _samples_file(task_dir, tmp_path / "runs", task="owleval_single")
    result = runner.invoke(app, ["answers", "import", "--from", "lmms-eval", str(tmp_path / "runs"), "--out", str(tmp_path / "a"), "--model-id", "mine"])
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "a" / "mine.jsonl.meta.json").read_text())
    assert meta["protocol"] == "single-pass" and "did not see the earlier ones" in meta["protocol_note"]
    grades = tmp_path / "grades.csv"
    grades.write_text("annotator,model_id,question_id,grade\n" + "".join(f"ann,mine,{q},{'AB'[q % 2]}\n" for q in range(1, 83)))
    report = runner.invoke(app, ["report", "--grades", str(grades), "--answers", str(tmp_path / "a"), "--out", str(tmp_path / "rep"),
                                 "--format", "md", "--bootstrap", "20"])
    assert report.exit_code == 0, report.output
    assert "mine answered each question alone" in (tmp_path / "rep" / "report.md").read_text() and "single-pass" in report.output


def test_partial_run_lists_what_is_missing(task_dir: Path, tmp_path: Path) -> None:
    docs = _docs(task_dir)
    _samples_file(task_dir, tmp_path / "runs", drop=3)
    result = runner.invoke(app, ["answers", "import", "--from", "lmms-eval", str(tmp_path / "runs"), "--out", str(tmp_path / "a")])
    missing = [q for d in docs[:3] for q in d["question_ids"]]
    assert result.exit_code == 0, result.output
    assert f"{82 - len(missing)} of 82" in result.output and ", ".join(map(str, missing)) in result.output


def test_a_run_on_another_data_set_version_is_refused(task_dir: Path, tmp_path: Path) -> None:
    _samples_file(task_dir, tmp_path / "runs", digest="0123456789abcdef")
    result = runner.invoke(app, ["answers", "import", "--from", "lmms-eval", str(tmp_path / "runs"), "--out", str(tmp_path / "a")])
    assert result.exit_code == 1 and "0123456789abcdef" in result.output and load_manifest().digest in result.output
    assert not (tmp_path / "a").exists()


def test_samples_without_owleval_ids_are_refused_with_their_line(task_dir: Path, tmp_path: Path) -> None:
    samples = _samples_file(task_dir, tmp_path / "runs")
    lines = samples.read_text().splitlines()
    row = json.loads(lines[4])
    del row["owleval_answered"]
    lines[4] = json.dumps(row)
    samples.write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["answers", "import", "--from", "lmms-eval", str(samples), "--out", str(tmp_path / "a")])
    assert result.exit_code == 1 and f"{samples}:5 [owleval_answered]" in result.output and "not a sample of OwlEval" in result.output
    assert not (tmp_path / "a").exists()


def test_unknown_question_ids_are_errors(task_dir: Path, tmp_path: Path) -> None:
    samples = _samples_file(task_dir, tmp_path / "runs")
    lines = samples.read_text().splitlines()
    row = json.loads(lines[0])
    row["owleval_answered"]["question_ids"] = [999]
    lines[0] = json.dumps(row)
    samples.write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["answers", "import", "--from", "lmms-eval", str(samples), "--out", str(tmp_path / "a")])
    assert result.exit_code == 1 and f"{samples}:1 [question_id]" in result.output and "unknown question id 999" in result.output
