"""The author stage's state in the store: one small value per author, a key per follower and
close friend. Applied in batches through the store, the processors give what they give on
in-memory sets; a follow writes one key whatever the author's size."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from processors import authors
from processors.authors import ActiveStory, Author
from streams.runtime.context import StageContext
from streams.runtime.metrics import Metrics
from streams.runtime.records import InRecord
from streams.runtime.store import PartitionStore
from streams.stages.follow_graph import (
    FOLLOWER_TAG,
    author_seen_by,
    core_key,
    load_author,
    member_prefix,
)
from streams.stages.social import apply_authors
from tests.processors.factories_social import (
    T0,
    TTL,
    at,
    closed,
    ctx,
    cut,
    followed,
    friend_added,
    friend_removed,
    opened,
    unfollowed,
)
from tests.streams.stage_context import OutputRecorder

AUTHOR_IDS = ("ann", "bob")
USERS = ("u1", "u2", "u3", "bob")
THRESHOLD = 2  # low: authors cross the celebrity threshold both ways


class _Engine(OutputRecorder):
    """Records what the author stage emits, under a celebrity threshold."""

    def __init__(self, threshold: int = THRESHOLD) -> None:
        super().__init__()
        self.policy = ctx(celebrity_followers=threshold).policy

    def context(self, store: PartitionStore) -> StageContext:
        return StageContext(0, store, T0, self.policy, Metrics(), self)  # type: ignore[arg-type]


def _author_of(item: Any) -> str:
    return str(
        getattr(item, "followee_id", None) or getattr(item, "user_id", None) or item.author_id
    )


def _plain(author: Author | None) -> Author | None:
    """The state with its sets as frozensets (stored sets read while the store is open)."""
    if author is None:
        return None
    return Author(
        author.author_id,
        frozenset(author.followers),
        frozenset(author.close_friends),
        author.stories,
        author.celebrity,
    )


_users = st.sampled_from(USERS)
_authors = st.sampled_from(AUTHOR_IDS)
_stories = st.sampled_from(("s1", "s2", "s3"))
_audiences = st.sampled_from(("followers", "close_friends", "public"))
_messages = st.lists(
    st.one_of(
        st.builds(followed, _users, _authors),
        st.builds(unfollowed, _users, _authors),
        st.builds(friend_added, _authors, _users),
        st.builds(friend_removed, _authors, _users),
        st.builds(lambda s, a, aud: opened(s, a, audience=aud), _stories, _authors, _audiences),
        st.builds(closed, _stories, _authors),
    ),
    max_size=40,
)


def _run_stored(tmp: Path, batches: list[list[Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    engine = _Engine()
    store = PartitionStore(tmp / "p0")
    try:
        pctx = engine.context(store)
        offsets: Iterator[int] = iter(range(10_000))
        for i, batch in enumerate(batches):
            records = [
                (InRecord("t", 0, next(offsets), _author_of(m).encode(), None, 0), m) for m in batch
            ]
            apply_authors(pctx, records)
            pctx.store.keep_run()  # the run succeeded, as the driver would say
            if i % 2:
                store.flush()  # some batches read what earlier ones left in RocksDB
        states = {a: _plain(load_author(store, a)) for a in AUTHOR_IDS}
    finally:
        store.close()
    by_author: dict[str, list[Any]] = defaultdict(list)
    for output in engine.emitted:
        by_author[output.message.author_id].append(output)
    return states, dict(by_author)


def _one_at_a_time(messages: list[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The reference: the processors on in-memory sets, one message at a time."""
    states: dict[str, Author | None] = dict.fromkeys(AUTHOR_IDS)
    by_author: dict[str, list[Any]] = defaultdict(list)
    for message in messages:
        author = _author_of(message)
        new, outputs = authors.handle(states[author], message, ctx(celebrity_followers=THRESHOLD))
        states[author] = None if new.is_empty else new
        by_author[author] += outputs
    return states, {author: outputs for author, outputs in by_author.items() if outputs}


