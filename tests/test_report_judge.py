"""`owleval report --judge`: agreement measures equal scikit-learn/scipy, bootstrap CIs, confusion counts, the
PPI table, the md/html sections (judge reasons escaped), unparsed counts, sampling design, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score
from typer.testing import CliRunner

from owleval.cli import app
from owleval.questions import load_questions
from owleval.report.judge import confusion_table, point_measures, weighted_measures

from tests.browser_helpers import CHROMIUM, launch_chromium
from tests.report_helpers import data_dir, sample_per_model, synthetic_grades, synthetic_judge, write_grades_csv, write_judge_folder

runner = CliRunner()
HOSTILE_REASON = "<script>window.__owned = 3</script> the answer | is [fine](javascript:x)"
MODELS = ["m-low", "m-mid", "m-high"]

# a hand-made comparison: 8 answers, human and judge scores (A=3 .. D=0)
HUMAN = np.array([3, 2, 2, 1, 0, 3, 1, 2])
JUDGE = np.array([3, 3, 2, 1, 1, 2, 1, 2])


def test_point_measures_equal_sklearn_and_scipy():
    got = point_measures(HUMAN, JUDGE)
    assert got["exact_agreement"] == pytest.approx(5 / 8)
    assert got["cohen_kappa"] == pytest.approx(cohen_kappa_score(HUMAN, JUDGE))
    assert got["cohen_kappa_quadratic"] == pytest.approx(cohen_kappa_score(HUMAN, JUDGE, weights="quadratic"))
    assert got["spearman"] == pytest.approx(spearmanr(HUMAN, JUDGE).statistic)
    assert got["mean_shift"] == pytest.approx((JUDGE.sum() - HUMAN.sum()) / 8)


def test_bootstrap_measures_equal_sklearn_on_the_resampled_answers():
    """A resample is a weight per answer; each measure must equal the library's on the expanded sample."""
    rng = np.random.default_rng(3)
    weights = rng.integers(0, 3, size=(5, HUMAN.size)).astype(float)
    weights[:, 0] += 1  # never empty
    got = weighted_measures(HUMAN, JUDGE, weights)
    for b, w in enumerate(weights.astype(int)):
        h, j = np.repeat(HUMAN, w), np.repeat(JUDGE, w)
        assert got["exact_agreement"][b] == pytest.approx(np.mean(h == j))
        assert got["cohen_kappa"][b] == pytest.approx(cohen_kappa_score(h, j, labels=[0, 1, 2, 3]))
        assert got["cohen_kappa_quadratic"][b] == pytest.approx(cohen_kappa_score(h, j, labels=[0, 1, 2, 3], weights="quadratic"))
        assert got["spearman"][b] == pytest.approx(spearmanr(h, j).statistic)
        assert got["mean_shift"][b] == pytest.approx(np.mean(j - h))


