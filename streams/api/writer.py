"""The write side's one path to the log: request bodies read within limits, events built as the
JSON lines `publish` takes, validated and encoded by publish's own code, produced through the
client, and answered 202 once the broker has them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import orjson
from aiohttp import web
from faust.web import Request

from schemas.events import derive_event_id
from schemas.types import IDENTIFIER, IDENTIFIER_RULE
from streams.api.http import HttpError, Raw
from streams.client.aio import AsyncEventClient
from streams.client.encoder import Encoded
from streams.client.producer import DeliveryError, QueueFull
from streams.publish.publisher import encode_lines
from streams.settings import Settings

MAX_JSON_BODY = 256 * 1024  # a batch of views is well under it
_BUSY = {"Retry-After": "1"}


def iso(value: datetime) -> str:
    """A time as the contract writes it (milliseconds, `Z`)."""
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def too_large(limit: int) -> HttpError:
    return HttpError(413, f"request body larger than {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, at most `limit` bytes (413 past it, before reading when the length
    is declared)."""
    served = cast(web.Request, request)  # Faust's web server is aiohttp's
    declared = served.content_length
    if declared is not None and declared > limit:
        raise too_large(limit)
    body = bytearray()
    while chunk := await served.content.read(65536):
        body += chunk
        if len(body) > limit:
            raise too_large(limit)
    return bytes(body)


async def json_body(
    request: Request, allowed: Sequence[str], required: bool = True
) -> dict[str, Any]:
    """The body as a JSON object holding only `allowed` fields; 400 naming what is wrong
    (an empty body is `{}` unless `required`)."""
    raw = await read_body(request, MAX_JSON_BODY)
    if not raw.strip():
        if required:
            raise HttpError(400, "body: a JSON object is required")
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, f"body: not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise HttpError(400, "body: must be a JSON object")
    for name in body:
        if name not in allowed:
            raise HttpError(400, f"{name}: not a field of this request")
    return body


def actor(body: Mapping[str, Any], field: str, caller: str) -> None:
    """A body may name the actor only as the caller (403 otherwise)."""
    if field in body and body[field] != caller:
        raise HttpError(403, f"{field}: the actor is the token's subject ({caller})")


def idempotency_key(request: Request) -> str | None:
    """The `Idempotency-Key` header (an identifier: it becomes the event id), or None."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    return check_identifier(key, "Idempotency-Key")


def sub_key(key: str | None, part: str) -> str | None:
    """The event id of one of several events a keyed request makes."""
    return None if key is None else derive_event_id(f"{key}/{part}".encode())


def check_identifier(value: Any, name: str) -> str:
    """An identifier a client sent (an event id, an upload id); 400 naming `name` otherwise."""
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value):
        raise HttpError(400, f"{name}: {IDENTIFIER_RULE}")
    return value


def line(fields: Mapping[str, Any], event_id: str | None) -> bytes:
    """An event as the JSON line `publish` reads, with its event id: the given one (an
    identifier, checked), else the one publish derives from the line's content."""
    content = orjson.dumps({name: value for name, value in fields.items() if value is not None})
    if event_id is None:
        event_id = derive_event_id(content)
    elif not IDENTIFIER.fullmatch(event_id):  # it is spliced into the line as it is
        raise ValueError(f"not an identifier: {event_id!r}")
    return b'{"event_id":"' + event_id.encode() + b'",' + content[1:]


def event_id_of(encoded_line: bytes) -> str:
    """The event id `line` put first in a line."""
    return encoded_line[13 : encoded_line.index(b'"', 13)].decode()


class Writer:
    """Validates and produces the events of write requests."""

    def __init__(self, settings: Settings, client: AsyncEventClient) -> None:
        self.settings = settings
        self.client = client

    def encode(self, lines: list[bytes], names: Sequence[str] = ()) -> list[Encoded]:
        """The records of `lines`, validated and encoded as `publish` does them; 400 naming
        the field of the first invalid one (prefixed with `names[i]` for line i)."""
        records, invalid = encode_lines(
            lines, self.settings.story_ttl, self.settings.schema_registry_url
        )
        if invalid:
            bad = invalid[0]
            prefix = names[bad.line - 1] if names else ""
            raise HttpError(400, "; ".join(prefix + error for error in bad.errors))
        return records

    async def send(self, records: list[Encoded]) -> None:
        """Produce records and return once the broker has them all; 503 with `Retry-After`
        when the producer's queue is full or the broker refuses them."""
        try:
            await self.client.send_encoded(records)
        except QueueFull as exc:
            raise HttpError(503, f"busy: {exc}; retry", _BUSY) from None
        except DeliveryError as exc:
            raise HttpError(
                503, f"the broker did not take the event: {exc}; retry", _BUSY
            ) from None

    async def emit(self, lines: list[bytes], names: Sequence[str] = ()) -> list[str]:
        """Produce the events of `lines` (all, or none when one is invalid) and return their
        ids once the broker has them."""
        await self.send(self.encode(lines, names))
        return [event_id_of(encoded) for encoded in lines]


def accepted(payload: Mapping[str, Any]) -> Raw:
    """202 with the events' ids."""
    return Raw(orjson.dumps(payload), 202)
