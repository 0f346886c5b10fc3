"""The author stage: given these follows and stories, when this arrives, then these messages."""

from __future__ import annotations

import base64
import pickle
from collections.abc import Iterable
from datetime import timedelta

import pytest
from pydantic import TypeAdapter

from processors.authors import (
    ActiveStory,
    Author,
    AuthorInput,
    handle,
    story_opened,
    visible_stories,
)
from processors.context import Ctx, Forward, Output
from processors.messages import CelebrityFollowChanged, TrayStoryAdded, TrayStoryRemoved
from tests.processors.factories_social import (
    TTL,
    at,
    closed,
    ctx,
    followed,
    friend_added,
    friend_removed,
    opened,
    unfollowed,
)


def given(inputs: Iterable[AuthorInput], context: Ctx | None = None) -> Author | None:
    state: Author | None = None
    for item in inputs:
        state, _ = handle(state, item, context or ctx())
    return state


def adds(outputs: list[Output]) -> list[tuple[str, str]]:
    """(tray owner, story) of every TrayStoryAdded, in order."""
    return [
        (o.key, o.message.story_id)
        for o in outputs
        if isinstance(o, Forward) and isinstance(o.message, TrayStoryAdded)
    ]


def removes(outputs: list[Output]) -> list[tuple[str, str]]:
    return [
        (o.key, o.message.story_id)
        for o in outputs
        if isinstance(o, Forward) and isinstance(o.message, TrayStoryRemoved)
    ]


def celebs(outputs: list[Output]) -> list[tuple[str, bool]]:
    return [
        (o.key, o.message.following)
        for o in outputs
        if isinstance(o, Forward) and isinstance(o.message, CelebrityFollowChanged)
    ]


def test_an_opened_story_is_fanned_out_to_every_follower() -> None:
    state = given([followed("bob", "ann"), followed("cid", "ann"), friend_added("ann", "eve")])
    _, outputs = handle(state, opened("s1", "ann", 5), ctx(5))
    assert outputs == [
        Forward(
            "tray",
            user,
            TrayStoryAdded(
                user_id=user,
                author_id="ann",
                story_id="s1",
                created_at=at(5),
                expires_at=at(5) + timedelta(hours=24),
            ),
        )
        for user in ("bob", "cid")
    ]


def test_the_author_never_gets_their_own_stories_in_their_tray() -> None:
    state = given([followed("ann", "ann"), friend_added("ann", "ann")])
    assert state is not None and state.followers == frozenset()
    state, outputs = handle(state, opened("s1", "ann", audience="public"), ctx())
    assert outputs == []
    assert [s.story_id for s in visible_stories(state, "ann", at(1))] == ["s1"]


def test_a_close_friends_story_reaches_only_close_friends_who_follow() -> None:
    state = given(
        [
            followed("bob", "ann"),
            followed("cid", "ann"),
            friend_added("ann", "cid"),
            friend_added("ann", "eve"),  # a close friend who does not follow
        ]
    )
    state, outputs = handle(state, opened("s1", "ann", audience="close_friends"), ctx())
    assert adds(outputs) == [("cid", "s1")]
    # Visibility is the list itself: eve sees it on ann's page, bob does not.
    assert [s.story_id for s in visible_stories(state, "eve", at(1))] == ["s1"]
    assert visible_stories(state, "bob", at(1)) == []


def test_a_public_story_reaches_followers_trays_and_anyone_on_the_page() -> None:
    state = given([followed("bob", "ann")])
    state, outputs = handle(state, opened("s1", "ann", audience="public"), ctx())
    assert adds(outputs) == [("bob", "s1")]
    assert [s.story_id for s in visible_stories(state, "stranger", at(1))] == ["s1"]


def test_following_an_author_adds_their_active_stories_the_follower_may_see() -> None:
    state = given(
        [
            opened("s2", "ann", 2),
            opened("s1", "ann", 1),
            opened("cf", "ann", 3, audience="close_friends"),
            opened("old", "ann", 0, ttl=timedelta(minutes=30)),
        ],
        ctx(10),
    )
    _, outputs = handle(state, followed("bob", "ann", 40), ctx(40))
    assert adds(outputs) == [("bob", "s1"), ("bob", "s2")]  # oldest first, expired left out


