"""Shared benchmark plumbing: a broker (embedded unless STORYSTREAM_BROKER is set), timing."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from infra.broker import EmbeddedBroker


@contextmanager
def broker() -> Iterator[str]:
    """Bootstrap servers of STORYSTREAM_BROKER, or of a fresh embedded broker."""
    configured = os.environ.get("STORYSTREAM_BROKER")
    if configured:
        yield configured
        return
    with EmbeddedBroker() as embedded:
        yield embedded.bootstrap


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>12,.0f}/s  ({count:,} in {seconds:.2f}s)"
