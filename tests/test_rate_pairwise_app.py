"""The pairwise voting screen through streamlit's AppTest: blind page, votes applied once each to the pair shown,
in order; and the grade bar's choices kept apart (a vote is no grade, a grade no vote)."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from owleval.screens import gradebar
from owleval.study.store import Store
from owleval.study.manage import create_study
from owleval.study.pairs import PairDesign
from owleval.study.pair_queue import load_pair_queue
from owleval.screens.pairwise_page import VOTE_BAR
from tests.grading_helpers import MODELS, QIDS, bar_action, bar_data, page_text, send_bar_state, shown_answer, write_answer_files
from tests.timing import budget

APP = str(Path(__file__).resolve().parent.parent / "owleval" / "rate.py")


@pytest.fixture
def study(tmp_path: Path, owl_data: Path, monkeypatch: pytest.MonkeyPatch):
    answers = write_answer_files(tmp_path / "answers", owl_data, MODELS, QIDS)
    created = create_study(tmp_path / "pairs.sqlite", answers, annotators=["ann"], data_dir=owl_data, seed=4,
                           pairwise=PairDesign("all"))
    monkeypatch.setenv("OWLEVAL_RATE_DB", str(created.path))
    return created


def _signed_in(token: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=budget(30)).run()
    at.text_input(key="sign_in_token").input(token)
    at.button(key="sign_in_submit").click().run()
    assert not at.exception, at.exception
    return at


def _queue_and_votes(db: Path):
    store = Store(db)
    try:
        who = store.conn.execute("SELECT annotator_id FROM annotators").fetchone()[0]
        votes = [tuple(r) for r in store.conn.execute("SELECT pair_id, winner, reason FROM vote_events ORDER BY event_id")]
        return load_pair_queue(store, who), votes
    finally:
        store.close()


def test_the_page_is_blind_and_a_vote_lands_once_on_the_pair_shown(study) -> None:
    at = _signed_in(study.tokens["ann"])
    queue, _ = _queue_and_votes(study.path)
    total = len(queue)
    assert at.subheader[0].value == f"Pair 1 of {total}"
    sent = page_text(at._tree)
    assert not [w for w in (*MODELS, ".jsonl", "model_a", "model_b") if w in sent]
    assert shown_answer(at)["answer"] == queue[0].view_id and bar_data(at)["index"] == 0

    at.text_input(key="reason_0").input("  clearer  ")
    bar_action(at, "grade", "right")
    first = queue[0]
    right_model = first.model_b if first.left_model == first.model_a else first.model_a
    winner = "model_a" if right_model == first.model_a else "model_b"
    assert _queue_and_votes(study.path)[1] == [(first.pair_id, winner, "clearer")]
    assert at.subheader[0].value == f"Pair 2 of {total}"
    assert at.get("progress")[0].proto.text == f"1 of {total} voted"
    assert [t.value for t in at.toast] == ["Saved vote “Right is better” for pair 1."]

    # the same list again (a resend): nothing new; a tie on pair 2 and Back, in the order made
    pending = at.__dict__["_bar_actions"]
    send_bar_state(at, list(pending))
    assert len(_queue_and_votes(study.path)[1]) == 1
    bar_action(at, "grade", "tie")
    bar_action(at, "back")
    assert at.subheader[0].value == f"Pair 2 of {total}"
    assert _queue_and_votes(study.path)[1][1] == (queue[1].pair_id, "tie", "")
    assert bar_data(at)["grade"] == "tie"


def test_an_action_for_a_pair_no_longer_at_its_place_is_refused(study) -> None:
    at = _signed_in(study.tokens["ann"])
    queue, _ = _queue_and_votes(study.path)
    shown = shown_answer(at)
    send_bar_state(at, [{"seq": 1, "kind": "grade", "grade": "left", **shown, "answer": queue[1].view_id}])
    assert _queue_and_votes(study.path)[1] == []
    # shown in the bar's notice line, where it displaces nothing
    assert bar_data(at)["message"]["text"] == "Not saved: the study changed since this page was drawn; reload the page."
    assert not at.error


def test_each_bar_takes_only_its_own_choices() -> None:
    def state(choice: str) -> dict:
        return {"actions": {"window": "w", "pending": [{"seq": 1, "kind": "grade", "grade": choice, "index": 0,
                                                        "answer": 1, "seen": 0}]}}

    assert [a.grade for a in gradebar.pending_actions(state("left"), VOTE_BAR.choices)[1]] == ["left"]
    assert gradebar.pending_actions(state("A"), VOTE_BAR.choices)[1] == []
    assert gradebar.pending_actions(state("left"))[1] == [], "the A-D bar takes no vote"
    assert [a.grade for a in gradebar.pending_actions(state("B"))[1]] == ["B"]


def test_the_admin_page_counts_votes_per_annotator_and_model_pair(study) -> None:
    at = _signed_in(study.tokens["ann"])
    bar_action(at, "grade", "left")
    admin = AppTest.from_file(APP, default_timeout=budget(30)).run()
    admin.sidebar.radio(key="page").set_value("Admin").run()
    admin.text_input(key="admin_token").input(study.admin_token)
    admin.button(key="admin_open").click().run()
    assert not admin.exception, admin.exception
    per_annotator, per_pair = (d.value for d in admin.dataframe[:2])
    total = len(_queue_and_votes(study.path)[0])
    assert total == 12, "question 32: the same text from every model, a tie nobody is asked"
    assert per_annotator.values.tolist() == [["ann", 1, total]]
    assert sorted(per_pair["model pair"]) == [f"{a} vs {b}" for a, b in combinations(sorted(MODELS), 2)]
    assert per_pair["voted"].sum() == 1 and set(per_pair["assigned"]) == {4}
