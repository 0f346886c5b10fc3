"""Factories for the follow-graph and tray tests: events, stage messages, contexts, times."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from processors.context import Ctx, Policy
from processors.messages import (
    CelebrityFollowChanged,
    StoryClosed,
    StoryOpened,
    StorySeen,
    TrayStoryAdded,
    TrayStoryRemoved,
)
from schemas.events import Audience, CloseFriendChanged, FollowChanged

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
TTL = timedelta(hours=24)
GRACE = timedelta(hours=2)


def at(minutes: float = 0) -> datetime:
    """`minutes` after T0."""
    return T0 + timedelta(minutes=minutes)


def ctx(minutes: float = 0, *, celebrity_followers: int = 100_000) -> Ctx:
    """A context whose clock reads `minutes` after T0."""
    policy = Policy(story_ttl=TTL, expiry_grace=GRACE, celebrity_followers=celebrity_followers)
    return Ctx(now=at(minutes), policy=policy)


def _follow(kind: str, follower: str, followee: str, minutes: float) -> FollowChanged:
    # model_validate: the event_id is derived from the content, as `publish` does.
    data = {"type": kind, "follower_id": follower, "followee_id": followee, "at": at(minutes)}
    return FollowChanged.model_validate(data)


def _friend(kind: str, user: str, friend: str, minutes: float) -> CloseFriendChanged:
    data = {"type": kind, "user_id": user, "friend_id": friend, "at": at(minutes)}
    return CloseFriendChanged.model_validate(data)


def followed(follower: str, followee: str, minutes: float = 0) -> FollowChanged:
    return _follow("user_followed", follower, followee, minutes)


def unfollowed(follower: str, followee: str, minutes: float = 0) -> FollowChanged:
    return _follow("user_unfollowed", follower, followee, minutes)


def friend_added(user: str, friend: str, minutes: float = 0) -> CloseFriendChanged:
    return _friend("close_friend_added", user, friend, minutes)


def friend_removed(user: str, friend: str, minutes: float = 0) -> CloseFriendChanged:
    return _friend("close_friend_removed", user, friend, minutes)


def opened(
    story_id: str,
    author_id: str,
    minutes: float = 0,
    *,
    audience: Audience = "followers",
    ttl: timedelta = TTL,
) -> StoryOpened:
    return StoryOpened(
        story_id=story_id,
        author_id=author_id,
        created_at=at(minutes),
        expires_at=at(minutes) + ttl,
        audience=audience,
    )


def closed(story_id: str, author_id: str) -> StoryClosed:
    return StoryClosed(story_id=story_id, author_id=author_id)


def seen(user: str, story_id: str, minutes: float = 0) -> StorySeen:
    return StorySeen(user_id=user, story_id=story_id, at=at(minutes))


def added(
    user: str, author: str, story_id: str, minutes: float = 0, *, ttl: timedelta = TTL
) -> TrayStoryAdded:
    return TrayStoryAdded(
        user_id=user,
        author_id=author,
        story_id=story_id,
        created_at=at(minutes),
        expires_at=at(minutes) + ttl,
    )


def removed(user: str, author: str, story_id: str) -> TrayStoryRemoved:
    return TrayStoryRemoved(user_id=user, author_id=author, story_id=story_id)


def celebrity(user: str, author: str, *, following: bool = True) -> CelebrityFollowChanged:
    return CelebrityFollowChanged(user_id=user, author_id=author, following=following)


def cut(messages: Sequence[Any], sizes: Sequence[int]) -> list[list[Any]]:
    """`messages` in batches of `sizes` (some maybe empty), the rest in a last batch."""
    batches, rest = [], list(messages)
    for size in sizes:
        batches.append(rest[:size])
        rest = rest[size:]
    batches.append(rest)
    return batches
