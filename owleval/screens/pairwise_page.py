"""The voting screen of a pairwise study, drawn by the grading app (:mod:`owleval.screens.app`) when the study is pairwise.

The image and question once, the two answers side by side (each in its own scrolling box, with that model's own
earlier turns in a collapsible part), and the vote bar: the grade bar of :mod:`owleval.screens.gradebar` with the
four votes as its choices, so a vote lands on the pair on screen when the person acted, in the order made, once.
Blind: the page learns sides only (``left`` / ``right``); model ids stay in :mod:`owleval.study.pair_queue`, and widget
keys use the annotator's own queue place and the pair's row id. Answers are drawn with ``st.text`` (inert).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from owleval.screens import access, action_limits, admin_download, gradebar, queue_flow
from owleval.study.store import Store
from owleval.study import pair_queue as pq
from owleval.textsafety import mark_format_chars as shown

VOTES = {"left": "Left is better", "right": "Right is better", "tie": "Tie", "both_bad": "Both are bad"}
VOTE_BAR = gradebar.BarKind(
    name="owleval_votebar",
    choices=VOTES,
    keys={"1": "left", "2": "right", "3": "tie", "4": "both_bad", "l": "left", "r": "right", "t": "tie", "b": "both_bad"},
    heading="Pair",
    help="Keys: 1 or l left, 2 or r right, 3 or t tie, 4 or b both bad, ← back, → next.",
    aria_label="Vote on this pair",
    stale_message="Not saved: the screen had already moved on — vote again.",
)
WORDS = queue_flow.QueueWords(
    item="pair", done="voted", all_done="All {total} pairs have your vote. Thank you! You can go back to review or change a vote.",
    left_over="That was the last pair in your queue; {left} still have no vote.", first_open="Go to the first pair without a vote",
    first_open_key="nav_first_unvoted")
# Each answer scrolls in its own box and the image is capped (the app's style: owleval.screens.app), so the votes above them
# stay in a 1280x800 window.
ANSWER_BOX_HEIGHT = 420  # px: below the heading, the vote bar and the side titles, fits a 1280x800 window


def _unvoted(item: pq.PairQueueItem) -> bool:
    return item.choice is None


def _apply_bar_actions(store: Store, who: access.Annotator, items: list[pq.PairQueueItem]) -> list[pq.PairQueueItem]:
    """Apply the vote bar's new actions once each, in the order its window made them, before anything is drawn
    (as the A-D app does with grades): a vote goes to the pair the window showed, with that pair's reason."""
    ss = st.session_state

    def record(items: list[pq.PairQueueItem], action: gradebar.Action, window: str) -> list[pq.PairQueueItem]:
        def save(item: pq.PairQueueItem) -> tuple[pq.PairQueueItem, list[queue_flow.Flash]]:
            event = pq.record_vote(store, who.annotator_id, item.pair_id, action.grade or "", ss.get(f"reason_{action.index}", ""),
                                   window=window, seq=action.seq, seen=action.seen, item_id=item.item_id)
            said = [("ok", f"Saved vote “{VOTES[event.choice]}” for pair {action.index + 1}.")]
            return dataclasses.replace(item, choice=event.choice), said

        return queue_flow.record(items, action.index, save, pq.StaleVoteError, WORDS, _unvoted)

    return action_limits.apply_limited(ss, action_limits.SHARED, (str(store.path), who.annotator_id), items,
                                       lambda item: item.view_id, record, VOTE_BAR.choices)


def voting(store: Store, data_dir: Path, image: Callable[[str], bytes]) -> None:
    """The signed-in annotator's pairwise work; ``image(path)`` gives the prepared picture (OSError if unreadable)."""
    who: access.Annotator = st.session_state.annotator
    items = pq.load_pair_queue(store, who.annotator_id)
    if not items:
        st.info("Nothing is assigned to you in this study yet.")
        return
    items = _apply_bar_actions(store, who, items)
    owner = gradebar.owner_key(store.path, who.annotator_id)
    place = queue_flow.walk(items, _unvoted, WORDS, VOTE_BAR, owner)
    if place is not None:
        pos, message = place
        screen = pq.pair_screen(store, who.annotator_id, items[pos], data_dir)
        _pair_view(screen, items[pos].view_id, len(items), image, owner, message)


