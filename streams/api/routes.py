"""The HTTP API (contract section 6), served by every worker through Faust's web server.

Each request is about one key (a user, an author or a story). The worker that owns the key's
partition answers from its local state; any other worker forwards the request there.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

import aiohttp
from faust.web import Request
from pydantic import TypeAdapter

from processors import authors as author_rules
from processors.authors import ActiveStory, Author
from processors.trays import read_tray
from schemas.records import ReactionCounts, StoryState
from schemas.types import IDENTIFIER, IDENTIFIER_RULE
from streams.api.auth import (
    INTERNAL_TTL,
    TokenError,
    bearer_token,
    issue_internal_token,
    verify_internal_token,
    verify_token,
)
from streams.api.http import Endpoint, HttpError, Raw, Route
from streams.api.members import Members
from streams.api.ratelimit import RateLimiter, retry_after
from streams.api.token_cache import VerifiedTokens
from streams.kafka.partitioning import partition_for
from streams.runtime.metrics import Metrics
from streams.runtime.store import PartitionStore
from streams.settings import Settings
from streams.stages.follow_graph import author_seen_by
from streams.stages.stories import failed_story, story_view
from streams.stages.tray_store import read_tray_state, with_read_marks
from streams.stages.viewer_list import page_bounds, read_page
from streams.stages.views import reaction_state, view_state

log = logging.getLogger(__name__)
FORWARDED = "X-Storystream-Forwarded"
_AUTHOR = TypeAdapter(Author)
_LIMIT = re.compile(r"[0-9]{1,4}")


class LocalPartitions(Protocol):
    """What the API reads of the engine in its process: the partitions held here and their
    stores (`Engine`, or `NoPartitions` in a worker that serves the API only)."""

    ready: threading.Event
    running: bool
    metrics: Metrics

    @property
    def assigned_partitions(self) -> set[int]: ...

    def store(self, partition: int) -> PartitionStore | None: ...


class NoPartitions:
    """A worker without the engine: it holds no partition, so every read goes to the worker
    that owns the key's partition; ready as soon as it runs."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.ready.set()
        self.running = True
        self.metrics = Metrics()

    @property
    def assigned_partitions(self) -> set[int]:
        return set()

    def store(self, partition: int) -> PartitionStore | None:
        return None


