"""A small HTTP client for the write side's tests: requests as a user (or with any token),
answers as (status, headers, JSON), and media files to upload."""

from __future__ import annotations

import io
import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from PIL import Image

from streams.api.auth import issue_internal_token, issue_token
from tests.integration.worker_fixture import WorkerProcess


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def error(self) -> str:
        return str(self.body.get("error", "")) if isinstance(self.body, dict) else ""


def user_token(worker: WorkerProcess, user: str) -> str:
    return issue_token(user, worker.api_secret, datetime.now(UTC))


def worker_token(worker: WorkerProcess) -> str:
    return issue_internal_token(worker.api_secret, datetime.now(UTC))


def call(
    worker: WorkerProcess,
    method: str,
    path: str,
    user: str | None = None,
    body: Any = None,
    *,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    token: str | None = None,
) -> Answer:
    """One request: `body` as JSON (or `data` as it is), as `user` (or with `token`)."""
    sent = dict(headers or {})
    if user is not None:
        token = user_token(worker, user)
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    if body is not None:
        data = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(worker.url + path, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            status, got, raw = answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as exc:
        status, got, raw = exc.code, dict(exc.headers), exc.read()
    try:
        decoded = json.loads(raw) if raw else None
    except ValueError:
        decoded = raw.decode(errors="replace")
    return Answer(status, got, decoded)


def interrupted_put(worker: WorkerProcess, user: str, path: str, first: int, total: int,
                    chunk: bytes, sent: int) -> None:  # fmt: skip
    """A PUT of `chunk` (bytes from `first`) whose connection drops after `sent` bytes."""
    port = int(worker.url.rsplit(":", 1)[1])
    last = first + len(chunk) - 1
    head = (
        f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {user_token(worker, user)}\r\n"
        f"Content-Range: bytes {first}-{last}/{total}\r\nContent-Length: {len(chunk)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + chunk[:sent])
        time.sleep(0.5)  # the server reads what came before the connection drops


def jpeg(width: int, height: int, quality: int = 95) -> bytes:
    """A noisy JPEG (noise does not compress: a large file from a small image)."""
    out = io.BytesIO()
    Image.effect_noise((width, height), 80).convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()
