"""Verified tokens are kept while valid, and only then."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from streams.api.auth import TokenError, issue_token, verify_token
from streams.api.token_cache import VerifiedTokens

SECRET = "a-secret-of-at-least-32-bytes-for-hs256"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Counting:
    def __init__(self) -> None:
        self.calls = 0
        self.now = NOW

    def verify(self, token: str) -> str:
        self.calls += 1
        return verify_token(token, SECRET)


def test_a_token_is_verified_once_while_valid_and_again_once_it_expires() -> None:
    clock = [NOW.timestamp()]
    calls: list[str] = []

    def verify(token: str) -> str:  # PyJWT's checks, on this test's clock
        calls.append(token)
        claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
        if clock[0] > claims["exp"] + 30:
            raise TokenError("Signature has expired")
        return str(claims["sub"])

    tokens = VerifiedTokens(verify, clock=lambda: clock[0])
    token = issue_token("ann", SECRET, NOW, ttl=timedelta(minutes=5))
    assert [tokens.subject(token) for _ in range(3)] == ["ann"] * 3
    assert len(calls) == 1
    clock[0] += 5 * 60 + 29  # within exp's leeway: still the kept subject
    assert tokens.subject(token) == "ann" and len(calls) == 1
    clock[0] += 2  # past it: verified again, and refused
    with pytest.raises(TokenError):
        tokens.subject(token)
    assert len(calls) == 2


def test_a_token_not_yet_valid_is_not_kept() -> None:
    counting = Counting()
    now = datetime.now(UTC).timestamp()
    early = jwt.encode({"sub": "ann", "nbf": int(now) + 600, "exp": int(now) + 900}, SECRET)
    tokens = VerifiedTokens(counting.verify)
    for _ in range(2):
        with pytest.raises(TokenError):
            tokens.subject(early)
    assert counting.calls == 2


def test_refused_tokens_are_not_kept_and_the_table_is_bounded() -> None:
    counting = Counting()
    tokens = VerifiedTokens(counting.verify, size=2)
    bad = issue_token("ann", "another-secret-of-32-bytes-or-more!!", datetime.now(UTC))
    for _ in range(2):
        with pytest.raises(TokenError):
            tokens.subject(bad)
    users = [issue_token(name, SECRET, datetime.now(UTC)) for name in ("a", "b", "c")]
    for token in users:
        tokens.subject(token)
    assert len(tokens._known) == 2 and users[0] not in tokens._known
