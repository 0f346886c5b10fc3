"""Reactions to a story: counts per reaction, total, bounded replies, de-duplication."""

from __future__ import annotations

from processors.context import Put
from processors.reactions import MAX_REPLIES, apply_reactions
from schemas.records import ReactionCounts
from tests.processors.factories_views import AUTHOR, STORY, ctx, info, reacted


def counts_of(outputs: tuple[object, ...]) -> ReactionCounts:
    assert len(outputs) == 1
    put = outputs[0]
    assert isinstance(put, Put) and isinstance(put.value, ReactionCounts)
    return put.value


def test_reactions_are_counted_and_coalesced() -> None:
    # given a live story, when a batch of reactions arrives
    events = [reacted("u1", "like", 1), reacted("u2", "🔥", 2), reacted("u1", "like", 3)]
    result = apply_reactions(None, info(), events, set(), ctx())
    # then one ReactionCounts with every reaction counted
    assert counts_of(result.outputs) == ReactionCounts(
        story_id=STORY, counts={"like": 2, "🔥": 1}, total=3
    )
    assert result.changed and len(result.event_ids) == 3


def test_the_authors_own_reaction_counts() -> None:
    result = apply_reactions(None, info(), [reacted(AUTHOR, "love")], set(), ctx())
    assert counts_of(result.outputs).counts == {"love": 1}


def test_counts_accumulate_across_batches() -> None:
    first = apply_reactions(None, info(), [reacted("u1", "like", 1)], set(), ctx())
    second = apply_reactions(first.state, info(), [reacted("u2", "wow", 2)], set(), ctx())
    assert counts_of(second.outputs).counts == {"like": 1, "wow": 1}
    assert second.state is not None and second.state.total == 2


def test_a_duplicate_changes_nothing_and_republishes_the_counts() -> None:
    # given a reaction applied
    event = reacted("u1", "like", 1, event_id="e1")
    first = apply_reactions(None, info(), [event], set(), ctx())
    # when redelivered (its event id recorded)
    again = apply_reactions(first.state, info(), [event, event], {"e1"}, ctx())
    # then the state is unchanged and the same counts are published
    assert again.state is first.state and not again.changed and again.event_ids == ()
    assert again.outputs == first.outputs and again.duplicates == 2


def test_duplicate_within_a_batch_counts_once() -> None:
    event = reacted("u1", "like", 1, event_id="e1")
    assert counts_of(apply_reactions(None, info(), [event, event], set(), ctx()).outputs).total == 1


def test_refused_reactions_change_nothing() -> None:
    late = reacted("u1", "like", 61)
    live = apply_reactions(None, info(ttl=60), [late], set(), ctx())
    assert (live.state, live.outputs, live.skipped) == (None, (), 1)
    for story in (None, info("ended")):
        result = apply_reactions(None, story, [reacted("u1")], set(), ctx())
        assert (result.state, result.outputs, result.skipped) == (None, (), 1)


def test_highlighted_story_takes_reactions_after_expiry() -> None:
    result = apply_reactions(
        None, info("highlighted", ttl=60), [reacted("u1", "sad", 90)], set(), ctx()
    )
    assert counts_of(result.outputs).total == 1


def test_replies_keep_the_latest_whatever_the_arrival_order() -> None:
    # given more replies than kept, arriving newest first in two batches
    events = [reacted(f"u{i}", "like", i, text=f"reply {i}") for i in range(MAX_REPLIES + 10)]
    first = apply_reactions(None, info(), events[::-1][:30], set(), ctx())
    second = apply_reactions(first.state, info(), events[::-1][30:], set(), ctx())
    # then the latest MAX_REPLIES are kept, oldest first, and every reaction is counted
    assert second.state is not None
    assert [r.text for r in second.state.replies] == [
        f"reply {i}" for i in range(10, MAX_REPLIES + 10)
    ]
    assert second.state.total == MAX_REPLIES + 10
