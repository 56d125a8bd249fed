"""``owleval judge --pairwise`` against a loopback chat-completions judge (real HTTP) that compares from content."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from owleval.cli import app
from owleval.judge.pairwise import verdict
from owleval.judge.prompt import quote
from owleval.records.votes import VOTE_COLUMNS
from owleval.study.votes import read_votes
from owleval.questions import load_questions
from tests.chat_server import ChatServer, message_text
from tests.judge_helpers import quoted_field
from tests.pairwise_judge_helpers import SERIAL_RE, pair_judge, write_strength_answers

# alphabetical order is the reverse of strength: a judge that favours the first position, asked in one order
# (model_a first), would rank the weakest model first
STRENGTHS = {"alpha-7b": 0.0, "bravo-7b": 2.0, "charlie-7b": 4.0}


@pytest.fixture
def questions(owl_data: Path):
    return list(load_questions(owl_data))


def judge_cli(server: ChatServer, answers: Path, out: Path, *extra: str):
    args = ["judge", "--pairwise", "--answers", str(answers), "--judge", "openai", "--checkpoint", "tiny-vlm",
            "--base-url", server.base_url, "--out", str(out), "--concurrency", "8", "-o", "backoff=0.01", *extra]
    return CliRunner().invoke(app, args)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def raw_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "raw.jsonl").read_text(encoding="utf-8").splitlines()]


def win_scores(rows: list[dict[str, str]]) -> dict[str, float]:
    """Each model's share of points (a win 1, a tie or both bad half each)."""
    points, games = Counter(), Counter()
    for r in rows:
        a, b = r["model_a"], r["model_b"]
        games[a] += 1
        games[b] += 1
        if r["winner"] == "model_a":
            points[a] += 1
        elif r["winner"] == "model_b":
            points[b] += 1
        else:
            points[a] += 0.5
            points[b] += 0.5
    return {m: points[m] / games[m] for m in games}


def test_the_verdict_rule() -> None:
    assert verdict("model_a", "model_a") == "model_a" and verdict("model_b", "model_b") == "model_b"
    assert verdict("both_bad", "both_bad") == "both_bad" and verdict("tie", "tie") == "tie"
    assert verdict("model_a", "model_b") == verdict("both_bad", "tie") == verdict("model_a", "both_bad") == "tie"


@pytest.mark.parametrize(("bias", "pairs"), [(0.0, ["--pairs-per-question", "1"]), (0.6, ["--pairs", "all"])])
def test_both_orders_recover_the_ranking_and_measure_position_bias(tmp_path: Path, questions, bias: float, pairs: list[str]) -> None:
    write_strength_answers(tmp_path / "answers", questions, STRENGTHS)
    out = tmp_path / "judged"
    with ChatServer(reply=pair_judge(bias)) as server:
        result = judge_cli(server, tmp_path / "answers", out, *pairs, "--seed", "2")
        requests = server.answered()
    n = 82 * (1 if pairs[0] == "--pairs-per-question" else 3)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert f"{n} pairs asked this run ({2 * n} requests, both orders)" in result.output
    assert len(requests) == 2 * n
    assert not any(m in json.dumps(r.body) for r in requests for m in STRENGTHS), "a model id reached the judge"

    meta = json.loads((out / "meta.json").read_text())
    pc = meta["position_consistency"]
    assert meta["mode"] == "pairwise" and meta["counts"] == {"judged": n, "unparsed": 0, "failed": 0, "identical": 0}
    assert pc["pairs"] == n and pc["ci95"][0] <= pc["rate"] <= pc["ci95"][1]
    if bias == 0.0:
        assert pc["rate"] == 1.0 and 0.35 < pc["first_position_share"] < 0.65
    else:
        # expected share agreeing: both orders unbiased (0.4^2) + one biased order that happens to name the true winner
        # (2 * 0.6 * 0.4 * 1/2) = 0.40
        assert 0.30 < pc["rate"] < 0.50 and pc["ci95"][1] < 0.6, pc
        assert pc["first_position_share"] > 0.7

    rows = read_csv(out / "votes.csv")
    assert list(rows[0]) == list(VOTE_COLUMNS) and len(rows) == n and {r["annotator"] for r in rows} == {"judge:tiny-vlm"}
    assert len(read_votes(out / "votes.csv", models=set(STRENGTHS), question_ids=set(range(1, 83)))) == n
    truth = sorted(STRENGTHS, key=STRENGTHS.get, reverse=True)
    both = win_scores(rows)
    assert sorted(both, key=both.get, reverse=True) == truth, both

    # the same judge asked in one order only (model_a shown first): position bias decides the ranking
    lines = raw_lines(out)
    assert Counter(r["order"] for r in lines) == {"ab": n, "ba": n}
    one_order = win_scores([{"model_a": r["model_a"], "model_b": r["model_b"], "winner": r["winner_pair"]}
                            for r in lines if r["order"] == "ab"])
    if bias:
        assert sorted(one_order, key=one_order.get, reverse=True) != truth, one_order


