"""The tray stage: given these messages, when this one arrives, then this Tray (or nothing)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import pytest
from pydantic import TypeAdapter

from processors.authors import Author, AuthorInput
from processors.authors import handle as author_handle
from processors.context import Ctx, Put, Tombstone
from processors.trays import (
    TrayInput,
    TrayState,
    celebrity_entry,
    handle,
    merge_celebrities,
    read_tray,
    render_tray,
)
from schemas.records import Tray, TrayEntry
from tests.processors.factories_social import (
    GRACE,
    TTL,
    added,
    at,
    celebrity,
    ctx,
    followed,
    friend_added,
    opened,
    removed,
    seen,
)


def given(messages: Iterable[TrayInput], context: Ctx | None = None) -> TrayState | None:
    state: TrayState | None = None
    for message in messages:
        state, _ = handle(state, message, context or ctx())
    return state


def entry(author: str, stories: tuple[str, ...], latest: float, unseen: bool) -> TrayEntry:
    return TrayEntry(
        author_id=author, story_ids=stories, latest_story_at=at(latest), has_unseen=unseen
    )


def test_a_first_story_publishes_the_tray() -> None:
    state, outputs = handle(None, added("bob", "ann", "s1", 1), ctx(2))
    assert outputs == [Put("bob", Tray(user_id="bob", entries=(entry("ann", ("s1",), 1, True),)))]
    again, outputs = handle(state, added("bob", "ann", "s1", 1), ctx(2))
    assert outputs == []
    assert again == state


def test_entries_are_unseen_first_then_newest_first_then_by_author() -> None:
    state = given(
        [
            added("bob", "old", "o1", 1),
            added("bob", "zed", "z1", 5),
            added("bob", "amy", "a2", 5),
            added("bob", "amy", "a1", 5),
            added("bob", "new", "n1", 9),
            seen("bob", "n1", 10),
        ],
        ctx(10),
    )
    assert state is not None
    assert render_tray(state, at(10)).entries == (
        entry("amy", ("a1", "a2"), 5, True),  # story ids oldest first, ties by id
        entry("zed", ("z1",), 5, True),
        entry("old", ("o1",), 1, True),
        entry("new", ("n1",), 9, False),
    )


def test_seeing_every_story_of_an_entry_clears_has_unseen() -> None:
    state = given([added("bob", "ann", "s1"), added("bob", "ann", "s2", 1), seen("bob", "s1")])
    state, outputs = handle(state, seen("bob", "s2", 3), ctx(3))
    assert outputs == [
        Put("bob", Tray(user_id="bob", entries=(entry("ann", ("s1", "s2"), 1, False),)))
    ]
    _, outputs = handle(state, seen("bob", "s2", 4), ctx(4))
    assert outputs == []


def test_the_last_story_leaving_tombstones_the_tray() -> None:
    state = given([added("bob", "ann", "s1")])
    state, outputs = handle(state, removed("bob", "ann", "s1"), ctx(1))
    assert outputs == [Tombstone(Tray, "bob")]
    _, outputs = handle(state, removed("bob", "ann", "s1"), ctx(1))
    assert outputs == []


def test_a_tray_never_published_is_not_tombstoned() -> None:
    _, outputs = handle(None, removed("bob", "ann", "s1"), ctx())
    assert outputs == []
    _, outputs = handle(None, seen("bob", "s1"), ctx())
    assert outputs == []


def test_a_view_before_the_story_reaches_the_tray_still_counts() -> None:
    # The views stage and the author stage race: the view may arrive first.
    state = given([seen("bob", "s1", 1)])
    _, outputs = handle(state, added("bob", "ann", "s1"), ctx(2))
    assert outputs == [Put("bob", Tray(user_id="bob", entries=(entry("ann", ("s1",), 0, False),)))]


def test_a_viewed_story_stays_seen_when_it_leaves_and_comes_back() -> None:
    # Unfollow then follow again: the story is removed and added back.
    state = given([added("bob", "ann", "s1"), seen("bob", "s1", 1), removed("bob", "ann", "s1")])
    _, outputs = handle(state, added("bob", "ann", "s1"), ctx(2))
    assert outputs == [Put("bob", Tray(user_id="bob", entries=(entry("ann", ("s1",), 0, False),)))]


def test_seen_ids_are_forgotten_once_they_cannot_matter() -> None:
    state = given([added("bob", "ann", "s1", ttl=timedelta(minutes=30)), seen("bob", "s1", 1)])
    state, _ = handle(state, seen("bob", "celeb-story", 1), ctx(1))
    assert state.seen_ids == {"s1", "celeb-story"}
    state, _ = handle(state, celebrity("bob", "zed"), ctx(31))  # s1 expired at 30
    assert state.seen_ids == {"celeb-story"}
    later = (TTL + GRACE).total_seconds() / 60 + 1
    state, _ = handle(state, celebrity("bob", "zed"), ctx(later))
    assert state.seen_ids == frozenset()


def test_a_view_of_a_story_outside_the_tray_publishes_nothing_and_keeps_what_matters() -> None:
    state = given([added("bob", "ann", "s1")])
    # a story that is not in the tray: no new tray, the id remembered
    state, outputs = handle(state, seen("bob", "elsewhere", 1), ctx(1))
    assert outputs == [] and state.seen_ids == {"elsewhere"}
    # a view so old that its story has expired by now: nothing to remember
    too_old = -((TTL + GRACE).total_seconds() / 60 + 1)
    state, outputs = handle(state, seen("bob", "long-gone", too_old), ctx(1))
    assert outputs == [] and state.seen_ids == {"elsewhere"}


def test_an_expired_story_is_not_added_and_expired_ones_are_dropped() -> None:
    empty, outputs = handle(None, added("bob", "ann", "gone", ttl=timedelta(minutes=5)), ctx(5))
    assert outputs == [] and empty.stories == ()
    state = given([added("bob", "ann", "s1", ttl=timedelta(minutes=5)), added("bob", "cid", "s2")])
    state, outputs = handle(state, seen("bob", "s2", 6), ctx(6))
    assert outputs == [Put("bob", Tray(user_id="bob", entries=(entry("cid", ("s2",), 0, False),)))]
    assert [s.story_id for s in state.stories] == ["s2"]


def test_render_omits_stories_expired_by_now() -> None:
    state = given([added("bob", "ann", "s1", ttl=timedelta(minutes=5)), added("bob", "ann", "s2")])
    assert state is not None
    assert render_tray(state, at(5)).entries == (entry("ann", ("s2",), 0, True),)


def test_celebrity_follows_are_remembered_but_never_published() -> None:
    state, outputs = handle(None, celebrity("bob", "zed"), ctx())
    assert outputs == [] and state.celebrities == {"zed"}
    state, outputs = handle(state, celebrity("bob", "zed", following=False), ctx())
    assert outputs == [] and state.celebrities == frozenset()
    assert state.is_empty


def test_merge_orders_celebrity_entries_with_the_rest_and_replaces_leftovers() -> None:
    tray = Tray(
        user_id="bob",
        entries=(entry("ann", ("a1",), 5, True), entry("zed", ("z1",), 1, False)),
    )
    merged = merge_celebrities(
        tray, [entry("cel", ("c1",), 3, True), entry("zed", ("z1", "z2"), 8, True)]
    )
    assert merged.entries == (
        entry("zed", ("z1", "z2"), 8, True),
        entry("ann", ("a1",), 5, True),
        entry("cel", ("c1",), 3, True),
    )


def _celebrity_author() -> Author:
    state: Author | None = None
    context = ctx(celebrity_followers=2)
    inputs: list[AuthorInput] = [
        followed("bob", "cel"),
        followed("cid", "cel"),
        friend_added("cel", "eve"),
        opened("c1", "cel", 1),
        opened("c2", "cel", 2, audience="close_friends"),
        opened("c0", "cel", 0, audience="public"),
    ]
    for item in inputs:
        state, _ = author_handle(state, item, context)
    assert state is not None and state.celebrity
    return state


def test_a_celebrity_entry_holds_what_a_follower_may_see_with_their_seen_set() -> None:
    author = _celebrity_author()
    assert celebrity_entry(author, "bob", {"c0"}, at(3)) == entry("cel", ("c0", "c1"), 1, True)
    assert celebrity_entry(author, "bob", {"c0", "c1"}, at(3)) == entry(
        "cel", ("c0", "c1"), 1, False
    )
    # eve is a close friend but does not follow: the page, not the tray.
    assert celebrity_entry(author, "eve", set(), at(3)) is None


def test_read_tray_merges_the_celebrities_the_owner_follows() -> None:
    author = _celebrity_author()
    state = given([added("bob", "ann", "a1", 5), celebrity("bob", "cel"), seen("bob", "c0", 6)])
    tray = read_tray(state, "bob", [author], at(6))
    assert tray.entries == (entry("ann", ("a1",), 5, True), entry("cel", ("c0", "c1"), 1, True))
    assert read_tray(None, "bob", [author], at(6)) == Tray(user_id="bob", entries=())


def test_a_message_for_another_user_is_a_wiring_error() -> None:
    state = given([added("bob", "ann", "s1")])
    with pytest.raises(ValueError, match="bob"):
        handle(state, added("cid", "ann", "s1"), ctx())


def test_the_state_round_trips_through_json_for_the_table() -> None:
    state = given([added("bob", "ann", "s1"), seen("bob", "s1"), celebrity("bob", "cel")])
    assert state is not None
    adapter = TypeAdapter(TrayState)
    assert adapter.validate_json(adapter.dump_json(state)) == state


def test_a_view_publishes_the_tray_only_when_its_author_has_nothing_unseen_left() -> None:
    state = given([added("bob", "ann", "s1", 1), added("bob", "ann", "s2", 2)], ctx(3))
    # the first of ann's two stories seen: her entry still has something unseen
    state, outputs = handle(state, seen("bob", "s1", 4), ctx(4))
    assert outputs == []
    assert state.stories[0].seen and not state.stories[1].seen  # remembered all the same
    # the second seen: nothing unseen is left of ann's
    state, outputs = handle(state, seen("bob", "s2", 5), ctx(5))
    tray = Tray(user_id="bob", entries=(entry("ann", ("s1", "s2"), 2, False),))
    assert outputs == [Put("bob", tray)]
    assert render_tray(state, at(5)) == tray
