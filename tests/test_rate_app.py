"""The grading app through streamlit's AppTest: sign-in, grading, changing a grade, resume, admin, blindness."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from owleval.study.export import current_grades_frame
from owleval.study.queue import load_queue
from owleval.study.store import Store
from owleval.questions import questions_by_id
from tests.grading_helpers import HOSTILE, MODELS, QIDS, bar_action, bar_data, make_study, page_text, send_bar_state, shown_answer
from tests.timing import budget

APP = str(Path(__file__).resolve().parent.parent / "owleval" / "rate.py")
N = len(MODELS) * len(QIDS)


@pytest.fixture
def study(tmp_path: Path, owl_data: Path, monkeypatch: pytest.MonkeyPatch):
    created = make_study(tmp_path, owl_data, ("ann", "bob"), seed=11)
    monkeypatch.setenv("OWLEVAL_RATE_DB", str(created.path))
    return created


def _signed_in(token: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=budget(30)).run()
    at.text_input(key="sign_in_token").input(token)
    at.button(key="sign_in_submit").click().run()
    assert not at.exception, at.exception
    return at


def _grade(at: AppTest, grade: str) -> int:
    return _act(at, "grade", grade)


def _act(at: AppTest, kind: str, grade: str | None = None) -> int:
    index = bar_action(at, kind, grade)
    assert not at.exception, at.exception
    return index


def _send(at: AppTest, pending: list[dict]) -> None:
    send_bar_state(at, pending)
    assert not at.exception, at.exception


def _events(db: Path) -> list[tuple]:
    store = Store(db)
    try:
        return [tuple(r) for r in store.conn.execute("SELECT n.name, e.grade, e.comment, e.flags FROM grade_events e JOIN annotators n USING (annotator_id) ORDER BY event_id")]
    finally:
        store.close()


def test_sign_in_needs_a_valid_token(study) -> None:
    at = AppTest.from_file(APP, default_timeout=budget(30)).run()
    at.text_input(key="sign_in_token").input(study.tokens["ann"][:-2] + "xx")
    at.button(key="sign_in_submit").click().run()
    assert [e.value for e in at.error] == ["That token is not valid for this study."]
    assert "annotator" not in at.session_state
    at = _signed_in(study.tokens["ann"])
    assert at.session_state["annotator"].name == "ann"
    assert at.subheader[0].value == f"Answer 1 of {N}"


def test_a_click_commits_the_grade_and_shows_the_next_answer(study) -> None:
    at = _signed_in(study.tokens["ann"])
    at.text_input(key="comment_0").input("  too short ")
    at.checkbox(key="flag_answer-cut-off_0").check()
    assert _grade(at, "C") == 0
    assert _events(study.path) == [("ann", "C", "too short", "answer-cut-off")]
    assert at.session_state["pos"] == 1
    assert at.subheader[0].value == f"Answer 2 of {N}"
    assert at.get("progress")[0].proto.text == f"1 of {N} graded"
    assert [t.value for t in at.toast] == ["Saved grade C for answer 1."]


def test_the_bars_actions_apply_once_each_in_the_order_they_were_made(study) -> None:
    at = _signed_in(study.tokens["ann"])
    shown = shown_answer(at)
    later = [{"seq": 2, "kind": "grade", "grade": "D", **shown}, {"seq": 3, "kind": "next", "grade": None, **shown}]
    _send(at, [*later, {"seq": 1, "kind": "grade", "grade": "A", **shown}])  # merged into one message, any order
    assert [e[1] for e in _events(study.path)] == ["A", "D"]  # both kept, the later one current
    assert bar_data(at)["applied"] == {"apptest": 3}
    assert at.session_state["pos"] == 1
    _send(at, [*later, {"seq": 1, "kind": "grade", "grade": "A", **shown}])  # sent again before the confirmation
    assert [e[1] for e in _events(study.path)] == ["A", "D"]
    assert at.session_state["pos"] == 1
    moved = {**shown_answer(at), "answer": shown["answer"]}  # a claim that answer 2's place holds answer 1
    _send(at, [{"seq": 4, "kind": "grade", "grade": "B", **moved}])
    assert [e[1] for e in _events(study.path)] == ["A", "D"]
    # shown in the bar's notice line, where it displaces nothing
    assert bar_data(at)["message"]["text"] == "Not saved: the study changed since this page was drawn; reload the page."
    assert not at.error


def test_changing_a_grade_keeps_the_old_one_in_history(study) -> None:
    at = _signed_in(study.tokens["bob"])
    _grade(at, "A")
    _act(at, "back")
    assert at.session_state["pos"] == 0
    assert bar_data(at)["grade"] == "A"  # the current grade is marked
    assert at.text_input(key="comment_0").value == ""
    at.text_input(key="comment_0").input("missed the second panel")
    _grade(at, "C")
    assert [e[1] for e in _events(study.path)] == ["A", "C"]
    frame = current_grades_frame(study.path)
    assert frame[["annotator", "grade", "comment"]].values.tolist() == [["bob", "C", "missed the second panel"]]
    _act(at, "back")
    assert any("changed 1 time" in c.value for c in at.caption)
    history = [t.value for t in at.expander[0].text]
    assert len(history) == 2 and "C  missed the second panel" in history[0] and history[1].endswith(" A")


def test_each_annotator_resumes_at_their_first_ungraded_answer(study) -> None:
    at = _signed_in(study.tokens["ann"])
    for _ in range(3):
        _grade(at, "B")
    _act(at, "next")  # looking at an answer is not grading it
    assert at.session_state["pos"] == 4
    again = _signed_in(study.tokens["ann"])  # a new session, as after a server restart
    assert again.session_state["pos"] == 3
    assert again.get("progress")[0].proto.text == f"3 of {N} graded"
    other = _signed_in(study.tokens["bob"])
    assert other.session_state["pos"] == 0, "another annotator's grades leaked into bob's progress"


def test_finishing_the_queue_says_so_and_allows_going_back(study) -> None:
    at = _signed_in(study.tokens["ann"])
    for _ in range(N):
        _grade(at, "D")
    assert at.success[0].value.startswith(f"All {N} answers are graded")
    at.button(key="nav_back_done").click().run()
    assert at.session_state["pos"] == N - 1


def test_next_on_the_last_answer_does_not_claim_all_are_graded(study) -> None:
    at = _signed_in(study.tokens["ann"])
    _grade(at, "A")
    at.session_state["pos"] = N - 1
    at.run()
    _act(at, "next")
    assert not at.success
    assert [i.value for i in at.info] == [f"That was the last answer in your queue; {N - 1} are still ungraded."]
    at.button(key="nav_first_ungraded").click().run()
    assert at.session_state["pos"] == 1
    assert at.subheader[0].value == f"Answer 2 of {N}"


def test_admin_page_needs_the_admin_token(study) -> None:
    at = _signed_in(study.tokens["ann"])
    _grade(at, "A")
    at.sidebar.radio(key="page").set_value("Admin").run()
    at.text_input(key="admin_token").input(study.tokens["ann"])
    at.button(key="admin_open").click().run()
    assert [e.value for e in at.error] == ["That is not this study's admin token."]
    assert not at.dataframe
    at.text_input(key="admin_token").input(study.admin_token)
    at.button(key="admin_open").click().run()
    per_annotator = at.dataframe[0].value
    assert per_annotator.set_index("annotator")[["graded", "assigned"]].to_dict("index") == {
        "ann": {"graded": 1, "assigned": N}, "bob": {"graded": 0, "assigned": N}}
    assert set(at.dataframe[1].value["model_id"]) == set(MODELS)


def test_the_annotator_screen_never_names_a_model_and_shows_answers_as_text(study) -> None:
    at = _signed_in(study.tokens["ann"])
    seen_hostile = False
    for pos in range(N):
        page = page_text(at._tree)
        for model in MODELS:
            assert model not in page, f"model name {model} on screen {pos}"
        if any(t.value == HOSTILE for t in at.text):
            seen_hostile = True
            assert not any("<script>" in m.value for m in at.markdown), "the answer went through Markdown"
        _act(at, "next")
    assert seen_hostile


def test_a_later_turn_shows_the_same_models_earlier_turns(study, owl_data: Path) -> None:
    at = _signed_in(study.tokens["ann"])
    store = Store(study.path)
    ann = at.session_state["annotator"].annotator_id
    target = next(i for i in load_queue(store, ann) if i.question_id == 8)
    at.session_state["pos"] = target.index
    at.run()
    texts = [t.value for t in at.text]
    prefix = target.model_id[:5]
    by_id = questions_by_id(owl_data)
    assert texts[:5] == [
        by_id[6].question, f"answer 6 by {prefix}",
        by_id[7].question, f"answer 7 by {prefix}",
        by_id[8].question,
    ]


def test_default_study_signs_in_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, owl_data: Path) -> None:
    monkeypatch.delenv("OWLEVAL_RATE_DB", raising=False)
    monkeypatch.setenv("OWLEVAL_DEFAULT_STUDY", str(tmp_path / "default.sqlite"))
    at = AppTest.from_file(APP, default_timeout=budget(60)).run()
    assert not at.exception, at.exception
    at.text_input(key="sign_in_name").input("Newcomer")
    at.button(key="sign_in_submit").click().run()
    assert at.subheader[0].value == "Answer 1 of 492"
    _grade(at, "B")
    assert _events(tmp_path / "default.sqlite") == [("Newcomer", "B", "", "")]


@pytest.mark.parametrize("mirror", ["http://owleval-mirror.invalid/owleval", "http://127.0.0.1:9/owleval"])
def test_first_run_without_data_or_network_shows_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mirror: str) -> None:
    """No data installed and the download host unreachable (a name that does not resolve; a refused port): an error
    on the page within 20 s naming the host and the command that installs from a folder, not an endless spinner."""
    import time

    monkeypatch.delenv("OWLEVAL_RATE_DB", raising=False)
    monkeypatch.setenv("OWLEVAL_DEFAULT_STUDY", str(tmp_path / "default.sqlite"))
    monkeypatch.setenv("OWLEVAL_DATA", str(tmp_path / "no-data-yet"))
    monkeypatch.setenv("OWLEVAL_MIRROR", mirror)
    started = time.monotonic()
    at = AppTest.from_file(APP, default_timeout=budget(30)).run()
    assert time.monotonic() - started < 20
    assert not at.exception, at.exception
    message = at.error[0].value
    host = mirror.split("/")[2].split(":")[0]
    assert f"cannot reach {host}" in message and "owleval data fetch --from DIR" in message, message
    assert not (tmp_path / "default.sqlite").exists() and not at.text_input
