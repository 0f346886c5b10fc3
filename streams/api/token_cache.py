"""User tokens verified once: a client's next request with the same token costs a lookup, not
an HMAC and a JSON decode."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

import orjson

from streams.api.auth import LEEWAY, TokenError


class VerifiedTokens:
    """Subjects of tokens `verify` accepted, kept while the token is within its validity
    (`nbf` to `exp`, with the same leeway `verify` allows), at most `size` of them; a refused
    token is not kept (each try verifies it again)."""

    def __init__(
        self,
        verify: Callable[[str], str],
        size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._verify = verify
        self._size = size
        self._clock = clock
        self._known: dict[str, tuple[str, float, float]] = {}  # token -> subject, from, until

    def subject(self, token: str) -> str:
        """The token's subject; TokenError if `verify` refuses it or it is no longer valid."""
        now = self._clock()
        known = self._known.get(token)
        if known is not None:
            subject, valid_from, valid_until = known
            if valid_from <= now < valid_until:
                return subject
            del self._known[token]
        subject = self._verify(token)  # raises TokenError
        valid_from, valid_until = _window(token)
        if valid_from <= now < valid_until:
            if len(self._known) >= self._size:
                del self._known[next(iter(self._known))]  # the oldest entry
            self._known[token] = (subject, valid_from, valid_until)
        return subject


def _window(token: str) -> tuple[float, float]:
    """When a verified token is valid: from `nbf` (or always) until `exp` (or never), widened
    by the leeway. Its claims were checked by the verification: only read here."""
    try:
        payload = token.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as exc:
        raise TokenError("token payload unreadable") from exc
    leeway = LEEWAY.total_seconds()
    nbf, exp = claims.get("nbf"), claims.get("exp")
    valid_from = float(nbf) - leeway if isinstance(nbf, (int, float)) else float("-inf")
    valid_until = float(exp) + leeway if isinstance(exp, (int, float)) else float("inf")
    return valid_from, valid_until
