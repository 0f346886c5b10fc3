"""Typed calls, one per input event of the contract (section 3), over the event models.

Each builds its event with the model (so it is validated as `publish` validates a line:
pydantic.ValidationError names the field) and hands it to the client's `publish`. A time left
out is the client's clock now; an `event_id` left out is derived from the event's content.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from schemas.events import Audience, Event, MediaType, Rendition, parse_event
from schemas.types import DEFAULT_STORY_TTL

R = TypeVar("R")


def _now(value: datetime | None) -> datetime:
    return value if value is not None else datetime.now(UTC)


class EventCalls(Generic[R]):
    """The typed calls; a client defines `publish(event)` and what it returns (`R`)."""

    story_ttl: timedelta = DEFAULT_STORY_TTL

    def publish(self, event: Event) -> R:
        """Produce one event; what it returns tells of its delivery."""
        raise NotImplementedError

    def _send(self, fields: dict[str, Any]) -> R:
        present = {name: value for name, value in fields.items() if value is not None}
        return self.publish(parse_event(present, self.story_ttl))

    def story_posted(
        self,
        *,
        story_id: str,
        author_id: str,
        created_at: datetime | None = None,
        expires_at: datetime | None = None,
        media_id: str | None = None,
        media: Sequence[Rendition | dict[str, Any]] | None = None,
        media_type: MediaType | None = None,
        audience: Audience = "followers",
        mentions: Sequence[str] = (),
        hashtags: Sequence[str] = (),
        location: str | None = None,
        event_id: str | None = None,
    ) -> R:
        """`story_posted`; `expires_at` defaults to `created_at` plus the client's story TTL."""
        return self._send(
            {
                "type": "story_posted",
                "story_id": story_id,
                "author_id": author_id,
                "created_at": _now(created_at),
                "expires_at": expires_at,
                "media_id": media_id,
                "media": None if media is None else list(media),
                "media_type": media_type,
                "audience": audience,
                "mentions": list(mentions),
                "hashtags": list(hashtags),
                "location": location,
                "event_id": event_id,
            }
        )

    def story_viewed(
        self,
        *,
        story_id: str,
        viewer_id: str,
        viewed_at: datetime | None = None,
        event_id: str | None = None,
    ) -> R:
        """`story_viewed`."""
        return self._send(
            {
                "type": "story_viewed",
                "story_id": story_id,
                "viewer_id": viewer_id,
                "viewed_at": _now(viewed_at),
                "event_id": event_id,
            }
        )

    def story_reacted(
        self,
        *,
        story_id: str,
        user_id: str,
        reaction: str,
        reacted_at: datetime | None = None,
        text: str | None = None,
        event_id: str | None = None,
    ) -> R:
        """`story_reacted` (a named reaction or one emoji, with an optional reply)."""
        return self._send(
            {
                "type": "story_reacted",
                "story_id": story_id,
                "user_id": user_id,
                "reaction": reaction,
                "reacted_at": _now(reacted_at),
                "text": text,
                "event_id": event_id,
            }
        )

    def highlight_added(
        self,
        *,
        story_id: str,
        author_id: str,
        highlight_id: str,
        at: datetime | None = None,
        title: str | None = None,
        event_id: str | None = None,
    ) -> R:
        """`highlight_added`."""
        return self._highlight("highlight_added", story_id, author_id, highlight_id, at, title,
                               event_id)  # fmt: skip

    def highlight_removed(
        self,
        *,
        story_id: str,
        author_id: str,
        highlight_id: str,
        at: datetime | None = None,
        event_id: str | None = None,
    ) -> R:
        """`highlight_removed`."""
        return self._highlight("highlight_removed", story_id, author_id, highlight_id, at, None,
                               event_id)  # fmt: skip

    def _highlight(
        self,
        kind: str,
        story_id: str,
        author_id: str,
        highlight_id: str,
        at: datetime | None,
        title: str | None,
        event_id: str | None,
    ) -> R:
        return self._send(
            {
                "type": kind,
                "story_id": story_id,
                "author_id": author_id,
                "highlight_id": highlight_id,
                "at": _now(at),
                "title": title,
                "event_id": event_id,
            }
        )

    def story_deleted(
        self,
        *,
        story_id: str,
        author_id: str,
        deleted_at: datetime | None = None,
        event_id: str | None = None,
    ) -> R:
        """`story_deleted`."""
        return self._send(
            {
                "type": "story_deleted",
                "story_id": story_id,
                "author_id": author_id,
                "deleted_at": _now(deleted_at),
                "event_id": event_id,
            }
        )

    def user_followed(
        self,
        *,
        follower_id: str,
        followee_id: str,
        at: datetime | None = None,
        event_id: str | None = None,
    ) -> R:
        """`user_followed`: `follower_id` follows `followee_id`."""
        return self._follow("user_followed", follower_id, followee_id, at, event_id)

    def user_unfollowed(
        self,
        *,
        follower_id: str,
        followee_id: str,
        at: datetime | None = None,
        event_id: str | None = None,
    ) -> R:
        """`user_unfollowed`."""
        return self._follow("user_unfollowed", follower_id, followee_id, at, event_id)

    def _follow(
        self,
        kind: str,
        follower_id: str,
        followee_id: str,
        at: datetime | None,
        event_id: str | None,
    ) -> R:
        return self._send(
            {
                "type": kind,
                "follower_id": follower_id,
                "followee_id": followee_id,
                "at": _now(at),
                "event_id": event_id,
            }
        )

    def close_friend_added(
        self,
        *,
        user_id: str,
        friend_id: str,
        at: datetime | None = None,
        event_id: str | None = None,
    ) -> R:
        """`close_friend_added`: `friend_id` joins `user_id`'s close friends."""
        return self._close_friend("close_friend_added", user_id, friend_id, at, event_id)

    def close_friend_removed(
        self,
        *,
        user_id: str,
        friend_id: str,
        at: datetime | None = None,
        event_id: str | None = None,
    ) -> R:
        """`close_friend_removed`."""
        return self._close_friend("close_friend_removed", user_id, friend_id, at, event_id)

    def _close_friend(
        self, kind: str, user_id: str, friend_id: str, at: datetime | None, event_id: str | None
    ) -> R:
        return self._send(
            {
                "type": kind,
                "user_id": user_id,
                "friend_id": friend_id,
                "at": _now(at),
                "event_id": event_id,
            }
        )

    def media_uploaded(
        self,
        *,
        media_id: str,
        author_id: str,
        object_key: str,
        content_type: str,
        at: datetime | None = None,
        size_bytes: int | None = None,
        story_id: str | None = None,
        event_id: str | None = None,
    ) -> R:
        """`media_uploaded`: an original in the object store, to be transcoded."""
        return self._send(
            {
                "type": "media_uploaded",
                "media_id": media_id,
                "author_id": author_id,
                "object_key": object_key,
                "content_type": content_type,
                "at": _now(at),
                "size_bytes": size_bytes,
                "story_id": story_id,
                "event_id": event_id,
            }
        )
