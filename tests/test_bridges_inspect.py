"""The Inspect bridge against the real Inspect AI (0.3.285, installed by scripts/setup.sh in .venv-inspect; OwlEval
never imports it): the exported task runs end to end with Inspect's mockllm (a callable that answers from the
messages it was sent, with explicit usage so no tokenizer is fetched), its .eval log is imported back, and
grades exported with --format inspect are attached to the log with Inspect's own precomputed_scores."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from owleval.bridges.common import dialogues
from owleval.cli import app
from owleval.questions import load_questions
from tests.timing import budget

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent
INSPECT_PYTHON = Path(os.environ.get("OWLEVAL_INSPECT_VENV", REPO / ".venv-inspect")) / "bin" / "python"
SCRIPT = Path(__file__).resolve().parent / "inspect_kit_script.py"
GRADES = "ABCD"


def _grade(question_id: int, turn: int) -> str:
    """A made-up but varied grade: the later turns of a dialogue get worse grades."""
    return GRADES[min(3, (question_id + turn) % 2 + turn)]


def _write_grades(path: Path, model: str) -> dict[int, str]:
    grades = {}
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["annotator", "model_id", "question_id", "grade"])
        for q in load_questions():
            grades[q.question_id] = _grade(q.question_id, q.turn_index)
            writer.writerow(["ann", model, q.question_id, grades[q.question_id]])
            if q.question_id == 1:  # a second annotator: the lower-median of A and D is D
                writer.writerow(["bob", model, 1, "D"])
                grades[1] = "D"
    return grades


def _expected(grades: dict[int, str]) -> dict[str, dict[str, float]]:
    score = {"A": 3, "B": 2, "C": 1, "D": 0}
    out = {}
    for d in dialogues(load_questions()):
        scores = [score[grades[q]] for q in d.question_ids]
        out[d.sample_id] = {"mean_score": sum(scores) / len(scores), "acceptable": int(min(scores) >= 2)}
    return out


def test_grades_become_numeric_scores_per_dialogue(tmp_path: Path) -> None:
    grades = _write_grades(tmp_path / "grades.csv", "m1")
    out = tmp_path / "scores.jsonl"
    result = runner.invoke(app, ["grades", "export", "--format", "inspect", "--model", "m1", "--grades", str(tmp_path / "grades.csv"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["id"]: r["value"] for r in records} == _expected(grades)
    assert all(isinstance(v, (int, float)) for r in records for v in r["value"].values())  # never a letter ("C" reads as correct)
    multi = next(r for r in records if r["metadata"]["turns_total"] > 1)
    assert [t["question_id"] for t in multi["metadata"]["turns"]] == [d.question_ids for d in dialogues(load_questions()) if d.sample_id == multi["id"]][0]
    first = next(r for r in records if r["id"] == "owleval-1")["metadata"]["turns"][0]
    assert first["grade"] == "D" and first["n_ratings"] == 2 and first["annotators"] == ["ann", "bob"]
    other = runner.invoke(app, ["grades", "export", "--format", "inspect", "--model", "nobody", "--grades", str(tmp_path / "grades.csv")])
    assert other.exit_code == 1 and "no grades for model 'nobody'" in other.output and "m1" in other.output


def _inspect(*args: str, cwd: Path) -> str:
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(cwd / "tiktoken-empty"), "INSPECT_DISPLAY": "none", "NO_COLOR": "1"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run([str(INSPECT_PYTHON), str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=budget(300))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.skipif(not INSPECT_PYTHON.exists(), reason="Inspect venv missing: run scripts/setup.sh (installs inspect-ai into .venv-inspect)")
def test_inspect_runs_the_export_and_its_log_comes_back(tmp_path: Path) -> None:
    task = tmp_path / "task"
    assert runner.invoke(app, ["export", "inspect", "--out", str(task)]).exit_code == 0
    out = _inspect("run", str(task / "owleval_task.py"), str(tmp_path / "logs"), cwd=tmp_path)
    log = Path(next(line.split()[1] for line in out.splitlines() if line.startswith("LOG ")))
    assert "success" in out

    result = runner.invoke(app, ["answers", "import", "--from", "inspect", str(tmp_path / "logs"), "--out", str(tmp_path / "answers")])
    assert result.exit_code == 0, result.output
    assert "inspect 0.3.285" in result.output and "all 82 questions" in result.output
    answers = {a["question_id"]: a for a in map(json.loads, (tmp_path / "answers" / "mockllm--model.jsonl").read_text().splitlines())}
    assert len(answers) == 82
    for q in load_questions():
        reply = answers[q.question_id]["answer"]
        assert reply.startswith(f"turn {q.turn_index}; {q.turn_index} earlier replies; image True; q: {q.question};")
        if q.turn_index:  # the model saw its own previous reply as an assistant turn
            assert reply.endswith(f"last: <{answers[q.question_id - 1]['answer']}>")
    meta = json.loads((tmp_path / "answers" / "mockllm--model.jsonl.meta.json").read_text())
    assert meta["checkpoint_fingerprint"]["kind"] == "imported" and meta["checkpoint_fingerprint"]["run_file"] == str(log)

    grades = _write_grades(tmp_path / "grades.csv", "mockllm--model")
    scores = tmp_path / "scores.jsonl"
    assert runner.invoke(app, ["grades", "export", "--format", "inspect", "--model", "mockllm--model", "--grades", str(tmp_path / "grades.csv"),
                               "--out", str(scores)]).exit_code == 0
    out = _inspect("score", str(scores), str(log), cwd=tmp_path)
    metrics = {line.split()[1]: float(line.split()[2]) for line in out.splitlines() if line.startswith("METRIC ")}
    expected = _expected(grades).values()
    assert metrics["mean_score"] == pytest.approx(sum(v["mean_score"] for v in expected) / len(expected))
    assert metrics["acceptable"] == pytest.approx(sum(v["acceptable"] for v in expected) / len(expected))


def _eval_log(path: Path, samples: list[dict], *, task: str = "owleval", digest: str | None = None) -> Path:
    """A .eval log in Inspect's documented layout (a zip of header.json and samples/<id>_epoch_<n>.json), deflated."""
    import zipfile

    from owleval.manifest import load_manifest

    header = {"status": "success", "eval": {"task": task, "model": "openai/gpt-4o-mini", "packages": {"inspect_ai": "0.3.285"},
                                            "metadata": {"dataset_digest": digest or load_manifest().digest}}}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("header.json", json.dumps(header))
        for sample in samples:
            archive.writestr(f"samples/{sample['id']}_epoch_{sample.get('epoch', 1)}.json", json.dumps(sample))
    return path


