"""The suite's deadline helper (tests/timing.py): budgets scale with the measured slowdown, waits poll their
condition, end early when it can no longer come true, and get one extension when the machine slows down mid-wait."""

from __future__ import annotations

import time

import pytest

from tests import timing


@pytest.fixture
def factor(monkeypatch: pytest.MonkeyPatch):
    """Set the slowdown by hand (OWLEVAL_TEST_SLOWDOWN), and put the session's measured figure back afterwards."""
    monkeypatch.setattr(timing, "_measured", timing._measured)

    def set_factor(value: float) -> None:
        monkeypatch.setenv("OWLEVAL_TEST_SLOWDOWN", str(value))
        timing.measure_slowdown()

    return set_factor


def test_a_measured_slowdown_is_never_below_one_nor_above_the_cap(monkeypatch: pytest.MonkeyPatch, factor) -> None:
    monkeypatch.delenv("OWLEVAL_TEST_SLOWDOWN", raising=False)
    for workload_s, expected in ((timing.REFERENCE_S / 4, 1.0), (timing.REFERENCE_S * 3, 3.0), (timing.REFERENCE_S * 100, timing.MAX_SLOWDOWN)):
        monkeypatch.setattr(timing, "_workload_s", lambda: workload_s)
        assert timing.measure_slowdown() == pytest.approx(expected)
        assert timing.budget(10) == pytest.approx(10 * expected) and timing.budget_ms(2) == pytest.approx(2000 * expected)


def test_wait_until_returns_the_condition_s_value_as_soon_as_it_holds(factor) -> None:
    factor(1)
    ready_at = time.monotonic() + 0.2
    started = time.monotonic()
    assert timing.wait_until(lambda: time.monotonic() >= ready_at and "served", 5, "a server", interval_s=0.01) == "served"
    assert time.monotonic() - started < 2


def test_wait_until_names_what_it_waited_for_and_the_scaled_budget(factor) -> None:
    factor(0.01)  # a 20 s base budget becomes 0.2 s
    with pytest.raises(AssertionError, match=r"grade 1 recorded: not within 0 s \(base 20 s x slowdown 0.0\)"):
        timing.wait_until(lambda: False, 20, "grade 1 recorded", interval_s=0.01)


def test_wait_until_stops_once_the_condition_can_no_longer_come_true(factor) -> None:
    factor(1)
    started = time.monotonic()
    with pytest.raises(AssertionError, match="gave up waiting for the app: it can no longer happen"):
        timing.wait_until(lambda: False, 60, "the app", alive=lambda: False)
    assert time.monotonic() - started < 5


def test_a_wait_is_extended_once_when_the_machine_slowed_down_meanwhile(monkeypatch: pytest.MonkeyPatch, factor) -> None:
    factor(0.1)  # base 1 s: 0.1 s at first
    monkeypatch.setattr(timing, "measure_slowdown", lambda: setattr(timing, "_measured", 0.3) or 0.3)
    started = time.monotonic()
    ready_at = started + 0.2  # after the first ceiling (0.1 s), before the extended one (0.3 s)
    assert timing.wait_until(lambda: time.monotonic() >= ready_at, 1, "a slow page", interval_s=0.01)
    assert timing.slowdown() == 0.3  # later deadlines use the new figure
    with pytest.raises(AssertionError, match="a hung page: not within 0 s"):
        timing.wait_until(lambda: False, 1, "a hung page", interval_s=0.01)  # extended at most once, then it ends
