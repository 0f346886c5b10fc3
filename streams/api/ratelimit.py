"""The write side's rate limit: a token bucket per user, on each worker.

Each worker keeps its own buckets (no coordination between workers): a user whose requests are
spread over N workers may make up to N times the rate in all.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class RateLimiter:
    """`rate` requests a second per user, `burst` at once; `take` says how long to wait."""

    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_users: int = 100_000,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self.max_users = max_users
        self._buckets: dict[str, tuple[float, float]] = {}  # user -> (tokens, when)

    def take(self, user: str) -> float:
        """0 when `user` may make a request now (and it is counted); else the seconds until
        they may."""
        now = self.clock()
        tokens, then = self._buckets.get(user, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens < 1.0:
            self._buckets[user] = (tokens, now)
            return (1.0 - tokens) / self.rate
        if len(self._buckets) >= self.max_users and user not in self._buckets:
            self._forget_full(now)
        self._buckets[user] = (tokens - 1.0, now)
        return 0.0

    def _forget_full(self, now: float) -> None:
        """Drop the buckets full again (a user not seen for burst/rate seconds): the same as
        none. Keeps memory bounded by the users active within that time."""
        refill = self.burst / self.rate
        self._buckets = {
            user: bucket for user, bucket in self._buckets.items() if now - bucket[1] < refill
        }


def retry_after(seconds: float) -> str:
    """A `Retry-After` value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