class Api:
    """Request handling against this worker's partitions, with forwarding for the rest."""

    def __init__(
        self,
        settings: Settings,
        engine: LocalPartitions,
        members: Members,
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.members = members
        self.clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._secret = settings.api_secret.get_secret_value()
        self._internal_token = ""
        self._internal_renew_at: datetime | None = None
        self.limiter = RateLimiter(settings.api_writes_per_second, settings.api_write_burst)
        audience = settings.api_audience
        self._tokens = VerifiedTokens(lambda token: verify_token(token, self._secret, audience))

    # -- ownership and forwarding -----------------------------------------------------------
    def local_store(self, key: str) -> PartitionStore | None:
        return self.engine.store(partition_for(key, self.settings.partitions))

    async def forward(self, request: Request, key: str) -> Raw | None:
        """None when this worker owns `key`; else the owner's answer to the same request."""
        partition = partition_for(key, self.settings.partitions)
        if self.engine.store(partition) is not None:
            return None
        if request.headers.get(FORWARDED):
            raise HttpError(503, f"partition {partition} is moving between workers; retry")
        owner = self.members.owner(partition)
        if owner is None or owner.worker_id == self.members.worker_id:
            raise HttpError(503, f"partition {partition} has no owner yet; retry")
        return await self._proxy(request, owner.url)

    async def _proxy(self, request: Request, base_url: str) -> Raw:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        headers = {FORWARDED: "1"}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        url = base_url.rstrip("/") + str(request.rel_url)
        async with self._session.get(url, headers=headers) as answer:
            body = await answer.read()
            return Raw(body, answer.status, answer.content_type or "application/json")

    async def fetch_author(self, request: Request, author_id: str, viewer_id: str) -> Author | None:
        """The author as `viewer_id` may see them (see `author_seen_by`): a celebrity's
        followers stay where they are stored."""
        store = self.local_store(author_id)
        if store is not None:
            return author_seen_by(store.get_committed, author_id, viewer_id)
        answer = await self._internal(
            request, f"/internal/authors/{author_id}", {"viewer": viewer_id}
        )
        return None if answer is None else _AUTHOR.validate_json(answer)

    async def _internal(
        self, request: Request, path: str, query: dict[str, str] | None = None
    ) -> bytes | None:
        partition = partition_for(path.rsplit("/", 1)[-1], self.settings.partitions)
        owner = self.members.owner(partition)
        if owner is None:
            raise HttpError(503, f"partition {partition} has no owner yet; retry")
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        headers = {FORWARDED: "1", "Authorization": f"Bearer {self._worker_token()}"}
        url = owner.url.rstrip("/") + path
        async with self._session.get(url, headers=headers, params=query) as answer:
            if answer.status == 404:
                return None
            if answer.status != 200:
                raise HttpError(503, f"owner of partition {partition} answered {answer.status}")
            return await answer.read()

    def _worker_token(self) -> str:
        """This worker's token for the others, renewed halfway through its life."""
        now = self.clock()
        if self._internal_renew_at is None or now >= self._internal_renew_at:
            self._internal_token = issue_internal_token(self._secret, now)
            self._internal_renew_at = now + INTERNAL_TTL / 2
        return self._internal_token

    def authenticate(self, request: Request) -> str:
        """The caller's user id, from a user token (never a worker's); 401 otherwise."""
        try:
            return self._tokens.subject(bearer_token(request.headers.get("Authorization")))
        except TokenError as exc:
            raise HttpError(401, f"invalid token: {exc}") from None

    def limit(self, user: str) -> None:
        """Count a write request of `user`; 429 with `Retry-After` past their rate."""
        wait = self.limiter.take(user)
        if wait:
            raise HttpError(
                429,
                f"too many write requests: at most {self.limiter.rate:g} a second "
                f"({self.limiter.burst:g} at once) on each worker",
                {"Retry-After": retry_after(wait)},
            )

    def authenticate_worker(self, request: Request) -> None:
        """Nothing when the caller is another worker (a worker's token); 401 otherwise."""
        try:
            verify_internal_token(bearer_token(request.headers.get("Authorization")), self._secret)
        except TokenError as exc:
            raise HttpError(401, f"internal route, not a worker's token: {exc}") from None

    # -- reads --------------------------------------------------------------------------------
    async def story_author(self, request: Request, story_id: str) -> str:
        """The author of a story readers may see now (its owner asked when elsewhere); 404."""
        store = self.local_store(story_id)
        if store is not None:
            state = story_view(store, story_id, self.clock())
        else:
            answer = await self._internal(request, f"/internal/stories/{story_id}")
            state = None if answer is None else StoryState.model_validate_json(answer)
        if state is None:
            raise HttpError(404, f"story {story_id} not found")
        return state.author_id

    async def visible_story(self, request: Request, story_id: str, caller: str) -> StoryState:
        """The story's state if the caller may see it now; 404 otherwise."""
        store = self.local_store(story_id)
        assert store is not None
        state = story_view(store, story_id, self.clock())
        if state is None:
            raise HttpError(404, f"story {story_id} not found")
        if caller == state.author_id:
            return state
        if state.status == "processing":  # visible once its media is transcoded (contract 3)
            raise HttpError(404, f"story {story_id} not found")
        if state.audience == "public":
            return state
        author = await self.fetch_author(request, state.author_id, caller)
        story = ActiveStory(state.story_id, state.created_at, state.expires_at, state.audience)
        if author is None or not author_rules.may_see(author, story, caller):
            raise HttpError(404, f"story {story_id} not found")
        return state


def viewer_page_query(story_id: str, query: Mapping[str, str]) -> tuple[int, bytes, bytes]:
    """(limit, start key, prefix) of a viewer-list page from `?limit=&cursor=`; 400 if bad."""
    limit = query.get("limit", "50")
    if not _LIMIT.fullmatch(limit) or not 1 <= int(limit) <= 1000:
        raise HttpError(400, "limit must be an integer from 1 to 1000")
    try:
        start, prefix = page_bounds(story_id, query.get("cursor") or None)
    except ValueError as exc:
        raise HttpError(400, str(exc)) from None
    return int(limit), start, prefix


def viewer_query(query: Mapping[str, str]) -> str:
    """The user id of `?viewer=`; 400 if missing or not a user id."""
    viewer_id = query.get("viewer", "")
    if not IDENTIFIER.fullmatch(viewer_id):
        raise HttpError(400, f"viewer: {IDENTIFIER_RULE}")
    return viewer_id


def read_endpoints(api: Api) -> list[Endpoint]:
    """The read side's endpoints (GET)."""
    return [("GET", path, route) for path, route in routes(api)]


def routes(api: Api) -> list[tuple[str, Route]]:
    """Every read endpoint but `/metrics`, by path."""

    async def tray(request: Request, caller: str, user_id: str) -> Any:
        if caller != user_id:
            raise HttpError(403, "a tray is readable only by its owner")
        store = api.local_store(user_id)
        assert store is not None
        state = read_tray_state(store.get_committed, user_id)
        followed = sorted(state.celebrities) if state is not None else []
        # Their owners are asked all at once, not one after another.
        fetched = await asyncio.gather(*(api.fetch_author(request, c, user_id) for c in followed))
        celebrities = [author for author in fetched if author is not None]
        if state is not None and celebrities:  # the owner's marks of their stories
            named = (story.story_id for author in celebrities for story in author.stories)
            state = with_read_marks(store.get_committed, state, named)
        return read_tray(state, user_id, celebrities, api.clock()).model_dump(mode="json")

    async def author_stories(request: Request, caller: str, author_id: str) -> Any:
        author = await api.fetch_author(request, author_id, caller)
        if author is None:
            return {"stories": []}
        visible = author_rules.visible_stories(author, caller, api.clock())
        states = await asyncio.gather(*(_story_json(request, s.story_id) for s in visible))
        return {"stories": [state for state in states if state is not None]}

    async def _story_json(request: Request, story_id: str) -> Any:
        store = api.local_store(story_id)
        if store is not None:
            state = story_view(store, story_id, api.clock())
            return None if state is None else state.model_dump(mode="json")
        answer = await api._internal(request, f"/internal/stories/{story_id}")
        return (
            None
            if answer is None
            else StoryState.model_validate_json(answer).model_dump(mode="json")
        )

    async def story(request: Request, caller: str, story_id: str) -> Any:
        try:
            return (await api.visible_story(request, story_id, caller)).model_dump(mode="json")
        except HttpError as exc:  # its author alone sees a story whose media failed (contract 6)
            store = api.local_store(story_id)
            failed = failed_story(store, story_id, api.clock()) if store is not None else None
            if exc.status == 404 and failed is not None and failed["author_id"] == caller:
                return failed
            raise

    async def views(request: Request, caller: str, story_id: str) -> Any:
        await api.visible_story(request, story_id, caller)
        state = view_state(api.local_store(story_id), story_id)  # type: ignore[arg-type]
        return {
            "story_id": story_id,
            "unique_viewers": state.unique_viewers if state else 0,
            "total_views": state.total_views if state else 0,
        }

    async def viewers(request: Request, caller: str, story_id: str) -> Any:
        state = await api.visible_story(request, story_id, caller)
        if caller != state.author_id:
            raise HttpError(403, "only the author may list a story's viewers")
        limit, start, prefix = viewer_page_query(story_id, request.query)
        store = api.local_store(story_id)
        assert store is not None
        keys = (key for key, _ in store.scan_committed(prefix, start))
        page = read_page(keys, prefix, limit)
        return {
            "viewers": [
                {"viewer_id": v, "first_viewed_at": at.isoformat().replace("+00:00", "Z")}
                for v, at in page.viewers
            ],
            "next_cursor": page.next_cursor,
        }

    async def reactions(request: Request, caller: str, story_id: str) -> Any:
        await api.visible_story(request, story_id, caller)
        state = reaction_state(api.local_store(story_id), story_id)  # type: ignore[arg-type]
        counts = state.counts_dict() if state else {}
        return ReactionCounts(
            story_id=story_id, counts=counts, total=state.total if state else 0
        ).model_dump(mode="json")

    async def internal_author(request: Request, caller: str, author_id: str) -> Any:
        viewer_id = viewer_query(request.query)
        store = api.local_store(author_id)
        assert store is not None
        author = author_seen_by(store.get_committed, author_id, viewer_id)
        if author is None:
            raise HttpError(404, "unknown author")
        return Raw(_AUTHOR.dump_json(author))

    async def internal_story(request: Request, caller: str, story_id: str) -> Any:
        store = api.local_store(story_id)
        assert store is not None
        state = story_view(store, story_id, api.clock())
        if state is None:
            raise HttpError(404, "unknown story")
        return state.model_dump(mode="json")

    async def health(request: Request, caller: str) -> Any:
        if not api.engine.ready.is_set() or not api.engine.running:
            raise HttpError(503, "not consuming")
        return {"status": "ok", "partitions": sorted(api.engine.assigned_partitions)}

    return [
        ("/users/{user_id}/tray", Route(tray, "user_id")),
        ("/users/{author_id}/stories", Route(author_stories, "author_id")),
        ("/stories/{story_id}", Route(story, "story_id")),
        ("/stories/{story_id}/views", Route(views, "story_id")),
        ("/stories/{story_id}/viewers", Route(viewers, "story_id")),
        ("/stories/{story_id}/reactions", Route(reactions, "story_id")),
        ("/internal/authors/{author_id}", Route(internal_author, "author_id", "worker")),
        ("/internal/stories/{story_id}", Route(internal_story, "story_id", "worker")),
        ("/health", Route(health, None, "none")),
    ]
