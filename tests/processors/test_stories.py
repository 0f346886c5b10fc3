"""The story stage: posts, media readiness, highlights, deletes, expiry and purge."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Literal

from processors.context import Ctx, Forward, Output, Put, Tombstone
from processors.messages import (
    AwaitMedia,
    MediaObjectsChanged,
    StoryClosed,
    StoryLifecycle,
    StoryOpened,
)
from processors.stories import (
    MAX_ERROR_CHARS,
    Story,
    StoryInput,
    advance,
    expire,
    handle,
    purge,
    story_state_record,
)
from schemas.records import StoryState
from tests.processors.factories_stories import (
    AUTHOR,
    GRACE_MIN,
    MEDIA,
    STORY,
    TTL_MIN,
    at,
    ctx,
    deleted,
    forwards,
    highlight,
    posted,
    ready,
)

EXPIRY = TTL_MIN  # minutes after T0 at which the default story expires


def given(*events: tuple[StoryInput, Ctx]) -> Story | None:
    """The state after applying `events` in order to an unknown story."""
    state: Story | None = None
    for event, context in events:
        state, _ = handle(state, event, context)
    return state


def lifecycle(phase: Literal["live", "highlighted", "ended", "purged"]) -> Forward:
    message = StoryLifecycle(story_id=STORY, author_id=AUTHOR, expires_at=at(EXPIRY), phase=phase)
    return Forward("lifecycle", STORY, message)


def objects(action: Literal["purge", "move_to_highlights"]) -> Forward:
    message = MediaObjectsChanged(media_id=MEDIA, story_id=STORY, action=action)
    return Forward("objects", MEDIA, message)


def opened() -> Forward:
    message = StoryOpened(
        story_id=STORY,
        author_id=AUTHOR,
        created_at=at(0),
        expires_at=at(EXPIRY),
        audience="followers",
    )
    return Forward("author", AUTHOR, message)


CLOSED = Forward("author", AUTHOR, StoryClosed(story_id=STORY, author_id=AUTHOR))
TOMBSTONE = Tombstone(StoryState, STORY)
BLURHASH = "LEHV6nWB2yk8pyo0adR*.7kCMdnj"


def put_status(outputs: Sequence[Output]) -> list[str]:
    return [
        o.value.status for o in outputs if isinstance(o, Put) and isinstance(o.value, StoryState)
    ]


# --- posting ----------------------------------------------------------------------------


def test_post_with_ready_media_opens_at_once() -> None:
    state, outputs = handle(None, posted(media_id=MEDIA, ready=True), ctx())
    assert state is not None and state.phase == "active"
    assert outputs == [Put(STORY, story_state_record(state)), opened(), lifecycle("live")]
    assert put_status(outputs) == ["active"]


def test_text_only_post_is_active() -> None:
    state, outputs = handle(None, posted(), ctx())
    assert state is not None and state.phase == "active" and state.media_id is None
    assert put_status(outputs) == ["active"]
    assert opened() in outputs


def test_post_waiting_for_media_is_processing_and_not_in_trays() -> None:
    state, outputs = handle(None, posted(media_id=MEDIA), ctx())
    assert state is not None and state.phase == "processing"
    assert put_status(outputs) == ["processing"]
    assert forwards(outputs, "media") == [AwaitMedia(story_id=STORY, media_id=MEDIA)]
    assert forwards(outputs, "author") == []
    assert lifecycle("live") in outputs


def test_duplicate_post_changes_nothing() -> None:
    state = given((posted(), ctx()))
    assert handle(state, posted(), ctx(5)) == (state, [])


def test_post_expired_on_arrival_is_remembered_silently() -> None:
    # given nothing, when a post arrives after its expiry (within the grace)
    state, outputs = handle(None, posted(), ctx(EXPIRY + 1))
    # then it is kept as expired, and nothing is published
    assert state is not None and state.phase == "expired" and state.ended_at == at(EXPIRY)
    assert outputs == []
    # and later events are refused
    refused, outputs = handle(state, deleted(), ctx(EXPIRY + 2))
    assert outputs == [] and refused is not None and refused.phase == "expired"


def test_post_past_the_purge_horizon_is_not_kept_but_its_media_is_purged() -> None:
    state, outputs = handle(None, posted(media_id=MEDIA), ctx(EXPIRY + GRACE_MIN))
    assert state is None
    assert outputs == [objects("purge")]


# --- media ------------------------------------------------------------------------------


def test_media_ready_opens_a_processing_story() -> None:
    state = given((posted(media_id=MEDIA), ctx()))
    new, outputs = handle(state, ready(), ctx(1))
    assert new is not None and new.phase == "active" and new.renditions == ready().renditions
    assert new.media_type == "image"
    assert outputs == [Put(STORY, story_state_record(new)), opened()]


def test_the_story_state_carries_the_blurhash_of_its_media() -> None:
    state = given((posted(media_id=MEDIA), ctx()))
    assert state is not None and story_state_record(state).blurhash is None  # processing
    new, outputs = handle(state, ready(blurhash=BLURHASH), ctx(1))
    assert new is not None and new.blurhash == BLURHASH
    put = next(o for o in outputs if isinstance(o, Put))
    assert isinstance(put.value, StoryState) and put.value.blurhash == BLURHASH
    assert put.value.status == "active" and put.value.renditions == ready().renditions
    # Kept as a highlight past expiry, it still shows its blurhash.
    kept, _ = handle(new, highlight(minutes=2), ctx(2))
    assert kept is not None
    expired, outputs = expire(kept, ctx(TTL_MIN + 1))
    assert expired is not None and story_state_record(expired).blurhash == BLURHASH


def test_a_post_with_ready_media_has_no_blurhash() -> None:
    state = given((posted(ready=True), ctx()))
    assert (
        state is not None and state.phase == "active" and story_state_record(state).blurhash is None
    )


def test_media_ready_twice_or_for_another_media_changes_nothing() -> None:
    active = given((posted(media_id=MEDIA), ctx()), (ready(), ctx(1)))
    assert handle(active, ready(), ctx(2)) == (active, [])
    processing = given((posted(media_id=MEDIA), ctx()))
    assert handle(processing, ready(media_id="other"), ctx(2)) == (processing, [])


def test_media_ready_for_an_unknown_story_is_ignored() -> None:
    assert handle(None, ready(), ctx()) == (None, [])


def test_failed_media_never_shows_the_story() -> None:
    state = given((posted(media_id=MEDIA), ctx()))
    new, outputs = handle(state, ready(error="bad codec"), ctx(3))
    assert new is not None and new.phase == "failed" and new.ended_at == at(3)
    assert new.error == "bad codec"  # kept for its author (the API), not published
    assert outputs == [TOMBSTONE, lifecycle("ended")]
    # and it is purged with its media after the grace (counted from expires_at at the earliest)
    assert purge(new, ctx(EXPIRY + GRACE_MIN - 1)) == (new, [])
    gone, last = purge(new, ctx(EXPIRY + GRACE_MIN))
    assert gone is None
    assert last == [lifecycle("purged"), objects("purge")]


def test_a_failure_reason_is_kept_bounded() -> None:
    state = given((posted(media_id=MEDIA), ctx()))
    new, _ = handle(state, ready(error="x" * 5000), ctx(3))
    assert new is not None and new.error == "x" * MAX_ERROR_CHARS


def test_a_late_failure_of_an_expired_story_keeps_its_reason() -> None:
    state, _ = expire(given((posted(media_id=MEDIA, ttl=10), ctx())), ctx(11))
    assert state is not None and state.phase == "expired"
    new, outputs = handle(state, ready(error="truncated"), ctx(12))
    assert new is not None and (new.phase, new.error) == ("failed", "truncated")
    assert outputs == []  # it was already gone from story-state


# --- highlights -------------------------------------------------------------------------


def test_highlight_marks_the_story_highlighted() -> None:
    state = given((posted(), ctx()))
    new, outputs = handle(state, highlight(minutes=5), ctx(5))
    assert new is not None and new.highlight_ids == ("h1",)
    assert put_status(outputs) == ["highlighted"]


def test_only_the_author_may_highlight() -> None:
    state = given((posted(), ctx()))
    assert handle(state, highlight(author_id="intruder"), ctx(5)) == (state, [])


def test_removing_the_last_highlight_before_expiry_makes_it_active_again() -> None:
    state = given((posted(), ctx()), (highlight(minutes=1), ctx(1)))
    new, outputs = handle(state, highlight(False, minutes=2), ctx(2))
    assert new is not None and new.highlight_ids == ()
    assert put_status(outputs) == ["active"]


def test_an_older_highlight_change_never_undoes_a_newer_one() -> None:
    # given the highlight added at minute 1 and removed at minute 3
    state = given(
        (posted(), ctx()), (highlight(minutes=1), ctx(1)), (highlight(False, minutes=3), ctx(3))
    )
    # when the add is redelivered, then nothing changes
    assert handle(state, highlight(minutes=1), ctx(4)) == (state, [])
    # when a change timed before the removal arrives late, then it is only remembered as seen
    late, outputs = handle(state, highlight(minutes=2), ctx(4))
    assert state is not None
    assert outputs == [] and late is not None and late.highlights == state.highlights


def test_a_processing_story_stays_processing_when_highlighted() -> None:
    state = given((posted(media_id=MEDIA), ctx()))
    _, outputs = handle(state, highlight(minutes=1), ctx(1))
    assert put_status(outputs) == ["processing"]


# --- expiry -----------------------------------------------------------------------------


def test_expiry_tombstones_the_story_and_closes_it() -> None:
    state = given((posted(media_id=MEDIA, ready=True), ctx()))
    new, outputs = expire(state, ctx(EXPIRY))
    assert new is not None and new.phase == "expired" and new.ended_at == at(EXPIRY)
    assert outputs == [TOMBSTONE, CLOSED, lifecycle("ended")]


def test_expiry_before_expires_at_and_expiry_twice_do_nothing() -> None:
    state = given((posted(), ctx()))
    assert expire(state, ctx(EXPIRY - 1)) == (state, [])
    expired, _ = expire(state, ctx(EXPIRY))
    assert expire(expired, ctx(EXPIRY + 1)) == (expired, [])


def test_a_processing_story_expires_without_closing_trays_it_never_entered() -> None:
    state = given((posted(media_id=MEDIA), ctx()))
    _, outputs = expire(state, ctx(EXPIRY))
    assert outputs == [TOMBSTONE, lifecycle("ended")]


def test_a_highlighted_story_leaves_trays_but_keeps_its_state() -> None:
    state = given((posted(media_id=MEDIA, ready=True), ctx()), (highlight(minutes=1), ctx(1)))
    new, outputs = expire(state, ctx(EXPIRY))
    assert new is not None and new.phase == "expired" and new.published
    assert outputs == [CLOSED, lifecycle("highlighted"), objects("move_to_highlights")]
    # and it is never purged
    assert purge(new, ctx(EXPIRY + 100 * GRACE_MIN)) == (new, [])


def test_a_highlighted_story_whose_media_comes_late_moves_it_then() -> None:
    state = given((posted(media_id=MEDIA), ctx()), (highlight(minutes=1), ctx(1)))
    expired, outputs = expire(state, ctx(EXPIRY))
    assert objects("move_to_highlights") not in outputs
    new, outputs = handle(expired, ready(), ctx(EXPIRY + 1))
    assert put_status(outputs) == ["highlighted"]
    assert objects("move_to_highlights") in outputs
    assert forwards(outputs, "author") == []  # it never enters trays: it expired


def test_removing_the_last_highlight_after_expiry_ends_it_at_once() -> None:
    state = given(
        (posted(media_id=MEDIA, ready=True), ctx()),
        (highlight(minutes=1), ctx(1)),
        (highlight(True, "h2", minutes=2), ctx(2)),
    )
    expired, _ = expire(state, ctx(EXPIRY))
    one_left, outputs = handle(expired, highlight(False, minutes=EXPIRY + 10), ctx(EXPIRY + 10))
    assert (
        one_left is not None
        and one_left.highlight_ids == ("h2",)
        and outputs[0] == Put(STORY, story_state_record(one_left))
    )
    later = EXPIRY + 600
    ended, outputs = handle(one_left, highlight(False, "h2", minutes=later), ctx(later))
    assert ended is not None and ended.ended_at == at(later) and not ended.published
    assert outputs == [TOMBSTONE, lifecycle("ended")]
    # and the purge counts from then
    assert purge(ended, ctx(later + GRACE_MIN - 1)) == (ended, [])
    assert purge(ended, ctx(later + GRACE_MIN))[0] is None


def test_a_highlight_within_the_grace_revives_an_expired_story() -> None:
    expired, _ = expire(given((posted(media_id=MEDIA, ready=True), ctx())), ctx(EXPIRY))
    new, outputs = handle(expired, highlight(minutes=EXPIRY + 5), ctx(EXPIRY + 5))
    assert new is not None and new.published
    assert put_status(outputs) == ["highlighted"]
    assert lifecycle("highlighted") in outputs and objects("move_to_highlights") in outputs


def test_a_highlight_after_the_grace_finds_nothing() -> None:
    expired, _ = expire(given((posted(), ctx())), ctx(EXPIRY))
    # the scan has not purged it yet, but time says it is gone
    new, outputs = handle(expired, highlight(minutes=EXPIRY), ctx(EXPIRY + GRACE_MIN))
    assert new is None
    assert outputs == [lifecycle("purged")]


def test_an_event_after_expires_at_sees_the_story_expired_even_before_the_scan() -> None:
    state = given((posted(), ctx()))
    new, outputs = handle(state, deleted(minutes=EXPIRY + 1), ctx(EXPIRY + 1))
    # the expiry is applied first, then the delete is refused (the story already ended)
    assert new is not None and new.phase == "expired"
    assert outputs == [TOMBSTONE, CLOSED, lifecycle("ended")]


# --- delete -----------------------------------------------------------------------------


def test_delete_acts_like_expiry_now() -> None:
    state = given((posted(media_id=MEDIA, ready=True), ctx()))
    new, outputs = handle(state, deleted(minutes=30), ctx(30))
    assert new is not None and new.phase == "deleted" and new.ended_at == at(30)
    assert outputs == [TOMBSTONE, CLOSED, lifecycle("ended")]
    # its state outlives expires_at + grace, so that a redelivered post cannot open it again
    assert purge(new, ctx(30 + GRACE_MIN)) == (new, [])
    assert handle(new, posted(media_id=MEDIA, ready=True), ctx(31 + GRACE_MIN)) == (new, [])
    gone = purge(new, ctx(EXPIRY + GRACE_MIN))
    assert gone == (None, [lifecycle("purged"), objects("purge")])
    assert handle(None, posted(), ctx(EXPIRY + GRACE_MIN)) == (None, [])


def test_a_refused_delete_stays_refused_when_redelivered_after_a_revival() -> None:
    # given an expired story, a delete refused (it already ended), then a revival
    expired, _ = expire(given((posted(), ctx())), ctx(EXPIRY))
    refused, outputs = handle(expired, deleted(minutes=EXPIRY + 1), ctx(EXPIRY + 1))
    assert outputs == [] and refused is not None and refused.phase == "expired"
    revived, _ = handle(refused, highlight(minutes=EXPIRY + 2), ctx(EXPIRY + 2))
    # when the delete is redelivered, then it changes nothing
    assert handle(revived, deleted(minutes=EXPIRY + 1), ctx(EXPIRY + 3)) == (revived, [])


def test_delete_removes_even_a_highlighted_expired_story() -> None:
    state = given((posted(media_id=MEDIA, ready=True), ctx()), (highlight(minutes=1), ctx(1)))
    expired, _ = expire(state, ctx(EXPIRY))
    new, outputs = handle(expired, deleted(minutes=EXPIRY + 60), ctx(EXPIRY + 60))
    assert new is not None and new.phase == "deleted" and new.highlight_ids == ()
    assert outputs == [TOMBSTONE, lifecycle("ended")]


def test_delete_by_someone_else_is_ignored() -> None:
    state = given((posted(), ctx()))
    assert handle(state, deleted(author_id="intruder"), ctx(5)) == (state, [])


def test_delete_of_an_unknown_story_is_ignored() -> None:
    assert handle(None, deleted(), ctx(5)) == (None, [])


def test_events_for_a_deleted_story_are_refused() -> None:
    state = given((posted(), ctx()), (deleted(minutes=5), ctx(5)))
    assert handle(state, highlight(minutes=6), ctx(6)) == (state, [])
    assert handle(state, deleted(minutes=7), ctx(7)) == (state, [])
    assert handle(state, posted(), ctx(8)) == (state, [])


# --- purge and the clock ----------------------------------------------------------------


def test_purge_waits_for_the_grace() -> None:
    expired, _ = expire(given((posted(), ctx())), ctx(EXPIRY))
    assert purge(expired, ctx(EXPIRY + GRACE_MIN - 1)) == (expired, [])
    assert purge(expired, ctx(EXPIRY + GRACE_MIN)) == (None, [lifecycle("purged")])


def test_purge_leaves_live_stories_alone() -> None:
    state = given((posted(), ctx()))
    assert purge(state, ctx(EXPIRY + 10 * GRACE_MIN)) == (state, [])


def test_advance_expires_and_purges_in_one_call() -> None:
    state = given((posted(media_id=MEDIA, ready=True), ctx()))
    new, outputs = advance(state, ctx(EXPIRY + GRACE_MIN))
    assert new is None
    assert outputs == [TOMBSTONE, CLOSED, lifecycle("ended"), lifecycle("purged"), objects("purge")]


def test_zero_grace_purges_at_once() -> None:
    state, _ = handle(None, posted(), ctx(0, grace=0))
    state, _ = handle(state, highlight(minutes=1), ctx(1, grace=0))
    state, _ = expire(state, ctx(EXPIRY, grace=0))
    new, outputs = handle(state, highlight(False, minutes=EXPIRY + 1), ctx(EXPIRY + 1, grace=0))
    assert new is None and outputs == [TOMBSTONE, lifecycle("ended"), lifecycle("purged")]


def test_the_record_carries_the_contract_fields() -> None:
    state = given((posted(media_id=MEDIA, ready=True), ctx()), (highlight(minutes=1), ctx(1)))
    assert state is not None
    record = story_state_record(state)
    assert (record.story_id, record.author_id, record.status, record.highlight_ids) == (
        STORY,
        AUTHOR,
        "highlighted",
        ("h1",),
    )
    assert record.expires_at - record.created_at == timedelta(minutes=TTL_MIN)
