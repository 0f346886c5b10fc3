"""The author stage: given these follows and stories, when this arrives, then these messages."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import pytest
from pydantic import TypeAdapter

from processors.authors import (
    ActiveStory,
    Author,
    AuthorInput,
    MembersNotGiven,
    PartialMembers,
    handle,
    named_user,
    needs_members,
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
    assert [
        type(o.message).__struct_config__.tag
        for o in outputs
        if isinstance(o, Forward) and o.key == "bob"
    ] == [
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
    assert [
        type(o.message).__struct_config__.tag
        for o in outputs
        if isinstance(o, Forward) and o.key == "bob"
    ] == [
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


def test_partial_members_answer_for_the_named_users_only() -> None:
    members = PartialMembers(100_000, members=frozenset({"bob"}), others=frozenset({"cid"}))
    assert "bob" in members and "cid" not in members and len(members) == 100_000
    with pytest.raises(MembersNotGiven, match="'dan' was not named"):
        _ = "dan" in members
    with pytest.raises(MembersNotGiven):
        list(members)
    left = members.changed("bob", False)
    assert "bob" not in left and len(left) == 99_999
    assert left.changed("bob", True) == members
    assert members.changed("bob", True) == members  # already in: the size stays


def test_a_follow_of_a_large_author_needs_only_the_named_users_place() -> None:
    # given an author whose sets are too large to hand over (only their sizes are known)
    story = ActiveStory("s1", at(0), at(0) + TTL, "followers")
    state = Author(
        "ann", PartialMembers(500, others=frozenset({"eve"})), PartialMembers(3), (story,)
    )
    follow = followed("eve", "ann")
    assert not needs_members(state, follow, ctx().policy)
    # when a user follows, then they get the author's story and the size moves
    new, outputs = handle(state, follow, ctx())
    assert [(o.key, type(o.message)) for o in outputs] == [("eve", TrayStoryAdded)]  # type: ignore[union-attr]
    assert len(new.followers) == 501 and "eve" in new.followers
    assert named_user(follow) == "eve" and named_user(opened("s2", "ann")) is None


@pytest.mark.parametrize(
    ("followers", "celebrity", "item", "needed"),
    [
        (10, False, "opened", True),  # a fan-out
        (10, True, "opened", True),  # a celebrity no longer: a crossing
        (100, True, "opened", False),  # merged on read: no fan-out
        (50, False, "followed", False),
        (99, False, "followed", True),  # the follow may cross the threshold
        (100, True, "followed", True),  # the unfollow may cross it back
        (101, True, "followed", False),
    ],
)
def test_an_input_needs_the_whole_sets_when_it_may_fan_out(
    followers: int, celebrity: bool, item: str, needed: bool
) -> None:
    state = Author("ann", PartialMembers(followers), PartialMembers(0), (), celebrity)
    event = opened("s1", "ann") if item == "opened" else followed("bob", "ann")
    assert needs_members(state, event, ctx(celebrity_followers=100).policy) is needed
    assert not needs_members(None, event, ctx().policy)
