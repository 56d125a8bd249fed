"""Deadlines for tests that wait on a server, a browser page or a child process, scaled to this machine's speed.

A fixed deadline is wrong both ways: on a quiet machine a hung wait sits out the whole of it, on a busy one (a
neighbour's build, a busy loop, the suite's own servers and Chromium) a correct program misses it. So every
deadline in the suite is ``budget(base_s)``: ``base_s`` is what the wait needs, with a margin, on the reference
machine (this project's quiet 2-core machine), times the slowdown measured here, and every wait polls its
condition (:func:`wait_until`), so a fast machine never sits out the ceiling.

The slowdown is the wall time of a small fixed CPU workload (pure Python, ~20 ms on the reference machine; the
median of five runs) over its reference time, never below 1 (a fast machine keeps the base budgets). It is measured
once per test process and again when a wait reaches its ceiling: if the machine has slowed down since, the wait
gets the difference once more (load that arrives mid-session), and later deadlines use the new figure.
``OWLEVAL_TEST_SLOWDOWN`` sets the factor by hand (e.g. ``0.2`` to see which waits are tight, ``5`` for a very
slow machine).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: the workload's size and its wall time on the reference machine (the best of many runs there, quiet)
WORKLOAD_STEPS = 400_000
REFERENCE_S = 0.019
#: no deadline grows past this many times its base (a hung wait must still end)
MAX_SLOWDOWN = 8.0

_measured: float | None = None


def _workload_s() -> float:
    started = time.perf_counter()
    total = 0
    for i in range(WORKLOAD_STEPS):
        total += i * i % 7
    return time.perf_counter() - started


def measure_slowdown() -> float:
    """Measure the machine's slowdown now (and keep it for later deadlines): see the module's docstring."""
    global _measured
    forced = os.environ.get("OWLEVAL_TEST_SLOWDOWN")
    if forced:
        _measured = float(forced)
    else:
        ratio = statistics.median(_workload_s() for _ in range(5)) / REFERENCE_S
        _measured = min(MAX_SLOWDOWN, max(1.0, ratio))
    return _measured


def slowdown() -> float:
    """This machine's slowdown against the reference machine, measured on first use."""
    return _measured if _measured is not None else measure_slowdown()


def budget(base_s: float) -> float:
    """A deadline in seconds: ``base_s`` on the reference machine, scaled by the measured slowdown."""
    return base_s * slowdown()


def budget_ms(base_s: float) -> float:
    """:func:`budget` in milliseconds, for playwright's ``timeout=`` and ``set_default_timeout``."""
    return 1000.0 * budget(base_s)


def wait_until(condition: Callable[[], T], base_s: float, what: str, interval_s: float = 0.1,
               alive: Callable[[], bool] = lambda: True) -> T:
    """Poll ``condition`` until it returns something true and return that; raise AssertionError naming ``what`` when
    :func:`budget` (``base_s``) runs out, or as soon as ``alive`` turns false (a server process that ended, say).

    At the ceiling the slowdown is measured again; if the machine is slower than when the deadline was set, the wait
    is extended by the difference, once.
    """
    factor = slowdown()
    deadline, extended = time.monotonic() + base_s * factor, False
    while True:
        result = condition()
        if result:
            return result
        if not alive():
            raise AssertionError(f"gave up waiting for {what}: it can no longer happen")
        if time.monotonic() >= deadline:
            now = measure_slowdown()
            if extended or now <= factor:
                raise AssertionError(f"{what}: not within {base_s * factor:.0f} s (base {base_s:g} s x slowdown {factor:.1f})")
            deadline, extended = deadline + base_s * (now - factor), True
            factor = now
        time.sleep(interval_s)