def _side(title: str, side: pq.Side, box_key: str) -> None:
    st.markdown(f"**{title}**")
    # Always two elements, the answer second: a pair with no earlier turns after one with them leaves no answer
    # of the previous pair in the box while the run that draws this one finishes.
    with st.container(height=ANSWER_BOX_HEIGHT, key=box_key):
        if side.earlier:
            with st.expander(f"Earlier turns of this dialogue ({len(side.earlier)}), as this assistant answered them"):
                queue_flow.earlier_turns(side.earlier, bordered=False)
        else:
            st.caption("No earlier turns.")
        st.text(shown(side.answer), width="stretch")


def _pair_view(screen: pq.PairScreen, view_id: int, total: int, image: Callable[[str], bytes], owner: str,
               message: tuple[int, str] | None) -> None:
    """Heading (drawn above), vote bar, the two answers side by side, and the question, image and reason (left).

    Drawn in this order: bar, answers, question, reason, heading, image. When the heading names a pair, the answers
    and the reason box on the page are that pair's; a slow or bad image holds up neither the voting nor the heading.

    The box around both answers is keyed with the pair on screen (place, pair id, latest vote event seen): the bar
    reads it to tag each action with what the person was looking at.
    """
    index, current = screen.index, screen.current
    heading = st.container()  # filled once the answers and the question are drawn: when it names this pair, they are its
    gradebar.mount(index, current.choice if current else None, st.session_state.get("bar_applied", {}), kind=VOTE_BAR,
                   owner=owner, message=message)
    seen = current.event_id if current else 0
    context, answers = st.columns([1, 3], gap="medium")
    with answers:  # written first so the texts reach the browser before the image
        with st.container(key=f"{gradebar.SHOWN_KEY_PREFIX}{index}_{view_id}_{seen}"):
            left, right = st.columns(2, gap="medium")
            with left:
                _side("Left answer", screen.left, "left_answer")
            with right:
                _side("Right answer", screen.right, "right_answer")
    with context:
        st.markdown("**Question**")
        st.text(shown(screen.question))
        picture_slot = st.container()  # above the reason, filled last
        # Before the heading names this pair: Streamlit keeps the last run's element beside a new one until the run
        # ends (visible while it has the focus), so a reason box drawn after the heading could still be the previous
        # pair's when the person starts typing, and the reason would go to that pair or be lost.
        st.text_input("Reason (optional)", value=current.reason if current else "", key=f"reason_{index}")
        _history(screen)
    heading.subheader(f"Pair {index + 1} of {total}")
    with picture_slot:
        try:
            picture = image(str(screen.image_path))
        except OSError:
            st.warning("The image of this question is missing or unreadable; say so in the reason.")
        else:
            st.image(picture, width="stretch")


def _history(screen: pq.PairScreen) -> None:
    current = screen.current
    if current is None:
        return
    changes = len(screen.history) - 1
    queue_flow.your_choice("vote", VOTES[current.choice], changes)
    if changes:
        with st.expander("History of your votes for this pair"):
            for event in reversed(screen.history):
                st.text(f"{event.created_at[:19].replace('T', ' ')} UTC  {VOTES[event.choice]}  {shown(event.reason)}".rstrip())


def admin(store: Store) -> None:
    """The admin page of a pairwise study (the admin is signed in): votes given / pairs assigned per annotator, per
    model pair and both, and the current votes as votes.csv."""
    import pandas as pd

    from owleval.csvio import frame_to_csv
    from owleval.study.pair_study import progress_rows
    from owleval.study.votes import votes_export_frame
    from owleval.textsafety import mark_frame

    cells = pd.DataFrame(progress_rows(store.conn), columns=["annotator", "model pair", "voted", "assigned"])
    for by in ("annotator", "model pair"):
        st.subheader(f"Per {by}")
        st.dataframe(mark_frame(cells.groupby(by, as_index=False)[["voted", "assigned"]].sum()), hide_index=True)
    st.subheader("Per annotator and model pair (voted / assigned)")
    if not cells.empty:
        cells = cells.assign(cell=cells["voted"].astype(str) + " / " + cells["assigned"].astype(str))
        st.dataframe(mark_frame(cells.pivot(index="annotator", columns="model pair", values="cell")))
    admin_download.offer("Make a votes CSV link", lambda: frame_to_csv(votes_export_frame(store)), "votes.csv", "votes_csv")
