"""What the views/reactions stage knows of a story: its author, expiry and lifecycle phase."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from processors.context import Ctx, Output, Tombstone
from processors.messages import StoryLifecycle
from schemas.records import ReactionCounts, ViewCount

Phase = Literal["live", "highlighted", "ended"]


@dataclass(frozen=True, slots=True)
class StoryInfo:
    """The story stage's last word on a story (from its `StoryLifecycle` messages).

    `ended` is terminal: once a story ended here, only `purged` changes it, so a redelivered
    older `live` message cannot reopen it.
    """

    story_id: str
    author_id: str
    expires_at: datetime
    phase: Phase


def apply_lifecycle(
    info: StoryInfo | None, message: StoryLifecycle, ctx: Ctx
) -> tuple[StoryInfo | None, list[Output]]:
    """Fold one lifecycle message into the story's info; tombstone the counts when it ends.

    `live`/`highlighted`: store. `ended`: keep the info (so later events are refused) and
    tombstone `story-view-counts` and `story-reaction-counts`; the wiring also tombstones every
    `story-viewers` key of the story (`views.viewer_tombstones` over a key scan) whenever the
    returned info's phase is `ended`. `purged`: `None`, the wiring deletes all the story's keys.
    Repeating `ended` repeats the tombstones (harmless on compacted topics, and it recovers a
    crash between storing the info and producing).
    """
    if message.phase == "purged":
        return None, []
    if message.phase == "ended":
        ended = StoryInfo(message.story_id, message.author_id, message.expires_at, "ended")
        return ended, [
            Tombstone(ViewCount, message.story_id),
            Tombstone(ReactionCounts, message.story_id),
        ]
    # A highlight may revive an ended story within the grace (its state is kept until the
    # purge); any other message for an ended story is a redelivery of an older one.
    if info is not None and info.phase == "ended" and message.phase != "highlighted":
        return info, []
    return StoryInfo(message.story_id, message.author_id, message.expires_at, message.phase), []


def accepts(info: StoryInfo | None, event_time: datetime) -> bool:
    """Whether a view or reaction at `event_time` is applied to the story.

    Unknown and ended stories take nothing. A live story takes events up to its expiry
    (late and out-of-order ones included: the story expires when time *passes* `expires_at`).
    A highlighted story is expired but kept, so it takes events whatever their time.
    """
    if info is None:
        return False
    if info.phase == "live":
        return event_time <= info.expires_at
    return info.phase == "highlighted"
