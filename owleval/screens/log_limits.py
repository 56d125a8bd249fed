"""Bounded server logs: a client that sends malformed widget messages (unknown widget ids, broken states) makes
Streamlit log a full traceback (~7 KB) per message; a loop of them fills the disk. :func:`install` puts a filter on
Streamlit's loggers that

- turns a record with a traceback into one line (the exception's type and message), at most :data:`MAX_BYTES`,
- lets the same message through at most :data:`PER_WINDOW` times per :data:`WINDOW_S` seconds, then counts the
  rest and says how many were dropped when the next one passes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_BYTES = 512  # per log line
PER_WINDOW = 5  # lines of one message per window
WINDOW_S = 60.0
MAX_MESSAGES = 1_000  # distinct messages tracked


class BoundedLogFilter(logging.Filter):
    def __init__(self, max_bytes: int = MAX_BYTES, per_window: int = PER_WINDOW, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.max_bytes, self.per_window, self.window_s, self.clock = max_bytes, per_window, window_s, clock
        self._seen: OrderedDict[tuple[str, object], tuple[float, int, int]] = OrderedDict()  # -> (start, passed, dropped)
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        now = self.clock()
        with self._lock:
            start, passed, dropped = self._seen.pop(key, (now, 0, 0))
            if now - start >= self.window_s:
                start, passed = now, 0
            if passed >= self.per_window:
                self._seen[key] = (start, passed, dropped + 1)
                self._trim()
                return False
            self._seen[key] = (start, passed + 1, 0)
            self._trim()
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text += f" ({type(exc).__name__}: {exc})"
        if dropped:
            text += f" [{dropped} similar lines dropped]"
        encoded = text.encode("utf-8", "replace")
        if len(encoded) > self.max_bytes:
            text = encoded[: self.max_bytes - 3].decode("utf-8", "ignore") + "..."
        record.msg, record.args = text, None
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True

    def _trim(self) -> None:
        while len(self._seen) > MAX_MESSAGES:
            self._seen.popitem(last=False)


_FILTER = BoundedLogFilter()


def install() -> None:
    """Put the filter on every Streamlit logger (each has its own handler and does not propagate) and on uvicorn's.
    Idempotent: called at the top of every run, it also catches loggers made since."""
    names = [n for n in list(logging.root.manager.loggerDict) if n.split(".")[0] in ("streamlit", "uvicorn")]
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
