"""Bounds on what one signed-in client can make the server store or keep: grade actions per annotator per second,
and grade-bar windows per session.

People grade at most a few answers a second, so each annotator (across all their sessions) gets a token bucket of
:data:`BURST` actions refilled at :data:`RATE` a second; a grade or vote over it is refused with a message in the
page (nothing is stored). A session keeps the confirmations (``bar_applied``: window -> last sequence applied) of
at most :data:`MAX_WINDOWS` windows, the most recently used: the dict goes back to the browser on every rerun, and
fresh window ids cost a client nothing to make. Identical grades are not stored again from any window (see
:func:`owleval.study.queue.record_grade`).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, MutableMapping
from typing import Any, TypeVar

from owleval.screens import gradebar

T = TypeVar("T")

RATE = 5.0  # grade actions per second per annotator, sustained (30 answers at 150 ms apiece pass)
BURST = 15  # grade actions at once per annotator
MAX_WINDOWS = 4  # grade-bar windows remembered per session
RATE_MESSAGE = f"Not saved: more than {RATE:.0f} grades a second from you — give it again in a moment."


class ActionLimiter:
    """A token bucket per annotator (bounded table, least recently used out first)."""

    def __init__(self, rate: float = RATE, burst: int = BURST, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.max_keys, self.clock = rate, burst, max_keys, clock
        self._buckets: OrderedDict[object, tuple[float, float]] = OrderedDict()  # annotator -> (tokens, at)
        self._lock = threading.Lock()

    def allow(self, annotator_id: object) -> bool:
        """Take one action from this annotator's bucket; False when it is empty."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.pop(annotator_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            allowed = tokens >= 1.0
            self._buckets[annotator_id] = (tokens - 1.0 if allowed else tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return allowed


def trim_windows(ss: MutableMapping[str, Any], window: str | None, max_windows: int = MAX_WINDOWS) -> None:
    """Keep the confirmations of the ``max_windows`` most recently used windows (``window`` is the one in use)."""
    applied = ss.get("bar_applied")
    if not isinstance(applied, dict):
        return
    if window is not None and window in applied:
        applied[window] = applied.pop(window)  # most recently used last
    while len(applied) > max_windows:
        del applied[next(iter(applied))]


#: one per server process (module state outlives reruns): every session of an annotator shares its bucket
SHARED = ActionLimiter()


def apply_limited(ss: MutableMapping[str, Any], limiter: ActionLimiter, annotator_id: object, items: list[T],
                  item_id: Callable[[T], int], record: Callable[[list[T], gradebar.Action, str], list[T]],
                  choices: Any = None) -> list[T]:
    """:func:`owleval.screens.gradebar.apply_actions` with each grade going through ``limiter`` first (an action
    over the limit is refused with :data:`RATE_MESSAGE` and the answer stays on screen), then the windows trimmed.
    ``annotator_id`` is the bucket's key (the app passes the study file and the annotator)."""

    def limited(items: list[T], action: gradebar.Action, window: str) -> list[T]:
        if not limiter.allow(annotator_id):
            ss.setdefault("flash", []).append(("error", RATE_MESSAGE))
            ss["pos"] = action.index
            return items
        return record(items, action, window)

    args = (ss, items, item_id, limited) if choices is None else (ss, items, item_id, limited, choices)
    items = gradebar.apply_actions(*args)
    window, _ = gradebar.pending_actions(ss.get(gradebar.BAR_KEY), choices or gradebar.GRADES)
    trim_windows(ss, window)
    return items
