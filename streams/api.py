"""The HTTP API (contract section 6), served by every worker through Faust's web server.

Each request is about one key (a user, an author or a story). The worker that owns the key's
partition answers from its local state; any other worker forwards the request there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import faust
from faust.web import Request, Response, View
from pydantic import TypeAdapter

from processors import authors as author_rules
from processors.authors import ActiveStory, Author
from processors.trays import read_tray
from schemas.records import ReactionCounts, StoryState
from schemas.types import IDENTIFIER, IDENTIFIER_RULE
from streams.auth import TokenError, issue_token, verify_token
from streams.members import Members
from streams.partitioning import partition_for
from streams.runtime.engine import Engine
from streams.runtime.store import PartitionStore
from streams.settings import Settings
from streams.stages.follow_graph import author_seen_by
from streams.stages.stories import failed_story, story_view
from streams.stages.tray_store import read_tray_state, with_read_marks
from streams.stages.viewer_list import page_bounds, read_page
from streams.stages.views import reaction_state, view_state

log = logging.getLogger(__name__)
FORWARDED = "X-Storystream-Forwarded"
INTERNAL_SUBJECT = "storystream-worker"
_AUTHOR = TypeAdapter(Author)


@dataclass(frozen=True)
class Raw:
    """A ready response body (a forwarded answer, or JSON already serialized)."""

    body: bytes
    status: int = 200
    content_type: str = "application/json"


class HttpError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Api:
    """Request handling against this worker's partitions, with forwarding for the rest."""

    def __init__(
        self, settings: Settings, engine: Engine, members: Members, clock: Callable[[], datetime]
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.members = members
        self.clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._internal_token = issue_token(
            INTERNAL_SUBJECT, settings.api_secret.get_secret_value(), clock()
        )

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
        headers = {FORWARDED: "1", "Authorization": f"Bearer {self._internal_token}"}
        url = owner.url.rstrip("/") + path
        async with self._session.get(url, headers=headers, params=query) as answer:
            if answer.status == 404:
                return None
            if answer.status != 200:
                raise HttpError(503, f"owner of partition {partition} answered {answer.status}")
            return await answer.read()

    def authenticate(self, request: Request) -> str:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HttpError(401, "missing bearer token")
        try:
            return verify_token(token.strip(), self.settings.api_secret.get_secret_value())
        except TokenError as exc:
            raise HttpError(401, f"invalid token: {exc}") from None

    # -- reads --------------------------------------------------------------------------------
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


def _json(view: View, value: Any, status: int = 200) -> Response:
    return view.json(value, status=status)


def install(app: faust.App, api: Api) -> None:
    """Register the endpoints on the app's web server."""

    def endpoint(
        key_param: str | None, *, auth: bool = True
    ) -> Callable[[Callable[..., Awaitable[Any]]], type[View]]:
        def wrap(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Response]]:
            async def get(self: View, request: Request, **params: str) -> Response:
                try:
                    caller = api.authenticate(request) if auth else ""
                    result = None
                    if key_param is not None:
                        result = await api.forward(request, params[key_param])
                    if result is None:
                        result = await handler(request, caller, **params)
                    if isinstance(result, Raw):
                        return self.bytes(
                            result.body, content_type=result.content_type, status=result.status
                        )
                    return _json(self, result)
                except HttpError as exc:
                    return _json(self, {"error": exc.reason}, exc.status)

            return get

        def decorate(handler: Callable[..., Awaitable[Any]]) -> type[View]:
            return type(handler.__name__, (View,), {"get": wrap(handler)})

        return decorate

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
        try:
            limit = int(request.query.get("limit", "50"))
            if not 1 <= limit <= 1000:
                raise ValueError
        except ValueError:
            raise HttpError(400, "limit must be an integer from 1 to 1000") from None
        try:
            start, prefix = page_bounds(story_id, request.query.get("cursor") or None)
        except ValueError as exc:
            raise HttpError(400, str(exc)) from None
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

    def _internal_only(caller: str) -> None:
        if caller != INTERNAL_SUBJECT:
            raise HttpError(403, "internal endpoint")

    async def internal_author(request: Request, caller: str, author_id: str) -> Any:
        _internal_only(caller)
        viewer_id = request.query.get("viewer", "")
        if not IDENTIFIER.fullmatch(viewer_id):
            raise HttpError(400, f"viewer: {IDENTIFIER_RULE}")
        store = api.local_store(author_id)
        assert store is not None
        author = author_seen_by(store.get_committed, author_id, viewer_id)
        if author is None:
            raise HttpError(404, "unknown author")
        return Raw(_AUTHOR.dump_json(author))

    async def internal_story(request: Request, caller: str, story_id: str) -> Any:
        _internal_only(caller)
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

    class Metrics(View):
        async def get(self, request: Request) -> Response:
            return self.text(api.engine.metrics.render(), content_type="text/plain; version=0.0.4")

    routes: list[tuple[str, type[View]]] = [
        ("/users/{user_id}/tray", endpoint("user_id")(tray)),
        ("/users/{author_id}/stories", endpoint("author_id")(author_stories)),
        ("/stories/{story_id}", endpoint("story_id")(story)),
        ("/stories/{story_id}/views", endpoint("story_id")(views)),
        ("/stories/{story_id}/viewers", endpoint("story_id")(viewers)),
        ("/stories/{story_id}/reactions", endpoint("story_id")(reactions)),
        ("/internal/authors/{author_id}", endpoint("author_id")(internal_author)),
        ("/internal/stories/{story_id}", endpoint("story_id")(internal_story)),
        ("/health", endpoint(None, auth=False)(health)),
        ("/metrics", Metrics),
    ]
    for path, view in routes:
        app.page(path)(view)
