"""The write side's event routes (contract section 6): views, reactions, highlights, deletes,
follows and close friends. The actor is always the token's subject."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from faust.web import Request

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
)

MAX_BATCH_VIEWS = 500  # views in one `POST /views:batch`
UserHandler = Callable[[Request, str, str], Awaitable[Raw]]  # (request, caller, user_id)


def write_routes(api: Api, writer: Writer) -> list[Endpoint]:
    """The endpoints that turn requests into events."""

    async def one(request: Request, fields: dict[str, Any]) -> Raw:
        ids = await writer.emit([line(fields, idempotency_key(request))])
        return accepted({"event_id": ids[0]})

    async def as_author(request: Request, caller: str, story_id: str) -> None:
        if await api.story_author(request, story_id) != caller:
            raise HttpError(403, "only the story's author may do this")

    async def view(request: Request, caller: str, story_id: str) -> Raw:
        body = await json_body(request, ("viewer_id", "viewed_at"), required=False)
        actor(body, "viewer_id", caller)
        fields = {"type": "story_viewed", "story_id": story_id, "viewer_id": caller,
                  "viewed_at": body.get("viewed_at", iso(api.clock()))}  # fmt: skip
        return await one(request, fields)

    async def views_batch(request: Request, caller: str) -> Raw:
        body = await json_body(request, ("views",))
        views = body.get("views")
        if not isinstance(views, list) or not 1 <= len(views) <= MAX_BATCH_VIEWS:
            raise HttpError(400, f"views: must be a list of 1 to {MAX_BATCH_VIEWS} views")
        key = idempotency_key(request)
        now = iso(api.clock())
        lines, names = [], []
        for i, item in enumerate(views):
            name = f"views[{i}]."
            if not isinstance(item, dict):
                raise HttpError(400, f"views[{i}]: must be a JSON object")
            for field in item:
                if field not in ("story_id", "viewer_id", "viewed_at", "event_id"):
                    raise HttpError(400, f"{name}{field}: not a field of a view")
            actor(item, "viewer_id", caller)
            own = item.get("event_id")
            event_id = check_identifier(own, f"{name}event_id") if own is not None else None
            fields = {"type": "story_viewed", "story_id": item.get("story_id"),
                      "viewer_id": caller, "viewed_at": item.get("viewed_at", now)}  # fmt: skip
            lines.append(line(fields, event_id or sub_key(key, str(i))))
            names.append(name)
        ids = await writer.emit(lines, names)
        return accepted({"event_ids": ids})

    async def react(request: Request, caller: str, story_id: str) -> Raw:
        body = await json_body(request, ("user_id", "reaction", "text"))
        actor(body, "user_id", caller)
        if "reaction" not in body:
            raise HttpError(400, "reaction: required")
        fields = {"type": "story_reacted", "story_id": story_id, "user_id": caller,
                  "reaction": body["reaction"], "text": body.get("text"),
                  "reacted_at": iso(api.clock())}  # fmt: skip
        return await one(request, fields)

    async def add_highlight(request: Request, caller: str, story_id: str) -> Raw:
        body = await json_body(request, ("author_id", "highlight_id", "title"))
        actor(body, "author_id", caller)
        if "highlight_id" not in body:
            raise HttpError(400, "highlight_id: required")
        await as_author(request, caller, story_id)
        fields = {"type": "highlight_added", "story_id": story_id, "author_id": caller,
                  "highlight_id": body["highlight_id"], "title": body.get("title"),
                  "at": iso(api.clock())}  # fmt: skip
        return await one(request, fields)

    async def remove_highlight(
        request: Request, caller: str, story_id: str, highlight_id: str
    ) -> Raw:
        await as_author(request, caller, story_id)
        fields = {"type": "highlight_removed", "story_id": story_id, "author_id": caller,
                  "highlight_id": highlight_id, "at": iso(api.clock())}  # fmt: skip
        return await one(request, fields)

    async def delete_story(request: Request, caller: str, story_id: str) -> Raw:
        await as_author(request, caller, story_id)
        fields = {"type": "story_deleted", "story_id": story_id, "author_id": caller,
                  "deleted_at": iso(api.clock())}  # fmt: skip
        return await one(request, fields)

    def follow_change(kind: str) -> UserHandler:
        async def follow(request: Request, caller: str, user_id: str) -> Raw:
            if user_id == caller:
                raise HttpError(400, "user_id: a user cannot follow themselves")
            fields = {"type": kind, "follower_id": caller, "followee_id": user_id,
                      "at": iso(api.clock())}  # fmt: skip
            return await one(request, fields)

        follow.__name__ = kind
        return follow

    def close_friend_change(kind: str) -> UserHandler:
        async def close_friend(request: Request, caller: str, user_id: str) -> Raw:
            if user_id == caller:
                raise HttpError(400, "user_id: a user cannot be their own close friend")
            fields = {"type": kind, "user_id": caller, "friend_id": user_id,
                      "at": iso(api.clock())}  # fmt: skip
            return await one(request, fields)

        close_friend.__name__ = kind
        return close_friend

    def write(handler: Callable[..., Awaitable[Raw]]) -> Route:
        return Route(handler, limited=True)

    return [
        ("POST", "/stories/{story_id}/views", write(view)),
        ("POST", "/views:batch", write(views_batch)),
        ("POST", "/stories/{story_id}/reactions", write(react)),
        ("POST", "/stories/{story_id}/highlights", write(add_highlight)),
        ("DELETE", "/stories/{story_id}/highlights/{highlight_id}", write(remove_highlight)),
        ("DELETE", "/stories/{story_id}", write(delete_story)),
        ("POST", "/follow/{user_id}", write(follow_change("user_followed"))),
        ("DELETE", "/follow/{user_id}", write(follow_change("user_unfollowed"))),
        ("POST", "/close-friends/{user_id}", write(close_friend_change("close_friend_added"))),
        ("DELETE", "/close-friends/{user_id}", write(close_friend_change("close_friend_removed"))),
    ]
