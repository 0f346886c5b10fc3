"""The "author" stage (keyed author_id): follow graph, active stories, fan-out to trays."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from datetime import datetime

from processors.context import Ctx, Forward, Output, Policy
from processors.messages import (
    CelebrityFollowChanged,
    StoryClosed,
    StoryOpened,
    TrayStoryAdded,
    TrayStoryRemoved,
)
from schemas.events import Audience, CloseFriendChanged, FollowChanged

TRAY_STAGE = "tray"

# Visibility and tray reach (contract 5), decided here once:
# - The author sees all their own stories (visible_stories) but never gets them in their own
#   tray: a self-follow or self close-friend event is ignored, so the author is never a follower.
# - Visibility: `followers` -> followers; `close_friends` -> close friends, whether or not they
#   follow (as on Instagram, being on the list is what grants access; they see the stories on
#   the author's page); `public` -> everyone.
# - Tray reach is "followers who may see the story": trays only hold followed authors, so a
#   close-friends story reaches close friends who also follow, a public story reaches followers.
# - Authors with at least `policy.celebrity_followers` followers are celebrities: nothing of
#   theirs is fanned out; each follower's tray stage only learns that it follows them
#   (CelebrityFollowChanged) and the API merges their stories in on read.


@dataclass(frozen=True, slots=True)
class ActiveStory:
    """A story of the author that is in trays (opened and not yet closed)."""

    story_id: str
    created_at: datetime
    expires_at: datetime
    audience: Audience


# Who follows an author, or is on their close-friends list: a set of user ids. A celebrity's
# followers are too many to hand to a processor for every follow, so an input that does not
# fan out gets a `PartialMembers` (the set's size and the named users' places in it); one that
# may fan out (`needs_members`) gets the whole set.
Members = AbstractSet[str]


class MembersNotGiven(LookupError):
    """A processor asked a `PartialMembers` what only the whole set answers."""


class PartialMembers(AbstractSet[str]):
    """Part of a set: its size, and whether each of the users an input names is in it.

    Asking about another user, or iterating, raises MembersNotGiven: an input that needs the
    whole set is given it (see `needs_members`).
    """

    __slots__ = ("size", "members", "others")

    def __init__(
        self, size: int, members: frozenset[str] = frozenset(), others: frozenset[str] = frozenset()
    ) -> None:
        self.size, self.members, self.others = size, members, others

    def __contains__(self, user: object) -> bool:
        if user in self.members:
            return True
        if user in self.others:
            return False
        raise MembersNotGiven(f"{user!r} was not named to the processor")

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[str]:
        raise MembersNotGiven("the whole set was not given to the processor")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PartialMembers):
            return NotImplemented
        return (self.size, self.members, self.others) == (other.size, other.members, other.others)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PartialMembers({self.size}, {set(self.members)}, {set(self.others)})"

    def changed(self, user: str, present: bool) -> PartialMembers:
        """The set with `user` (a named one) added (`present`) or removed."""
        size = self.size + int(present) - int(user in self)
        if present:
            return PartialMembers(size, self.members | {user}, self.others - {user})
        return PartialMembers(size, self.members - {user}, self.others | {user})


def _with(members: Members, user: str, present: bool) -> Members:
    """`members` with `user` added (`present`) or removed."""
    if isinstance(members, PartialMembers):
        return members.changed(user, present)
    return frozenset(members) | {user} if present else frozenset(members) - {user}


@dataclass(frozen=True, slots=True)
class Author:
    """State of the author stage: who follows, the close-friends list, the active stories.

    `stories` is kept oldest first (created_at, then story_id). `celebrity` records whether
    the stories are currently merged on read instead of fanned out, so a crossing of the
    threshold (either way) is noticed and the trays are moved over.
    """

    author_id: str
    followers: Members = frozenset()
    close_friends: Members = frozenset()
    stories: tuple[ActiveStory, ...] = ()
    celebrity: bool = False

    @property
    def is_empty(self) -> bool:
        """True when the state carries nothing: the wiring may delete the key."""
        return not (self.followers or self.close_friends or self.stories or self.celebrity)


def may_see(author: Author, story: ActiveStory, viewer_id: str) -> bool:
    """Whether `viewer_id` may see `story` (contract 5 visibility)."""
    if viewer_id == author.author_id or story.audience == "public":
        return True
    if story.audience == "followers":
        return viewer_id in author.followers
    return viewer_id in author.close_friends


def in_tray(author: Author, story: ActiveStory, viewer_id: str) -> bool:
    """Whether `story` belongs in `viewer_id`'s tray (a follower who may see it)."""
    return (
        viewer_id != author.author_id
        and viewer_id in author.followers
        and (story.audience != "close_friends" or viewer_id in author.close_friends)
    )


