"""What the A-D and the pairwise screens share: walking a person's queue with the bar, recording one of the bar's
actions, and the texts of earlier turns and of the person's own history on an item."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import streamlit as st

from owleval.errors import OwlEvalError
from owleval.screens import gradebar
from owleval.study.queue import EarlierTurn, next_open
from owleval.textsafety import mark_format_chars as shown

T = TypeVar("T")
#: ``ss.pos`` once the person is past the last item (the end screen)
DONE = -1
Flash = tuple[str, str]


@dataclass(frozen=True)
class QueueWords:
    """How a screen names its items and their state on the progress bar and the end screen."""

    item: str  # "answer" / "pair"
    done: str  # "graded" / "voted"
    all_done: str  # the end screen's thanks, with {total}
    left_over: str  # the end screen when some are open, with {left}
    first_open: str  # the label of the button to the first open item
    first_open_key: str  # its key


def go(pos: int) -> None:
    st.session_state.pos = pos


def walk(items: Sequence[T], is_open: Callable[[T], bool], words: QueueWords, bar: gradebar.BarKind,
         owner: str) -> tuple[int, tuple[int, str] | None] | None:
    """Progress, the place to resume at after sign-in, and the end screen (finished, or Next on the last item).

    Returns the place to draw with the bar's notice, or None when the end screen was drawn instead.
    """
    ss = st.session_state
    total = len(items)
    done = sum(not is_open(i) for i in items)
    if ss.get("pos") is None:  # just signed in: resume at the first open item
        first = next_open(items, -1, is_open)
        ss.pos = DONE if first is None else first
    errors = gradebar.show_flash(ss)
    st.progress(done / total, text=f"{done} of {total} {words.done}")
    if ss.pos != DONE and ss.pos < total:
        return ss.pos, gradebar.flash_message(ss, errors)
    gradebar.mount_hidden(bar, ss.get("bar_applied", {}), owner)  # confirms the last actions
    for message in errors:  # no bar on this screen to hold them
        st.error(message)
    first = next_open(items, -1, is_open)
    if first is None:
        st.success(words.all_done.format(total=total))
    else:
        st.info(words.left_over.format(left=total - done))
        st.button(words.first_open, key=words.first_open_key, type="primary", on_click=go, args=(first,))
    st.button(f"Back to the last {words.item}", key="nav_back_done", on_click=go, args=(total - 1,))
    return None


def record(items: list[T], index: int, save: Callable[[T], tuple[T, list[Flash]]], stale: type[Exception], words: QueueWords,
           is_open: Callable[[T], bool]) -> list[T]:
    """One bar action on ``items[index]``: ``save`` stores it and returns the updated item and what to say; a refusal
    keeps the person on that item with the reason in the bar. Then on to the next open item (or the end screen)."""
    ss = st.session_state
    try:
        updated, said = save(items[index])
    except (OwlEvalError, sqlite3.Error) as exc:
        ss.flash.append(("error", f"{words.item.capitalize()} {index + 1}: {exc}" if isinstance(exc, stale) else f"Not saved: {exc}"))
        ss.pos = index
        return items
    items = [*items[:index], updated, *items[index + 1:]]
    ss.flash.extend(said)
    nxt = next_open(items, index, is_open)
    ss.pos = DONE if nxt is None else nxt
    return items


def earlier_turns(turns: Sequence[EarlierTurn], *, bordered: bool) -> None:
    """The dialogue's earlier questions and this assistant's answers, as inert text."""
    for number, turn in enumerate(turns, 1):
        with st.container(border=True) if bordered else contextlib.nullcontext():
            st.caption(f"Question {number}")
            st.text(shown(turn.question))
            st.caption(f"Answer {number}")
            st.text(shown(turn.answer) if turn.answer is not None else "(no answer)")


def your_choice(what: str, choice: str, changes: int) -> None:
    """"Your grade: B (changed 2 times)" under the item."""
    st.caption(f"Your {what}: {choice}" + (f" (changed {changes} time{'s' if changes > 1 else ''})" if changes else ""))
