"""What the server takes from the grade bar's state: a window's actions in sequence order; anything else ignored."""

from __future__ import annotations

from owleval.grading.gradebar import Action, pending_actions


def _raw(seq: int, kind: str = "grade", grade: str | None = "A", **extra) -> dict:
    return {"seq": seq, "kind": kind, "grade": grade, "index": 3, "answer": 17, "seen": 0, **extra}


def test_actions_come_in_the_order_the_window_made_them() -> None:
    state = {"actions": {"window": "w1", "attempt": 2, "pending": [_raw(3, "next", None), _raw(1), _raw(2, grade="D")]}}
    window, actions = pending_actions(state)
    assert window == "w1"
    assert actions == [Action(1, "grade", "A", 3, 17, 0), Action(2, "grade", "D", 3, 17, 0), Action(3, "next", None, 3, 17, 0)]


def test_malformed_state_from_the_browser_is_ignored() -> None:
    assert pending_actions(None) == (None, [])
    assert pending_actions({"actions": {"pending": [_raw(1)]}}) == (None, [])  # no window
    assert pending_actions({"actions": {"window": 5, "pending": [_raw(1)]}}) == (None, [])
    bad = [_raw(1, grade="E"), _raw(2, kind="delete"), {"seq": "x"}, _raw(3, index=None), "junk", _raw(4, grade="B")]
    window, actions = pending_actions({"actions": {"window": "w" * 500, "pending": bad}})
    assert len(window) == 64 and [a.seq for a in actions] == [4]
