"""The story stage (keyed story_id): a story's life from post to purge, as pure transitions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from processors.context import Ctx, Forward, Output, Put, Tombstone
from processors.expiry import next_due
from processors.media import highlights_prefix, media_prefix
from processors.messages import (
    AwaitMedia,
    MediaObjectsChanged,
    MediaReady,
    StoryClosed,
    StoryLifecycle,
    StoryOpened,
)
from schemas.events import (
    Audience,
    HighlightChanged,
    MediaType,
    Rendition,
    StoryDeleted,
    StoryPosted,
)
from schemas.records import StoryState, StoryStatus

Phase = Literal["processing", "active", "failed", "expired", "deleted"]
LifecyclePhase = Literal["live", "highlighted", "ended"]
# A failure's reason is kept for the author; a longer one (any producer may write
# media-transcoded) would grow every changelog record of the story.
MAX_ERROR_CHARS = 1000


@dataclass(frozen=True, slots=True)
class HighlightMark:
    """The latest word on one highlight of a story: added or removed, by which event.

    Highlight changes are last-writer-wins by `(at, event_id)`, so a redelivered or older
    event never undoes a newer one, whatever order they arrive in.
    """

    highlight_id: str
    present: bool
    at: datetime
    event_id: str

    @property
    def order(self) -> tuple[datetime, str]:
        """The key that decides which of two changes of one highlight wins."""
        return (self.at, self.event_id)


@dataclass(frozen=True, slots=True)
class Story:
    """The story stage's state of one story.

    `phase`: processing (waiting for media) and active are live; expired, deleted and failed
    are ended. An expired story that is highlighted is kept and still published; otherwise an
    ended story is only remembered (so later events are refused) until its purge.
    `ended_at`: when it ended (`expires_at` for an expiry, the clock for a delete, a failure or
    the removal of the last highlight after expiry); purge is due at
    `max(expires_at, ended_at) + grace` (`processors.expiry.next_due`).
    `media_pending`: the media's `MediaReady` has not come yet (shown as `processing`).
    `error`: why its media failed (phase failed), shown to its author alone.
    `seen`: ids of the author's highlight and delete events this story took or refused, so a
    redelivered one changes nothing even if the story changed since (a delete refused while
    expired stays refused after a revival). Bounded by the author's own actions on the story.
    """

    story_id: str
    author_id: str
    created_at: datetime
    expires_at: datetime
    audience: Audience
    phase: Phase
    media_id: str | None = None
    media_type: MediaType | None = None
    renditions: tuple[Rendition, ...] = ()
    blurhash: str | None = None
    media_pending: bool = False
    highlights: tuple[HighlightMark, ...] = ()
    ended_at: datetime | None = None
    seen: frozenset[str] = frozenset()
    error: str | None = None

    @property
    def highlight_ids(self) -> tuple[str, ...]:
        """The story's current highlights, sorted."""
        return tuple(mark.highlight_id for mark in self.highlights if mark.present)

    @property
    def highlighted(self) -> bool:
        """Whether the story is in at least one highlight."""
        return any(mark.present for mark in self.highlights)

    @property
    def live(self) -> bool:
        """Not yet expired, deleted or failed."""
        return self.phase in ("processing", "active")

    @property
    def published(self) -> bool:
        """Whether its `story-state` record is out (live, or expired but highlighted)."""
        return self.live or (self.phase == "expired" and self.highlighted)

    @property
    def lifecycle_phase(self) -> LifecyclePhase:
        """What the views/reactions stage is told about this story."""
        if self.live:
            return "live"
        return "highlighted" if self.published else "ended"


StoryInput = StoryPosted | MediaReady | HighlightChanged | StoryDeleted
Result = tuple[Story | None, list[Output]]
_Rule = Callable[[Story | None], Story | None]


