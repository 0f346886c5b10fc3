"""Reactions to a story, a batch at a time: counts per reaction and the latest replies."""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime

from processors.context import Ctx, Output, Put
from processors.story_info import StoryInfo
from schemas.events import StoryReacted
from schemas.records import ReactionCounts

# Replies live in the story's state, which is read and written once per batch: keeping the
# latest 50 (by reacted_at, then event id) bounds it (<= ~200 KB at 1000 characters of 4-byte
# UTF-8) and keeps the choice independent of arrival order. Counts include every reply.
MAX_REPLIES = 50


@dataclass(frozen=True, slots=True)
class Reply:
    """A reaction that came with text."""

    user_id: str
    reaction: str
    text: str
    reacted_at: datetime
    event_id: str


@dataclass(frozen=True, slots=True)
class ReactionState:
    """A story's reactions: count per reaction (sorted by reaction), total, latest replies.

    The author's own reactions count: a reaction is a fact about the story, not a measure of
    its audience (views, which are, leave the author out). A user reacting twice counts twice;
    only a repeated event id is a duplicate.
    """

    counts: tuple[tuple[str, int], ...]
    total: int
    replies: tuple[Reply, ...] = ()

    def counts_dict(self) -> dict[str, int]:
        """The counts as a fresh dict."""
        return dict(self.counts)


@dataclass(frozen=True, slots=True)
class ReactionsResult:
    """What applying a batch of one story's reactions decided.

    Store `state` when `changed` and remember `event_ids` as applied; produce `outputs`.
    `skipped` (refused events) and `duplicates` are for metrics.
    """

    story_id: str
    state: ReactionState | None
    changed: bool
    event_ids: tuple[str, ...]
    outputs: tuple[Output, ...]
    skipped: int = 0
    duplicates: int = 0


def apply_reactions(
    state: ReactionState | None,
    info: StoryInfo | None,
    events: Sequence[StoryReacted],
    seen_event_ids: AbstractSet[str],
    ctx: Ctx,
) -> ReactionsResult:
    """Apply a batch of one story's reactions; one coalesced `ReactionCounts` out.

    `seen_event_ids` holds the batch's event ids already applied.
    Refused events (see `story_info.accepts`) are skipped; an event id counts once. A
    duplicate re-publishes the current counts (idempotent on a compacted topic).
    """
    story_id = info.story_id if info is not None else (events[0].story_id if events else "")
    if info is None or info.phase == "ended":
        return ReactionsResult(story_id, state, False, (), (), skipped=len(events))
    deadline = info.expires_at if info.phase == "live" else None
    skipped = 0
    applied: dict[str, None] = {}
    added: dict[str, int] = {}
    replies: list[Reply] = []
    for event in events:
        if deadline is not None and event.reacted_at > deadline:
            skipped += 1
            continue
        event_id = event.event_id
        if event_id in applied or event_id in seen_event_ids:
            continue
        applied[event_id] = None
        added[event.reaction] = added.get(event.reaction, 0) + 1
        if event.text:
            replies.append(
                Reply(event.user_id, event.reaction, event.text, event.reacted_at, event_id)
            )
    duplicates = len(events) - skipped - len(applied)
    new_state = state
    if applied:
        new_state = _added(state, added, len(applied), replies)
    if new_state is None or (not applied and not duplicates):
        return ReactionsResult(story_id, state, False, (), (), skipped=skipped)
    counts = ReactionCounts.model_construct(
        story_id=story_id, counts=new_state.counts_dict(), total=new_state.total
    )
    return ReactionsResult(
        story_id,
        new_state,
        new_state is not state,
        tuple(applied),
        (Put(story_id, counts),),
        skipped=skipped,
        duplicates=duplicates,
    )


def _added(
    state: ReactionState | None, added: dict[str, int], applied: int, replies: list[Reply]
) -> ReactionState:
    counts = dict(state.counts) if state is not None else {}
    total = state.total if state is not None else 0
    kept: tuple[Reply, ...] = state.replies if state is not None else ()
    for reaction, count in added.items():
        counts[reaction] = counts.get(reaction, 0) + count
    if replies:
        merged = sorted((*kept, *replies), key=lambda r: (r.reacted_at, r.event_id))
        kept = tuple(merged[-MAX_REPLIES:])
    return ReactionState(tuple(sorted(counts.items())), total + applied, kept)
