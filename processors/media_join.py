"""The media stage (keyed media_id): joins stories waiting for media with its transcode result."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from processors.context import Ctx, Forward, Output
from processors.messages import AwaitMedia, MediaReady
from schemas.events import MediaTranscoded, MediaType, Rendition

MediaInput = AwaitMedia | MediaTranscoded
Result = tuple["PendingMedia | None", list[Output]]


@dataclass(frozen=True, slots=True)
class Transcode:
    """The facts of a `media_transcoded` event that a waiting story needs."""

    event_id: str
    renditions: tuple[Rendition, ...]
    duration_ms: int | None
    error: str | None
    blurhash: str | None = None


@dataclass(frozen=True, slots=True)
class PendingMedia:
    """One media's side of the join.

    `waiting`: stories told nothing yet (the result has not come). `delivered`: stories sent
    their `MediaReady`, remembered so a redelivered `AwaitMedia` sends nothing. `result`: the
    first transcode result (a later one is a redelivery or a retry the story no longer needs).
    `keep_until`: when the state is dropped, `story_ttl + expiry_grace` after the first message
    for this media: by then a story waiting for it has expired and been purged, and a result
    no story asked for is of no use to a post that would arrive already expired. (The one
    exception: media transcoded more than `expiry_grace` before its story's `created_at`, whose
    post then arrives after the result was dropped; that story stays processing until it
    expires. Uploads come with their post, so the bound is kept rather than holding orphan
    results forever.)
    """

    media_id: str
    keep_until: datetime
    waiting: frozenset[str] = frozenset()
    delivered: frozenset[str] = frozenset()
    result: Transcode | None = None


def await_media(state: PendingMedia | None, message: AwaitMedia, ctx: Ctx) -> Result:
    """A story waits for this media: answer at once if its result is in, else remember it."""
    pending = _current(state, message.media_id, ctx)
    story_id = message.story_id
    if story_id in pending.waiting or story_id in pending.delivered:
        return pending, []  # redelivered
    if pending.result is None:
        return replace(pending, waiting=pending.waiting | {story_id}), []
    delivered = replace(pending, delivered=pending.delivered | {story_id})
    return delivered, [_ready(pending.media_id, story_id, pending.result)]


def media_transcoded(state: PendingMedia | None, event: MediaTranscoded, ctx: Ctx) -> Result:
    """The media's transcode result: tell every waiting story, keep it for stories to come."""
    pending = _current(state, event.media_id, ctx)
    if pending.result is not None:
        return pending, []  # redelivered, or a later result: the first one was used
    result = Transcode(
        event.event_id, tuple(event.renditions), event.duration_ms, event.error, event.blurhash
    )
    outputs: list[Output] = [
        _ready(pending.media_id, story_id, result) for story_id in sorted(pending.waiting)
    ]
    joined = replace(
        pending, waiting=frozenset(), delivered=pending.delivered | pending.waiting, result=result
    )
    return joined, outputs


def expire_media(state: PendingMedia | None, ctx: Ctx) -> Result:
    """Drop the state once `ctx.now >= keep_until` (the expiry scan's call); no outputs."""
    if state is None or ctx.now < state.keep_until:
        return state, []
    return None, []


def media_due(state: PendingMedia | None) -> datetime | None:
    """When `expire_media` drops the state (its key's due time in the expiry index)."""
    return None if state is None else state.keep_until


def handle(state: PendingMedia | None, item: MediaInput, ctx: Ctx) -> Result:
    """Dispatch one input of the media stage to its processor."""
    match item:
        case AwaitMedia():
            return await_media(state, item, ctx)
        case MediaTranscoded():
            return media_transcoded(state, item, ctx)
    raise TypeError(f"the media stage does not handle {type(item).__name__}")


def media_type_of(renditions: tuple[Rendition, ...]) -> MediaType | None:
    """The media's kind, from its renditions' content types (video if any is a video)."""
    if any(rendition.content_type.startswith("video/") for rendition in renditions):
        return "video"
    return "image" if renditions else None


def _current(state: PendingMedia | None, media_id: str, ctx: Ctx) -> PendingMedia:
    # A state past its time is gone even if the scan has not dropped it yet, so the result
    # does not depend on when the scan ran.
    if state is not None and state.media_id == media_id and ctx.now < state.keep_until:
        return state
    keep_until = ctx.now + ctx.policy.story_ttl + ctx.policy.expiry_grace
    return PendingMedia(media_id=media_id, keep_until=keep_until)


def _ready(media_id: str, story_id: str, result: Transcode) -> Forward:
    ready = MediaReady(
        story_id=story_id,
        media_id=media_id,
        renditions=result.renditions,
        media_type=media_type_of(result.renditions),
        duration_ms=result.duration_ms,
        error=result.error,
        blurhash=result.blurhash,
    )
    return Forward("story", story_id, ready)
