"""Bounded fuzzing of the API's header, query and path parsing, in process, through the very
function every endpoint answers with (`streams.api.routes.answer`), on real RocksDB state.

Budget: derandomized hypothesis (the same inputs every run, no example database), 1,650
examples over five properties, a few seconds of CI time; a live sample of the same inputs goes
over the wire to two workers in tests/integration/test_api_auth.py. Invariant: every answer is
a 2xx or 4xx with a JSON body (`{"error": reason}` for a 4xx), never a 5xx, never an exception;
and no token passes where its signer may not. Every input that ever broke it is an @example:
a non-ASCII Authorization header (PyJWT's UnicodeEncodeError, a 500), a path id of undecodable
bytes (the partitioner's UnicodeEncodeError), a `limit` of `+5` or an Arabic-Indic digit
(taken by `int()`).
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from processors.stories import Story
from schemas.events import Audience
from schemas.types import IDENTIFIER_PATTERN
from streams.api.auth import (
    INTERNAL_AUDIENCE,
    INTERNAL_SUBJECT,
    TokenError,
    bearer_token,
    issue_internal_token,
    issue_token,
)
from streams.api.http import HttpError, Raw, Route, answer
from streams.api.members import Members
from streams.api.routes import Api, routes, viewer_page_query
from streams.kafka.partitioning import partition_for
from streams.runtime.engine import Engine
from streams.runtime.store import PartitionStore
from streams.settings import Settings
from streams.stages.stories import STORIES
from streams.stages.viewer_list import viewer_order_key
from tests.fuzz.api_inputs import (
    SECRET,
    Header,
    authorization_headers,
    path_ids,
    query_strings,
    surrogate_escaped,
)

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
PARTITIONS = 4
VIEWERS = ["v1", "v2", "v3", "v4", "v5"]
BUDGET = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class AllLocal:
    """The engine as the API sees it, holding every partition."""

    def __init__(self, root: Path) -> None:
        self.stores = {p: PartitionStore(root / f"p{p}") for p in range(PARTITIONS)}
        self.ready = threading.Event()
        self.ready.set()
        self.running = True
        self.assigned_partitions = set(self.stores)

    def store(self, partition: int) -> PartitionStore | None:
        return self.stores.get(partition)


@dataclass(frozen=True)
class Request:
    """What the endpoints read of an aiohttp request, built the way aiohttp's parser does."""

    headers: CIMultiDictProxy[str]
    rel_url: URL

    @property
    def query(self) -> Mapping[str, str]:
        return self.rel_url.query


def request(authorization: str | None, target: str) -> Any:
    path, _, query = target.partition("?")
    headers: CIMultiDict[str] = CIMultiDict()
    if authorization is not None:
        headers["Authorization"] = authorization
    return Request(
        CIMultiDictProxy(headers), URL.build(path=path, query_string=query, encoded=True)
    )


RUNNER = asyncio.Runner()  # one loop for every call: a new loop costs more than a call


@pytest.fixture(scope="module", autouse=True)
def _runner() -> Iterator[None]:
    yield
    RUNNER.close()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Api:
    engine = AllLocal(tmp_path_factory.mktemp("fuzz-api"))
    seeded: list[tuple[str, Audience]] = [("s1", "public"), ("s2", "close_friends")]
    for story_id, audience in seeded:
        story = Story(
            story_id,
            "alice",
            NOW - timedelta(hours=1),
            NOW + timedelta(hours=23),
            audience,
            "active",
        )
        store = engine.stores[partition_for(story_id, PARTITIONS)]
        STORIES.put(store, story_id, story)
        for i, viewer in enumerate(VIEWERS):
            store.put(viewer_order_key(story_id, NOW - timedelta(minutes=50 - i), viewer), b"")
        store.flush()
    configured = Settings(api_secret=SECRET, partitions=PARTITIONS)
    return Api(configured, cast(Engine, engine), cast(Members, None), lambda: NOW)


@pytest.fixture(scope="module")
def table(api: Api) -> dict[str, Route]:
    return dict(routes(api))


def call(api: Api, route: Route, req: Any, params: dict[str, str]) -> tuple[Raw, Any]:
    """The answer and its decoded body, checked against the invariant."""
    raw = RUNNER.run(answer(api, route, req, params))
    event(f"{raw.status}")
    assert 200 <= raw.status < 500, raw
    assert raw.content_type == "application/json"
    body = orjson.loads(raw.body)
    if raw.status >= 400:
        assert isinstance(body["error"], str) and 0 < len(body["error"]) <= 200, body
    return raw, body


ALICE = "Bearer " + issue_token("alice", SECRET, datetime.now(UTC))
WORKER = "Bearer " + issue_internal_token(SECRET, datetime.now(UTC))


IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
PATHS = [
    "/users/{user_id}/tray",
    "/users/{author_id}/stories",
    "/stories/{story_id}",
    "/stories/{story_id}/views",
    "/stories/{story_id}/viewers",
    "/stories/{story_id}/reactions",
    "/internal/authors/{author_id}",
    "/internal/stories/{story_id}",
    "/health",
]


