"""`owleval report` with annotator QC: --qc exclude writes both score files and lists every exclusion; special items
(gold, onboarding, attention, retest) never count as grades; old CSVs without the new columns give the same report;
--combine ds reaches PPI; --votes with --qc exclude; bad QC flags fail fast; --gold-counts refused for a sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from owleval.cli import app
from owleval.quality.dawid_skene import fit_dawid_skene, posterior_scores
from tests.report_helpers import data_dir, synthetic_judge, write_judge_folder

runner = CliRunner()
LETTERS = np.array(["D", "C", "B", "A"])
COLUMNS = ["annotator", "model_id", "question_id", "grade", "comment", "graded_at", "flags", "item_kind", "expected_grade"]


def _study_rows(seed: int = 0) -> pd.DataFrame:
    """3 models x 82 questions, 5 annotators, 3 per answer; "sam" gives B to everything; special rows on top."""
    rng = np.random.default_rng(seed)
    names = ["ann", "bob", "cy", "dee", "sam"]
    clock = dict.fromkeys(names, pd.Timestamp("2026-01-05T09:00:00Z"))
    rows = []
    for m, mu in enumerate((0.8, 1.5, 2.2)):
        for q in range(1, 83):
            true = int(np.clip(np.rint(rng.normal(mu, 0.9)), 0, 3))
            for name in rng.choice(names, size=3, replace=False):
                clock[name] += pd.Timedelta(seconds=float(rng.uniform(15, 40)))
                g = "B" if name == "sam" else LETTERS[int(np.clip(np.rint(true + rng.normal(0, 0.4)), 0, 3))]
                rows.append((name, f"m{m}", q, g, "", clock[name].isoformat(), "", "regular", ""))
    truth = {(r[1], r[2]): r[3] for r in rows if r[0] == "ann"}  # the expert agrees with ann
    gold = [key for key in truth if key[0] != "m2"][:10]
    for k, name in enumerate(names):  # special items: never grades of their answers
        at = (clock[name] + pd.Timedelta(minutes=5)).isoformat()
        for kind, (model, q) in (("gold", gold[2 * k]), ("onboarding", gold[2 * k + 1])):
            rows.append((name, model, q, "B" if name == "sam" else truth[(model, q)], "", at, "", kind, truth[(model, q)]))
        rows.append((name, "owleval:check", 10 + k, "B" if name == "sam" else "D", "", at, "", "attention", "D"))
        rows.append((name, "owleval:check", 20 + k, "B" if name == "sam" else "C", "", at, "", "attention", "C"))
    first = rows[0]
    rows.append((first[0], first[1], first[2], "A", "", first[5], "", "retest", ""))
    return pd.DataFrame(rows, columns=COLUMNS)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("qc")
    rows = _study_rows()
    rows.to_csv(root / "grades.csv", index=False)
    old = rows[rows["item_kind"] == "regular"].drop(columns=["item_kind", "expected_grade"])
    old.to_csv(root / "old.csv", index=False)
    return {"grades": root / "grades.csv", "old": root / "old.csv", "root": root}


def invoke(*args: str):
    result = runner.invoke(app, ["report", "--data", str(data_dir()), "--bootstrap", "100", "--format", "md,csv", *args])
    return result


def test_qc_exclude_writes_both_score_files_and_lists_the_exclusion(files):
    out = files["root"] / "exclude"
    result = invoke("--grades", str(files["grades"]), "--out", str(out), "--qc", "exclude")
    assert result.exit_code == 0, result.output + repr(result.exception)
    table = pd.read_csv(out / "annotators.csv", keep_default_na=False)
    assert list(table.columns)[-1] == "qc_flags" and len(table) == 5
    sam = table.set_index("annotator").loc["sam"]
    assert {"attention", "straight", "agreement"} <= set(sam.qc_flags.split(";")) and int(sam.checks_failed) == 2
    meta = json.loads((out / "report_meta.json").read_text())["qc"]
    assert meta["mode"] == "exclude" and [e["annotator"] for e in meta["excluded"]] == ["sam"]
    assert meta["excluded"][0]["figures"]["checks_failed"] == 2.0
    assert {r["name"]: r["direction"] for r in meta["rules"]}["agreement"] == "below"
    kept, everyone = pd.read_csv(out / "scores.csv"), pd.read_csv(out / "scores_without_qc.csv")
    assert not np.allclose(kept["estimate"], everyone["estimate"])  # sam's B's move the scores
    grades = pd.read_csv(files["grades"])
    regular = grades[grades["item_kind"] == "regular"]
    summary = pd.read_csv(out / "summary.csv").set_index("model")
    assert summary["n"].sum() == regular[regular.annotator != "sam"].drop_duplicates(["model_id", "question_id"]).shape[0]
    md = (out / "report.md").read_text()
    assert "## Annotators" in md and "with exclusions" in md and "without exclusions" in md


def test_special_items_never_count_and_an_old_csv_gives_the_same_scores(files):
    new, old = files["root"] / "new-off", files["root"] / "old-off"
    for src, out in ((files["grades"], new), (files["old"], old)):
        result = invoke("--grades", str(src), "--out", str(out), "--qc", "off")
        assert result.exit_code == 0, result.output + repr(result.exception)
    for name in ("summary.csv", "scores.csv", "agreement.csv"):
        assert (new / name).read_text() == (old / name).read_text(), name
    meta = json.loads((new / "report_meta.json").read_text())
    assert meta["n_ratings"] == int((pd.read_csv(files["grades"])["item_kind"] == "regular").sum())
    assert meta["qc"]["flagged"] == [] and not (new / "scores_without_qc.csv").exists()
    old_table = pd.read_csv(old / "annotators.csv")
    assert old_table["checks_n"].eq(0).all() and old_table["gold_mae"].isna().all()


def test_combine_ds_reaches_ppi_and_counts_are_expected_counts(files):
    grades = pd.read_csv(files["old"])
    judge, missing = synthetic_judge(grades, seed=1)
    folder = write_judge_folder(files["root"] / "judge", judge, unparsed=missing)
    out = files["root"] / "ds"
    result = invoke("--grades", str(files["old"]), "--judge", str(folder), "--out", str(out), "--combine", "ds")
    assert result.exit_code == 0, result.output + repr(result.exception)
    post = posterior_scores(fit_dawid_skene(grades))
    ppi = pd.read_csv(out / "ppi.csv")
    for model, part in post.groupby("model_id"):
        row = ppi[(ppi.model == model) & (ppi.metric == "mean_score")].iloc[0]
        assert row.human_only_estimate == pytest.approx(part["mean_score"].mean(), abs=1e-9)
        row = ppi[(ppi.model == model) & (ppi.metric == "acceptable")].iloc[0]
        assert row.human_only_estimate == pytest.approx(part["acceptable"].mean(), abs=1e-9)
    summary = pd.read_csv(out / "summary.csv")
    assert np.allclose(summary[["A", "B", "C", "D"]].sum(axis=1), summary["n"])
    assert not np.allclose(summary["A"], summary["A"].round())  # expected counts, not whole ones
    assert json.loads((out / "report_meta.json").read_text())["combine"] == "ds"
    raters = pd.read_csv(out / "annotators.csv").set_index("annotator")  # the judge is one more rater, kappa against the people
    assert raters.loc["judge:judge-test", "kappa_w"] > 0.5 and pd.isna(raters.loc["judge:judge-test", "median_seconds"])


def test_votes_with_qc_exclude_write_voters_and_arena_without_qc(files):
    rng = np.random.default_rng(2)
    rows = []
    for q in range(1, 41):
        for a, b in (("m0", "m1"), ("m0", "m2"), ("m1", "m2")):
            for who in ("v1", "v2", "v3", "lefty"):
                left = a if rng.random() < 0.5 else b
                winner = ("model_a" if left == a else "model_b") if who == "lefty" else ("model_b" if rng.random() < 0.75 else "model_a")
                rows.append((who, q, a, b, left, winner, "", "2026-01-01T00:00:00Z", "regular", ""))
    rows.append(("v1", 1, "m0", "m1", "m0", "model_a", "", "", "gold", "model_b"))
    votes = files["root"] / "votes.csv"
    pd.DataFrame(rows, columns=["annotator", "question_id", "model_a", "model_b", "left", "winner", "reason", "voted_at", "item_kind",
                                "expected_winner"]).to_csv(votes, index=False)  # fmt: skip
    out = files["root"] / "votes-out"
    result = invoke("--votes", str(votes), "--out", str(out), "--qc", "exclude")
    assert result.exit_code == 0, result.output + repr(result.exception)
    voters = pd.read_csv(out / "voters.csv", keep_default_na=False).set_index("annotator")
    assert "vote_position" in voters.loc["lefty", "qc_flags"] and int(voters.loc["v1", "gold_n"]) == 2  # its gold-row vote and its regular vote on that pair
    assert (out / "arena_without_qc.csv").is_file()
    arena = pd.read_csv(out / "arena.csv")
    assert arena["n_human_votes"].sum() == 2 * 3 * 3 * 40  # v1-v3 regular votes only: the gold row and lefty are out
    meta = json.loads((out / "report_meta.json").read_text())
    assert [e["annotator"] for e in meta["vote_qc"]["excluded"]] == ["lefty"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--qc", "strict"], "--qc 'strict'"),
        (["--qc-rule", "gold"], "NAME=THRESHOLD"),
        (["--qc-rule", "nonsense=1"], "no such rule"),
        (["--exclude-annotators", "zed"], "no grades or votes by 'zed'"),
    ],
)
def test_bad_qc_options_fail_fast(files, args, message):
    result = invoke("--grades", str(files["old"]), "--out", str(files["root"] / "bad"), *args)
    assert result.exit_code != 0 and message in result.output
    assert not (files["root"] / "bad").exists()


def test_gold_counts_is_refused_for_a_sampled_study(tmp_path, owl_data):
    from owleval.study.manage import create_study
    from tests.grading_helpers import MODELS, write_answer_files

    answers = write_answer_files(tmp_path / "answers", owl_data, MODELS, tuple(range(1, 83)))
    study = create_study(tmp_path / "s.sqlite", answers, annotators=("ann",), seed=1, data_dir=owl_data, sample_size=3)
    from owleval.screens.access import sign_in_with_token
    from owleval.study.queue import load_queue, record_grade
    from owleval.study.store import Store

    store = Store(study.path)
    who = sign_in_with_token(store, study.tokens["ann"])
    for item in load_queue(store, who.annotator_id):
        record_grade(store, who.annotator_id, item.answer_id, "B")
    store.close()
    gold = tmp_path / "gold.csv"
    gold.write_text(f"question_id,model_id,grade\n1,{MODELS[0]},A\n")
    result = runner.invoke(app, ["report", "--grades", str(study.path), "--gold", str(gold), "--gold-counts", "--out", str(tmp_path / "r"),
                                 "--data", str(owl_data), "--bootstrap", "10"])  # fmt: skip
    assert result.exit_code != 0 and "sampled study" in result.output


def test_gold_file_sets_the_gold_figures_and_gold_counts_adds_the_expert_grade(files):
    grades = pd.read_csv(files["old"])
    first = grades.drop_duplicates(["model_id", "question_id"]).head(12)
    gold = files["root"] / "gold.csv"
    first.assign(grade="A", note="expert")[["question_id", "model_id", "grade", "note"]].to_csv(gold, index=False)
    out = files["root"] / "gold-out"
    result = invoke("--grades", str(files["old"]), "--gold", str(gold), "--gold-counts", "--qc", "off", "--out", str(out))
    assert result.exit_code == 0, result.output + repr(result.exception)
    table = pd.read_csv(out / "annotators.csv").set_index("annotator")
    keys = grades.merge(first[["model_id", "question_id"]])
    assert table["gold_n"].to_dict() == {k: int((keys.annotator == k).sum()) for k in table.index}
    meta = json.loads((out / "report_meta.json").read_text())
    assert meta["n_ratings"] == len(grades) + 12 and meta["qc"]["gold_counts"] and "gold:expert" in meta["annotators"]
    bad = files["root"] / "bad-gold.csv"
    bad.write_text("question_id,model_id,grade\n1,m0,E\n")
    result = invoke("--grades", str(files["old"]), "--gold", str(bad), "--out", str(files["root"] / "bad-gold"))
    assert result.exit_code != 0 and "bad-gold.csv:2 [grade]" in result.output


def test_annotators_section_escapes_names_and_needs_no_script(files):
    grades = pd.read_csv(files["old"])
    grades.loc[grades.annotator == "sam", "annotator"] = "<script>alert(1)</script>"
    hostile = files["root"] / "hostile.csv"
    grades.to_csv(hostile, index=False)
    out = files["root"] / "hostile-out"
    result = runner.invoke(app, ["report", "--data", str(data_dir()), "--bootstrap", "50", "--format", "html", "--grades", str(hostile),
                                 "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    html = (out / "report.html").read_text()
    assert 'id="annotators"' in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script" not in html