def story_state_record(story: Story) -> StoryState:
    """The `story-state` record of a story.

    Once an expired story is kept as a highlight, its media lives under the long-term prefix
    (the objects stage moves it), so its URLs point there.
    """
    renditions = story.renditions
    if story.phase == "expired" and story.highlighted and story.media_id:
        moved_from = "/" + media_prefix(story.media_id)
        moved_to = "/" + highlights_prefix(story.media_id)
        renditions = tuple(
            r.model_copy(update={"url": r.url.replace(moved_from, moved_to, 1)}) for r in renditions
        )
    return StoryState(
        story_id=story.story_id,
        author_id=story.author_id,
        created_at=story.created_at,
        expires_at=story.expires_at,
        audience=story.audience,
        status=_status(story),
        renditions=renditions,
        highlight_ids=story.highlight_ids,
        media_id=story.media_id,
        media_type=story.media_type,
        blurhash=story.blurhash,
    )


def story_posted(state: Story | None, event: StoryPosted, ctx: Ctx) -> Result:
    """A new story: active at once (ready media or text only), or processing until its media.

    A duplicate changes nothing. A post already expired on arrival is remembered as expired
    without any output (later events for it are refused); one past the purge horizon is not
    kept at all, only its media is purged.
    """
    state, outputs = advance(state, ctx)
    if state is None and ctx.now >= event.expires_at + ctx.policy.expiry_grace:
        if event.media_id is None:
            return None, outputs
        purge_media = MediaObjectsChanged(
            media_id=event.media_id, story_id=event.story_id, action="purge"
        )
        return None, [*outputs, Forward("objects", event.media_id, purge_media)]
    new, more = _run(state, ctx, lambda story: _posted(story, event, ctx), *_clock(ctx))
    return new, [*outputs, *more]


def media_ready(state: Story | None, message: MediaReady, ctx: Ctx) -> Result:
    """The story's media was transcoded: it opens (or shows in its highlights); or it failed."""
    return _apply(state, ctx, lambda story: _media_ready(story, message, ctx))


def highlight_changed(state: Story | None, event: HighlightChanged, ctx: Ctx) -> Result:
    """The author added the story to a highlight, or removed it from one.

    Adding one to an expired story not yet purged revives it as highlighted; removing the last
    one after expiry ends it at once.
    """
    return _apply(state, ctx, lambda story: _highlight_changed(story, event, ctx))


def story_deleted(state: Story | None, event: StoryDeleted, ctx: Ctx) -> Result:
    """The author deleted the story: it ends now (at `ctx.now`), highlighted or not."""
    return _apply(state, ctx, lambda story: _deleted(story, event, ctx))


def expire(state: Story | None, ctx: Ctx) -> Result:
    """Expire a live story once `ctx.now >= expires_at` (a highlighted one is kept)."""
    return _run(state, ctx, lambda story: _expired(story, ctx))


def purge(state: Story | None, ctx: Ctx) -> Result:
    """Drop an ended, non-highlighted story once its grace is over (`expiry.next_due`)."""
    return _run(state, ctx, lambda story: _purged(story, ctx))


def advance(state: Story | None, ctx: Ctx) -> Result:
    """Bring a story up to `ctx.now`: expire and purge it if due (the expiry scan's call)."""
    return _run(state, ctx, *_clock(ctx))


def handle(state: Story | None, item: StoryInput, ctx: Ctx) -> Result:
    """Dispatch one input of the story stage to its processor."""
    match item:
        case StoryPosted():
            return story_posted(state, item, ctx)
        case MediaReady():
            return media_ready(state, item, ctx)
        case HighlightChanged():
            return highlight_changed(state, item, ctx)
        case StoryDeleted():
            return story_deleted(state, item, ctx)
    raise TypeError(f"the story stage does not handle {type(item).__name__}")


# Transitions: each rule maps a state to the next; the outputs come from comparing the two.


