"""The write rate limit: a token bucket per user."""

from __future__ import annotations

import pytest

from streams.api.ratelimit import RateLimiter, retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.take("ann") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("ann") == pytest.approx(0.5)  # one token comes every half second
    assert limiter.take("bob") == 0.0  # per user
    clock.now += 0.5
    assert limiter.take("ann") == 0.0
    assert limiter.take("ann") == pytest.approx(0.5)
    clock.now += 60
    assert [limiter.take("ann") for _ in range(4)][-1] > 0  # refilled to the burst, no more


def test_refused_requests_do_not_use_tokens() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1.0, burst=1, clock=clock)
    assert limiter.take("ann") == 0.0
    for _ in range(10):
        assert limiter.take("ann") > 0
    clock.now += 1.0
    assert limiter.take("ann") == 0.0


def test_idle_users_are_forgotten_when_the_table_is_full() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1.0, burst=2, clock=clock, max_users=3)
    for name in ("a", "b", "c"):
        limiter.take(name)
    clock.now += 10  # all three full again
    limiter.take("d")
    assert set(limiter._buckets) == {"d"}
    limiter.take("e")
    limiter.take("f")
    limiter.take("g")  # the others are active: kept, the table grows past the bound
    assert set(limiter._buckets) == {"d", "e", "f", "g"}


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert [retry_after(0.01), retry_after(1.0), retry_after(1.2)] == ["1", "1", "2"]
