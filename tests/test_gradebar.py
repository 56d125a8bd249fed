"""What the server takes from the grade bar's state: a window's actions in sequence order; anything else ignored."""

from __future__ import annotations

from owleval.screens.gradebar import Action, pending_actions


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


def test_owner_keys_tell_people_and_studies_apart_without_naming_them() -> None:
    from owleval.screens.gradebar import owner_key

    keys = {owner_key("/srv/a.sqlite", 1), owner_key("/srv/a.sqlite", 2), owner_key("/srv/b.sqlite", 1)}
    assert len(keys) == 3 and owner_key("/srv/a.sqlite", 1) in keys
    assert all("srv" not in key and len(key) == 20 for key in keys)


def test_each_run_with_errors_gives_the_bar_a_new_message() -> None:
    from owleval.screens.gradebar import flash_message

    ss: dict = {}
    assert flash_message(ss, []) is None
    first, second = flash_message(ss, ["Not saved: a.", "Not saved: b."]), flash_message(ss, ["Not saved: a."])
    assert first == (1, "Not saved: a. Not saved: b.") and second == (2, "Not saved: a.")