def _posted(story: Story | None, event: StoryPosted, ctx: Ctx) -> Story | None:
    if story is not None:
        return story
    ready = bool(event.media)
    pending = event.media_id is not None and not ready
    posted = Story(
        story_id=event.story_id,
        author_id=event.author_id,
        created_at=event.created_at,
        expires_at=event.expires_at,
        audience=event.audience,
        phase="processing" if pending else "active",
        media_id=event.media_id,
        media_type=event.media_type,
        renditions=tuple(event.media or ()),
        media_pending=pending,
    )
    if ctx.now >= event.expires_at:
        return replace(posted, phase="expired", ended_at=event.expires_at)
    return posted


def _media_ready(story: Story | None, message: MediaReady, ctx: Ctx) -> Story | None:
    if (
        story is None
        or not story.media_pending
        or story.media_id != message.media_id
        or story.phase not in ("processing", "expired")
    ):
        return story
    if message.error is not None:
        return replace(_end(story, "failed", ctx), error=message.error[:MAX_ERROR_CHARS])
    return replace(
        story,
        phase="active" if story.phase == "processing" else story.phase,
        renditions=message.renditions,
        blurhash=message.blurhash,
        media_type=story.media_type or message.media_type,
        media_pending=False,
    )


def _highlight_changed(story: Story | None, event: HighlightChanged, ctx: Ctx) -> Story | None:
    if not _takes(story, event.author_id, event.event_id):
        return story
    assert story is not None
    story = replace(story, seen=story.seen | {event.event_id})
    mark = HighlightMark(
        event.highlight_id, event.type == "highlight_added", event.at, event.event_id
    )
    current = next((m for m in story.highlights if m.highlight_id == mark.highlight_id), None)
    if current is not None and current.order >= mark.order:
        return story  # older than what is known of this highlight
    others = tuple(m for m in story.highlights if m.highlight_id != mark.highlight_id)
    changed = replace(
        story, highlights=tuple(sorted((*others, mark), key=lambda m: m.highlight_id))
    )
    if story.phase == "expired" and story.highlighted and not changed.highlighted:
        # The last highlight of an expired story went: it ends now, its purge counts from now.
        return replace(changed, ended_at=max(ctx.now, story.expires_at))
    # An expired story that was not highlighted is revived by a new highlight: it is still
    # here, so still within its grace (`advance` purges it once the grace is over).
    return changed


def _deleted(story: Story | None, event: StoryDeleted, ctx: Ctx) -> Story | None:
    if not _takes(story, event.author_id, event.event_id):
        return story
    assert story is not None
    story = replace(story, seen=story.seen | {event.event_id})
    if not story.published:
        return story  # already ended: nothing to delete, its purge time stays
    return _end(story, "deleted", ctx)


def _takes(story: Story | None, author_id: str, event_id: str) -> bool:
    # Only the author acts on a story; a deleted or failed one takes nothing more.
    return (
        story is not None
        and story.author_id == author_id
        and event_id not in story.seen
        and story.phase not in ("deleted", "failed")
    )


def _expired(story: Story | None, ctx: Ctx) -> Story | None:
    if story is None or not story.live or ctx.now < story.expires_at:
        return story
    return replace(story, phase="expired", ended_at=story.expires_at)


def _purged(story: Story | None, ctx: Ctx) -> Story | None:
    if story is None or story.live:
        return story
    due = next_due(story, ctx.policy)
    if due is None or ctx.now < due:
        return story
    return None


def _end(story: Story, phase: Literal["deleted", "failed"], ctx: Ctx) -> Story:
    # A story that was published ends now; one already ended keeps its purge time.
    ended_at = ctx.now if story.published or story.ended_at is None else story.ended_at
    return replace(story, phase=phase, highlights=(), ended_at=ended_at)


def _clock(ctx: Ctx) -> tuple[_Rule, _Rule]:
    return (lambda story: _expired(story, ctx), lambda story: _purged(story, ctx))


