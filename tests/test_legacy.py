"""`owleval legacy`: scores equal a direct pycocoevalcap call; awkward text does not break the tokenizer;
the three reference sources; the CLI and its correlation table in `owleval report`.

METEOR starts a JVM (~7-10 s): every test here shares the package's one scorer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from owleval.cli import app
from owleval.questions import load_questions
from owleval.report.legacy import (
    LegacyInputs,
    build_inputs,
    cider_variant,
    load_model_answers,
    meteor_scorer,
    ptb_tokenize,
    score_legacy,
)

from tests.report_helpers import data_dir, synthetic_grades, write_grades_csv

runner = CliRunner()
QIDS = tuple(range(2, 14))
SOURCES = {"mplug-owl-7b": "mPLUG_Owl_7b_answer.jsonl", "llava-13b": "llava_13b_answer.jsonl", "minigpt4-13b": "minigpt4_13b_answer.jsonl"}


@pytest.fixture(scope="module")
def questions():
    return load_questions(data_dir())


@pytest.fixture(scope="module")
def answers_dir(tmp_path_factory, questions) -> Path:
    """Three models' published answers to 12 questions (one made empty), as answer files."""
    out = tmp_path_factory.mktemp("legacy_answers")
    for model, name in SOURCES.items():
        rows = []
        for line in (data_dir() / "answer" / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if row["question_id"] in QIDS:
                row["model_id"] = model
                row["image"] = questions[row["question_id"] - 1].image
                if model == "llava-13b" and row["question_id"] == 5:
                    row["answer"] = ""
                rows.append(json.dumps(row, ensure_ascii=False) + "\n")
        (out / f"{model}.jsonl").write_text("".join(rows), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def scored(answers_dir, questions):
    texts = load_model_answers(answers_dir, questions)
    inputs = build_inputs("leave-one-out", texts, questions)
    return texts, inputs, score_legacy(inputs, ["bleu", "meteor", "rouge", "cider"])


def test_scores_equal_a_direct_pycocoevalcap_call(scored):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    texts, _, frame = scored
    model = "mplug-owl-7b"
    others = [m for m in texts if m != model]
    raw_gts = {q: [{"caption": texts[m][q]} for m in others if texts[m][q]] for q in QIDS}
    raw_res = {q: [{"caption": texts[model][q]}] for q in QIDS}
    tok = PTBTokenizer()
    gts, res = tok.tokenize(raw_gts), tok.tokenize(raw_res)
    bleu, bleu_each = Bleu(4).compute_score(gts, res, verbose=0)
    meteor, meteor_each = meteor_scorer().compute_score(gts, res)
    rouge, rouge_each = Rouge().compute_score(gts, res)
    cider, cider_each = Cider().compute_score(gts, res)
    rows = frame[frame.model == model]
    corpus = rows[rows.scope == "corpus"].iloc[0]
    assert corpus.n == len(QIDS)
    for k in range(4):
        assert corpus[f"bleu_{k + 1}"] == pytest.approx(bleu[k], rel=1e-12)
    assert (corpus.meteor, corpus.rouge_l, corpus.cider) == pytest.approx((meteor, rouge, cider), rel=1e-12)
    each = rows[rows.scope == "answer"].set_index("question_id").loc[list(QIDS)]
    assert each.bleu_4.tolist() == pytest.approx(bleu_each[3], rel=1e-12)
    assert each.meteor.tolist() == pytest.approx(meteor_each, rel=1e-12)
    assert each.rouge_l.tolist() == pytest.approx(list(rouge_each), rel=1e-12)
    assert each.cider.tolist() == pytest.approx(list(cider_each), rel=1e-12)
    assert each.n.tolist() == [len(raw_gts[q]) for q in QIDS]


def test_empty_answer_scores_zero_and_is_not_a_reference(scored):
    texts, inputs, frame = scored
    row = frame[(frame.model == "llava-13b") & (frame.question_id == 5)].iloc[0]
    assert (row.bleu_1, row.rouge_l, row.cider, row.meteor) == (0.0, 0.0, 0.0, 0.0)
    other = frame[(frame.model == "mplug-owl-7b") & (frame.question_id == 5)].iloc[0]
    assert other.n == 1  # llava's empty answer is no reference
    assert inputs.unscored == []
    assert cider_variant() == "CIDEr-D"


def test_awkward_text_keeps_the_tokenizer_aligned():
    texts = ["无法回溯", "", "A cat.\x0bA dog!\r\nA bird", "first\u2028second", "Hello, World", "   ", "a ||| b"]
    tokens = ptb_tokenize(texts)
    assert tokens == ["无法回溯", "", "a cat a dog a bird", "first second", "hello world", "", "a | | | b"]


def test_non_ascii_and_separator_answers_score(questions):
    candidates = {("m1", 1): "无法回溯", ("m1", 2): "a cat ||| on a mat", ("m1", 3): "", ("m2", 1): "x"}
    references = {("m1", 1): ["无法回溯"], ("m1", 2): ["a cat sits on a mat"], ("m1", 3): ["something"], ("m2", 1): ["", "  "]}
    inputs = LegacyInputs(candidates, references, "test")
    frame = score_legacy(inputs, ["bleu", "meteor", "rouge", "cider"])
    answers = frame[frame.scope == "answer"].set_index(["model", "question_id"])
    assert answers.loc[("m1", 1), "rouge_l"] == 1.0 and answers.loc[("m1", 1), "meteor"] == pytest.approx(1.0)
    assert 0 < answers.loc[("m1", 2), "meteor"] < 1
    assert inputs.unscored == [("m2", 1)]  # only empty references
    assert frame[(frame.model == "m2") & (frame.scope == "corpus")].n.item() == 0


def test_reference_sources(answers_dir, questions, tmp_path):
    texts = load_model_answers(answers_dir, questions)
    loo = build_inputs("leave-one-out", texts, questions)
    assert sorted(loo.references[("llava-13b", 2)]) == sorted([texts["mplug-owl-7b"][2], texts["minigpt4-13b"][2]])
    refs = build_inputs(str(answers_dir / "llava-13b.jsonl"), texts, questions)
    assert refs.references[("mplug-owl-7b", 3)] == [texts["llava-13b"][3]]
    grades = pd.DataFrame(
        [("a", "llava-13b", 2, "A"), ("b", "llava-13b", 2, "A"), ("a", "minigpt4-13b", 2, "B"), ("a", "mplug-owl-7b", 3, "A")],
        columns=["annotator", "model_id", "question_id", "grade"],
    )
    path = write_grades_csv(grades, tmp_path / "g.csv")
    graded = build_inputs(f"graded:{path}", texts, questions)
    assert graded.references[("mplug-owl-7b", 2)] == [texts["llava-13b"][2]]
    assert graded.references[("llava-13b", 2)] == []  # never its own answer
    assert graded.references[("llava-13b", 3)] == [texts["mplug-owl-7b"][3]]
    assert graded.references[("llava-13b", 4)] == []


def test_cli_then_report_correlation(answers_dir, tmp_path, questions):
    out = tmp_path / "legacy"
    result = runner.invoke(
        app, ["legacy", "--data", str(data_dir()), "--answers", str(answers_dir), "--references", "leave-one-out", "--metrics", "bleu,rouge", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out / "legacy.csv")
    assert list(frame.columns) == ["model", "scope", "question_id", "n", "bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l"]
    assert (frame.scope == "answer").sum() == 3 * len(QIDS)
    meta = json.loads((out / "legacy.json").read_text())
    assert meta["metrics"] == ["bleu", "rouge"] and meta["references"] == "leave-one-out"

    grades = synthetic_grades([q for q in questions if q.question_id in QIDS], list(SOURCES), ["ann", "bob"], seed=2)
    csv = write_grades_csv(grades, tmp_path / "grades.csv")
    report = tmp_path / "report"
    result = runner.invoke(
        app, ["report", "--data", str(data_dir()), "--grades", str(csv), "--legacy", str(out / "legacy.csv"), "--out", str(report), "--bootstrap", "100"]
    )
    assert result.exit_code == 0, result.output
    corr = pd.read_csv(report / "correlation.csv")
    assert corr.metric.tolist() == ["bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l"]
    assert (corr.n == 3 * len(QIDS)).all()
    md = (report / "report.md").read_text()
    assert "Captioning metrics against human grades" in md and "rouge_l" in md
    assert "References: leave-one-out" in md


def test_cli_errors_write_nothing(answers_dir, tmp_path):
    out = tmp_path / "legacy"
    base = ["legacy", "--data", str(data_dir()), "--answers", str(answers_dir), "--out", str(out)]
    result = runner.invoke(app, [*base, "--references", "leave-one-out", "--metrics", "bleu,spice"])
    assert result.exit_code == 1 and "unknown metric" in result.output
    result = runner.invoke(app, [*base, "--references", "no/such/file.jsonl", "--metrics", "bleu"])
    assert result.exit_code == 1 and "not a file or folder" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("annotator,model_id,question_id,grade\na,llava-13b,2,Q\n")
    result = runner.invoke(app, [*base, "--references", f"graded:{bad}", "--metrics", "bleu"])
    assert result.exit_code == 1 and f"{bad}:2 [grade]" in result.output
    assert not out.exists()
