"""The write side's media: resumable uploads into the object store, and posting an upload as a
story (`media_uploaded` then `story_posted`, as `storystream post` does).

Every object-store call runs in an executor: the event loop never waits on S3.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar, cast

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from faust.web import Request

from connectors.resumable import Session, UploadConflict, UploadNotFound, UploadRefused, Uploads
from processors.media import media_kind
from streams.api.http import Endpoint, HttpError, Raw, Route
from streams.api.routes import Api
from streams.api.writer import (
    Writer,
    accepted,
    actor,
    check_identifier,
    idempotency_key,
    iso,
    json_body,
    line,
    sub_key,
    too_large,
)
from streams.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
_RANGE = re.compile(r"bytes ([0-9]{1,15})-([0-9]{1,15})/([0-9]{1,15})")
_POST_FIELDS = ("upload_id", "author_id", "audience", "mentions", "hashtags", "location")


def upload_json(session: Session) -> dict[str, Any]:
    return {
        "upload_id": session.upload_id,
        "size": session.size,
        "offset": session.offset,
        "complete": session.complete,
        "content_type": session.content_type or session.declared_type,
    }


def _offset_headers(session: Session) -> dict[str, str]:
    headers = {"Upload-Offset": str(session.offset), "Upload-Length": str(session.size)}
    if session.offset:
        headers["Range"] = f"bytes=0-{session.offset - 1}"
    return headers


def upload_routes(
    api: Api, writer: Writer, uploads: Uploads, settings: Settings, executor: Executor
) -> list[Endpoint]:
    """`POST /uploads`, `PUT`/`HEAD /uploads/{upload_id}`, `POST /stories`."""

    async def s3(call: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, partial(call, *args))
        except UploadNotFound as exc:
            raise HttpError(404, str(exc)) from None
        except UploadRefused as exc:
            status = {"too_large": 413, "unsupported": 415}.get(exc.kind, 400)
            raise HttpError(status, str(exc)) from None
        except UploadConflict as exc:
            raise HttpError(409, str(exc), {"Upload-Offset": str(exc.offset)}) from None

    async def own_session(caller: str, upload_id: str) -> Session:
        session, _ = await s3(uploads.load, upload_id)
        if session.author_id != caller:
            raise HttpError(403, "an upload is its author's alone")
        return session

    async def create(request: Request, caller: str) -> Raw:
        body = await json_body(request, ("size", "content_type"))
        size, content_type = body.get("size"), body.get("content_type")
        if type(size) is not int:
            raise HttpError(400, "size: an integer number of bytes is required")
        if not isinstance(content_type, str):
            raise HttpError(400, "content_type: a media type (e.g. image/jpeg) is required")
        session = await s3(uploads.create, caller, size, content_type)
        location = {"Location": f"/uploads/{session.upload_id}", **_offset_headers(session)}
        return Raw(orjson.dumps(upload_json(session)), 201, headers=location)

    async def status(request: Request, caller: str, upload_id: str) -> Raw:
        session = await own_session(caller, upload_id)
        headers = {**_offset_headers(session), "Cache-Control": "no-store"}
        return Raw(b"", 200, headers=headers)

    async def put(request: Request, caller: str, upload_id: str) -> Raw:
        match = _RANGE.fullmatch(request.headers.get("Content-Range", ""))
        if match is None:
            raise HttpError(400, "Content-Range: required, as bytes FIRST-LAST/SIZE")
        first, last, total = (int(group) for group in match.groups())
        if first > last or last >= total:
            raise HttpError(400, "Content-Range: FIRST <= LAST < SIZE is required")
        length = last - first + 1
        if length > settings.upload_chunk_max_bytes:
            raise too_large(settings.upload_chunk_max_bytes)
        session = await own_session(caller, upload_id)
        if total != session.size:
            raise HttpError(400, f"Content-Range: SIZE must be the declared {session.size}")
        data, lost = await _read_chunk(request, length)
        if lost:  # the client went away mid-chunk: keep what came, a HEAD says how much
            if data:
                await asyncio.shield(s3(uploads.append, upload_id, first, data))
            raise HttpError(400, "the connection was lost before the chunk's end")
        if len(data) != length:
            raise HttpError(400, f"Content-Range: says {length} bytes, the body has {len(data)}")
        session = await s3(uploads.append, upload_id, first, data)
        return Raw(orjson.dumps(upload_json(session)), 200, headers=_offset_headers(session))

    async def post_story(request: Request, caller: str) -> Raw:
        body = await json_body(request, _POST_FIELDS)
        actor(body, "author_id", caller)
        upload_id = check_identifier(body.get("upload_id"), "upload_id")
        session = await own_session(caller, upload_id)
        if not session.complete:
            raise HttpError(
                409,
                f"upload_id: upload {upload_id} holds {session.offset} of {session.size} bytes",
                {"Upload-Offset": str(session.offset)},
            )
        key = idempotency_key(request)
        asked = {name: body.get(name) for name in _POST_FIELDS[2:]} | {"key": key}
        if session.posted is None:
            lines = _story_lines(session, asked, key, iso(api.clock()))
            writer.encode(lines, ("", ""))  # 400 before the upload is taken
            posted = {"asked": asked, "lines": [encoded.decode() for encoded in lines]}
            try:
                session = await s3(uploads.mark_posted, upload_id, posted)
            except HttpError as exc:  # posted meanwhile (a retry racing its first try)
                if exc.status != 409:
                    raise
                session, _ = await s3(uploads.load, upload_id)
        assert session.posted is not None
        if session.posted["asked"] != asked:
            raise HttpError(409, f"upload_id: upload {upload_id} was posted already, otherwise")
        lines = [text.encode() for text in session.posted["lines"]]
        ids: list[str] = []
        for encoded in lines:  # one at a time: the upload is on the log before the story
            ids += await writer.emit([encoded])
        return accepted({"event_id": ids[1], "event_ids": ids, "story_id": upload_id,
                         "media_id": upload_id})  # fmt: skip

    write = partial(Route, limited=True)
    return [
        ("POST", "/uploads", write(create)),
        ("PUT", "/uploads/{upload_id}", write(put)),
        ("HEAD", "/uploads/{upload_id}", Route(status)),
        ("POST", "/stories", write(post_story)),
    ]


def _story_lines(session: Session, asked: dict[str, Any], key: str | None, now: str) -> list[bytes]:
    """The two events of a story post: its media's upload, then the story (story and media
    ids are the upload's: one upload is one story)."""
    content_type = session.content_type or session.declared_type
    uploaded = {"type": "media_uploaded", "media_id": session.upload_id,
                "author_id": session.author_id, "object_key": session.object_key,
                "content_type": content_type, "size_bytes": session.size,
                "story_id": session.upload_id, "at": now}  # fmt: skip
    posted = {"type": "story_posted", "story_id": session.upload_id,
              "author_id": session.author_id, "created_at": now, "media_id": session.upload_id,
              "media_type": media_kind(content_type), "audience": asked["audience"],
              "mentions": asked["mentions"], "hashtags": asked["hashtags"],
              "location": asked["location"]}  # fmt: skip
    return [line(uploaded, sub_key(key, "media")), line(posted, key)]


async def _read_chunk(request: Request, length: int) -> tuple[bytes, bool]:
    """Up to `length` + 1 bytes of the body (one more says it is too long), and whether the
    connection was lost before its end."""
    content = cast(web.Request, request).content
    data = bytearray()
    try:
        while len(data) <= length and (chunk := await content.read(min(1 << 20, length + 1))):
            data += chunk
    except (OSError, HttpProcessingError, asyncio.IncompleteReadError):
        return bytes(data[:length]), True
    return bytes(data), False


class UploadSweeper:
    """Drops abandoned uploads every `interval` seconds (a worker's companion thread); at
    stop, also the threads of the uploads' object-store calls."""

    def __init__(self, uploads: Uploads, settings: Settings, executor: ThreadPoolExecutor) -> None:
        self._uploads = uploads
        self._executor = executor
        self._expiry = settings.upload_expiry
        self._interval = settings.upload_sweep_interval.total_seconds()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="storystream-uploads", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(10)
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                self._uploads.sweep(self._expiry)
            except Exception:  # the object store away: the next turn tries again
                log.warning("sweeping abandoned uploads failed", exc_info=True)