def visible_stories(author: Author, viewer_id: str, now: datetime) -> list[ActiveStory]:
    """The author's unexpired stories `viewer_id` may see, oldest first."""
    return [s for s in author.stories if s.expires_at > now and may_see(author, s, viewer_id)]


def user_followed(
    state: Author | None, event: FollowChanged, ctx: Ctx
) -> tuple[Author, list[Output]]:
    """`follower_id` now follows the author: their tray gets the author's stories."""
    _expect(event.type, "user_followed")
    old = _state(state, event.followee_id)
    if event.follower_id == old.author_id or event.follower_id in old.followers:
        return _settle(old, old, (), ctx)
    changed = replace(old, followers=_with(old.followers, event.follower_id, True))
    return _settle(old, changed, (event.follower_id,), ctx)


def user_unfollowed(
    state: Author | None, event: FollowChanged, ctx: Ctx
) -> tuple[Author, list[Output]]:
    """`follower_id` no longer follows the author: the author's stories leave their tray."""
    _expect(event.type, "user_unfollowed")
    old = _state(state, event.followee_id)
    if event.follower_id not in old.followers:
        return _settle(old, old, (), ctx)
    changed = replace(old, followers=_with(old.followers, event.follower_id, False))
    return _settle(old, changed, (event.follower_id,), ctx)


def close_friend_added(
    state: Author | None, event: CloseFriendChanged, ctx: Ctx
) -> tuple[Author, list[Output]]:
    """`friend_id` joins the author's close friends: close-friends stories reach them."""
    _expect(event.type, "close_friend_added")
    old = _state(state, event.user_id)
    if event.friend_id == old.author_id or event.friend_id in old.close_friends:
        return _settle(old, old, (), ctx)
    changed = replace(old, close_friends=_with(old.close_friends, event.friend_id, True))
    return _settle(old, changed, (event.friend_id,), ctx)


def close_friend_removed(
    state: Author | None, event: CloseFriendChanged, ctx: Ctx
) -> tuple[Author, list[Output]]:
    """`friend_id` leaves the author's close friends: close-friends stories leave their tray."""
    _expect(event.type, "close_friend_removed")
    old = _state(state, event.user_id)
    if event.friend_id not in old.close_friends:
        return _settle(old, old, (), ctx)
    changed = replace(old, close_friends=_with(old.close_friends, event.friend_id, False))
    return _settle(old, changed, (event.friend_id,), ctx)


def story_opened(
    state: Author | None, message: StoryOpened, ctx: Ctx
) -> tuple[Author, list[Output]]:
    """A story became active: fan it out to every follower allowed to see it."""
    old = _state(state, message.author_id)
    story = ActiveStory(message.story_id, message.created_at, message.expires_at, message.audience)
    current = _find(old, story.story_id)
    if current == story or (current is None and story.expires_at <= ctx.now):
        # Already known, or expired before it could be shown: the expiry's StoryClosed may
        # never come for a story this stage never recorded, so do not record it.
        return _settle(old, old, (), ctx)
    stories = [s for s in old.stories if s.story_id != story.story_id]
    bisect.insort(stories, story, key=_story_order)  # kept in order: O(log n) comparisons
    changed = replace(old, stories=tuple(stories))
    return _settle_story(old, changed, story.story_id, ctx)


