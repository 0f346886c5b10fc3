"""The API against hostile callers, on two live workers: no user token passes for a worker,
malformed headers and requests get a 4xx (never a 500, never a traceback in the log), and the
workers' own calls to each other (close friends, celebrities, stories across workers) work."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jwt
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from streams.api import web_log
from streams.api.auth import INTERNAL_AUDIENCE, INTERNAL_SUBJECT, issue_internal_token, issue_token
from streams.kafka.partitioning import partition_for
from streams.settings import Settings
from tests.fuzz.api_inputs import authorization_headers, path_ids, query_strings, wire
from tests.integration import raw_http
from tests.integration.worker_fixture import WorkerProcess, http_get, launch_worker
from tests.integration.workers import SECRET, publish, wait_for

pytestmark = pytest.mark.integration

MEDIA = [
    {
        "name": "1080",
        "url": "https://cdn.example/x.jpg",
        "width": 1080,
        "height": 1920,
        "content_type": "image/jpeg",
    }
]


def user_token(claims: dict[str, Any], secret: str = SECRET) -> str:
    now = int(time.time())
    return jwt.encode({"iat": now, "exp": now + 600, **claims}, secret, algorithm="HS256")


def get(worker: WorkerProcess, path: str, token: str | None) -> tuple[int, Any]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    status, body = http_get(worker.url + path, headers)
    return status, json.loads(body)


def port(worker: WorkerProcess) -> int:
    return int(worker.url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def pair(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[WorkerProcess]]:
    """Two workers of one group, each owning some partitions."""
    root = Path(tmp_path_factory.mktemp("api-auth"))
    env = {
        "app_id": f"auth-{uuid.uuid4().hex[:6]}",
        "api_secret": SECRET,
        "celebrity_followers": 3,
        "s3_endpoint_url": "http://127.0.0.1:9",  # unused: no media here
    }
    workers = [launch_worker(settings, root / f"w{i}", wait=False, **env) for i in range(2)]
    try:
        for worker in workers:
            worker.wait_healthy(90)

        def spread() -> bool:
            owned = [set(owned_partitions(w)) for w in workers]
            return all(owned) and not owned[0] & owned[1]

        wait_for(spread, 90, "partitions spread over both workers")
        yield workers
    finally:
        for worker in workers:
            worker.stop()


def owned_partitions(worker: WorkerProcess) -> list[int]:
    status, body = http_get(worker.url + "/health", timeout=5)
    return list(json.loads(body)["partitions"]) if status == 200 else []


@pytest.fixture(scope="module")
def world(settings: Settings, pair: list[WorkerProcess]) -> dict[str, str]:
    """alice (close friend bob) and a celebrity with a story each, ids chosen so that every
    read below needs one worker to ask the other."""
    partitions = settings.partitions
    owned = [set(owned_partitions(w)) for w in pair]

    def owner(key: str) -> int:
        partition = partition_for(key, partitions)
        return 0 if partition in owned[0] else 1

    def other_than(stem: str, key: str) -> str:
        return next(f"{stem}{i}" for i in range(1000) if owner(f"{stem}{i}") != owner(key))

    tag = uuid.uuid4().hex[:6]
    alice, star = f"alice-{tag}", f"star-{tag}"
    ids = {
        "alice": alice,
        "star": star,
        "carol": f"carol-{tag}",
        "bob": other_than(f"bob-{tag}-", star),  # bob's tray merges star's stories: asked across
        "cf": other_than(f"cf-{tag}-", alice),  # the story's owner asks alice's for bob's place
        "c1": other_than(f"c1-{tag}-", star),  # star's stories are read from another worker
    }
    now = datetime.now(UTC).replace(microsecond=0)

    def t(seconds: int) -> str:
        return (now + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")

    fans = [f"fan{i}-{tag}" for i in range(3)]
    broker = settings.bootstrap()
    publish(
        broker,
        [
            {
                "type": "user_followed",
                "follower_id": ids["bob"],
                "followee_id": alice,
                "at": t(-60),
            },
            {
                "type": "user_followed",
                "follower_id": ids["carol"],
                "followee_id": alice,
                "at": t(-60),
            },
            {"type": "close_friend_added", "user_id": alice, "friend_id": ids["bob"], "at": t(-60)},
            *(
                {"type": "user_followed", "follower_id": f, "followee_id": star, "at": t(-60)}
                for f in [*fans, ids["bob"]]
            ),
        ],
    )
    internal = {"Authorization": f"Bearer {issue_internal_token(SECRET, datetime.now(UTC))}"}

    def author(name: str, viewer: str) -> dict[str, Any] | None:
        key = ids[name]
        status, body = http_get(
            pair[owner(key)].url + f"/internal/authors/{key}?viewer={ids[viewer]}", internal
        )
        return json.loads(body) if status == 200 else None

    wait_for(lambda: (author("star", "bob") or {}).get("followers"), 60, "star's followers")
    wait_for(lambda: (author("alice", "bob") or {}).get("close_friends"), 60, "alice's friends")
    publish(
        broker,
        [
            {
                "type": "story_posted",
                "story_id": ids["cf"],
                "author_id": alice,
                "created_at": t(-20),
                "media": MEDIA,
                "audience": "close_friends",
            },
            {
                "type": "story_posted",
                "story_id": ids["c1"],
                "author_id": star,
                "created_at": t(-10),
                "media": MEDIA,
                "audience": "public",
            },
        ],
    )
    wait_for(lambda: (author("star", "bob") or {}).get("stories"), 60, "star's story")
    wait_for(lambda: (author("alice", "bob") or {}).get("stories"), 60, "alice's story")
    assert (author("star", "bob") or {})["celebrity"] is True  # merged on read, not fanned out
    return ids


def test_workers_ask_each_other_with_their_own_identity(
    pair: list[WorkerProcess], world: dict[str, str]
) -> None:
    bob, carol, alice, star = (world[n] for n in ("bob", "carol", "alice", "star"))
    for worker in pair:  # whichever worker is asked, the answer needs both
        assert worker.get(f"/stories/{world['cf']}", bob)[0] == 200
        assert worker.get(f"/stories/{world['cf']}", carol)[0] == 404
        status, stories = worker.get(f"/users/{alice}/stories", bob)
        assert status == 200 and [s["story_id"] for s in stories["stories"]] == [world["cf"]]
        status, stories = worker.get(f"/users/{star}/stories", carol)
        assert status == 200 and [s["story_id"] for s in stories["stories"]] == [world["c1"]]
        status, tray = worker.get(f"/users/{bob}/tray", bob)
        assert status == 200, tray
        assert [(e["author_id"], e["story_ids"]) for e in tray["entries"]] == [
            (star, [world["c1"]]),
            (alice, [world["cf"]]),
        ]


# Claims a user could put in a token signed with API_SECRET, to pass for a worker.
PRETENDED: list[dict[str, Any]] = [
    {"sub": "storystream-worker"},
    {"sub": "storystream-worker", "aud": "storystream"},
    {"sub": "storystream-worker", "aud": INTERNAL_AUDIENCE},
    {"sub": INTERNAL_SUBJECT, "aud": INTERNAL_AUDIENCE},
    {"sub": INTERNAL_SUBJECT, "aud": [INTERNAL_AUDIENCE, "storystream"], "internal": True},
    {"sub": "storystream-worker", "typ": "internal", "role": "worker", "iss": "storystream"},
    {"sub": "storystream-worker", "scope": "internal", "admin": True},
]


def test_no_user_token_passes_for_a_worker(
    pair: list[WorkerProcess], world: dict[str, str]
) -> None:
    internal_paths = [
        f"/internal/stories/{world['cf']}",
        f"/internal/authors/{world['alice']}?viewer={world['bob']}",
        f"/internal/authors/{world['star']}?viewer={world['carol']}",
    ]
    for worker in pair:
        for claims in PRETENDED:
            for path in internal_paths:
                status, body = get(worker, path, user_token(claims))
                assert status in (401, 403), (claims, path, body)
                assert "close_friends" not in body and "audience" not in body
        # A token signed with the key workers use, but by someone who guessed it wrong.
        guessed = issue_internal_token("not-the-secret-but-also-32-bytes-long", datetime.now(UTC))
        for path in internal_paths:
            assert get(worker, path, guessed)[0] == 401
        # A worker's token is not a user's: no user route takes it.
        real = issue_internal_token(SECRET, datetime.now(UTC))
        for path in (
            f"/stories/{world['cf']}",
            f"/users/{world['bob']}/tray",
            f"/users/{world['alice']}/stories",
            f"/stories/{world['cf']}/viewers",
        ):
            status, body = get(worker, path, real)
            assert status == 401, (path, body)
        # `storystream-worker` is an ordinary user id now: it sees what any user sees.
        assert worker.get(f"/stories/{world['cf']}", "storystream-worker")[0] == 404
        assert worker.get(f"/stories/{world['c1']}", "storystream-worker")[0] == 200


# Authorization headers as bytes on the wire, each a 401 with a JSON reason.
MALFORMED_AUTHORIZATION = [
    b"Bearer \xe9",
    b"Bearer \xc3\xa9\xc3\xa9",
    b"Bearer \xff\xfe",
    b"Bearer eyJ\xe9.eyJ.x",
    b"",
    b"Bearer",
    b"Bearer ",
    b"Basic YWxpY2U6cGFzcw==",
    b"Token abc",
    b"bearer",
    b"Bearer a b c",
    b"Bearer    ",
    b"Bearer a.b.c",
    b"Bearer ...",
    b"Bearer " + b"A" * 8000,
    b"Bearer " + b"\xe9" * 4000,
    b"\xe9\xe9 token",
]
# Control bytes in a header: refused by the server's HTTP parser itself (400) before any route.
CONTROL_BYTES = [b"Bearer \x7f", b"Bearer \x01\x02", b"Bearer a\x00b"]


def test_malformed_authorization_is_a_401_with_a_reason(
    pair: list[WorkerProcess], world: dict[str, str]
) -> None:
    for worker in pair:
        for header in MALFORMED_AUTHORIZATION:
            answer = raw_http.get(
                port(worker), f"/stories/{world['c1']}".encode(), [(b"Authorization", header)]
            )
            assert answer.status == 401, (header[:40], answer)
            reason = json.loads(answer.body)["error"]
            assert 0 < len(reason) <= 120, reason
        for header in CONTROL_BYTES:
            answer = raw_http.get(port(worker), b"/stories/x", [(b"Authorization", header)])
            assert answer.status == 400, (header, answer)
    assert all(worker.running for worker in pair)


def test_an_audience_and_a_little_clock_skew_are_accepted(
    pair: list[WorkerProcess], world: dict[str, str]
) -> None:
    now = int(time.time())
    bob = world["bob"]
    accepted: list[dict[str, Any]] = [
        {"sub": bob, "aud": "some-client"},
        {"sub": bob, "aud": ["a", "b"]},
        {"sub": bob, "iat": now + 5},
        {"sub": bob, "iat": now + 25, "nbf": now + 25},
        {"sub": bob, "exp": now - 10},
    ]
    refused: list[dict[str, Any]] = [
        {"sub": bob, "iat": now + 120},
        {"sub": bob, "nbf": now + 120},
        {"sub": bob, "exp": now - 120},
        {"sub": "bob/../alice"},
        {"sub": ""},
    ]
    for worker in pair:
        for claims in accepted:
            status, body = get(worker, f"/stories/{world['cf']}", user_token(claims))
            assert status == 200, (claims, body)
        for claims in refused:
            status, body = get(worker, f"/stories/{world['cf']}", user_token(claims))
            assert status == 401, (claims, body)


# Requests aiohttp's parser refuses: before, each logged an ERROR with a traceback.
MALFORMED_REQUESTS = [
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # request line too long
    b"GET /stories/\x00\x01 HTTP/1.1\r\nHost: x\r\n\r\n",  # bad bytes in the target
    b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"v" * 9000 + b"\r\n\r\n",  # header too long
    b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",  # no colon
    b"GET / HTTP/1.1\r\nHo\x00st: x\r\n\r\n",  # NUL in a header name
    b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",  # unknown version
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
]


def test_malformed_requests_log_one_warning_not_a_traceback(
    pair: list[WorkerProcess], world: dict[str, str]
) -> None:
    worker = pair[0]
    before = len(worker.log_path.read_bytes())

    def written() -> str:
        return worker.log_path.read_bytes()[before:].decode(errors="replace")

    def warnings() -> list[str]:
        return [line for line in written().splitlines() if "bad HTTP request" in line]

    started = time.monotonic()
    sent = 0
    for _ in range(20):
        for request in MALFORMED_REQUESTS:
            answer = raw_http.exchange(port(worker), request)
            assert 400 <= answer.status < 500, (request[:60], answer)
            sent += 1
    flood = time.monotonic() - started
    time.sleep(0.5)  # the worker's process writes its log
    during = warnings()
    assert len(during) <= 1 + flood / web_log.INTERVAL, during
    # Once the interval has passed, the next bad request is logged with the count left out.
    time.sleep(web_log.INTERVAL)
    raw_http.exchange(port(worker), MALFORMED_REQUESTS[0])
    last = wait_for(lambda: warnings()[len(during) :], 10, "the next warning")
    assert len(last) == 1, last
    left_out = re.search(r"\((\d+) more since the last such line\)", last[0])
    assert left_out is not None and int(left_out[1]) >= sent - len(during), last[0]
    text = written()
    assert "Traceback" not in text, text[:3000]
    assert "ERROR" not in text, text[:3000]
    assert all(len(line) < 300 for line in warnings()), warnings()
    assert worker.running and worker.healthy()


LIVE_PATHS = [
    b"/users/{}/tray",
    b"/users/{}/stories",
    b"/stories/{}",
    b"/stories/{}/views",
    b"/stories/{}/viewers",
    b"/stories/{}/reactions",
    b"/internal/authors/{}",
    b"/internal/stories/{}",
]


@st.composite
def live_requests(draw: st.DrawFn, alice: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """A request line's target and headers: mostly ones the server's parser passes on (ids
    and queries percent-quoted, a real token) so that the routes see them."""
    path = draw(st.sampled_from(LIVE_PATHS))
    value = draw(st.just(alice) | path_ids)
    query = draw(query_strings(("limit", "cursor", "viewer")))
    raw = draw(st.integers(0, 3)) == 0  # as bytes, or percent-quoted
    pieces = (
        [wire(value), wire(query)]
        if raw
        else [quote(wire(value), safe=""), quote(wire(query), safe="=&%")]
    )
    target = path.replace(b"{}", pieces[0].encode() if isinstance(pieces[0], str) else pieces[0])
    if query:
        target += b"?" + (pieces[1].encode() if isinstance(pieces[1], str) else pieces[1])
    if draw(st.booleans()):
        header = draw(authorization_headers).value
        headers = [] if header is None else [(b"Authorization", wire(header))]
    else:
        signer = draw(st.sampled_from(["alice", "storystream-worker", "worker"]))
        token = (
            issue_internal_token(SECRET, datetime.now(UTC))
            if signer == "worker"
            else issue_token(signer, SECRET, datetime.now(UTC))
        )
        headers = [(b"Authorization", b"Bearer " + token.encode())]
    return target, headers


@settings(
    max_examples=80,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), which=st.integers(0, 1))
def test_live_sample_of_the_fuzzed_inputs(
    pair: list[WorkerProcess], world: dict[str, str], data: st.DataObject, which: int
) -> None:
    """A small live sample of tests/fuzz/test_api_parsing.py's inputs, on the wire to either
    worker (80 requests, about a second): never a 5xx; JSON whenever a route answered (the
    server's own parser refuses some requests with a plain 400 first)."""
    target, headers = data.draw(live_requests(world["alice"]))
    answer = raw_http.get(port(pair[which]), target, headers)
    event(f"{answer.status} {answer.headers.get('content-type', '')[:16]}")
    assert answer.status < 500, (target[:80], answer)
    if answer.headers.get("content-type", "").startswith("application/json"):
        body = json.loads(answer.body)
        assert answer.status < 400 or isinstance(body["error"], str), body
    else:
        assert answer.status == 400, (target[:80], answer)


def test_path_ids_that_are_not_identifiers_are_a_400(
    pair: list[WorkerProcess], world: dict[str, str]
) -> None:
    token = b"Bearer " + issue_token(world["bob"], SECRET, datetime.now(UTC)).encode()
    for worker in pair:
        for target in (
            b"/stories/%ff",
            b"/stories/%ED%A0%80",
            b"/stories/a%2Fb/views",
            b"/users/%C3%A9/tray",
            b"/stories/a%0A",
            b"/stories/" + b"a" * 65,
        ):
            answer = raw_http.get(port(worker), target, [(b"Authorization", token)])
            assert answer.status == 400, (target, answer)
            assert "must be 1-64 characters" in json.loads(answer.body)["error"], target
        # No such route, or no such method: the server's own answers are JSON too.
        for request in (
            b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"GET /stories/a/b/c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"POST /stories/s1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            b"PATCH /stories/s1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",  # DELETE is a write
            b"PROPFIND /stories/s1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ):
            answer = raw_http.exchange(port(worker), request)
            assert answer.status in (404, 405), (request, answer)
            assert json.loads(answer.body)["error"], (request, answer)
        # Bytes that are not ASCII in the request line: the server's parser refuses them.
        answer = raw_http.get(port(worker), b"/stories/\xe9", [(b"Authorization", token)])
        assert answer.status == 400 and b"Invalid char in url" in answer.body
