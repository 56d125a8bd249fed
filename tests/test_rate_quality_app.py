"""The grading app's quality-control screens through AppTest: the paused sign-in, the Admin page's pause and resume,
onboarding feedback after onboarding items only, and nothing said after a failed check."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from owleval.study import pause
from owleval.study.queue import load_queue
from owleval.study.special import QcSettings
from owleval.study.store import Store
from owleval.study.manage import create_study
from tests.grading_helpers import MODELS, bar_action, bar_data, page_text, write_answer_files
from tests.qc_helpers import write_gold
from tests.timing import budget

APP = str(Path(__file__).resolve().parent.parent / "owleval" / "rate.py")


@pytest.fixture
def study(tmp_path: Path, owl_data: Path, monkeypatch: pytest.MonkeyPatch):
    answers = write_answer_files(tmp_path / "answers", owl_data)
    gold = write_gold(tmp_path / "gold.csv", [(1, MODELS[0], "B", "Right about the scene, vague on the details."), (6, MODELS[1], "D", "")])
    created = create_study(tmp_path / "study.sqlite", answers, annotators=("ann", "bob"), data_dir=owl_data, seed=5, gold=gold,
                           quality=QcSettings(gold_rate=0.0, onboarding=1, attention_checks=1))
    monkeypatch.setenv("OWLEVAL_RATE_DB", str(created.path))
    return created


def _sign_in(token: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=budget(30)).run()
    at.text_input(key="sign_in_token").input(token)
    at.button(key="sign_in_submit").click().run()
    assert not at.exception, at.exception
    return at


def _open_admin(at: AppTest, token: str) -> None:
    at.sidebar.radio(key="page").set_value("Admin").run()
    at.text_input(key="admin_token").input(token)
    at.button(key="admin_open").click().run()
    assert not at.exception, at.exception


def test_an_annotator_paused_on_the_admin_page_is_told_so_at_sign_in_and_resumed(study) -> None:
    admin = AppTest.from_file(APP, default_timeout=budget(30)).run()
    _open_admin(admin, study.admin_token)
    admin.selectbox(key="pause_annotator").set_value("bob")
    admin.button(key="pause_submit").click().run()  # no reason: refused
    assert any("say why" in e.value for e in admin.error)
    admin.text_input(key="pause_reason").input("fails the attention checks")
    admin.button(key="pause_submit").click().run()
    assert any("bob is paused" in s.value for s in admin.success)
    store = Store(study.path)
    log = pause.pause_frame(store)
    assert log[["annotator", "action", "by", "reason"]].values.tolist() == [
        ["bob", "paused", store.meta()["admin_token_id"], "fails the attention checks"]]
    at = _sign_in(study.tokens["bob"])
    assert [w.value for w in at.warning] == [pause.PAUSED_MESSAGE] and "Answer to grade" not in page_text(at._tree)
    assert "attention" not in page_text(at._tree) and "fails" not in page_text(at._tree), "no QC figure or reason"
    ann = _sign_in(study.tokens["ann"])
    assert not ann.warning and "Answer to grade" in page_text(ann._tree), "others grade on"
    pause.set_paused(store, "ann", True, "too fast", "admin-id")  # paused while signed in: the next run stops grading
    ann.run()
    assert [w.value for w in ann.warning] == [pause.PAUSED_MESSAGE] and "Answer to grade" not in page_text(ann._tree)
    admin.selectbox(key="pause_annotator").set_value("bob")
    admin.button(key="resume_submit").click().run()
    assert not pause.is_paused(store, 2)
    store.close()
    assert "Answer to grade" in page_text(_sign_in(study.tokens["bob"])._tree)


def test_onboarding_feedback_follows_an_onboarding_item_only(study) -> None:
    store = Store(study.path)
    ann = store.conn.execute("SELECT annotator_id FROM annotators WHERE name = 'ann'").fetchone()[0]
    queue = load_queue(store, ann)
    expected = dict(store.conn.execute("SELECT item_id, expected_grade FROM special_items WHERE annotator_id = ?", (ann,)).fetchall())
    store.close()
    assert queue[0].item_kind == "onboarding" and "attention" in {i.item_kind for i in queue}
    at = _sign_in(study.tokens["ann"])
    bar_action(at, "grade", "A")
    message = bar_data(at)["message"]  # in the grade bar's notice line, where it moves nothing on the page
    gold = expected[queue[0].item_id]
    assert message is not None and f"your grade A differs from the expected grade {gold}" in message["text"]
    assert ("vague on the details" in message["text"]) == (gold == "B")
    for item in queue[1:]:  # regular items, and the attention check graded wrong on purpose: nothing is said
        wrong = "B" if expected.get(item.item_id) == "A" else "A"
        assert bar_action(at, "grade", wrong) == item.index
        shown = bar_data(at)
        assert shown.get("message") is None or "expected" not in shown["message"]["text"], item.item_kind
        assert not at.error and not at.warning and not at.info, item.item_kind


def test_the_admin_page_shows_the_live_annotator_table_and_annotators_never_see_it(study) -> None:
    """The Admin page's table is the report's annotators.csv over the study as it stands: bob, who failed his
    attention check, has it counted there; his own screen shows nothing of it."""
    from owleval.screens.access import sign_in_with_token
    from owleval.study.queue import record_grade

    store = Store(study.path)
    bob = sign_in_with_token(store, study.tokens["bob"])
    for item in load_queue(store, bob.annotator_id):
        wrong = "A" if item.item_kind == "attention" else "B"
        record_grade(store, bob.annotator_id, item.answer_id, wrong, item_id=item.item_id)
    store.close()
    admin = AppTest.from_file(APP, default_timeout=budget(30)).run()
    _open_admin(admin, study.admin_token)
    assert any(s.value == "Annotators (quality control)" for s in admin.subheader)
    tables = [df.value for df in admin.dataframe if "qc_flags" in df.value.columns]
    assert len(tables) == 1
    row = tables[0].set_index("annotator").loc["bob"]
    assert row["n_grades"] >= 1 and row["checks_n"] == 1 and row["checks_failed"] == 1
    screen = _sign_in(study.tokens["bob"])
    assert "qc_flags" not in page_text(screen._tree) and "checks_failed" not in page_text(screen._tree)