def story_closed(
    state: Author | None, message: StoryClosed, ctx: Ctx
) -> tuple[Author, list[Output]]:
    """A story left trays (expired, deleted, failed): withdraw it from every tray."""
    old = _state(state, message.author_id)
    if _find(old, message.story_id) is None:
        return _settle(old, old, (), ctx)
    changed = replace(old, stories=tuple(s for s in old.stories if s.story_id != message.story_id))
    return _settle_story(old, changed, message.story_id, ctx)


AuthorInput = FollowChanged | CloseFriendChanged | StoryOpened | StoryClosed


def handle(state: Author | None, item: AuthorInput, ctx: Ctx) -> tuple[Author, list[Output]]:
    """Dispatch one input of the author stage to its processor."""
    match item:
        case FollowChanged(type="user_followed"):
            return user_followed(state, item, ctx)
        case FollowChanged():
            return user_unfollowed(state, item, ctx)
        case CloseFriendChanged(type="close_friend_added"):
            return close_friend_added(state, item, ctx)
        case CloseFriendChanged():
            return close_friend_removed(state, item, ctx)
        case StoryOpened():
            return story_opened(state, item, ctx)
        case StoryClosed():
            return story_closed(state, item, ctx)
    raise TypeError(f"the author stage does not handle {type(item).__name__}")


def named_user(item: AuthorInput) -> str | None:
    """The user whose place in the author's sets `item` changes (None: a story's input)."""
    if isinstance(item, FollowChanged):
        return item.follower_id
    if isinstance(item, CloseFriendChanged):
        return item.friend_id
    return None


def needs_members(state: Author | None, item: AuthorInput, policy: Policy) -> bool:
    """Whether applying `item` may tell every follower something (a story's fan-out, or a
    crossing of the celebrity threshold): then it needs the whole sets, else the size of each
    and the place of the `named_user` in it."""
    if state is None:
        return False  # no followers: nothing to tell
    threshold, count = policy.celebrity_followers, len(state.followers)
    if isinstance(item, StoryOpened | StoryClosed):
        return not (state.celebrity and count >= threshold)
    # a follow moves the count by one at most; the threshold may have moved with the policy
    celebrity = state.celebrity
    return (count + 1 >= threshold) != celebrity or (count - 1 >= threshold) != celebrity


def _expect(actual: str, expected: str) -> None:
    if actual != expected:
        raise ValueError(f"{expected} processor given a {actual} event")


def _state(state: Author | None, author_id: str) -> Author:
    if state is None:
        return Author(author_id)
    if state.author_id != author_id:
        raise ValueError(f"author {author_id}'s input given the state of {state.author_id}")
    return state


def _find(author: Author, story_id: str) -> ActiveStory | None:
    return next((s for s in author.stories if s.story_id == story_id), None)


def _story_order(story: ActiveStory) -> tuple[datetime, str]:
    return story.created_at, story.story_id


def _with_status(changed: Author, ctx: Ctx) -> Author:
    """`changed` with the celebrity threshold applied (it may have moved with the policy)."""
    celebrity = len(changed.followers) >= ctx.policy.celebrity_followers
    return changed if changed.celebrity == celebrity else replace(changed, celebrity=celebrity)


def _settle(
    old: Author, changed: Author, viewers: Iterable[str], ctx: Ctx
) -> tuple[Author, list[Output]]:
    """Apply the threshold to `changed` (a change for `viewers`) and tell the trays."""
    new = _with_status(changed, ctx)
    if new.celebrity != old.celebrity:
        viewers = old.followers | new.followers  # a crossing moves every follower's tray
    elif new is old:
        return new, []
    # Sorted so a replay emits the same messages in the same order (sets iterate by hash).
    return new, _changes(old, new, sorted(viewers), ctx.now)


