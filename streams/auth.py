"""API tokens: HS256 JWTs whose `sub` is the user id."""

from __future__ import annotations

from datetime import datetime, timedelta

import jwt

from schemas.types import IDENTIFIER, IDENTIFIER_RULE

_ALGORITHM = "HS256"


class TokenError(ValueError):
    """The token is missing, malformed, expired or not signed with the API secret."""


def issue_token(
    user_id: str, secret: str, now: datetime, ttl: timedelta = timedelta(days=30)
) -> str:
    """A signed token for `user_id`."""
    if not IDENTIFIER.fullmatch(user_id):
        raise ValueError(f"invalid user id {user_id!r}: {IDENTIFIER_RULE}")
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
