"""``owleval judge -o logprobs=true``: the grade distribution from the judge's token probabilities, end to end against
the loopback chat-completions server (real HTTP, the OpenAI logprobs format), its fallback to the letter, and the
resume check."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from owleval.adapters.base import TokenLogprob
from owleval.judge.soft import FROM_LOGPROBS, grade_distribution
from owleval.questions import load_questions
from tests.chat_server import ChatServer, logprob_content
from tests.judge_helpers import answer_serial, grade_from_content, write_answer_sets
from tests.test_judge import judge_cli, raw_lines, read_csv

SCORES = {"A": 3, "B": 2, "C": 1, "D": 0}
GRADES = "ABCD"


@pytest.fixture
def questions(owl_data: Path):
    return list(load_questions(owl_data))[:4]


def distribution(serial: int, seed: int = 0) -> dict[str, float]:
    """A different distribution for every answer (and sample seed), every letter possible."""
    weights = [1 + (serial * 3 + seed * 5 + i * 7) % 11 for i in range(4)]
    return {g: w / sum(weights) for g, w in zip(GRADES, weights)}


def serve_logprobs(body: dict, text: str) -> list[dict]:
    serial = answer_serial(body)
    return logprob_content(text, distribution(serial, body.get("seed", 0)), merge_quote=serial % 2 == 0)


def expected(probs: dict[str, float]) -> tuple[float, float]:
    return sum(SCORES[g] * p for g, p in probs.items()), probs["A"] + probs["B"]


def grade_markers(qid: int) -> str:
    return f"grade={GRADES[qid % 4]}"


def test_the_grade_token_is_found_merged_or_alone_and_renormalised_over_a_to_d() -> None:
    lp = math.log
    alone = (TokenLogprob('{"grade": "', 0.0), TokenLogprob("B", lp(0.5), (("B", lp(0.5)), ("C", lp(0.3)), ("Bad", lp(0.1)), ("x", lp(0.1)))),
             TokenLogprob('", "reason": "ok"}', 0.0))
    probs, source = grade_distribution("B", alone)
    assert source == FROM_LOGPROBS and probs == pytest.approx({"A": 0.0, "B": 0.625, "C": 0.375, "D": 0.0})
    merged = (TokenLogprob('{"grade":', 0.0), TokenLogprob(' "c', lp(0.4), ((' "c', lp(0.4)), (' "A', lp(0.2)), (' "', lp(0.4)))),
              TokenLogprob('"}', 0.0))
    probs, source = grade_distribution("C", merged)
    assert source == FROM_LOGPROBS and probs == pytest.approx({"A": 1 / 3, "B": 0.0, "C": 2 / 3, "D": 0.0})
    # the chosen token counts even when the server left it out of its alternatives
    probs, _ = grade_distribution("D", (TokenLogprob('{"grade": "D', lp(0.6), (('{"grade": "A', lp(0.2)),)),))
    assert probs == pytest.approx({"A": 0.25, "B": 0.0, "C": 0.0, "D": 0.75})
    assert grade_distribution("A", None) == ({"A": 1.0, "B": 0.0, "C": 0.0, "D": 0.0}, "letter: the judge gave no token probabilities")
    _, why = grade_distribution("A", (TokenLogprob("Grade A, surely", 0.0),))
    assert why == "letter: the grade was not found in the reply's tokens"


def test_logprobs_give_judge_score_and_p_acceptable_equal_to_the_renormalised_probabilities(tmp_path: Path, questions) -> None:
    serials = write_answer_sets(tmp_path / "answers", questions, {"alpha-7b": grade_markers})
    out = tmp_path / "judged"
    with ChatServer(reply=grade_from_content, logprobs=serve_logprobs) as server:
        result = judge_cli(server, tmp_path / "answers", out, "-o", "logprobs=true")
        assert result.exit_code == 0, result.output
        bodies = [r.body for r in server.answered()]
    assert len(bodies) == 4 and all(b["logprobs"] is True and b["top_logprobs"] == 10 for b in bodies)
    by_question = {q: s for s, (_, q) in serials.items()}
    rows = {int(r["question_id"]): r for r in read_csv(out / "grades.csv")}
    for qid, row in rows.items():
        probs = distribution(by_question[qid])  # the server's letters, without the mass on tokens that are no grade
        assert row["grade"] == GRADES[qid % 4], "the letter stays the reply's own"
        assert (float(row["judge_score"]), float(row["p_acceptable"])) == pytest.approx(expected(probs), abs=1e-6)
    for line in raw_lines(out):
        assert line["grade_probs_from"] == FROM_LOGPROBS
        assert line["grade_probs"] == pytest.approx(distribution(by_question[line["question_id"]]), abs=1e-12)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["settings"]["logprobs"] == 10


def test_k_samples_average_their_distributions(tmp_path: Path, questions) -> None:
    serials = write_answer_sets(tmp_path / "answers", questions[:2], {"alpha-7b": grade_markers})
    out = tmp_path / "judged"
    with ChatServer(reply=grade_from_content, logprobs=serve_logprobs) as server:
        result = judge_cli(server, tmp_path / "answers", out, "--samples", "2", "-o", "logprobs=true", "-o", "top_logprobs=6", "-o", "seed=3")
        assert result.exit_code == 0, result.output
        assert {r.body["top_logprobs"] for r in server.answered()} == {6}
    for row in read_csv(out / "grades.csv"):
        serial = next(s for s, (_, q) in serials.items() if q == int(row["question_id"]))
        mean = {g: (distribution(serial, 3)[g] + distribution(serial, 4)[g]) / 2 for g in GRADES}
        assert (float(row["judge_score"]), float(row["p_acceptable"])) == pytest.approx(expected(mean), abs=1e-6)


def test_a_server_without_logprobs_falls_back_to_the_letter_and_says_so(tmp_path: Path, questions) -> None:
    write_answer_sets(tmp_path / "answers", questions, {"alpha-7b": grade_markers})
    out = tmp_path / "judged"
    with ChatServer(reply=grade_from_content) as server:  # accepts logprobs=true, answers "logprobs": null
        result = judge_cli(server, tmp_path / "answers", out, "-o", "logprobs=true")
        assert result.exit_code == 0, result.output
    assert {line["grade_probs_from"] for line in raw_lines(out)} == {"letter: the judge gave no token probabilities"}
    for row in read_csv(out / "grades.csv"):
        letter = row["grade"]
        assert (float(row["judge_score"]), float(row["p_acceptable"])) == (SCORES[letter], float(letter in "AB"))


def test_runs_with_and_without_logprobs_do_not_mix(tmp_path: Path, questions) -> None:
    write_answer_sets(tmp_path / "answers", questions, {"alpha-7b": grade_markers})
    plain, soft = tmp_path / "plain", tmp_path / "soft"
    with ChatServer(reply=grade_from_content, logprobs=serve_logprobs) as server:
        assert judge_cli(server, tmp_path / "answers", plain).exit_code == 0
        assert "logprobs" not in json.loads((plain / "meta.json").read_text())["settings"], "older folders still resume"
        assert "judge_score" not in read_csv(plain / "grades.csv")[0]
        refused = judge_cli(server, tmp_path / "answers", plain, "-o", "logprobs=true")
        assert refused.exit_code == 1 and "logprobs None, this run has 10" in refused.output
        assert judge_cli(server, tmp_path / "answers", soft, "-o", "logprobs=true").exit_code == 0
        refused = judge_cli(server, tmp_path / "answers", soft)
        assert refused.exit_code == 1 and "logprobs 10, this run has None" in refused.output
        other_top = judge_cli(server, tmp_path / "answers", soft, "-o", "logprobs=true", "-o", "top_logprobs=5")
        assert other_top.exit_code == 1 and "logprobs 10, this run has 5" in other_top.output
        assert len(server.chat_requests) == 8, "a refused run asks nothing"
        resumed = judge_cli(server, tmp_path / "answers", soft, "-o", "logprobs=true")
        assert resumed.exit_code == 0 and len(server.chat_requests) == 8, resumed.output


def test_bad_logprobs_options_are_refused(tmp_path: Path, questions) -> None:
    write_answer_sets(tmp_path / "answers", questions, {"alpha-7b": grade_markers})
    with ChatServer(reply=grade_from_content) as server:
        bad = judge_cli(server, tmp_path / "answers", tmp_path / "out", "-o", "logprobs=maybe")
        assert bad.exit_code == 1 and "logprobs='maybe'" in bad.output
        lonely = judge_cli(server, tmp_path / "answers", tmp_path / "out", "-o", "top_logprobs=5")
        assert lonely.exit_code == 1 and "needs -o logprobs=true" in lonely.output
        pairwise = judge_cli(server, tmp_path / "answers", tmp_path / "out", "--pairwise", "-o", "logprobs=true")
        assert pairwise.exit_code == 1 and "the pairwise judge names a winner" in pairwise.output
        assert server.chat_requests == []


def test_a_log_with_broken_grade_probs_is_refused_naming_the_line(tmp_path: Path) -> None:
    from owleval.errors import OwlEvalError
    from owleval.judge.log import read_log

    good = {"judgement": "j1", "model_id": "m", "question_id": 1, "sample": 0, "status": "parsed",
            "grade_probs": {"A": 0.5, "B": 0.25, "C": 0.25, "D": 0.0}}
    log = tmp_path / "raw.jsonl"
    log.write_text(json.dumps(good) + "\n" + json.dumps({**good, "grade_probs": {"A": 0.5, "B": 0.5}}) + "\n")
    with pytest.raises(OwlEvalError, match=r"raw.jsonl:2: grade_probs must give each of A, B, C, D"):
        read_log(log)
    log.write_text(json.dumps(good) + "\n")
    assert read_log(log)[0]["grade_probs"]["B"] == 0.25


def test_generation_records_name_top_logprobs_only_when_asked() -> None:
    """Answer files' meta (and their resume check) made before the setting existed stay comparable."""
    from owleval.adapters.base import GenerationConfig

    assert "top_logprobs" not in GenerationConfig(max_new_tokens=8).to_dict()
    assert GenerationConfig(top_logprobs=3).to_dict()["top_logprobs"] == 3