def _sample(dialogue, digest: str | None = None, **changes: object) -> dict:
    from owleval.manifest import load_manifest

    replies = [{"question_id": q, "answer": f"reply {q}"} for q in dialogue.question_ids]
    sample = {"id": dialogue.sample_id, "epoch": 1, "metadata": {"dataset_digest": digest or load_manifest().digest},
              "store": {"owleval_replies": replies}}
    sample.update(changes)
    return sample


def test_inspect_logs_are_checked_before_anything_is_written(tmp_path: Path) -> None:
    all_dialogues = dialogues(load_questions())
    good = _eval_log(tmp_path / "good.eval", [_sample(d) for d in all_dialogues[2:]] + [_sample(all_dialogues[0], epoch=2)])
    result = runner.invoke(app, ["answers", "import", "--from", "inspect", str(good), "--out", str(tmp_path / "a"), "--model-id", "gpt-mini"])
    missing = all_dialogues[0].question_ids + all_dialogues[1].question_ids
    assert result.exit_code == 0, result.output
    assert f"{82 - len(missing)} of 82" in result.output and ", ".join(map(str, missing)) in result.output  # epoch 2 is not imported
    assert json.loads((tmp_path / "a" / "gpt-mini.jsonl.meta.json").read_text())["kit"]["settings"]["epochs_in_log"] == [1, 2]

    foreign = _eval_log(tmp_path / "foreign.eval", [_sample(all_dialogues[0], store={})])
    result = runner.invoke(app, ["answers", "import", "--from", "inspect", str(foreign), "--out", str(tmp_path / "b")])
    assert result.exit_code == 1 and "[samples/owleval-1_epoch_1.json]" in result.output and "not a sample of OwlEval" in result.output
    other = _eval_log(tmp_path / "other.eval", [_sample(all_dialogues[0])], digest="ffffffffffffffff")
    result = runner.invoke(app, ["answers", "import", "--from", "inspect", str(other), "--out", str(tmp_path / "b")])
    assert result.exit_code == 1 and "ffffffffffffffff" in result.output
    assert not (tmp_path / "b").exists()
    not_a_log = tmp_path / "notes.eval"
    not_a_log.write_text("hello")
    result = runner.invoke(app, ["answers", "import", "--from", "inspect", str(not_a_log), "--out", str(tmp_path / "b")])
    assert result.exit_code == 1 and "not an Inspect .eval log" in result.output


def test_kit_import_flags_are_checked(tmp_path: Path) -> None:
    assert "give the kit's run files" in runner.invoke(app, ["answers", "import", "--from", "inspect", "--out", str(tmp_path)]).output
    assert "unknown kit 'helm'" in runner.invoke(app, ["answers", "import", "--from", "helm", str(tmp_path), "--out", str(tmp_path)]).output
    assert "--model-id goes with --from" in runner.invoke(app, ["answers", "import", str(tmp_path), "--model-id", "x"]).output
