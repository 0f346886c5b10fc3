"""Malformed HTTP requests in the log: one short, rate-limited warning, not a traceback each."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from aiohttp.http_exceptions import HttpProcessingError

# aiohttp's server logs each request its parser refuses (a 400 already sent) as an ERROR with
# the parser's traceback: any client could fill the log.
SERVER_LOGGER = "aiohttp.server"
INTERVAL = 10.0  # seconds between two such lines


class BadRequestLog(logging.Filter):
    """Turns aiohttp's records of refused requests into one WARNING line at most every
    `interval` seconds, counting the ones left out; every other record passes as it is."""

    def __init__(
        self, interval: float = INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        self._next = float("-inf")
        self._left_out = 0

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if record.levelno < logging.WARNING or not _client_error(error):
            return True
        now = self.clock()
        with self._lock:
            if now < self._next:
                self._left_out += 1
                return False
            left_out, self._left_out = self._left_out, 0
            self._next = now + self.interval
        assert isinstance(error, HttpProcessingError)
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg = "bad HTTP request from %s refused (%d): %s%s"
        note = f" ({left_out} more since the last such line)" if left_out else ""
        record.args = (remote, error.code, _summary(error), note)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None
        record.stack_info = None
        return True


def _client_error(error: BaseException | None) -> bool:
    return isinstance(error, HttpProcessingError) and 400 <= error.code < 500


def _summary(error: HttpProcessingError) -> str:
    """The error's kind and the first line of its message, short and printable: the rest
    quotes the request's own bytes."""
    first = (error.message or "").strip().splitlines()[:1]
    text = first[0][:80] if first else ""
    return f"{type(error).__name__} {text!r}"


def install() -> BadRequestLog:
    """Attach the filter to aiohttp's server logger (once)."""
    logger = logging.getLogger(SERVER_LOGGER)
    for existing in logger.filters:
        if isinstance(existing, BadRequestLog):
            return existing
    added = BadRequestLog()
    logger.addFilter(added)
    return added