@settings(max_examples=80, deadline=None)
@given(_messages, st.lists(st.integers(1, 10), max_size=10))
def test_stored_sets_give_what_in_memory_sets_give(
    tmp_path_factory: Any, messages: list[Any], cuts: list[int]
) -> None:
    batches = cut(messages, cuts)
    assert _run_stored(tmp_path_factory.mktemp("graph"), batches) == _one_at_a_time(messages)


def _apply(store: PartitionStore, engine: _Engine, messages: list[Any]) -> None:
    pctx = engine.context(store)
    records = [
        (InRecord("t", 0, i, _author_of(m).encode(), None, 0), m) for i, m in enumerate(messages)
    ]
    apply_authors(pctx, records)
    pctx.store.keep_run()  # the run succeeded, as the driver would say


def test_a_follow_writes_one_key_whatever_the_authors_size(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    engine = _Engine(threshold=100_000)
    _apply(store, engine, [followed(f"user{i:05d}", "star") for i in range(5_000)])
    store.flush()
    core = store.get(core_key("star"))
    assert core is not None and len(core) < 200  # the followers are not in it
    assert sum(1 for _ in store.scan(member_prefix(FOLLOWER_TAG, "star"))) == 5_000

    _apply(store, engine, [followed("late", "star")])
    assert set(store.dirty) == {core_key("star"), member_prefix(FOLLOWER_TAG, "star") + b"late"}
    _apply(store, engine, [unfollowed("user00007", "star")])
    store.flush()
    author = load_author(store, "star")
    assert author is not None and len(author.followers) == 5_000
    assert "late" in author.followers and "user00007" not in author.followers
    store.close()


def test_a_celebrity_crossing_moves_every_follower_read_from_the_store(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    engine = _Engine(threshold=3)
    _apply(store, engine, [followed("u1", "star"), followed("u2", "star"), opened("s1", "star")])
    store.flush()
    engine.emitted.clear()
    _apply(store, engine, [followed("u3", "star")])
    kinds = sorted((o.key, type(o.message).__struct_config__.tag) for o in engine.emitted)
    assert kinds == [
        ("u1", "celebrity_follow_changed"),
        ("u1", "tray_story_removed"),
        ("u2", "celebrity_follow_changed"),
        ("u2", "tray_story_removed"),
        ("u3", "celebrity_follow_changed"),
    ]
    store.close()


def test_a_reader_gets_the_author_with_only_its_own_place_in_the_sets(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    messages = [
        followed("bob", "ann"),
        followed("cid", "ann"),
        friend_added("ann", "cid"),
        friend_added("ann", "dan"),
        opened("s1", "ann"),
    ]
    _apply(store, _Engine(threshold=100), messages)
    store.flush()
    story = ActiveStory("s1", at(0), at(0) + TTL, "followers")
    seen = {
        user: author_seen_by(store.get_committed, "ann", user)
        for user in ("bob", "cid", "dan", "eve")
    }
    assert seen == {
        "bob": Author("ann", frozenset({"bob"}), frozenset(), (story,)),
        "cid": Author("ann", frozenset({"cid"}), frozenset({"cid"}), (story,)),
        "dan": Author("ann", frozenset(), frozenset({"dan"}), (story,)),
        "eve": Author("ann", frozenset(), frozenset(), (story,)),
    }
    assert author_seen_by(store.get_committed, "nobody", "bob") is None
    store.close()


def test_an_author_left_with_nothing_leaves_no_key(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    engine = _Engine(threshold=100)
    _apply(store, engine, [followed("bob", "ann"), friend_added("ann", "cid")])
    store.flush()
    _apply(store, engine, [unfollowed("bob", "ann"), friend_removed("ann", "cid")])
    store.flush()
    assert list(store.scan(b"")) == []
    store.close()
