"""API tokens: HS256 JWTs whose `sub` is the user id."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import jwt

from schemas.types import IDENTIFIER_PATTERN

_ALGORITHM = "HS256"
_USER_ID = re.compile(IDENTIFIER_PATTERN)


class TokenError(ValueError):
    """The token is missing, malformed, expired or not signed with the API secret."""


def issue_token(
    user_id: str, secret: str, now: datetime, ttl: timedelta = timedelta(days=30)
) -> str:
    """A signed token for `user_id`."""
    if not _USER_ID.fullmatch(user_id):
        raise ValueError(f"invalid user id {user_id!r}: 1-64 characters of [A-Za-z0-9_-]")
    claims = {"sub": user_id, "iat": int(now.timestamp()), "exp": int((now + ttl).timestamp())}
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)


def verify_token(token: str, secret: str) -> str:
    """The user id of a valid token; TokenError otherwise."""
    try:
        claims = jwt.decode(token, secret, algorithms=[_ALGORITHM], options={"require": ["sub"]})
    except jwt.PyJWTError as exc:
        raise TokenError(str(exc)) from exc
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise TokenError("token has no subject")
    return subject