def test_confusion_counts():
    pairs = pd.DataFrame({"model_id": "m", "question_id": range(8), "human": HUMAN, "judge": JUDGE})
    table = confusion_table(pairs).set_index("human_grade")
    assert list(table.columns) == ["judge_A", "judge_B", "judge_C", "judge_D", "total"]
    assert table.loc["A"].tolist() == [1, 1, 0, 0, 2]  # human A: judge A once, B once
    assert table.loc["B"].tolist() == [1, 2, 0, 0, 3]
    assert table.loc["C"].tolist() == [0, 0, 2, 0, 2]
    assert table.loc["D"].tolist() == [0, 0, 1, 0, 1]
    assert int(table["total"].sum()) == 8


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Humans on 20 answers per model (3 annotators); the judge on every answer, 2 unparsed per model."""
    root = tmp_path_factory.mktemp("judge")
    questions = load_questions(data_dir())
    full = synthetic_grades(questions, MODELS, ["ann", "bob", "cy"], seed=5)
    judge, unparsed = synthetic_judge(full, checkpoint="gpt-test", seed=1, unparsed=2)
    humans = sample_per_model(full, 20, seed=2)
    medians = humans.assign(s=humans.grade.map({"A": 3, "B": 2, "C": 1, "D": 0})).groupby(["model_id", "question_id"]).s.median()
    low = medians[medians <= 1].index[0]  # a human C or D: the judge says A, with a hostile reason
    at = judge.index[(judge.model_id == low[0]) & (judge.question_id == low[1])][0]
    judge.loc[at, ["grade", "comment"]] = ["A", HOSTILE_REASON]
    return {
        "humans": write_grades_csv(humans, root / "humans.csv"),
        "judge": write_judge_folder(root / "gpt-test", judge, unparsed, failed=[{"model_id": "m-mid", "question_id": 82}]),
        "root": root,
    }


def invoke(*args: str):
    return runner.invoke(app, ["report", "--data", str(data_dir()), *args])


@pytest.fixture(scope="module")
def report_dir(inputs) -> Path:
    out = inputs["root"] / "report"
    result = invoke("--grades", str(inputs["humans"]), "--judge", str(inputs["judge"]), "--out", str(out), "--bootstrap", "300")
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "Human-anchored scores" in result.output and "PPI" in result.output  # the terminal shows the PPI table
    return out


def test_writes_the_judge_tables(report_dir, inputs):
    assert {"judge_agreement.csv", "judge_confusion.csv", "ppi.csv"} <= {p.name for p in report_dir.iterdir()}
    agreement = pd.read_csv(report_dir / "judge_agreement.csv")
    assert list(agreement.columns) == ["judge", "model", "measure", "value", "ci_low", "ci_high", "n"]
    assert set(agreement.judge) == {"gpt-test"}  # one judge: named by its folder, no combined rows
    assert set(agreement.model) == {*MODELS, "all"}
    assert set(agreement.measure) == {"exact_agreement", "cohen_kappa", "cohen_kappa_quadratic", "spearman", "mean_shift"}
    assert agreement.ci_low.notna().all() and (agreement.ci_low <= agreement.value + 1e-9).all() and (agreement.value <= agreement.ci_high + 1e-9).all()
    # recompute from the files: humans' lower median per answer against the judge, on answers with both
    humans = pd.read_csv(inputs["humans"])
    humans["s"] = humans.grade.map({"A": 3, "B": 2, "C": 1, "D": 0})
    med = humans.sort_values("s").groupby(["model_id", "question_id"]).s.apply(lambda s: s.iloc[(len(s) - 1) // 2]).rename("h")
    judge = pd.read_csv(inputs["judge"] / "grades.csv").assign(j=lambda f: f.grade.map({"A": 3, "B": 2, "C": 1, "D": 0}))
    both = judge.set_index(["model_id", "question_id"]).join(med, how="inner")
    everyone = agreement[agreement.model == "all"].set_index("measure")
    assert everyone.loc["cohen_kappa_quadratic", "value"] == pytest.approx(cohen_kappa_score(both.h, both.j, weights="quadratic"))
    assert everyone.loc["mean_shift", "value"] == pytest.approx((both.j - both.h).mean())
    assert everyone.loc["exact_agreement", "n"] == len(both)
    mid = agreement[(agreement.model == "m-mid") & (agreement.measure == "spearman")].iloc[0]
    part = both.loc["m-mid"]
    assert mid.value == pytest.approx(spearmanr(part.h, part.j).statistic) and mid.n == len(part)
    confusion = pd.read_csv(report_dir / "judge_confusion.csv").set_index("human_grade")
    assert list(confusion.columns) == ["judge", "judge_A", "judge_B", "judge_C", "judge_D", "total"]
    assert int(confusion.total.sum()) == len(both)
    assert confusion.loc["B", "judge_A"] == int(((both.h == 2) & (both.j == 3)).sum())
    ppi = pd.read_csv(report_dir / "ppi.csv")
    assert list(ppi.columns[:9]) == [
        "model", "metric", "estimate", "ci_low", "ci_high", "sample_ci_low", "sample_ci_high", "n_human", "n_judge",
    ]  # fmt: skip
    assert {"ppi_py_estimate", "ppi_py_ci_low", "ppi_py_ci_high", "human_only_estimate", "judge_only_estimate", "n_stand_in"} <= set(ppi.columns)
    assert len(ppi) == 2 * len(MODELS) and ppi.estimate.notna().all()
    for row in ppi.itertuples():
        assert row.n_judge == (judge.model_id == row.model).sum() == 80  # 82 answers, 2 unparsed
        assert row.n_human == len(both.loc[row.model])


def test_meta_records_the_judge_and_sampling(report_dir, inputs):
    meta = json.loads((report_dir / "report_meta.json").read_text())
    judge = meta["judge"]
    assert judge["annotator"] == "judge:gpt-test" and judge["source"] == str(inputs["judge"] / "grades.csv")
    assert judge["counts"] == {"judged": 240, "unparsed": 6, "failed": 1}
    assert judge["unparsed"] == 6 and judge["failed"] == 1
    assert meta["sampling"]["design"] is None and "uniform random sample" in meta["sampling"]["text"]


def test_markdown_has_the_judge_section(report_dir):
    md = (report_dir / "report.md").read_text()
    assert md.index("## Leaderboard") < md.index("## Judge vs humans") < md.index("## Human-anchored scores (PPI)")
    assert "Ranked by this strength, fitted to the human grades only" in md
    assert "| m-mid | 20 | 80 | 20 | 2 | 1 |" in md  # coverage: people, judge, both, unparsed, failed
    assert "left out of every judge table" in md
    assert "unknown: the grades come from a CSV" in md
    assert "<script>" not in md and "&lt;script&gt;" in md and "\\[fine\\]" in md


def test_html_has_the_judge_section_escaped(report_dir):
    html = (report_dir / "report.html").read_text()
    assert 'id="judge"' in html and 'id="ppi"' in html and 'class="confusion"' in html
    assert html.count('class="shift-chart"') == 1
    assert "&lt;script&gt;window.__owned = 3&lt;/script&gt;" in html
    assert "<script" not in html.replace("&lt;script", "")
    assert "https://" not in html


def test_without_meta_json_it_says_it_cannot_tell(inputs, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "judge.csv").write_bytes((inputs["judge"] / "grades.csv").read_bytes())
    out = tmp_path / "r"
    result = invoke("--grades", str(inputs["humans"]), "--judge", str(bare / "judge.csv"), "--out", str(out), "--bootstrap", "20", "--format", "md")
    assert result.exit_code == 0, result.output
    md = (out / "report.md").read_text()
    assert "Could not tell how many judge replies were unparsed or failed" in md
    assert "| m-mid | 20 | 80 | 20 | ? | ? |" in md


def _judge_with(tmp_path: Path, inputs, edit) -> Path:
    lines = (inputs["judge"] / "grades.csv").read_text().splitlines()
    edit(lines)
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "grades.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda lines: lines.__setitem__(6, lines[6].replace(",A,", ",E,").replace(",B,", ",E,").replace(",C,", ",E,").replace(",D,", ",E,")),
         "grades.csv:7 [grade]: error: 'E' is not a grade"),
        (lambda lines: lines.__setitem__(3, lines[3].replace("judge:gpt-test", "judge:other")), "holds one judge's grades, this one has 2"),
    ],
)
def test_bad_judge_input_fails_clearly_and_writes_nothing(inputs, tmp_path, edit, message):
    folder = _judge_with(tmp_path, inputs, edit)
    out = tmp_path / "r"
    result = invoke("--grades", str(inputs["humans"]), "--judge", str(folder), "--out", str(out))
    assert result.exit_code == 1, result.output
    assert message in " ".join(result.output.split()), result.output
    assert not out.exists()


def test_a_model_only_the_judge_graded_gets_a_judge_row_without_interval_or_rank(inputs, tmp_path):
    folder = _judge_with(tmp_path, inputs, lambda lines: lines.__setitem__(4, lines[4].replace(",m-", ",m-unknown-", 1)))
    out = tmp_path / "r"
    result = invoke("--grades", str(inputs["humans"]), "--judge", str(folder), "--out", str(out), "--bootstrap", "50", "--format", "csv")
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns) == ["model", "metric", "estimate", "ci_low", "ci_high", "source", "n_human", "n_judge", "rank", "rank_low",
                                    "rank_high", "note"]
    alone = scores[scores.model.str.startswith("m-unknown-")]
    assert len(alone) == 2 and (alone.source == "judge").all() and (alone.n_human == 0).all() and (alone.n_judge == 1).all()
    assert alone.ci_low.isna().all() and alone["rank"].isna().all() and alone.note.str.contains("no human grade").all()
    people = scores[scores.source == "ppi"]
    assert len(people) == 2 * len(MODELS) and people["rank"].notna().all() and people.ci_low.notna().all()


def test_soft_judge_scores_feed_ppi_and_bad_ones_are_named(inputs, tmp_path):
    judge = pd.read_csv(inputs["judge"] / "grades.csv")
    score = judge.grade.map({"A": 3.0, "B": 2.0, "C": 1.0, "D": 0.0})
    rng = np.random.default_rng(0)
    judge["judge_score"] = np.clip(score + rng.uniform(-0.4, 0.4, len(judge)), 0, 3).round(3)
    judge["p_acceptable"] = np.clip((score >= 2) * 0.8 + rng.uniform(0, 0.2, len(judge)), 0, 1).round(3)
    judge.loc[judge.index[:3], "judge_score"] = np.nan  # an empty cell: the letter stands
    folder = tmp_path / "soft"
    folder.mkdir()
    judge.to_csv(folder / "grades.csv", index=False)
    out = tmp_path / "r"
    result = invoke("--grades", str(inputs["humans"]), "--judge", str(folder), "--out", str(out), "--bootstrap", "50", "--format", "csv")
    assert result.exit_code == 0, result.output
    ppi = pd.read_csv(out / "ppi.csv").set_index(["model", "metric"])
    used = judge.judge_score.fillna(score)
    for model in MODELS:
        mine = judge.model_id == model
        assert ppi.loc[(model, "mean_score"), "judge_only_estimate"] == pytest.approx(used[mine].mean())
        assert ppi.loc[(model, "acceptable"), "judge_only_estimate"] == pytest.approx(judge.p_acceptable[mine].mean())
    assert json.loads((out / "report_meta.json").read_text())["judge"]["soft_scores"] == len(judge) - 3
    judge.loc[judge.index[5], "p_acceptable"] = 1.5
    judge.to_csv(folder / "grades.csv", index=False)
    bad = invoke("--grades", str(inputs["humans"]), "--judge", str(folder), "--out", str(tmp_path / "bad"))
    assert bad.exit_code == 1 and "grades.csv:7 [p_acceptable]" in " ".join(bad.output.split()), bad.output


def test_a_judge_that_graded_other_answer_texts_is_refused(inputs, tmp_path):
    import hashlib

    from owleval.questions import load_questions

    from tests.judge_helpers import write_answer_sets

    answers = tmp_path / "answers"
    write_answer_sets(answers, load_questions(data_dir()), {m: (lambda qid: "x") for m in MODELS})
    texts = {json.loads(line)["model_id"] + str(json.loads(line)["question_id"]): json.loads(line)["answer"]
             for m in MODELS for line in (answers / f"{m}.jsonl").read_text().splitlines()}  # fmt: skip
    folder = _judge_with(tmp_path, inputs, lambda lines: None)
    judged = pd.read_csv(folder / "grades.csv")

    def log(edited: str | None) -> None:
        records = []
        for k, r in enumerate(judged.itertuples()):
            text = texts[f"{r.model_id}{r.question_id}"]
            if edited and k == 7:
                text = edited
            records.append({"judgement": f"j{k}", "model_id": r.model_id, "question_id": int(r.question_id), "sample": 0, "samples": 1,
                            "final": True, "status": "parsed", "grade": r.grade, "reason": "", "at": "2024-02-01T00:00:00Z",
                            "answer_sha256": hashlib.sha256(text.encode()).hexdigest()})  # fmt: skip
        (folder / "raw.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    log(edited="the answer as it was when the judge read it")
    out = tmp_path / "r"
    bad = invoke("--grades", str(inputs["humans"]), "--answers", str(answers), "--judge", str(folder), "--out", str(out))
    row = judged.iloc[7]
    text = " ".join(bad.output.split())
    assert bad.exit_code == 1 and "raw.jsonl [answer_sha256]" in text and f"model '{row.model_id}' question {row.question_id}" in text, bad.output
    assert not out.exists()
    log(edited=None)
    ok = invoke("--grades", str(inputs["humans"]), "--answers", str(answers), "--judge", str(folder), "--out", str(out), "--bootstrap", "20",
                "--format", "csv")  # fmt: skip
    assert ok.exit_code == 0, ok.output


def test_a_judge_file_from_another_data_set_version_is_refused(inputs, tmp_path):
    from owleval.manifest import load_manifest

    folder = _judge_with(tmp_path, inputs, lambda lines: None)
    meta = {"counts": {"judged": 3}, "dataset": {"name": "owleval_82q", "version": "0123456789abcdef"}}
    (folder / "meta.json").write_text(json.dumps(meta))
    out = tmp_path / "r"
    result = invoke("--grades", str(inputs["humans"]), "--judge", str(folder), "--out", str(out))
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "meta.json [dataset.version]" in text and "0123456789abcdef" in text, result.output
    assert load_manifest().digest in text and not out.exists()
    meta["dataset"]["version"] = load_manifest().digest  # the same version: accepted
    (folder / "meta.json").write_text(json.dumps(meta))
    assert invoke("--grades", str(inputs["humans"]), "--judge", str(folder), "--out", str(out), "--bootstrap", "20", "--format", "csv").exit_code == 0


def test_missing_judge_file_and_bad_meta_fail_clearly(inputs, tmp_path):
    result = invoke("--grades", str(inputs["humans"]), "--judge", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r"))
    assert result.exit_code == 1 and "no such file" in result.output
    folder = _judge_with(tmp_path, inputs, lambda lines: None)
    (folder / "meta.json").write_text(json.dumps({"counts": {"judged": 3}, "unparsed": [{"model_id": "m-low", "question_id": 999}]}))
    result = invoke("--grades", str(inputs["humans"]), "--judge", str(folder), "--out", str(tmp_path / "r"))
    assert result.exit_code == 1 and "meta.json [unparsed[0]]" in " ".join(result.output.split())
    assert not (tmp_path / "r").exists()


def test_combine_all_uses_per_answer_means_for_ppi(inputs, tmp_path):
    out = tmp_path / "all"
    result = invoke("--grades", str(inputs["humans"]), "--judge", str(inputs["judge"]), "--out", str(out), "--combine", "all",
                    "--bootstrap", "20", "--format", "md,csv")  # fmt: skip
    assert result.exit_code == 0, result.output
    ppi = pd.read_csv(out / "ppi.csv").set_index(["model", "metric"])
    humans = pd.read_csv(inputs["humans"]).assign(s=lambda f: f.grade.map({"A": 3, "B": 2, "C": 1, "D": 0}))
    judged = set(map(tuple, pd.read_csv(inputs["judge"] / "grades.csv")[["model_id", "question_id"]].to_numpy()))
    per_answer = humans.groupby(["model_id", "question_id"]).s.mean()
    low = per_answer.loc["m-low"]
    kept = [v for q, v in low.items() if ("m-low", q) in judged]
    assert ppi.loc[("m-low", "mean_score"), "human_only_estimate"] == pytest.approx(np.mean(kept))
    assert "mean over its human ratings" in (out / "report.md").read_text()


def test_a_judge_sharing_no_answer_with_the_people_is_refused(inputs, tmp_path):
    humans = pd.read_csv(inputs["humans"])
    judge = pd.read_csv(inputs["judge"] / "grades.csv")
    graded = set(map(tuple, humans[["model_id", "question_id"]].to_numpy()))
    apart = judge[[(m, q) not in graded for m, q in judge[["model_id", "question_id"]].to_numpy()]]
    folder = tmp_path / "apart"
    folder.mkdir()
    apart.to_csv(folder / "grades.csv", index=False)
    result = invoke("--grades", str(inputs["humans"]), "--judge", str(folder), "--out", str(tmp_path / "r"))
    assert result.exit_code == 1 and "graded none of the answers people graded" in " ".join(result.output.split())
    assert not (tmp_path / "r").exists()


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium on PATH (apt-get install chromium)")
def test_judge_section_renders_in_chromium(report_dir):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p.chromium)
        try:
            page = browser.new_page()
            page.goto((report_dir / "report.html").as_uri())
            assert page.get_by_role("heading", name="Judge vs humans").is_visible()
            assert page.locator("table.confusion td.heat").count() == 16
            assert page.locator("svg.shift-chart circle").count() == len(MODELS)
            page.get_by_text("Largest disagreements").click()
            assert page.get_by_text("<script>window.__owned = 3</script>", exact=False).first.is_visible()
            assert page.evaluate("window.__owned === undefined")
        finally:
            browser.close()


def test_meta_json_with_counts_only_states_the_totals(inputs, tmp_path):
    folder = _judge_with(tmp_path, inputs, lambda lines: None)
    (folder / "meta.json").write_text(json.dumps({"counts": {"judged": 240, "unparsed": 4, "failed": 2}}))
    out = tmp_path / "r"
    result = invoke("--grades", str(inputs["humans"]), "--judge", str(folder), "--out", str(out), "--bootstrap", "20", "--format", "md,html")
    assert result.exit_code == 0, result.output
    for name in ("report.md", "report.html"):
        text = " ".join((out / name).read_text().split())
        assert "counts 4 unparsed and 2 failed judge replies in all, without listing which answers" in text, name


def test_a_model_with_one_human_grade_gets_no_ppi_and_the_reason(inputs, tmp_path):
    humans = pd.read_csv(inputs["humans"])
    judged = pd.read_csv(inputs["judge"] / "grades.csv")
    first = min(set(judged[judged.model_id == "m-low"].question_id) & set(humans[humans.model_id == "m-low"].question_id))
    humans = humans[(humans.model_id != "m-low") | (humans.question_id == first)]
    csv = write_grades_csv(humans, tmp_path / "few.csv")
    out = tmp_path / "r"
    result = invoke("--grades", str(csv), "--judge", str(inputs["judge"]), "--out", str(out), "--bootstrap", "20", "--format", "md,csv")
    assert result.exit_code == 0, result.output
    ppi = pd.read_csv(out / "ppi.csv").set_index(["model", "metric"])
    assert ppi.loc[("m-low", "mean_score"), ["ci_low", "ci_high", "sample_ci_low", "sample_ci_high"]].isna().all()
    assert ppi.loc[("m-mid", "mean_score"), ["estimate", "ci_low", "ci_high"]].notna().all()
    text = " ".join((out / "report.md").read_text().split())
    assert "m-low (mean_score): too few: 1 human-graded answer(s); an interval needs 10 or more to hold its level" in text
