"""The author stage's state in the partition store: one small value per author, one key per
follower and per close friend.

A follower set in one value would grow with the author (a celebrity's is more than a changelog
record takes) and be rewritten on every follow. As keys, a follow writes one key, a fan-out
scans the author's keys in order, and a reader asks whether one user follows with one lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from processors.authors import ActiveStory, Author, Members, PartialMembers
from streams.runtime.store import PartitionStore
from streams.stages.state import Table


class AuthorCore(NamedTuple):
    """An author's stored value: its state but for the sets, of which it keeps the sizes."""

    stories: tuple[ActiveStory, ...]
    celebrity: bool
    followers: int
    close_friends: int


# author<0x01>{author_id}     -> AuthorCore
# F{author_id}<NUL>{user_id}  -> b"": a follower
# C{author_id}<NUL>{user_id}  -> b"": a close friend
CORES: Table[AuthorCore] = Table("author", AuthorCore)
FOLLOWER_TAG = b"F"
CLOSE_FRIEND_TAG = b"C"
_SEP = b"\x00"  # identifiers have no NUL: no author's prefix is a prefix of another's
_NO_CORE = AuthorCore((), False, 0, 0)


def core_key(author_id: str) -> bytes:
    return CORES.key(author_id)


def member_prefix(tag: bytes, author_id: str) -> bytes:
    """The prefix of every key of one of an author's sets (tag: FOLLOWER_TAG or
    CLOSE_FRIEND_TAG)."""
    return tag + author_id.encode() + _SEP


def load_core(store: PartitionStore, author_id: str) -> AuthorCore:
    """The author's stored value (an author without one has nothing)."""
    return CORES.get(store, author_id) or _NO_CORE


def _members(store: PartitionStore, tag: bytes, author_id: str) -> frozenset[str]:
    prefix = member_prefix(tag, author_id)
    start = len(prefix)
    return frozenset(key[start:].decode() for key, _ in store.scan(prefix))


def whole_author(store: PartitionStore, author_id: str, core: AuthorCore) -> Author:
    """The author with its whole sets, read from the store's keys (O(members))."""
    return Author(
        author_id,
        _members(store, FOLLOWER_TAG, author_id),
        _members(store, CLOSE_FRIEND_TAG, author_id),
        core.stories,
        core.celebrity,
    )


def _partial(
    store: PartitionStore, author_id: str, size: int, tag: bytes, user: str | None
) -> PartialMembers:
    if user is None:
        return PartialMembers(size)
    if not size or store.get(member_prefix(tag, author_id) + user.encode()) is None:
        return PartialMembers(size, others=frozenset((user,)))
    return PartialMembers(size, members=frozenset((user,)))


def partial_author(
    store: PartitionStore, author_id: str, core: AuthorCore, user: str | None
) -> Author:
    """The author with the sizes of its sets and `user`'s place in each (O(1))."""
    return Author(
        author_id,
        _partial(store, author_id, core.followers, FOLLOWER_TAG, user),
        _partial(store, author_id, core.close_friends, CLOSE_FRIEND_TAG, user),
        core.stories,
        core.celebrity,
    )


def _write_changes(
    store: PartitionStore,
    tag: bytes,
    author_id: str,
    before: Members,
    after: Members,
    user: str | None,
) -> None:
    """Write the keys of the members that joined or left between `before` and `after`: parts
    of a set, where only the named `user` can have changed, or whole sets."""
    if after is before:
        return
    if isinstance(after, PartialMembers):
        if user is None or (user in after) == (user in before):
            return
        changes = {user: user in after}
    else:
        old, new = frozenset(before), frozenset(after)
        changes = {member: member in new for member in sorted(old ^ new)}
    prefix = member_prefix(tag, author_id)
    for member, present in changes.items():
        if present:
            store.put(prefix + member.encode(), b"")
        else:
            store.delete(prefix + member.encode())


def save_changes(
    store: PartitionStore, before: Author, after: Author, user: str | None
) -> AuthorCore:
    """Write the set changes from `before` to `after` (a processor's result for an input that
    named `user`); the core of `after`, to save with `save_core` once the author's inputs are
    applied."""
    author_id = after.author_id
    _write_changes(store, FOLLOWER_TAG, author_id, before.followers, after.followers, user)
    _write_changes(
        store, CLOSE_FRIEND_TAG, author_id, before.close_friends, after.close_friends, user
    )
    return AuthorCore(
        after.stories, after.celebrity, len(after.followers), len(after.close_friends)
    )


def save_core(store: PartitionStore, author_id: str, core: AuthorCore) -> None:
    """Write the author's small value (deleted when the author has nothing)."""
    if core.stories or core.celebrity or core.followers or core.close_friends:
        CORES.put(store, author_id, core)
    else:
        CORES.delete(store, author_id)


def author_seen_by(
    get: Callable[[bytes], bytes | None], author_id: str, viewer_id: str
) -> Author | None:
    """The author as the API needs it for one viewer: stories and status, and the viewer's
    own place in the author's sets (their only members here). `get` reads the store (the
    committed state, from another thread)."""
    raw = get(core_key(author_id))
    if raw is None:
        return None
    core = CORES.decode(raw)
    follows = get(member_prefix(FOLLOWER_TAG, author_id) + viewer_id.encode()) is not None
    friend = get(member_prefix(CLOSE_FRIEND_TAG, author_id) + viewer_id.encode()) is not None
    return Author(
        author_id,
        frozenset({viewer_id}) if follows else frozenset(),
        frozenset({viewer_id}) if friend else frozenset(),
        core.stories,
        core.celebrity,
    )


def load_author(store: PartitionStore, author_id: str) -> Author | None:
    """The author with its whole sets, or None when nothing is stored for it."""
    core = CORES.get(store, author_id)
    return None if core is None else whole_author(store, author_id, core)
