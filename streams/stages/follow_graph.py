"""The author stage's state in the partition store: one small key per author, one key per
follower and per close friend.

A pickled follower set per author would grow with the author: a celebrity's (100,000
followers and more, the very authors merged on read) is megabytes, more than a Kafka record
takes by default (1 MB) on the changelog, and rewriting it on every follow is O(followers).
Here a follow or an unfollow writes one key, a fan-out scans the author's keys in order, and
a reader asks whether one user follows with one lookup.

    author<0x01>{author_id}            -> pickled (stories, celebrity, followers, close friends)
                                          (the two counts: the sets' sizes)
    F{author_id}<NUL>{user_id}         -> b""   a follower
    C{author_id}<NUL>{user_id}         -> b""   a close friend

Values written before this layout (a pickled `Author` holding both sets) still load: the
author's sets are written as keys at its next change.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from processors.authors import ActiveStory, Author, MemberChange, Members, MemberSet
from streams.runtime.store import PartitionStore

CORE_PREFIX = b"author\x01"
FOLLOWER_TAG = b"F"
CLOSE_FRIEND_TAG = b"C"
_SEP = b"\x00"  # identifiers have no NUL: no author's prefix is a prefix of another's


def core_key(author_id: str) -> bytes:
    return CORE_PREFIX + author_id.encode()


def member_prefix(tag: bytes, author_id: str) -> bytes:
    """The prefix of every key of one of an author's sets (tag: FOLLOWER_TAG or
    CLOSE_FRIEND_TAG)."""
    return tag + author_id.encode() + _SEP


class StoredMembers(MemberSet):
    """One author's followers (or close friends): the store's keys under `prefix`, with the
    changes of the batch under way on top until `write()` puts them in the store."""

    def __init__(self, store: PartitionStore, prefix: bytes, count: int) -> None:
        self._store = store
        self._prefix = prefix
        self._count = count
        self._changes: dict[str, bool] = {}

    def __contains__(self, user: object) -> bool:
        if not isinstance(user, str):
            return False
        present = self._changes.get(user)
        if present is not None:
            return present
        return self._store.get(self._prefix + user.encode()) is not None

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[str]:
        """The members: the stored ones in key order, then those added in this batch."""
        changes = self._changes
        start = len(self._prefix)
        for key, _ in self._store.scan(self._prefix):
            user = key[start:].decode()
            if user not in changes:
                yield user
        for user, present in changes.items():
            if present:
                yield user

    def absorb(self, members: Members) -> StoredMembers:
        """Take on the change a processor made to this set (`members` is this set, or a
        MemberChange on top of it) and stand for the result."""
        if members is self:
            return self
        if not (isinstance(members, MemberChange) and members.base is self):
            raise TypeError(f"not a change of this set: {type(members).__name__}")
        self._count = len(members)  # the change knew whether its user was in this set
        self._changes[members.user] = members.present
        return self

    def add_all(self, users: Iterable[str]) -> None:
        """Add users not stored yet (an author loaded from the older layout)."""
        for user in users:
            if user not in self._changes:
                self._changes[user] = True
                self._count += 1

    def write(self) -> None:
        """Put this batch's changes in the store (its write buffer)."""
        for user, present in self._changes.items():
            key = self._prefix + user.encode()
            if present:
                self._store.put(key, b"")
            else:
                self._store.delete(key)
        self._changes = {}


def _core(author: Author) -> bytes:
    return pickle.dumps(
        (author.stories, author.celebrity, len(author.followers), len(author.close_friends)),
        protocol=pickle.HIGHEST_PROTOCOL,
    )


def load_author(store: PartitionStore, author_id: str) -> Author | None:
    """The author's state, its sets read from the store as they are needed."""
    raw = store.get(core_key(author_id))
    if raw is None:
        return None
    value = pickle.loads(raw)  # noqa: S301 - our own state
    if not isinstance(value, Author):
        stories, celebrity, follower_count, close_friend_count = value
        return _stored(store, author_id, follower_count, close_friend_count, stories, celebrity)
    # The older layout: both sets in the value, to be written as keys.
    followers = StoredMembers(store, member_prefix(FOLLOWER_TAG, author_id), 0)
    close_friends = StoredMembers(store, member_prefix(CLOSE_FRIEND_TAG, author_id), 0)
    followers.add_all(sorted(value.followers))
    close_friends.add_all(sorted(value.close_friends))
    return Author(author_id, followers, close_friends, value.stories, value.celebrity)


def _stored(
    store: PartitionStore,
    author_id: str,
    follower_count: int = 0,
    close_friend_count: int = 0,
    stories: tuple[ActiveStory, ...] = (),
    celebrity: bool = False,
) -> Author:
    """An author whose sets are the store's keys (of the sizes given)."""
    return Author(
        author_id,
        StoredMembers(store, member_prefix(FOLLOWER_TAG, author_id), follower_count),
        StoredMembers(store, member_prefix(CLOSE_FRIEND_TAG, author_id), close_friend_count),
        stories,
        celebrity,
    )


def absorb(state: Author, changed: Author) -> Author:
    """`changed` (a processor's result for `state`, as loaded or last absorbed) with its set
    changes taken into `state`'s stored sets, ready for the next input."""
    followers, close_friends = state.followers, state.close_friends
    assert isinstance(followers, StoredMembers) and isinstance(close_friends, StoredMembers)
    return Author(
        changed.author_id,
        followers.absorb(changed.followers),
        close_friends.absorb(changed.close_friends),
        changed.stories,
        changed.celebrity,
    )


def empty_author(store: PartitionStore, author_id: str) -> Author:
    """A new author's state, with (empty) stored sets."""
    return _stored(store, author_id)


def save_author(store: PartitionStore, author: Author) -> None:
    """Write the author's set changes and its small value (deleted when the state is empty)."""
    for members in (author.followers, author.close_friends):
        assert isinstance(members, StoredMembers)
        members.write()
    if author.is_empty:
        store.delete(core_key(author.author_id))
    else:
        store.put(core_key(author.author_id), _core(author))


def author_seen_by(
    get: Callable[[bytes], bytes | None], author_id: str, viewer_id: str
) -> Author | None:
    """The author as the API needs it for one viewer: stories and status, and the viewer's
    own place in the author's sets (their only members here). `get` reads the store (the
    committed state, from another thread)."""
    raw = get(core_key(author_id))
    if raw is None:
        return None
    value: Any = pickle.loads(raw)  # noqa: S301 - our own state
    if isinstance(value, Author):  # the older layout
        return Author(
            author_id,
            value.followers & {viewer_id},
            value.close_friends & {viewer_id},
            value.stories,
            value.celebrity,
        )
    stories, celebrity, _, _ = value
    follows = get(member_prefix(FOLLOWER_TAG, author_id) + viewer_id.encode()) is not None
    friend = get(member_prefix(CLOSE_FRIEND_TAG, author_id) + viewer_id.encode()) is not None
    return Author(
        author_id,
        frozenset({viewer_id}) if follows else frozenset(),
        frozenset({viewer_id}) if friend else frozenset(),
        stories,
        celebrity,
    )
