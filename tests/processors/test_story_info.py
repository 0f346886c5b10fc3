"""The views stage's view of a story: lifecycle messages folded, events accepted or refused."""

from __future__ import annotations

import pytest

from processors.context import Tombstone
from processors.story_info import StoryInfo, accepts, apply_lifecycle
from schemas.records import ReactionCounts, ViewCount
from tests.processors.factories_views import AUTHOR, STORY, at, ctx, info, lifecycle


@pytest.mark.parametrize("phase", ["live", "highlighted"])
def test_live_or_highlighted_is_stored_without_outputs(phase: str) -> None:
    # given nothing known, when the story stage says live/highlighted
    stored, outputs = apply_lifecycle(None, lifecycle(phase), ctx())  # type: ignore[arg-type]
    # then the info is stored and nothing is published
    assert stored == StoryInfo(STORY, AUTHOR, at(24 * 60), phase)  # type: ignore[arg-type]
    assert outputs == []


def test_ended_tombstones_the_counts_and_keeps_the_info() -> None:
    # given a live story, when it ends
    stored, outputs = apply_lifecycle(info("live"), lifecycle("ended"), ctx(24 * 60))
    # then the counts are tombstoned and the info remembers it ended
    assert stored is not None and stored.phase == "ended"
    assert outputs == [Tombstone(ViewCount, STORY), Tombstone(ReactionCounts, STORY)]


def test_ended_again_repeats_the_tombstones() -> None:
    # given an ended story, when `ended` is redelivered, then the tombstones are produced again
    _, outputs = apply_lifecycle(info("ended"), lifecycle("ended"), ctx())
    assert outputs == [Tombstone(ViewCount, STORY), Tombstone(ReactionCounts, STORY)]


def test_ended_is_terminal_for_live() -> None:
    # given an ended story, when an older `live` is redelivered, then it stays ended
    stored, outputs = apply_lifecycle(info("ended"), lifecycle("live"), ctx())
    assert stored == info("ended")
    assert outputs == []


def test_a_highlight_within_the_grace_revives_an_ended_story() -> None:
    # given an expired story, when the author highlights it before the purge, it is kept
    stored, outputs = apply_lifecycle(info("ended"), lifecycle("highlighted"), ctx())
    assert stored == info("highlighted")
    assert outputs == []


def test_highlighted_then_ended_when_the_last_highlight_goes() -> None:
    stored, _ = apply_lifecycle(info("highlighted"), lifecycle("ended"), ctx())
    assert stored is not None and stored.phase == "ended"


@pytest.mark.parametrize("known", [None, info("live"), info("ended")])
def test_purged_drops_everything(known: StoryInfo | None) -> None:
    assert apply_lifecycle(known, lifecycle("purged"), ctx()) == (None, [])


@pytest.mark.parametrize(
    ("story", "minutes", "expected"),
    [
        (None, 0, False),  # unknown story
        (info("live"), 5, True),
        (info("live"), -5, True),  # out of order, still within the lifetime
        (info("live"), 24 * 60, True),  # at expires_at: time has not passed it yet
        (info("live"), 24 * 60 + 0.001, False),  # past expiry
        (info("highlighted"), 48 * 60, True),  # expired but kept
        (info("ended"), 5, False),
    ],
)
def test_accepts(story: StoryInfo | None, minutes: float, expected: bool) -> None:
    assert accepts(story, at(minutes)) is expected