def _settle_story(
    old: Author, changed: Author, story_id: str, ctx: Ctx
) -> tuple[Author, list[Output]]:
    """Apply the threshold to `changed` (one story changed) and tell the trays."""
    new = _with_status(changed, ctx)
    if new.celebrity != old.celebrity:
        return new, _changes(old, new, sorted(old.followers | new.followers), ctx.now)
    if new.celebrity:
        return new, []  # a celebrity's stories are merged on read, never fanned out
    return new, _story_changes(new, _find(old, story_id), _find(new, story_id), ctx.now)


def _story_changes(
    author: Author, before: ActiveStory | None, after: ActiveStory | None, now: datetime
) -> list[Output]:
    """The tray messages for one story changing from `before` to `after` (None: absent).

    The fast path of a story's fan-out (O(followers)): only stories changed, so the reach of
    both versions is computed from the same followers and close friends.
    """
    outputs: list[Output] = []
    reach: Members = _reach(author, after) if after is not None else frozenset()
    if after is not None and after != before and after.expires_at > now:
        for viewer in sorted(reach):
            outputs.append(Forward(TRAY_STAGE, viewer, _added(viewer, author.author_id, after)))
    if before is not None:
        for viewer in sorted(_reach(author, before) - reach):
            outputs.append(Forward(TRAY_STAGE, viewer, _removed(viewer, author.author_id, before)))
    return outputs


def _reach(author: Author, story: ActiveStory) -> Members:
    """Whose trays the story belongs in (see in_tray)."""
    if story.audience == "close_friends":  # the list is the smaller set: it is the one walked
        followers = author.followers
        return frozenset(user for user in author.close_friends if user in followers)
    return author.followers


def _changes(old: Author, new: Author, viewers: Iterable[str], now: datetime) -> list[Output]:
    """The tray messages turning each viewer's view of `old` into their view of `new`.

    Gains are sent before losses so that, while the tray stage catches up, a reader merging
    celebrities on read sees a story twice (deduplicated) rather than not at all.
    """
    old_stories = () if old.celebrity else old.stories
    new_stories = () if new.celebrity else new.stories
    author_id = new.author_id
    outputs: list[Output] = []
    for viewer in viewers:
        had = {s for s in old_stories if in_tray(old, s, viewer)}
        has = [s for s in new_stories if in_tray(new, s, viewer)]
        was_merged = old.celebrity and viewer in old.followers
        is_merged = new.celebrity and viewer in new.followers
        gains: list[Output] = []
        losses: list[Output] = []
        if is_merged and not was_merged:
            gains.append(_celebrity(viewer, author_id, following=True))
        if was_merged and not is_merged:
            losses.append(_celebrity(viewer, author_id, following=False))
        for story in has:
            if story not in had and story.expires_at > now:
                gains.append(Forward(TRAY_STAGE, viewer, _added(viewer, author_id, story)))
        kept = {s.story_id for s in has}
        for story in sorted(had, key=_story_order):
            if story.story_id not in kept:
                losses.append(Forward(TRAY_STAGE, viewer, _removed(viewer, author_id, story)))
        outputs += gains
        outputs += losses
    return outputs


def _added(viewer: str, author_id: str, story: ActiveStory) -> TrayStoryAdded:
    return TrayStoryAdded(
        user_id=viewer,
        author_id=author_id,
        story_id=story.story_id,
        created_at=story.created_at,
        expires_at=story.expires_at,
    )


def _removed(viewer: str, author_id: str, story: ActiveStory) -> TrayStoryRemoved:
    return TrayStoryRemoved(user_id=viewer, author_id=author_id, story_id=story.story_id)


def _celebrity(viewer: str, author_id: str, *, following: bool) -> Forward:
    message = CelebrityFollowChanged(user_id=viewer, author_id=author_id, following=following)
    return Forward(TRAY_STAGE, viewer, message)
