"""The token-check gate: a server-wide budget with a bounded first-in-first-out queue, per-key spacing after failures,
keys that cannot be dodged (IPv6 per /64, loopback a key of its own), and never a refused right token."""

from __future__ import annotations

import pytest

from owleval.screens.throttle import LOOPBACK_KEY, Busy, CheckGate, address_key


class Clock:
    """A fake clock that sleeping advances."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _gate(clock: Clock, **kw) -> CheckGate:
    return CheckGate(clock=clock, sleep=clock.sleep, **kw)


# -- keys ---------------------------------------------------------------------------------------------------------

def test_ipv6_clients_are_keyed_by_their_64() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:ffff:1:2:3") == "address:2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("[2001:db8:1:2::5]") == "address:2001:db8:1:2::/64"


def test_ipv4_per_address_and_mapped_ipv6_is_ipv4() -> None:
    assert address_key("192.0.2.7") == "address:192.0.2.7" != address_key("192.0.2.8")
    assert address_key("::ffff:192.0.2.7") == "address:192.0.2.7"


def test_loopback_peers_get_a_key_of_their_own() -> None:
    """Streamlit reports no address for a loopback peer: those sessions share one key instead of having none."""
    assert address_key(None) == address_key("") == address_key("127.0.0.1") == address_key("::1") == LOOPBACK_KEY
    assert LOOPBACK_KEY not in {address_key("192.0.2.7"), address_key("2001:db8::1")}


# -- the server-wide budget ---------------------------------------------------------------------------------------

def test_over_budget_checks_queue_in_arrival_order_within_the_stated_wait() -> None:
    clock = Clock()
    gate = _gate(clock, rate=5.0, max_wait=2.0)
    starts = [gate.reserve([f"session:{i}", f"address:192.0.2.{i}"]) for i in range(11)]
    assert starts == pytest.approx([1000.0 + i / 5.0 for i in range(11)]), "first in, first out, 5 a second"
    with pytest.raises(Busy):  # the 12th would wait more than max_wait: the queue is full
        gate.reserve(["session:x", "address:192.0.2.99"])


def test_run_waits_its_turn_then_checks() -> None:
    clock = Clock()
    gate = _gate(clock, rate=2.0)
    gate.reserve(["session:a", "address:192.0.2.1"])  # someone is ahead
    assert gate.run(["session:b", "address:192.0.2.2"], lambda: "ok") == "ok"
    assert clock.now == pytest.approx(1000.5)


def test_the_queue_is_bounded_per_key_too() -> None:
    gate = _gate(Clock(), per_key_waiting=2)
    gate.reserve(["session:a", LOOPBACK_KEY])
    gate.reserve(["session:b", LOOPBACK_KEY])
    with pytest.raises(Busy):
        gate.reserve(["session:c", LOOPBACK_KEY])


# -- failures are spaced, a right token never refused -------------------------------------------------------------

def test_failures_space_a_keys_checks_doubling_to_a_cap_and_are_forgotten() -> None:
    clock = Clock()
    gate = _gate(clock, rate=1000.0, free=3, first_gap=2.0, max_gap=8.0, forget_after=600.0, max_wait=60.0)
    keys = ["session:s1", "address:192.0.2.7"]
    waits = []
    for _ in range(7):
        before = clock.now
        gate.run(keys, lambda: None)
        waits.append(round(clock.now - before, 1))
    assert waits[:3] == [0.0, 0.0, 0.0], "the first mistakes cost nothing"
    assert waits[3:] == [2.0, 4.0, 8.0, 8.0], "then the gap doubles, up to max_gap"
    clock.now += 600.0
    assert gate.reserve(keys) == clock.now, "forgotten after a quiet while"


def test_a_locked_out_address_still_signs_in_the_owner_within_the_wait() -> None:
    clock = Clock()
    gate = _gate(clock, free=3, first_gap=2.0, max_gap=8.0)
    shared = "address:192.0.2.7"  # a guesser and the owner behind one NAT address
    for _ in range(10):
        try:
            gate.run(["session:guesser", shared], lambda: False)
        except Busy:
            pass
    assert gate.failures(shared) >= 3
    before = clock.now
    assert gate.run(["session:owner", shared], lambda: True, forget=["session:owner"]) is True
    assert clock.now - before <= gate.max_wait
    assert gate.failures(shared) >= 3, "the owner's success does not wipe the guesser's record"


def test_a_check_that_raises_counts_as_a_failure_and_frees_its_place() -> None:
    gate = _gate(Clock(), per_key_waiting=1)

    def broken() -> bool:
        raise RuntimeError("db gone")

    with pytest.raises(RuntimeError):
        gate.run(["session:a", LOOPBACK_KEY], broken)
    assert gate.failures(LOOPBACK_KEY) == 1
    gate.reserve(["session:b", LOOPBACK_KEY])  # the place was given back


def test_the_key_table_stays_bounded() -> None:
    gate = _gate(Clock(), max_keys=100, rate=1e9)
    for i in range(1000):
        gate.run([f"session:{i}", f"address:198.51.100.{i % 250}"], lambda: False)
    assert len(gate) <= 100
