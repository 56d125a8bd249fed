"""`owleval report` end to end: files written, counts carried through, bad input writes nothing, HTML renders."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from owleval.cli import app
from owleval.manifest import load_manifest
from owleval.questions import load_questions

from tests.browser_helpers import CHROMIUM, launch_chromium
from tests.report_helpers import data_dir, synthetic_grades, write_grades_csv

runner = CliRunner()
HOSTILE_MODEL = "<img src=x onerror=window.__owned=1>|x\u202eled"  # U+202E: reads as "del" unless shown
HOSTILE_COMMENT = "<script>window.__owned = 2</script> looks | fine"


@pytest.fixture(scope="module")
def grades_csv(tmp_path_factory) -> Path:
    questions = load_questions(data_dir())
    frame = synthetic_grades(questions, ["m-low", "m-mid", "m-high"], ["ann", "bob", "cy"], seed=4, coverage=0.8)
    hostile = frame[frame.model_id == "m-mid"].copy()
    hostile["model_id"] = HOSTILE_MODEL
    frame = pd.concat([frame, hostile], ignore_index=True)
    frame.loc[frame.index[-1], "comment"] = HOSTILE_COMMENT
    return write_grades_csv(frame, tmp_path_factory.mktemp("grades") / "grades.csv")


def invoke(*args: str):
    return runner.invoke(app, ["report", "--data", str(data_dir()), *args])


@pytest.fixture(scope="module")
def report_dir(grades_csv, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reports") / "study1"
    result = invoke("--grades", str(grades_csv), "--out", str(out), "--bootstrap", "300", "--seed", "1")
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out


def test_writes_every_file_with_counts_from_the_grades(report_dir, grades_csv):
    names = {p.name for p in report_dir.iterdir()}
    assert names == {
        "report.md", "report.html", "report_meta.json", "summary.csv", "summary_single_turn.csv", "summary_multi_turn.csv",
        "by_ability.csv", "pairwise.csv", "leaderboard.csv", "agreement.csv", "scores.csv", "annotators.csv",
    }  # fmt: skip
    summary = pd.read_csv(report_dir / "summary.csv")
    # scores.csv without a judge: the summary table's estimates and intervals, source human, ranked by interval
    scores = pd.read_csv(report_dir / "scores.csv").set_index(["metric", "model"])
    for row in summary.itertuples():
        for metric in ("mean_score", "acceptable"):
            quoted = scores.loc[(metric, row.model)]
            assert quoted.source == "human" and quoted.n_human == row.n_answers and pd.isna(quoted.n_judge)
            assert (quoted.estimate, quoted.ci_low, quoted.ci_high) == (getattr(row, metric), getattr(row, f"{metric}_ci_low"), getattr(row, f"{metric}_ci_high"))
            above = summary[summary[f"{metric}_ci_low"] > getattr(row, f"{metric}_ci_high")]
            assert quoted["rank"] == 1 + len(above)
    assert list(summary.columns[:6]) == ["model", "n", "A", "B", "C", "D"]
    grades = pd.read_csv(grades_csv)
    # the lower median per answer, counted independently of the package
    ordered = grades.assign(s=grades.grade.map({"A": 3, "B": 2, "C": 1, "D": 0})).sort_values("s")
    medians = ordered.groupby(["model_id", "question_id"]).s.apply(lambda s: s.iloc[(len(s) - 1) // 2])
    for row in summary.itertuples():
        counts = medians.loc[row.model].value_counts()
        assert (row.A, row.B, row.C, row.D) == tuple(int(counts.get(s, 0)) for s in (3, 2, 1, 0))
        assert row.n == 82
    agreement = pd.read_csv(report_dir / "agreement.csv")
    assert list(agreement.columns) == ["measure", "annotators", "value", "n"]
    assert set(agreement.measure) == {
        "cohen_kappa", "cohen_kappa_quadratic", "fleiss_kappa", "krippendorff_alpha_ordinal", "krippendorff_alpha_nominal", "percent_agreement",
    }  # fmt: skip
    assert set(agreement.annotators) == {"ann|bob", "ann|cy", "bob|cy", "all"}
    assert len(pd.read_csv(report_dir / "pairwise.csv")) == 6  # 4 models
    assert pd.read_csv(report_dir / "leaderboard.csv")["rank"].tolist() == [1, 2, 3, 4]
    meta = json.loads((report_dir / "report_meta.json").read_text())
    assert meta["dataset_version"] == load_manifest().digest and meta["combine"] == "median" and meta["bootstrap"] == 300


def test_markdown_states_version_rule_and_escapes_untrusted_text(report_dir):
    md = (report_dir / "report.md").read_text()
    assert load_manifest().digest in md
    assert "median of the grades" in md and "lower of the two middle grades" in md
    assert md.index("## Annotator agreement") < md.index("## All questions")
    assert "| m-high | 82 |" in md
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "\\|x" in md  # a pipe in a model name does not split the table cell


def test_html_is_self_contained_and_escaped(report_dir):
    html = (report_dir / "report.html").read_text()
    assert "<script" not in html.replace("&lt;script", "")
    assert "onerror=window" not in html.replace("&lt;img src=x onerror=window", "")
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html
    assert html.count('class="stacked-chart"') == 1 + 2 + 6 + 1  # + the per-annotator grade distribution
    assert "\u202e" not in html and "x[U+202E]led" in html  # a bidi control shows as a marker


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium on PATH (apt-get install chromium)")
def test_html_renders_charts_in_chromium(report_dir):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p.chromium)
        try:
            page = browser.new_page()
            page.goto((report_dir / "report.html").as_uri())
            assert page.locator("svg.stacked-chart").count() == 1 + 2 + 6 + 1  # + the per-annotator grade distribution
            assert page.locator("svg.interval-chart circle").count() == 4
            first = page.locator("#summary + p + div.charts svg.stacked-chart")  # the summary chart (the annotators chart comes earlier)
            assert first.is_visible()
            box = first.bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 100
            # 4 models x 4 grades of bars, plus 4 legend swatches
            assert first.locator("rect").count() == 4 * 4 + 4
            assert page.evaluate("window.__owned === undefined")
            assert page.get_by_role("heading", name="Annotator agreement").is_visible()
        finally:
            browser.close()


def test_bad_grades_write_nothing(grades_csv, tmp_path):
    bad = tmp_path / "bad.csv"
    lines = grades_csv.read_text().splitlines()
    lines[5] = lines[5].replace(",A,", ",F,").replace(",B,", ",F,").replace(",C,", ",F,").replace(",D,", ",F,")
    bad.write_text("\n".join(lines) + "\n")
    out = tmp_path / "reports" / "bad"
    result = invoke("--grades", str(bad), "--out", str(out))
    assert result.exit_code == 1
    assert f"{bad}:6 [grade]" in result.output
    assert not out.exists()
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").iterdir())


def test_model_absent_from_answers_is_an_error(grades_csv, tmp_path, published_answers_dir):
    out = tmp_path / "out"
    result = invoke("--grades", str(grades_csv), "--answers", str(published_answers_dir), "--out", str(out))
    assert result.exit_code == 1
    assert "'m-low' is not among the answers" in result.output and f"{grades_csv}:" in result.output
    assert not out.exists()


def test_published_model_names_pass_the_answers_check(tmp_path, published_answers_dir):
    questions = load_questions(data_dir())
    frame = synthetic_grades(questions, ["llava-13b", "mm-react"], ["solo"], seed=0)
    csv = write_grades_csv(frame, tmp_path / "g.csv")
    out = tmp_path / "r"
    result = invoke("--grades", str(csv), "--answers", str(published_answers_dir), "--out", str(out), "--format", "md", "--bootstrap", "50")
    assert result.exit_code == 0, repr(result.exception)
    assert {p.name for p in out.iterdir()} == {"report.md", "report_meta.json"}
    assert "agreement cannot be measured" in (out / "report.md").read_text()


def test_existing_output_needs_overwrite_and_all_rule_is_stated(grades_csv, tmp_path):
    out = tmp_path / "r"
    assert invoke("--grades", str(grades_csv), "--out", str(out), "--format", "csv", "--bootstrap", "20").exit_code == 0
    again = invoke("--grades", str(grades_csv), "--out", str(out), "--format", "md", "--combine", "all", "--bootstrap", "20")
    assert again.exit_code == 1 and "--overwrite" in again.output
    assert (out / "summary.csv").exists()
    again = invoke("--grades", str(grades_csv), "--out", str(out), "--format", "md", "--combine", "all", "--bootstrap", "20", "--overwrite")
    assert again.exit_code == 0
    assert {p.name for p in out.iterdir()} == {"report.md", "report_meta.json"}  # replaced as a whole
    assert "Every rating counts as one observation" in (out / "report.md").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["r"]  # no staging folder left behind


def test_bad_options_are_clear(grades_csv, tmp_path):
    assert "unknown format" in invoke("--grades", str(grades_csv), "--out", str(tmp_path / "x"), "--format", "pdf").output
    assert "unknown combine rule" in invoke("--grades", str(grades_csv), "--out", str(tmp_path / "x"), "--combine", "mean").output
    assert not (tmp_path / "x").exists()


def test_grading_database_input(tmp_path):
    from owleval.screens.access import sign_in_with_token
    from owleval.study.queue import load_queue, record_grade
    from owleval.study.store import Store

    from tests.grading_helpers import make_study

    study = make_study(tmp_path, data_dir(), annotators=("ann", "bob"))
    store = Store(study.path)
    expected: dict[tuple[str, int], str] = {}
    for name, token in study.tokens.items():
        annotator = sign_in_with_token(store, token)
        for item in load_queue(store, annotator.annotator_id):
            grade = "ABCD"[(item.question_id + len(item.model_id)) % 4]
            record_grade(store, annotator.annotator_id, item.answer_id, "D")  # replaced by the next one
            record_grade(store, annotator.annotator_id, item.answer_id, grade, comment=f"{name} says {grade}")
            expected[(item.model_id, item.question_id)] = grade
    store.close()
    out = tmp_path / "dbreport"
    result = invoke("--grades", str(study.path), "--out", str(out), "--bootstrap", "50")
    assert result.exit_code == 0, repr(result.exception)
    summary = pd.read_csv(out / "summary.csv").set_index("model")
    for model in summary.index:
        letters = [g for (m, _), g in expected.items() if m == model]
        assert [summary.loc[model, g] for g in "ABCD"] == [letters.count(g) for g in "ABCD"]
    agreement = pd.read_csv(out / "agreement.csv")
    assert agreement.query("measure == 'percent_agreement' and annotators == 'all'").value.item() == 1.0


def _markdown_cell_text(cell: str) -> str:
    """What a CommonMark renderer shows for ``cell``; fails on a character that would split it or make a link."""
    shown, i = [], 0
    while i < len(cell):
        if cell[i] == "\\" and i + 1 < len(cell) and not cell[i + 1].isalnum() and not cell[i + 1].isspace():
            shown.append(cell[i + 1])
            i += 2
            continue
        assert cell[i] not in "|[]", f"unescaped {cell[i]!r} in {cell!r}"
        shown.append(cell[i])
        i += 1
    return "".join(shown)


@pytest.mark.parametrize(
    "text",
    ["m\\|x", "a|b", "![t](https://example.com/p.png)", "[click](javascript:alert(1))", "back\\slash\\", "two\nlines\tand  tabs"],
)
def test_markdown_cells_show_untrusted_text_as_itself(text):
    from owleval.report.render_format import md_cell

    assert _markdown_cell_text(md_cell(text)) == " ".join(text.split())


def test_overwrite_replaces_only_a_folder_owleval_wrote(grades_csv, tmp_path):
    mine = tmp_path / "paper"
    mine.mkdir()
    (mine / "draft.tex").write_text("months of work")
    result = invoke("--grades", str(grades_csv), "--out", str(mine), "--format", "csv", "--bootstrap", "0", "--overwrite")
    assert result.exit_code == 1 and "no owleval report or legacy run wrote" in result.output
    assert [p.name for p in mine.iterdir()] == ["draft.tex"] and (mine / "draft.tex").read_text() == "months of work"


def test_no_bootstrap_gives_point_values_without_intervals(grades_csv, report_dir, tmp_path):
    out = tmp_path / "noboot"
    result = invoke("--grades", str(grades_csv), "--out", str(out), "--format", "csv", "--bootstrap", "0")
    assert result.exit_code == 0, repr(result.exception)
    for name, point, low in (("summary", "acceptable", "acceptable_ci_low"), ("pairwise", "mean_diff", "mean_diff_ci_low"),
                             ("leaderboard", "strength", "strength_ci_low")):  # fmt: skip
        plain, booted = pd.read_csv(out / f"{name}.csv"), pd.read_csv(report_dir / f"{name}.csv")
        assert plain[low].isna().all(), name
        assert plain[point].tolist() == pytest.approx(booted[point].tolist()), name


def test_scores_and_leaderboard_carry_rank_intervals_in_estimate_order(report_dir):
    """Rows by metric then estimate; each ranked row's rank interval is drawn from the same image bootstrap, so a model
    clearly ahead has [1, 1] and the interval always lies within the ranked models."""
    scores = pd.read_csv(report_dir / "scores.csv")
    assert scores["metric"].tolist() == ["mean_score"] * 4 + ["acceptable"] * 4
    for _, part in scores.groupby("metric", sort=False):
        assert part["estimate"].is_monotonic_decreasing
        assert ((part["rank_low"] >= 1) & (part["rank_low"] <= part["rank_high"]) & (part["rank_high"] <= len(part))).all()
    meta = json.loads((report_dir / "report_meta.json").read_text(encoding="utf-8"))
    assert "image-bootstrap resamples" in meta["ranks"]["rank_interval_scores"]
    board = pd.read_csv(report_dir / "leaderboard.csv")
    assert list(board.columns[:4]) == ["rank", "rank_low", "rank_high", "model"]
    ranked = board[board["rank"].notna()]
    assert ((ranked["rank_low"] <= ranked["rank_high"]) & (ranked["rank_high"] <= len(ranked))).all()
    md = (report_dir / "report.md").read_text(encoding="utf-8")
    assert "95% interval of the model's rank over resamples" in md and "The leaderboard below ranks the same models" in md


def test_terminal_tables_keep_every_value_whole_at_80_columns(grades_csv, tmp_path, monkeypatch):
    """At 80 columns a table that does not fit is stacked (one block per row), never cut or folded mid-number."""
    monkeypatch.setenv("COLUMNS", "80")
    out = tmp_path / "narrow"
    result = invoke("--grades", str(grades_csv), "--out", str(out), "--bootstrap", "100", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    from owleval.report.render import scores_rows

    for row in scores_rows(pd.read_csv(out / "scores.csv")):
        assert f"estimate [95% CI]: {row['text']}" in result.output and f"rank range: {row['range_text']}" in result.output
