"""aiohttp's records of refused requests become one short warning per interval, with a count of
the ones left out; server errors keep their traceback."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

from streams.api import web_log


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[tuple[logging.Logger, Clock]]:
    clock = Clock()
    logger = logging.getLogger("tests.web_log")
    added = web_log.BadRequestLog(interval=10, clock=clock)
    logger.addFilter(added)
    caplog.set_level(logging.DEBUG, logger="tests.web_log")
    yield logger, clock
    logger.removeFilter(added)


def refuse(logger: logging.Logger, error: Exception) -> None:
    """What aiohttp's RequestHandler.handle_error does for a request its parser refused."""
    try:
        raise error
    except Exception as exc:
        logger.exception("Error handling request from %s", "10.0.0.7", exc_info=exc)


def test_a_flood_of_bad_requests_is_one_line_per_interval(
    logged: tuple[logging.Logger, Clock], caplog: pytest.LogCaptureFixture
) -> None:
    logger, clock = logged
    for _ in range(500):
        refuse(logger, BadHttpMessage("Invalid header value char:\n\n  b'x\\x7f'\n  ^"))
        clock.now += 0.01  # 5 s of requests
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "bad HTTP request from 10.0.0.7 refused (400): "
            "BadHttpMessage 'Invalid header value char:'",
        )
    ]
    assert caplog.records[0].exc_info is None and "Traceback" not in caplog.text
    clock.now += 5.1
    refuse(logger, LineTooLong("a" * 10_000, "8190"))
    assert len(caplog.records) == 2
    second = caplog.records[1].getMessage()
    assert second.endswith("(499 more since the last such line)"), second
    assert len(second) < 250


def test_a_server_error_keeps_its_traceback(
    logged: tuple[logging.Logger, Clock], caplog: pytest.LogCaptureFixture
) -> None:
    logger, _ = logged
    refuse(logger, BadHttpMessage("bad"))
    for _ in range(3):
        refuse(logger, RuntimeError("a bug"))
        logger.error("plain error without an exception")
    assert [r.levelname for r in caplog.records] == ["WARNING"] + ["ERROR"] * 6
    assert caplog.text.count("Traceback") == 3


def test_install_attaches_one_filter_to_aiohttps_server_logger() -> None:
    first = web_log.install()
    assert web_log.install() is first
    assert first in logging.getLogger("aiohttp.server").filters