def params_of(path: str, value: str | None = None) -> dict[str, str]:
    """The route's path parameters: `value`, or ids of the seeded state."""
    names = [part.strip("{}") for part in path.split("/") if part.startswith("{")]
    default = {"story_id": "s1"}
    return {n: default.get(n, "alice") if value is None else value for n in names}


def target_of(path: str, params: dict[str, str], query: str = "") -> str:
    for name, value in params.items():
        path = path.replace("{" + name + "}", value)
    return path + ("?" + query if query else "")


@settings(BUDGET, max_examples=600)
@given(header=authorization_headers, path=st.sampled_from(PATHS))
@example(header=Header("Bearer \udce9"), path="/stories/{story_id}")  # issue 22: a 500
@example(header=Header("Bearer \udce9"), path="/internal/stories/{story_id}")
def test_any_authorization_header(
    api: Api, table: dict[str, Route], header: Header, path: str
) -> None:
    route, params = table[path], params_of(path)
    raw, _ = call(api, route, request(header.value, target_of(path, params, "viewer=bob")), params)
    if raw.status == 401 or route.auth == "none":
        return
    # Past authentication: only a token whose signer may call this route.
    if route.auth == "worker":
        assert header.signer == "worker", header
        assert header.claims.get("sub") == INTERNAL_SUBJECT
        return
    assert header.signer == "api", header
    subject = header.claims.get("sub")
    assert isinstance(subject, str) and IDENTIFIER.fullmatch(subject), header
    audience = header.claims.get("aud")
    assert INTERNAL_AUDIENCE not in (audience if isinstance(audience, list) else [audience])


@settings(BUDGET, max_examples=400)
@given(query=query_strings(("limit", "cursor")))
@example(query="limit=%D9%A5")  # an Arabic-Indic digit: int() took it
@example(query="limit=%2B5")  # int() took "+5"
@example(query="limit=" + "9" * 5000)
@example(query="cursor=%ED%A0%80")
def test_any_viewer_page_query(api: Api, table: dict[str, Route], query: str) -> None:
    path = "/stories/{story_id}/viewers"
    raw, body = call(
        api,
        table[path],
        request(ALICE, target_of(path, {"story_id": "s1"}, query)),
        {"story_id": "s1"},
    )
    assert raw.status in (200, 400), body
    if raw.status == 200:
        limit = URL.build(path="/", query_string=query, encoded=True).query.get("limit", "50")
        assert re.fullmatch("[0-9]+", limit) and 1 <= int(limit) <= 1000, limit
        listed = [v["viewer_id"] for v in body["viewers"]]
        assert listed == [v for v in VIEWERS if v in listed]  # oldest first, no strangers
        assert 1 <= len(listed) <= int(limit) or body["next_cursor"] is None


@settings(BUDGET, max_examples=250)
@given(query=query_strings(("viewer",)))
@example(query="viewer=bob%0A")
@example(query="viewer=%ff")
def test_any_internal_viewer_query(api: Api, table: dict[str, Route], query: str) -> None:
    path = "/internal/authors/{author_id}"
    raw, body = call(
        api,
        table[path],
        request(WORKER, target_of(path, {"author_id": "alice"}, query)),
        {"author_id": "alice"},
    )
    assert raw.status in (400, 404), body  # no author is stored: a good viewer gets a 404
    viewer = URL.build(path="/", query_string=query, encoded=True).query.get("viewer", "")
    assert (raw.status == 404) == bool(IDENTIFIER.fullmatch(viewer)), (viewer, body)


@settings(BUDGET, max_examples=300)
@given(path=st.sampled_from(PATHS[:-1]), value=path_ids)
@example(path="/stories/{story_id}", value="\udce9")  # murmur2 of an unencodable key
@example(path="/stories/{story_id}", value="alice\n")
def test_any_path_id(api: Api, table: dict[str, Route], path: str, value: str) -> None:
    params = params_of(path, value)
    route = table[path]
    header = WORKER if route.auth == "worker" else ALICE
    raw, body = call(api, route, request(header, "/"), params)
    if not IDENTIFIER.fullmatch(value):
        assert raw.status == 400 and body["error"].startswith(next(iter(params))), body


@settings(BUDGET, max_examples=100)
@given(
    header=st.text() | st.binary(max_size=200).map(surrogate_escaped),
    query=st.dictionaries(
        st.sampled_from(["limit", "cursor", "x"]), st.text(max_size=40), max_size=3
    ),
)
def test_the_parsing_functions_raise_only_their_own_errors(
    header: str, query: dict[str, str]
) -> None:
    try:
        token = bearer_token(header)
    except TokenError as refused:
        assert 0 < len(str(refused)) < 60
    else:
        assert token.isascii() and " " not in token
    try:
        limit, start, prefix = viewer_page_query("s1", query)
    except HttpError as refused:
        assert refused.status == 400
    else:
        assert 1 <= limit <= 1000 and start.startswith(prefix)
