"""lmms-eval in the loop: ``owleval export lmms-eval``, then the real lmms-eval 0.7.3 runs tasks ``owleval`` and
``owleval_single`` (``--include_path``) with a stand-in chat model that has no weights (tests/integration/
lmms_standin_model.py, registered through the ``lmms_eval.models`` entry point from a temporary folder on
PYTHONPATH), then ``owleval answers import --from lmms-eval`` brings the samples back: 82 answers, each later turn
having seen the model's own earlier replies.

Not part of the default suite (lmms-eval needs its own ~7 GB environment):

    bash scripts/setup_lmms_eval.sh .venv-lmms        # once, ~2-5 minutes
    OWLEVAL_LMMS_EVAL_VENV=.venv-lmms .venv/bin/python -m pytest tests/integration/test_lmms_eval_bridge.py

Without ``OWLEVAL_LMMS_EVAL_VENV`` every test here is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from owleval.cli import app
from owleval.questions import load_questions

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not os.environ.get("OWLEVAL_LMMS_EVAL_VENV"),
                                                   reason="set OWLEVAL_LMMS_EVAL_VENV to a venv from scripts/setup_lmms_eval.sh")]
runner = CliRunner()
STANDIN = Path(__file__).resolve().parent / "lmms_standin_model.py"


def _plugin_dir(tmp_path: Path) -> Path:
    """The stand-in as an installed distribution would look to importlib.metadata: module + dist-info entry point."""
    folder = tmp_path / "plugin"
    dist = folder / "owl_lmms_standin-0.1.dist-info"
    dist.mkdir(parents=True)
    shutil.copy(STANDIN, folder / "owl_lmms_standin.py")
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: owl-lmms-standin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[lmms_eval.models]\nowl_standin = owl_lmms_standin:MANIFEST\n")
    return folder


def _lmms_eval(task_dir: Path, task: str, out: Path, tmp_path: Path) -> None:
    venv = Path(os.environ["OWLEVAL_LMMS_EVAL_VENV"]).resolve()
    env = {**os.environ, "PYTHONPATH": str(_plugin_dir(tmp_path)), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf"), "TOKENIZERS_PARALLELISM": "false"}
    command = [str(venv / "bin" / "lmms-eval"), "--include_path", str(task_dir), "--tasks", task, "--model", "owl_standin",
               "--model_args", "pretrained=acme/stand-in-7b", "--log_samples", "--output_path", str(out)]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    # lmms-eval logs a failed evaluation and still exits 0: the output folder tells
    assert done.returncode == 0 and out.is_dir(), done.stdout[-4000:] + done.stderr[-4000:]


def test_lmms_eval_runs_the_export_and_its_samples_come_back(tmp_path: Path) -> None:
    task_dir = tmp_path / "task"
    assert runner.invoke(app, ["export", "lmms-eval", "--out", str(task_dir)]).exit_code == 0
    _lmms_eval(task_dir, "owleval", tmp_path / "runs", tmp_path)
    result = runner.invoke(app, ["answers", "import", "--from", "lmms-eval", str(tmp_path / "runs"), "--out", str(tmp_path / "answers")])
    assert result.exit_code == 0, result.output
    assert "acme--stand-in-7b" in result.output and "all 82 questions" in result.output
    answers = {a["question_id"]: a for a in map(json.loads, (tmp_path / "answers" / "acme--stand-in-7b.jsonl").read_text().splitlines())}
    assert len(answers) == 82
    for q in load_questions():
        reply = answers[q.question_id]["answer"]
        assert reply.startswith(f"round {q.turn_index}; {q.turn_index} earlier replies; image (")
        assert f"q: {q.question};" in reply
        if q.turn_index:  # the chat carried the model's own earlier reply as an assistant turn
            assert reply.endswith(f"last: <{answers[q.question_id - 1]['answer']}>")
            assert "roles user/assistant/user" in reply
    meta = json.loads((tmp_path / "answers" / "acme--stand-in-7b.jsonl.meta.json").read_text())
    assert meta["checkpoint_fingerprint"]["kind"] == "imported" and meta["checkpoint_fingerprint"]["kit_version"] == "0.7.3"
    assert meta["protocol"] == "multi-turn" and meta["kit"]["settings"]["model"] == "owl_standin"


def test_lmms_eval_single_pass_task(tmp_path: Path) -> None:
    task_dir = tmp_path / "task"
    assert runner.invoke(app, ["export", "lmms-eval", "--out", str(task_dir), "--embed-images"]).exit_code == 0
    _lmms_eval(task_dir, "owleval_single", tmp_path / "runs", tmp_path)
    result = runner.invoke(app, ["answers", "import", "--from", "lmms-eval", str(tmp_path / "runs"), "--out", str(tmp_path / "answers")])
    assert result.exit_code == 0, result.output
    answers = [json.loads(x) for x in (tmp_path / "answers" / "acme--stand-in-7b.jsonl").read_text().splitlines()]
    assert len(answers) == 82 and all(a["answer"].startswith("round 0; 0 earlier replies; image (") for a in answers)
    assert json.loads((tmp_path / "answers" / "acme--stand-in-7b.jsonl.meta.json").read_text())["protocol"] == "single-pass"