def test_each_side_has_its_own_history_and_both_orders_are_asked(tmp_path: Path, questions) -> None:
    picked = [q for q in questions if q.question_id in (6, 7, 8)]
    write_strength_answers(tmp_path / "answers", picked, {"alpha-7b": 0.0, "bravo-7b": 1.0})
    out = tmp_path / "judged"
    with ChatServer(reply=pair_judge()) as server:
        result = judge_cli(server, tmp_path / "answers", out)
        bodies = [r.body for r in server.answered()]
    assert result.exit_code == 0, result.output
    texts = {(json.loads(line)["model_id"], json.loads(line)["question_id"]): json.loads(line)["answer"]
             for m in ("alpha-7b", "bravo-7b") for line in (tmp_path / "answers" / f"{m}.jsonl").read_text().splitlines()}
    later = [b for b in bodies if quote(texts[("alpha-7b", 8)]) in message_text(b["messages"][0])]
    assert len(later) == 2, "question 8 asked in both orders"
    for body in later:
        prompt = message_text(body["messages"][0])
        first_serial = int(SERIAL_RE.search(str(quoted_field(prompt, "First answer"))).group(1))
        first_model = "alpha-7b" if texts[("alpha-7b", 8)].startswith(f"Answer #{first_serial} ") else "bravo-7b"
        second_model = "bravo-7b" if first_model == "alpha-7b" else "alpha-7b"
        own_first = prompt.index("Earlier in the first assistant's conversation")
        own_second = prompt.index("Earlier in the second assistant's conversation")
        for q in (6, 7):
            assert own_first < prompt.index(quote(texts[(first_model, q)])) < own_second < prompt.index(quote(texts[(second_model, q)]))
        assert quoted_field(prompt, "Second answer") == texts[(second_model, 8)]
    assert {tuple(sorted({r["order"] for r in raw_lines(out) if r["question_id"] == q})) for q in (6, 7, 8)} == {("ab", "ba")}


def test_unparsed_and_identical_pairs_never_become_judge_votes_and_runs_resume(tmp_path: Path, questions) -> None:
    picked = questions[:6]

    def special(model: str, qid: int) -> str | None:
        if qid == 2:
            return "the very same answer"  # identical texts: a tie, not asked
        if qid == 3 and model == "bravo-7b":
            return "[neither] an answer the judge cannot place"
        return None

    write_strength_answers(tmp_path / "answers", picked, {"alpha-7b": 0.0, "bravo-7b": 1.0}, special)
    out = tmp_path / "judged"
    with ChatServer(reply=pair_judge()) as server:
        result = judge_cli(server, tmp_path / "answers", out)
        assert result.exit_code == 0, result.output
        assert "5 pairs asked this run (14 requests, both orders)" in result.output, result.output
        assert "4 voted, 1 unparsed" in result.output and "1 identical" in result.output
        assert "question 3 alpha-7b vs bravo-7b" in " ".join(result.output.split())
        rows = {int(r["question_id"]): r for r in read_csv(out / "votes.csv")}
        assert set(rows) == {1, 2, 4, 5, 6}, "the unparsed pair has no vote"
        assert rows[2]["winner"] == "tie" and "identical" in rows[2]["reason"]
        meta = json.loads((out / "meta.json").read_text())
        assert meta["unparsed"] == [{"question_id": 3, "model_a": "alpha-7b", "model_b": "bravo-7b"}]
        unparsed = [r for r in raw_lines(out) if r["question_id"] == 3]
        assert all("names neither answer" in r["error"] for r in unparsed) and len(unparsed) == 6  # 2 orders x 3 attempts

        again = judge_cli(server, tmp_path / "answers", out)
        assert "0 pairs asked this run (0 requests" in again.output and "5 judged before" in again.output
        retried = judge_cli(server, tmp_path / "answers", out, "--retry-unparsed")
        assert "1 pairs asked this run (6 requests" in retried.output

        # a run cut after one order of a pair: that pair is asked again, whole
        lines = (out / "raw.jsonl").read_text(encoding="utf-8").splitlines()
        cut = next(json.loads(line)["judgement"] for line in lines if json.loads(line)["question_id"] == 1)
        kept = [line for line in lines if json.loads(line)["judgement"] != cut or json.loads(line)["order"] == "ab"]
        (out / "raw.jsonl").write_text("\n".join(kept) + "\n", encoding="utf-8")
        resumed = judge_cli(server, tmp_path / "answers", out)
        assert "1 pairs asked this run (2 requests" in resumed.output and "4 judged before" in resumed.output, resumed.output
        assert {int(r["question_id"]) for r in read_csv(out / "votes.csv")} == {1, 2, 4, 5, 6}


def test_pairwise_flags_are_checked(tmp_path: Path, questions) -> None:
    write_strength_answers(tmp_path / "answers", questions[:2], {"alpha-7b": 0.0, "bravo-7b": 1.0})
    with ChatServer(reply=pair_judge()) as server:
        limited = judge_cli(server, tmp_path / "answers", tmp_path / "o", "--limit", "3")
        assert limited.exit_code != 0 and "--limit is for the A-D judge" in limited.output
        unknown = judge_cli(server, tmp_path / "answers", tmp_path / "o", "--against", "nobody")
        assert unknown.exit_code != 0 and "--against nobody: no answers of that model" in unknown.output
        args = ["judge", "--answers", str(tmp_path / "answers"), "--judge", "openai", "--base-url", server.base_url, "--against", "alpha-7b"]
        plain = CliRunner().invoke(app, args)
        assert plain.exit_code != 0 and "add --pairwise" in plain.output
        assert server.answered() == []