def _apply(state: Story | None, ctx: Ctx, rule: _Rule) -> Result:
    # Expire/purge what is due first, then apply the event, then what became due: the result
    # is the same whether or not the expiry scan ran just before this event.
    return _run(state, ctx, *_clock(ctx), rule, *_clock(ctx))


def _run(state: Story | None, ctx: Ctx, *rules: _Rule) -> Result:
    outputs: list[Output] = []
    for rule in rules:
        new = rule(state)
        if new != state:
            outputs.extend(_changes(state, new))
        state = new
    return state, outputs


def _changes(old: Story | None, new: Story | None) -> list[Output]:
    """What a transition publishes: derived from the two states, so it cannot drift."""
    outputs: list[Output] = []
    # story-state: published while live or highlighted, tombstoned when that ends.
    if new is not None and new.published:
        record = story_state_record(new)
        if old is None or not old.published or story_state_record(old) != record:
            outputs.append(Put(new.story_id, record))
    elif old is not None and old.published:
        outputs.append(Tombstone(StoryState, old.story_id))
    # media stage: a new story waiting for its media (not one expired on arrival: it takes no
    # later events, and its media's result may be gone, so a redelivered one would be new).
    if (
        old is None
        and new is not None
        and new.media_pending
        and new.media_id is not None
        and new.phase != "expired"
    ):
        outputs.append(
            Forward("media", new.media_id, AwaitMedia(story_id=new.story_id, media_id=new.media_id))
        )
    # author stage: trays show active stories only.
    was_open = old is not None and old.phase == "active"
    is_open = new is not None and new.phase == "active"
    if is_open and not was_open and new is not None:
        opened = StoryOpened(
            story_id=new.story_id,
            author_id=new.author_id,
            created_at=new.created_at,
            expires_at=new.expires_at,
            audience=new.audience,
        )
        outputs.append(Forward("author", new.author_id, opened))
    if was_open and not is_open and old is not None:
        closed = StoryClosed(story_id=old.story_id, author_id=old.author_id)
        outputs.append(Forward("author", old.author_id, closed))
    # lifecycle stage: views and reactions follow the story's phase.
    phase = _lifecycle_change(old, new)
    if phase is not None:
        story = new if new is not None else old
        assert story is not None
        message = StoryLifecycle(
            story_id=story.story_id,
            author_id=story.author_id,
            expires_at=story.expires_at,
            phase=phase,
        )
        outputs.append(Forward("lifecycle", story.story_id, message))
    # objects stage: highlighted media moves to long-term storage; purged media goes.
    if _kept_media(new) and not _kept_media(old) and new is not None and new.media_id:
        outputs.append(_objects(new, "move_to_highlights"))
    if new is None and old is not None and old.media_id is not None:
        outputs.append(_objects(old, "purge"))
    return outputs


def _lifecycle_change(
    old: Story | None, new: Story | None
) -> Literal["live", "highlighted", "ended", "purged"] | None:
    if new is None:
        return "purged" if old is not None else None
    if old is None:
        # A story that never went live (expired on arrival) is not announced.
        return new.lifecycle_phase if new.published else None
    return new.lifecycle_phase if new.lifecycle_phase != old.lifecycle_phase else None


def _kept_media(story: Story | None) -> bool:
    # Media worth moving: a kept highlighted story whose media is transcoded.
    return (
        story is not None
        and story.phase == "expired"
        and story.highlighted
        and not story.media_pending
        and story.media_id is not None
    )


def _objects(story: Story, action: Literal["purge", "move_to_highlights"]) -> Forward:
    assert story.media_id is not None
    changed = MediaObjectsChanged(media_id=story.media_id, story_id=story.story_id, action=action)
    return Forward("objects", story.media_id, changed)


def _status(story: Story) -> StoryStatus:
    # Processing wins: a story is not shown until its media is ready, highlighted or not.
    if story.media_pending:
        return "processing"
    return "highlighted" if story.highlighted else "active"
