"""How token checks are rationed: a server-wide budget, per-key spacing after failures, never a refused owner.

Each token check costs one scrypt (~40 ms of a core), so checks are the server's one expensive unauthenticated
operation. :class:`CheckGate` schedules them:

- **Server-wide budget**: at most ``rate`` checks start per second. Over budget a check waits its turn in a
  first-in-first-out queue (start times are handed out in arrival order); the queue is bounded by ``max_wait``: a
  check that could not start within ``max_wait`` seconds is answered "busy" at once instead of queued.
- **Per key** (the browser session, and the client's address key, see :func:`address_key`): the first ``free - 1``
  failures of a key cost nothing; from the ``free``-th on, that key's checks are *spaced* ``first_gap`` seconds
  apart, doubling to ``max_gap``. A key may have at most ``per_key_waiting`` checks queued at once.
- **Never a refused owner**: a lock-out only spaces checks, it never skips one: a correct token is checked within
  the stated wait and signs in, whatever the failures of its session or address. Only a full queue (``rate x
  max_wait`` checks already waiting, or ``per_key_waiting`` from the same key) answers "busy".

Failures are forgotten ``forget_after`` seconds after a key's last one; at most ``max_keys`` keys are kept (oldest
first out), so the table stays bounded. Kept in memory: a restart forgets it.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

#: the key every loopback peer shares (Streamlit reports no address for them; a local proxy's clients are told
#: apart only when the proxy is trusted, see ``owleval rate --trusted-proxy``)
LOOPBACK_KEY = "address:loopback"


def address_key(address: str | None) -> str:
    """The throttle key of a client address: IPv4 per address, IPv6 per /64 (one end site holds a whole /64, so
    per-address keys would give a guesser 2**64 of them), and one key of their own for loopback peers (and for an
    unknown address, which is how Streamlit reports a loopback peer)."""
    if not isinstance(address, str) or not address:  # (AppTest's client is a mock: no address either)
        return LOOPBACK_KEY
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]").split("%")[0])
    except ValueError:
        return f"address:{address[:64]}"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return LOOPBACK_KEY
    if isinstance(ip, ipaddress.IPv6Address):
        return f"address:{ipaddress.IPv6Network((int(ip) >> 64 << 64, 64))}"
    return f"address:{ip}"


class Busy(Exception):
    """The check queue is full; ``retry_after`` seconds is a fair wait before trying again."""

    def __init__(self, retry_after: float):
        super().__init__(f"busy, retry after {retry_after:.0f} s")
        self.retry_after = retry_after


@dataclass
class _Key:
    failures: int = 0
    last_failure: float = 0.0
    next_start: float = 0.0  # the earliest start of this key's next check
    waiting: int = 0


class CheckGate:
    """The token-check scheduler (module docstring). ``run(keys, check)`` waits its turn, runs ``check()`` and
    records the outcome: a truthy result is a success, anything else a failure."""

    def __init__(self, rate: float = 5.0, max_wait: float = 20.0, free: int = 5, first_gap: float = 2.0,
                 max_gap: float = 8.0, per_key_waiting: int = 2, forget_after: float = 3600.0, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.rate, self.max_wait, self.free = rate, max_wait, free
        self.first_gap, self.max_gap, self.per_key_waiting = first_gap, max_gap, per_key_waiting
        self.forget_after, self.max_keys, self.clock, self.sleep = forget_after, max_keys, clock, sleep
        self._keys: OrderedDict[str, _Key] = OrderedDict()
        self._next_slot = 0.0  # the start time the next check in the global queue gets
        self._lock = threading.Lock()

    def gap(self, failures: int) -> float:
        """The spacing between a key's checks after ``failures`` failures."""
        return 0.0 if failures < self.free else min(self.max_gap, self.first_gap * 2 ** (failures - self.free))

    def _key(self, name: str, now: float) -> _Key:
        entry = self._keys.pop(name, None) or _Key()
        if entry.failures and now - entry.last_failure >= self.forget_after:
            entry.failures = 0
        self._keys[name] = entry
        while len(self._keys) > self.max_keys:
            oldest, old = next(iter(self._keys.items()))
            if old.waiting:  # never forget a key with a check in the queue
                break
            self._keys.popitem(last=False)
        return entry

    def reserve(self, keys: Sequence[str]) -> float:
        """Take a place in the queue for one check from ``keys``: the time it may start (raises :class:`Busy`)."""
        now = self.clock()
        with self._lock:
            entries = [self._key(k, now) for k in keys]
            start = max([now, self._next_slot, *(e.next_start for e in entries)])
            if start - now > self.max_wait + 1e-6 or any(e.waiting >= self.per_key_waiting for e in entries):
                raise Busy(max(1.0, min(self.max_wait, start - now)))
            self._next_slot = start + 1.0 / self.rate
            for entry in entries:
                entry.waiting += 1
                entry.next_start = start + self.gap(entry.failures)
            return start

    def finish(self, keys: Sequence[str], ok: bool, forget: Iterable[str] = ()) -> None:
        """Record a check's outcome; ``forget`` names the keys a success clears (the session, never a shared
        address: a right token must not wipe out another client's failures)."""
        now = self.clock()
        with self._lock:
            for name in keys:
                entry = self._key(name, now)
                entry.waiting = max(0, entry.waiting - 1)
                if not ok:
                    entry.failures += 1
                    entry.last_failure = now
                    entry.next_start = max(entry.next_start, now + self.gap(entry.failures))
            if ok:
                for name in forget:
                    self._keys.pop(name, None)

    def run(self, keys: Sequence[str], check: Callable[[], T], forget: Iterable[str] = ()) -> T:
        """Wait for this check's turn (raises :class:`Busy` when the queue is full), run it, record the outcome."""
        start = self.reserve(keys)
        ok = False
        try:
            delay = start - self.clock()
            if delay > 0:
                self.sleep(delay)
            result = check()
            ok = bool(result)
            return result
        finally:
            self.finish(keys, ok, forget if ok else ())

    def failures(self, key: str) -> int:
        with self._lock:
            entry = self._keys.get(key)
            return entry.failures if entry else 0

    def __len__(self) -> int:
        return len(self._keys)
