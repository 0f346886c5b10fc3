"""API tokens: HS256 JWTs whose `sub` is the user id, and the workers' own tokens.

A worker's token (for the `/internal/` routes) is signed with a key derived from the API secret
for that use alone, and names a subject and an audience no user token can: a token signed with
the API secret itself never passes for a worker, and a worker's token never passes for a user.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime, timedelta
from typing import Any

import jwt

from schemas.types import IDENTIFIER, IDENTIFIER_RULE

_ALGORITHM = "HS256"
# Clocks of the token's issuer and of the workers may differ this much (iat, nbf and exp).
LEEWAY = timedelta(seconds=30)
# ':' is never in a user id, so no user can be called this.
INTERNAL_SUBJECT = "storystream:worker"
INTERNAL_AUDIENCE = "storystream:internal"
INTERNAL_TTL = timedelta(minutes=10)
_INTERNAL_KEY_CONTEXT = b"storystream/internal-token/v1"
# RFC 6750's b64token: what a JWT is made of; anything else is refused before decoding.
_B64TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")
MAX_TOKEN_LENGTH = 4096


class TokenError(ValueError):
    """The token is missing, malformed, expired or not signed with the API secret."""


def bearer_token(header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header; TokenError (a short reason)
    for anything else. aiohttp hands undecodable header bytes over as lone surrogates."""
    if not header:
        raise TokenError("missing bearer token")
    scheme, _, rest = header.partition(" ")
    if scheme.lower() != "bearer":
        if not scheme.isascii() or not scheme.isprintable():
            raise TokenError("Authorization header is not printable ASCII")
        raise TokenError("Authorization scheme must be Bearer")
    token = rest.lstrip(" ")  # RFC 7235: one or more spaces after the scheme
    if not token:
        raise TokenError("missing bearer token")
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenError(f"bearer token longer than {MAX_TOKEN_LENGTH} characters")
    if not _B64TOKEN.fullmatch(token):
        raise TokenError("bearer token has characters a token cannot have")
    return token


def issue_token(
    user_id: str,
    secret: str,
    now: datetime,
    ttl: timedelta = timedelta(days=30),
    audience: str | None = None,
) -> str:
    """A signed token for `user_id` (with `aud` when an audience is configured)."""
    if not IDENTIFIER.fullmatch(user_id):
        raise ValueError(f"invalid user id {user_id!r}: {IDENTIFIER_RULE}")
    claims: dict[str, Any] = {
        "sub": user_id,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    if audience is not None:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)


def verify_token(token: str, secret: str, audience: str | None = None) -> str:
    """The user id of a valid user token; TokenError otherwise. Any `aud` is accepted unless
    `audience` is given, which the token must then name."""
    claims = _decode(token, secret, audience)
    subject = claims.get("sub")
    if not isinstance(subject, str) or not IDENTIFIER.fullmatch(subject):
        raise TokenError(f"token subject is not a user id: {IDENTIFIER_RULE}")
    named = claims.get("aud")
    if named == INTERNAL_AUDIENCE or (isinstance(named, list) and INTERNAL_AUDIENCE in named):
        raise TokenError("a worker's audience in a user token")
    return subject


def issue_internal_token(secret: str, now: datetime, ttl: timedelta = INTERNAL_TTL) -> str:
    """A token one worker shows another on the `/internal/` routes."""
    claims = {
        "sub": INTERNAL_SUBJECT,
        "aud": INTERNAL_AUDIENCE,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    return jwt.encode(claims, _internal_key(secret), algorithm=_ALGORITHM)


def verify_internal_token(token: str, secret: str) -> None:
    """Nothing for a worker's valid token; TokenError for anything else, user tokens included."""
    claims = _decode(token, _internal_key(secret), INTERNAL_AUDIENCE, required=("exp", "iat"))
    if claims.get("sub") != INTERNAL_SUBJECT:
        raise TokenError("not a worker's token")


def _internal_key(secret: str) -> bytes:
    return hmac.new(secret.encode(), _INTERNAL_KEY_CONTEXT, hashlib.sha256).digest()


def _decode(
    token: str, key: str | bytes, audience: str | None, required: tuple[str, ...] = ()
) -> dict[str, Any]:
    if not token.isascii():  # PyJWT would raise UnicodeEncodeError on lone surrogates
        raise TokenError("token is not ASCII")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[_ALGORITHM],
            audience=audience,
            leeway=LEEWAY,
            options={
                "require": ["sub", *required, *(["aud"] if audience else [])],
                "verify_aud": audience is not None,
            },
        )
    except jwt.PyJWTError as exc:
        raise TokenError(str(exc)[:100]) from exc
    return claims