def test_unfollowing_removes_the_authors_stories_from_the_tray() -> None:
    state = given([followed("bob", "ann"), opened("s1", "ann"), opened("s2", "ann", 1)])
    _, outputs = handle(state, unfollowed("bob", "ann"), ctx(2))
    assert outputs == [
        Forward("tray", "bob", TrayStoryRemoved(user_id="bob", author_id="ann", story_id=s))
        for s in ("s1", "s2")
    ]


def test_close_friend_changes_add_and_remove_close_friends_stories() -> None:
    state = given(
        [
            followed("bob", "ann"),
            opened("cf", "ann", audience="close_friends"),
            opened("all", "ann", 1),
        ]
    )
    state, outputs = handle(state, friend_added("ann", "bob"), ctx(2))
    assert adds(outputs) == [("bob", "cf")]
    _, outputs = handle(state, friend_removed("ann", "bob"), ctx(3))
    assert removes(outputs) == [("bob", "cf")]


def test_adding_a_close_friend_who_does_not_follow_sends_nothing() -> None:
    state = given([opened("cf", "ann", audience="close_friends")])
    _, outputs = handle(state, friend_added("ann", "eve"), ctx(1))
    assert outputs == []


def test_a_closed_story_leaves_every_tray_it_was_in() -> None:
    state = given(
        [
            followed("bob", "ann"),
            followed("cid", "ann"),
            friend_added("ann", "cid"),
            opened("cf", "ann", audience="close_friends"),
        ]
    )
    state, outputs = handle(state, closed("cf", "ann"), ctx(1))
    assert removes(outputs) == [("cid", "cf")]
    assert state.stories == ()


def test_a_story_expired_on_arrival_is_neither_recorded_nor_fanned_out() -> None:
    state = given([followed("bob", "ann")])
    state, outputs = handle(state, opened("s1", "ann", ttl=timedelta(minutes=5)), ctx(10))
    assert outputs == []
    assert state.stories == ()


@pytest.mark.parametrize(
    "history",
    [
        [followed("bob", "ann"), opened("s1", "ann")],
        [followed("bob", "ann"), opened("s1", "ann"), unfollowed("bob", "ann")],
        [followed("bob", "ann"), friend_added("ann", "bob"), opened("c", "ann")],
        [followed("bob", "ann"), opened("s1", "ann"), closed("s1", "ann")],
        [followed("bob", "ann"), friend_added("ann", "bob"), friend_removed("ann", "bob")],
    ],
)
def test_the_same_input_twice_changes_nothing_the_second_time(
    history: list[AuthorInput],
) -> None:
    state = given(history)
    again, outputs = handle(state, history[-1], ctx())
    assert outputs == []
    assert again == state


def test_an_author_crossing_the_threshold_is_withdrawn_from_trays_and_merged_on_read() -> None:
    context = ctx(celebrity_followers=3)
    state = given([followed("bob", "ann"), followed("cid", "ann"), opened("s1", "ann")], context)
    state, outputs = handle(state, followed("dan", "ann"), context)
    assert state is not None and state.celebrity
    assert celebs(outputs) == [("bob", True), ("cid", True), ("dan", True)]
    assert removes(outputs) == [("bob", "s1"), ("cid", "s1")]
    # Per user, the merge-on-read flag comes before the withdrawal: no gap for readers.
    assert [o.message.kind for o in outputs if isinstance(o, Forward) and o.key == "bob"] == [
        "celebrity_follow_changed",
        "tray_story_removed",
    ]


def test_a_celebrity_fans_out_nothing_and_tells_each_new_follower() -> None:
    context = ctx(celebrity_followers=3)
    state = given([followed(user, "ann") for user in ("bob", "cid", "dan")], context)
    state, outputs = handle(state, opened("s1", "ann"), context)
    assert outputs == []
    state, outputs = handle(state, followed("eve", "ann"), context)
    assert outputs == [
        Forward(
            "tray", "eve", CelebrityFollowChanged(user_id="eve", author_id="ann", following=True)
        )
    ]
    state, outputs = handle(state, unfollowed("eve", "ann"), context)
    assert celebs(outputs) == [("eve", False)]


