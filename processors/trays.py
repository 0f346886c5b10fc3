"""The "tray" stage (keyed user_id): one user's tray, what they have seen, celebrities merged."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

from processors.authors import Author, in_tray, visible_stories
from processors.context import Ctx, Output, Policy, Put, Tombstone
from processors.messages import (
    CelebrityFollowChanged,
    StorySeen,
    TrayStoryAdded,
    TrayStoryRemoved,
)
from schemas.records import Tray, TrayEntry
from schemas.types import millis


@dataclass(frozen=True, slots=True)
class TrayStory:
    """A fanned-out story in the tray; `seen` once the owner has viewed it."""

    author_id: str
    story_id: str
    created_at: datetime
    expires_at: datetime
    seen: bool = False


@dataclass(frozen=True, slots=True)
class SeenStory:
    """A story the owner viewed, remembered until `keep_until` (then it cannot matter)."""

    story_id: str
    keep_until: datetime


_Item = TypeVar("_Item", TrayStory, SeenStory)


@dataclass(frozen=True, slots=True)
class TrayState:
    """State of the tray stage.

    `stories` and `seen` are sorted by story_id. A tray story carries its own `seen` flag,
    the one word on it while it is in the tray. `seen` marks the stories outside the tray
    the owner viewed: until the view time + TTL + grace, or, for a viewed story that left
    the tray, until it expires, so an unfollow and re-follow (or a close-friend toggle) does
    not make it unseen again. A view of a story in the tray writes no mark, and `seen` need
    only hold the marks of the stories a message names: a user who viewed thousands of
    stories is not read and rewritten whole on each view (the wiring keeps the marks as keys
    of their own and hands in those of a batch's stories, `tray_store`). A mark of a story
    in the tray is left as it is: the story's flag overrides it, and its time lets it go.
    `celebrities` are the followed authors merged on read.
    `published` is the digest (`tray_digest`) of the last non-empty Tray put on the topic
    (None: nothing, or a tombstone): outputs are the difference from it. A digest, not the
    Tray: the state is read for every message, and decoding a tray's models would cost more
    than the rest of the state.
    """

    user_id: str
    stories: tuple[TrayStory, ...] = ()
    seen: tuple[SeenStory, ...] = ()
    celebrities: frozenset[str] = frozenset()
    published: str | None = None

    @property
    def seen_ids(self) -> frozenset[str]:
        """Ids of the viewed stories: the tray's, and the marked ones (as far as they still
        matter, and were handed in)."""
        return frozenset(s.story_id for s in self.seen).union(
            s.story_id for s in self.stories if s.seen
        )

    @property
    def is_empty(self) -> bool:
        """True when the state carries nothing: the wiring may delete the key."""
        return not (self.stories or self.seen or self.celebrities or self.published)


def _added(state: TrayState | None, message: TrayStoryAdded, ctx: Ctx) -> TrayState:
    """A story the owner may see joins the tray (ignored when already expired)."""
    old = _state(state, message.user_id)
    if message.expires_at <= ctx.now:
        return old
    there = _in_tray(old, message.story_id)
    story = TrayStory(
        message.author_id,
        message.story_id,
        message.created_at,
        message.expires_at,
        seen=(there is not None and there.seen) or _seen(old, message.story_id) is not None,
    )
    stories = _without(old.stories, story.story_id) + (story,)
    return _with(old, _by_id(stories), old.seen)


def _removed(state: TrayState | None, message: TrayStoryRemoved, ctx: Ctx) -> TrayState:
    """A story leaves the tray (expiry, delete, unfollow, audience); viewed, it is marked
    until it expires."""
    old = _state(state, message.user_id)
    story = _in_tray(old, message.story_id)
    seen = old.seen
    if story is not None and story.seen:
        mark = SeenStory(story.story_id, story.expires_at)
        seen = _by_id(_without(seen, story.story_id) + (mark,))
    return _with(old, _without(old.stories, message.story_id), seen)


def _seen_change(state: TrayState | None, message: StorySeen, ctx: Ctx) -> TrayState:
    """The owner viewed a story: it no longer counts as unseen."""
    old = _state(state, message.user_id)
    story_id = message.story_id
    stories = old.stories
    story = _in_tray(old, story_id)
    if story is not None:  # its flag is all there is to change
        if story.seen:
            return old
        flagged = TrayStory(story.author_id, story_id, story.created_at, story.expires_at, True)
        return _with(old, tuple(flagged if s is story else s for s in stories), old.seen)
    if _seen(old, story_id) is not None:
        return old  # marked before
    keep_until = _seen_horizon(message.at, ctx.policy)
    if keep_until <= ctx.now:
        return old  # a view so old that its story must have expired: nothing to mark
    return _with(old, stories, _by_id(old.seen + (SeenStory(story_id, keep_until),)))


def seen_outside_tray(
    marks: Mapping[str, datetime], messages: Iterable[StorySeen], ctx: Ctx
) -> dict[str, datetime]:
    """The owner viewed these stories, none of them in the tray: their marks afterwards.

    What `handle` leaves of a StorySeen for a story outside the tray, without the tray itself
    (such a view changes nothing else, so the wiring need not read the tray). `marks` are the stored
    marks of the stories named, whether or not their time has passed; the result holds the
    marks in force after the messages, by story_id: one in force stays as it is, a story
    without one is marked until it must have expired (`_seen_horizon`).
    """
    now = ctx.now
    result = {story_id: until for story_id, until in marks.items() if until > now}
    for message in messages:
        if message.story_id not in result:
            until = _seen_horizon(message.at, ctx.policy)
            if until > now:
                result[message.story_id] = until
    return result


def _celebrity(state: TrayState | None, message: CelebrityFollowChanged, ctx: Ctx) -> TrayState:
    """The owner follows (or stopped following) a celebrity, merged in on read."""
    old = _state(state, message.user_id)
    if message.following:
        return replace(old, celebrities=old.celebrities | {message.author_id})
    return replace(old, celebrities=old.celebrities - {message.author_id})


TrayInput = TrayStoryAdded | TrayStoryRemoved | StorySeen | CelebrityFollowChanged
_CHANGES: dict[type, Callable[[TrayState | None, Any, Ctx], TrayState]] = {
    TrayStoryAdded: _added,
    TrayStoryRemoved: _removed,
    StorySeen: _seen_change,
    CelebrityFollowChanged: _celebrity,
}


def handle(state: TrayState | None, message: TrayInput, ctx: Ctx) -> tuple[TrayState, list[Output]]:
    """One message of the tray stage: `handle_many` of one."""
    new, outputs = handle_many(state, [(message, ctx)])
    assert new is not None
    return new, outputs


def render_tray(state: TrayState, now: datetime) -> Tray:
    """The fanned-out part of the tray as published: unexpired stories, ordered for display."""
    by_author: dict[str, list[TrayStory]] = {}
    for story in state.stories:
        if story.expires_at > now:
            by_author.setdefault(story.author_id, []).append(story)
    entries = []
    for author_id, stories in by_author.items():
        stories.sort(key=lambda s: (s.created_at, s.story_id))
        entries.append(
            TrayEntry(
                author_id=author_id,
                story_ids=tuple(s.story_id for s in stories),
                latest_story_at=stories[-1].created_at,
                has_unseen=not all(s.seen for s in stories),
            )
        )
    return Tray(user_id=state.user_id, entries=order_entries(entries))


def tray_digest(tray: Tray) -> str:
    """What a state keeps of the tray it published: equal trays, equal digests."""
    return hashlib.blake2b(tray.model_dump_json().encode(), digest_size=16).hexdigest()


def celebrity_entry(
    author: Author, viewer_id: str, seen: Set[str], now: datetime
) -> TrayEntry | None:
    """The tray entry of a celebrity `author` for a follower (None: nothing to show)."""
    stories = [s for s in visible_stories(author, viewer_id, now) if in_tray(author, s, viewer_id)]
    if not stories:
        return None
    return TrayEntry(
        author_id=author.author_id,
        story_ids=tuple(s.story_id for s in stories),
        latest_story_at=max(s.created_at for s in stories),
        has_unseen=any(s.story_id not in seen for s in stories),
    )


def merge_celebrities(tray: Tray, celebrity_entries: Iterable[TrayEntry]) -> Tray:
    """The tray with celebrity entries merged in, re-ordered for display.

    A celebrity entry replaces the tray's own entry for the same author: it is computed from
    the author's current state, while a fanned-out entry can only be a leftover of a threshold
    crossing still being delivered.
    """
    merged = {entry.author_id: entry for entry in tray.entries}
    for entry in celebrity_entries:
        merged[entry.author_id] = entry
    return Tray(user_id=tray.user_id, entries=order_entries(merged.values()))


def read_tray(
    state: TrayState | None, user_id: str, authors: Iterable[Author], now: datetime
) -> Tray:
    """The tray as the API serves it: fanned-out stories plus celebrities merged on read.

    `authors` are the states of `state.celebrities` (missing ones may be left out); `state`
    must hold the marks of their stories.
    """
    if state is None:
        return Tray(user_id=user_id, entries=())
    seen = state.seen_ids
    wanted = state.celebrities
    entries = (celebrity_entry(a, user_id, seen, now) for a in authors if a.author_id in wanted)
    return merge_celebrities(render_tray(state, now), (e for e in entries if e is not None))


def order_entries(entries: Iterable[TrayEntry]) -> tuple[TrayEntry, ...]:
    """Display order: unseen first, then newest `latest_story_at` first, then author_id."""
    return tuple(
        sorted(entries, key=lambda e: (not e.has_unseen, -millis(e.latest_story_at), e.author_id))
    )


def _state(state: TrayState | None, user_id: str) -> TrayState:
    """The state to apply a message to (what expired already dropped: `handle_many`)."""
    if state is None:
        return TrayState(user_id)
    if state.user_id != user_id:
        raise ValueError(f"user {user_id}'s message given the tray of {state.user_id}")
    return state


def _expire(state: TrayState, now: datetime) -> TrayState:
    stories = tuple(s for s in state.stories if s.expires_at > now)
    seen = tuple(s for s in state.seen if s.keep_until > now)
    if len(stories) == len(state.stories) and len(seen) == len(state.seen):
        return state
    return _with(state, stories, seen)


def _seen_horizon(viewed_at: datetime, policy: Policy) -> datetime:
    # A story viewed at `viewed_at` was created before it, so it expires by this time
    # (for the default expiry; a longer explicit `expires_at` is only known from the tray).
    return viewed_at + policy.story_ttl + policy.expiry_grace


def _seen(state: TrayState, story_id: str) -> SeenStory | None:
    return next((s for s in state.seen if s.story_id == story_id), None)


def _in_tray(state: TrayState, story_id: str) -> TrayStory | None:
    return next((s for s in state.stories if s.story_id == story_id), None)


def _without(items: tuple[_Item, ...], story_id: str) -> tuple[_Item, ...]:
    return tuple(item for item in items if item.story_id != story_id)


def handle_many(
    state: TrayState | None, items: Sequence[tuple[TrayInput, Ctx]]
) -> tuple[TrayState | None, list[Output]]:
    """One owner's messages in order, the tray published once, after the last: on the
    compacted topic each message's tray would be replaced by the next one's (a fan-out brings
    a user several stories in one batch)."""
    if not items:
        return state, []
    current = state
    expired_by = None  # what expired by this time is dropped from `current`
    for message, ctx in items:
        change = _CHANGES.get(type(message))
        if change is None:
            raise TypeError(f"the tray stage does not handle {type(message).__name__}")
        # A change adds nothing that expires by `ctx.now`, so the tray is expired once per
        # time (once per batch), not once per message.
        if current is not None and ctx.now != expired_by:
            current = _expire(current, ctx.now)
            expired_by = ctx.now
        current = change(current, message, ctx)
    assert current is not None
    return _publish(current, items[-1][1], _stories(state))


def _with(
    state: TrayState, stories: tuple[TrayStory, ...], seen: tuple[SeenStory, ...]
) -> TrayState:
    """`state` with other stories and marks (`replace` costs several times this call, and
    runs for every message)."""
    return TrayState(state.user_id, stories, seen, state.celebrities, state.published)


def _by_id(items: tuple[_Item, ...]) -> tuple[_Item, ...]:
    return tuple(sorted(items, key=lambda item: item.story_id))


def _stories(state: TrayState | None) -> tuple[TrayStory, ...]:
    return state.stories if state is not None else ()


def _publish(
    changed: TrayState, ctx: Ctx, before: tuple[TrayStory, ...]
) -> tuple[TrayState, list[Output]]:
    """Publish the tray if it differs from the last one (`changed` has dropped what expired
    by `ctx.now`: `handle_many`).

    `before` are the stories of the state as given: `published` was rendered from them
    (every change of the stories comes through here), so when they are still the same no
    rendering is needed. That is the common case, a view of a story outside the tray, and
    it keeps the cost of such a message from growing with the tray. So is a first view of a
    story in the tray while its author has other stories unseen (`_renders_alike`).
    """
    if _renders_alike(changed.stories, before):
        return changed, []
    tray = render_tray(changed, ctx.now)
    if tray.entries:
        digest = tray_digest(tray)
        if digest == changed.published:
            return changed, []
        return replace(changed, published=digest), [Put(changed.user_id, tray)]
    if changed.published is None:
        return changed, []
    return replace(changed, published=None), [Tombstone(Tray, changed.user_id)]


def _renders_alike(after: tuple[TrayStory, ...], before: tuple[TrayStory, ...]) -> bool:
    """Whether `render_tray` of `after` and of `before` are equal at any one time: the same
    stories, their `seen` flags changed only where each author's entry keeps its
    `has_unseen` (a view of one of an author's unseen stories, not the last)."""
    if len(after) != len(before):
        return False
    flipped: set[str] = set()
    for new, old in zip(after, before, strict=True):
        if new is old:
            continue
        if (new.story_id, new.author_id, new.created_at, new.expires_at) != (
            old.story_id,
            old.author_id,
            old.created_at,
            old.expires_at,
        ):
            return False
        if new.seen != old.seen:
            flipped.add(new.author_id)
    return all(_has_unseen(after, a) == _has_unseen(before, a) for a in flipped)


def _has_unseen(stories: tuple[TrayStory, ...], author_id: str) -> bool:
    return any(not s.seen for s in stories if s.author_id == author_id)
