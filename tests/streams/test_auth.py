"""Tokens: users' and workers' never pass for each other; malformed headers are refused with a
short reason; an audience and a little clock skew are accepted unless an audience is set."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from streams.api.auth import (
    INTERNAL_AUDIENCE,
    INTERNAL_SUBJECT,
    LEEWAY,
    MAX_TOKEN_LENGTH,
    TokenError,
    bearer_token,
    issue_internal_token,
    issue_token,
    verify_internal_token,
    verify_token,
)
from streams.cli.main import main

SECRET = "a-secret-of-at-least-32-bytes-long!!"


def signed(claims: dict[str, Any], secret: str = SECRET) -> str:
    now = int(time.time())
    return jwt.encode({"iat": now, "exp": now + 600, **claims}, secret, algorithm="HS256")


def test_a_user_token_is_never_a_workers() -> None:
    pretended: list[dict[str, Any]] = [
        {"sub": "storystream-worker"},
        {"sub": INTERNAL_SUBJECT},
        {"sub": INTERNAL_SUBJECT, "aud": INTERNAL_AUDIENCE},
        {"sub": INTERNAL_SUBJECT, "aud": [INTERNAL_AUDIENCE], "internal": True, "typ": "worker"},
    ]
    for claims in pretended:
        with pytest.raises(TokenError):
            verify_internal_token(signed(claims), SECRET)
    for user in ("storystream-worker", "worker", "internal", "a" * 64):
        with pytest.raises(TokenError):
            verify_internal_token(issue_token(user, SECRET, datetime.now(UTC)), SECRET)


def test_a_workers_token_is_never_a_users() -> None:
    token = issue_internal_token(SECRET, datetime.now(UTC))
    verify_internal_token(token, SECRET)
    with pytest.raises(TokenError, match="Signature"):
        verify_token(token, SECRET)
    with pytest.raises(TokenError):
        verify_token(token, SECRET, audience=INTERNAL_AUDIENCE)
    with pytest.raises(TokenError):  # another deployment's secret
        verify_internal_token(token, "another-secret-of-at-least-32-bytes!!")
    # Even signed with the API secret itself, the workers' audience is no user's.
    with pytest.raises(TokenError, match="worker's audience"):
        verify_token(signed({"sub": "bob", "aud": INTERNAL_AUDIENCE}), SECRET)
    with pytest.raises(TokenError, match="worker's audience"):
        verify_token(signed({"sub": "bob", "aud": ["x", INTERNAL_AUDIENCE]}), SECRET)


def test_no_user_id_is_the_workers_identity() -> None:
    with pytest.raises(ValueError, match="invalid user id"):
        issue_token(INTERNAL_SUBJECT, SECRET, datetime.now(UTC))
    with pytest.raises(TokenError, match="not a user id"):
        verify_token(signed({"sub": INTERNAL_SUBJECT}), SECRET)
    assert verify_token(signed({"sub": "storystream-worker"}), SECRET) == "storystream-worker"


def test_an_expired_or_stale_workers_token_is_refused() -> None:
    old = datetime.now(UTC) - timedelta(hours=1)
    with pytest.raises(TokenError, match="expired"):
        verify_internal_token(issue_internal_token(SECRET, old), SECRET)


def test_an_audience_and_a_little_clock_skew_are_accepted() -> None:
    now = int(time.time())
    skew = int(LEEWAY.total_seconds())
    accepted: list[dict[str, Any]] = [
        {"sub": "bob", "aud": "some-client"},
        {"sub": "bob", "aud": ["some-client", "another"]},
        {"sub": "bob", "iat": now + 5},
        {"sub": "bob", "iat": now + skew - 2, "nbf": now + skew - 2},
        {"sub": "bob", "exp": now - skew + 2},
    ]
    for claims in accepted:
        assert verify_token(signed(claims), SECRET) == "bob", claims
    refused: list[dict[str, Any]] = [
        {"sub": "bob", "iat": now + skew + 30},
        {"sub": "bob", "nbf": now + skew + 30},
        {"sub": "bob", "exp": now - skew - 30},
        {"sub": "bob", "iat": "yesterday"},
    ]
    for claims in refused:
        with pytest.raises(TokenError):
            verify_token(signed(claims), SECRET)


def test_a_configured_audience_must_be_named() -> None:
    assert verify_token(signed({"sub": "bob", "aud": "app"}), SECRET, "app") == "bob"
    assert verify_token(signed({"sub": "bob", "aud": ["x", "app"]}), SECRET, "app") == "bob"
    token = issue_token("bob", SECRET, datetime.now(UTC), audience="app")
    assert verify_token(token, SECRET, "app") == "bob"
    refused: list[dict[str, Any]] = [
        {"sub": "bob", "aud": "other"},
        {"sub": "bob"},
        {"sub": "bob", "aud": []},
    ]
    for claims in refused:
        with pytest.raises(TokenError):
            verify_token(signed(claims), SECRET, "app")


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing bearer token"),
        ("", "missing bearer token"),
        ("Bearer", "missing bearer token"),
        ("Bearer ", "missing bearer token"),
        ("Bearer     ", "missing bearer token"),
        ("Basic YWxpY2U6cGFzcw==", "scheme must be Bearer"),
        ("Token abc", "scheme must be Bearer"),
        ("BearerX abc", "scheme must be Bearer"),
        ("\udce9\udce9 abc", "not printable ASCII"),  # aiohttp's view of undecodable bytes
        ("B\x00earer abc", "not printable ASCII"),
        ("Bearer \udce9", "characters a token cannot have"),
        ("Bearer \xe9", "characters a token cannot have"),
        ("Bearer a b", "characters a token cannot have"),
        ("Bearer a\tb", "characters a token cannot have"),
        ("Bearer a=b", "characters a token cannot have"),
        ("Bearer " + "A" * (MAX_TOKEN_LENGTH + 1), "longer than"),
    ],
)
def test_a_malformed_header_is_refused_with_a_short_reason(header: str | None, reason: str) -> None:
    with pytest.raises(TokenError, match=reason) as refused:
        bearer_token(header)
    assert len(str(refused.value)) < 60


def test_a_bearer_header_gives_its_token() -> None:
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"
    assert bearer_token("bearer  abc.def.ghi") == "abc.def.ghi"  # RFC 7235: 1*SP
    assert bearer_token("BEARER a-b_c~d+e/f==") == "a-b_c~d+e/f=="


@pytest.mark.parametrize(
    "token",
    ["\udce9", "\xe9", "a.\udce9.c", "eyJ\u00e9.eyJ.x", "a.b.c", "...", "e30.e30.", "e30.bnVsbA.x"],
)
def test_an_undecodable_token_is_a_token_error(token: str) -> None:
    with pytest.raises(TokenError):
        verify_token(token, SECRET)
    with pytest.raises(TokenError):
        verify_internal_token(token, SECRET)


def test_the_token_command_names_the_configured_audience(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STORYSTREAM_API_SECRET", SECRET)
    monkeypatch.setenv("STORYSTREAM_API_AUDIENCE", "storystream-app")
    assert main(["token", "storystream-worker"]) == 0
    token = capsys.readouterr().out.strip()
    assert verify_token(token, SECRET, "storystream-app") == "storystream-worker"
    with pytest.raises(TokenError):
        verify_token(token, SECRET, "another-app")
    with pytest.raises(TokenError):  # an ordinary user, whatever the name
        verify_internal_token(token, SECRET)
