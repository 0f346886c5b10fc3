"""Hypothesis strategies for hostile API input: Authorization headers, query strings, path ids."""

from __future__ import annotations

import base64
import hmac
import json
import time
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any, Literal
from urllib.parse import quote

from hypothesis import strategies as st

from streams.api.auth import INTERNAL_AUDIENCE, INTERNAL_SUBJECT, _internal_key

SECRET = "fuzz-secret-of-at-least-32-bytes-long"
Signer = Literal["api", "worker", "none"]


@dataclass(frozen=True)
class Header:
    """An Authorization header value and how it was made (for the security invariants)."""

    value: str | None
    signer: Signer = "none"  # whose key signed the token in it, if any
    claims: dict[str, Any] = field(default_factory=dict)


def surrogate_escaped(data: bytes) -> str:
    """What aiohttp makes of header or request-line bytes (undecodable ones as surrogates)."""
    return data.decode("utf-8", "surrogateescape")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_of(header: Any, claims: Any, key: bytes | None) -> str:
    """A compact JWS of any JSON header and claims (NaN and Infinity included), signed with
    HS256 under `key` or with a garbage signature."""
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    if key is None:
        return signing_input + "." + b64(b"not a signature")
    return signing_input + "." + b64(hmac.new(key, signing_input.encode(), sha256).digest())


user_ids = st.sampled_from(["alice", "bob", "storystream-worker", "a" * 64])
identifiers = st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z")
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from([INTERNAL_SUBJECT, INTERNAL_AUDIENCE]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def times() -> st.SearchStrategy[Any]:
    now = int(time.time())
    return st.one_of(
        st.integers(now - 120, now + 120),
        st.floats(now - 120, now + 120),
        json_values,
        st.sampled_from([10**30, -(10**30), 2**63, float("inf"), float("nan")]),
    )


claims = st.fixed_dictionaries(
    {},
    optional={
        "sub": st.one_of(user_ids, st.just(INTERNAL_SUBJECT), json_values),
        "aud": st.one_of(
            st.just(INTERNAL_AUDIENCE), st.lists(st.text(max_size=8), max_size=3), json_values
        ),
        "iat": times(),
        "nbf": times(),
        "exp": times(),
        "iss": json_values,
        "internal": json_values,
    },
)
jose_headers = st.one_of(
    st.just({"alg": "HS256", "typ": "JWT"}),
    st.fixed_dictionaries({"alg": st.sampled_from(["HS256", "none", "RS256", "HS512", ""])}),
    json_values,
)


@st.composite
def signed_tokens(draw: st.DrawFn) -> Header:
    """Tokens with arbitrary claims, signed with the API secret, the workers' key or nothing."""
    signer: Signer = draw(st.sampled_from(["api", "worker", "none"]))
    key = {"api": SECRET.encode(), "worker": _internal_key(SECRET), "none": None}[signer]
    jose = draw(jose_headers)
    payload = draw(claims)
    token = jwt_of(jose, payload, key)
    if draw(st.booleans()):  # well-formed, or a character of it changed
        at = draw(st.integers(0, len(token) - 1))
        token = token[:at] + draw(st.characters()) + token[at + 1 :]
        signer = "none"
    scheme = draw(st.sampled_from(["Bearer ", "bearer ", "Bearer   ", "BEARER ", "Basic "]))
    return Header(scheme + token, signer if scheme != "Basic " else "none", payload)


authorization_headers = st.one_of(
    st.none().map(Header),
    st.text().map(Header),  # any code point, lone surrogates included
    st.binary(max_size=300).map(surrogate_escaped).map(Header),
    st.builds(
        lambda scheme, rest: Header(scheme + rest),
        st.sampled_from(["Bearer ", "bearer ", "Bearer", "Bearer  ", "Basic ", " ", ""]),
        st.text(max_size=300) | st.binary(max_size=300).map(surrogate_escaped),
    ),
    st.integers(4000, 9000).map(lambda n: Header("Bearer " + "A" * n)),
    signed_tokens(),
)


def _query_value() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=30),
        st.integers().map(str),
        st.sampled_from(["", "0", "1", "1000", "1001", "-1", "+5", " 5", "5 ", "٥", "1_0", "0x10"]),
        st.sampled_from(["9" * 5000, "%", "%zz", "%ff", "%ED%A0%80", "%00", "a=b", "&&"]),
        identifiers,
    )


@st.composite
def query_strings(draw: st.DrawFn, names: tuple[str, ...]) -> str:
    """A raw query string: the names given and others, values raw, percent-quoted or bytes."""
    if draw(st.booleans()):
        return draw(st.text(max_size=200) | st.binary(max_size=200).map(surrogate_escaped))
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(names) | st.text(max_size=8))
        value = draw(_query_value())
        if draw(st.booleans()):
            value = quote(value.encode("utf-8", "surrogatepass"), safe="")
        parts.append(f"{name}={value}" if draw(st.integers(0, 5)) else name)
    return "&".join(parts)


path_ids = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=80).map(surrogate_escaped),
    identifiers,
    st.sampled_from(["", ".", "..", "a" * 65, "alice\n", "a b", "a/b", "%2F", "\x00", "ä"]),
)


def wire(text: str) -> bytes:
    """`text` as bytes on the wire: surrogate escapes back to their bytes, other lone
    surrogates as their (invalid) UTF-8, CR and LF dropped so the request keeps its lines."""
    try:
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        data = text.encode("utf-8", "surrogatepass")
    return data.replace(b"\r", b"").replace(b"\n", b"")