def test_an_author_falling_below_the_threshold_is_fanned_out_again() -> None:
    context = ctx(celebrity_followers=3)
    state = given(
        [*(followed(user, "ann") for user in ("bob", "cid", "dan")), opened("s1", "ann")], context
    )
    state, outputs = handle(state, unfollowed("dan", "ann"), context)
    assert state is not None and not state.celebrity
    assert adds(outputs) == [("bob", "s1"), ("cid", "s1")]
    assert celebs(outputs) == [("bob", False), ("cid", False), ("dan", False)]
    # Per user, the stories arrive before the merge-on-read flag is dropped.
    assert [o.message.kind for o in outputs if isinstance(o, Forward) and o.key == "bob"] == [
        "tray_story_added",
        "celebrity_follow_changed",
    ]


def test_a_lowered_threshold_is_applied_at_the_authors_next_input() -> None:
    state = given([followed("bob", "ann"), opened("s1", "ann")])
    state, outputs = handle(state, opened("s1", "ann"), ctx(celebrity_followers=1))
    assert state is not None and state.celebrity
    assert celebs(outputs) == [("bob", True)]
    assert removes(outputs) == [("bob", "s1")]


def test_visible_stories_are_oldest_first_unexpired_and_filtered_by_audience() -> None:
    state = given(
        [
            followed("bob", "ann"),
            opened("b", "ann", 2),
            opened("a", "ann", 2),
            opened("first", "ann", 1, audience="close_friends"),
            opened("short", "ann", 0, ttl=timedelta(minutes=30)),
        ]
    )
    assert state is not None
    assert [s.story_id for s in visible_stories(state, "ann", at(40))] == ["first", "a", "b"]
    assert [s.story_id for s in visible_stories(state, "bob", at(40))] == ["a", "b"]
    assert visible_stories(state, "stranger", at(40)) == []


def test_an_input_for_another_author_is_a_wiring_error() -> None:
    state = given([followed("bob", "ann")])
    with pytest.raises(ValueError, match="ann"):
        story_opened(state, opened("s1", "zed"), ctx())


def test_the_state_round_trips_through_json_for_the_table() -> None:
    state = given(
        [followed("bob", "ann"), friend_added("ann", "bob"), opened("s1", "ann", audience="public")]
    )
    assert state is not None
    adapter = TypeAdapter(Author)
    assert adapter.validate_json(adapter.dump_json(state)) == state


# An author state as pickled before ActiveStory pickled by constructor arguments (dataclass
# __getstate__ format); local RocksDB and the changelog may hold such values.
_PICKLED_BEFORE_REDUCE = (
    "gAWV0wAAAAAAAACMEnByb2Nlc3NvcnMuYXV0aG9yc5SMBkF1dGhvcpSTlCmBlF2UKIwDYW5ulCiMAnUxlJGUKJGUaACMC0"
    "FjdGl2ZVN0b3J5lJOUKYGUXZQojAJzMZSMCGRhdGV0aW1llIwIZGF0ZXRpbWWUk5RDCgfqCxYKAAAAAACUaA6MCHRpbWV6"
    "b25llJOUaA6MCXRpbWVkZWx0YZSTlEsASwBLAIeUUpSFlFKUhpRSlGgQQwoH6gsXCgAAAAAAlGgZhpRSlIwJZm9sbG93ZX"
    "JzlGVihZSJZWIu"
)


def test_author_states_pickled_in_either_format_load_equal() -> None:
    expected = Author(
        "ann",
        followers=frozenset({"u1"}),
        stories=(ActiveStory("s1", at(0), at(0) + TTL, "followers"),),
    )
    assert pickle.loads(base64.b64decode(_PICKLED_BEFORE_REDUCE)) == expected  # noqa: S301
    assert pickle.loads(pickle.dumps(expected, protocol=pickle.HIGHEST_PROTOCOL)) == expected  # noqa: S301
