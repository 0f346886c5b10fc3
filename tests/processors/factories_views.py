"""Factories for the views, reactions and story-info tests, and an in-memory views store."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from processors.context import Ctx, Output, Policy, Put, expand
from processors.messages import StoryLifecycle
from processors.story_info import Phase, StoryInfo
from processors.views import View, ViewState, apply_views
from schemas.events import StoryReacted, StoryViewed
from streams.stages.state import Codec
from streams.stages.viewer_list import (
    INLINE_EVENT_IDS,
    ViewerPage,
    lookup_viewers,
    page_bounds,
    read_page,
    write_views,
)

_VIEW_STATE: Codec[ViewState] = Codec(ViewState)

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
TTL = timedelta(hours=24)
STORY = "s1"
AUTHOR = "author"


def at(minutes: float = 0) -> datetime:
    """`minutes` after T0, at millisecond precision (as events carry it)."""
    moment = T0 + timedelta(minutes=minutes)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def ctx(minutes: float = 0, *, lg_k: int = 12) -> Ctx:
    """A context whose clock reads `minutes` after T0."""
    return Ctx(now=at(minutes), policy=Policy(hll_lg_k=lg_k))


def info(
    phase: Phase = "live", *, story_id: str = STORY, author_id: str = AUTHOR, ttl: float = 24 * 60
) -> StoryInfo:
    """A story posted at T0 expiring `ttl` minutes later."""
    return StoryInfo(story_id, author_id, at(ttl), phase)


def lifecycle(
    phase: Literal["live", "highlighted", "ended", "purged"],
    *,
    story_id: str = STORY,
    author_id: str = AUTHOR,
    ttl: float = 24 * 60,
) -> StoryLifecycle:
    return StoryLifecycle(story_id=story_id, author_id=author_id, expires_at=at(ttl), phase=phase)


def viewed(
    viewer_id: str, minutes: float = 0, *, story_id: str = STORY, event_id: str | None = None
) -> StoryViewed:
    """A view; without `event_id` the id derives from the content (same view, same id)."""
    return StoryViewed.model_validate(
        {
            "story_id": story_id,
            "viewer_id": viewer_id,
            "viewed_at": at(minutes),
            "event_id": event_id,
        }
    )


def reacted(
    user_id: str,
    reaction: str = "like",
    minutes: float = 0,
    *,
    text: str | None = None,
    story_id: str = STORY,
    event_id: str | None = None,
) -> StoryReacted:
    return StoryReacted.model_validate(
        {
            "story_id": story_id,
            "user_id": user_id,
            "reaction": reaction,
            "reacted_at": at(minutes),
            "text": text,
            "event_id": event_id,
        }
    )


def puts_of(outputs: Sequence[Output], record: type) -> list[Put]:
    """The `Put`s of one record type, in order."""
    return [o for o in outputs if isinstance(o, Put) and isinstance(o.value, record)]


def as_view(event: StoryViewed | View) -> View:
    """A view as the views path reads it."""
    return event if isinstance(event, View) else View.of(event.__dict__)


class ViewsStore:
    """What the views stage does around `apply_views`, on a dict: read the viewers' entries,
    apply, write the list and index keys (`streams.stages.viewer_list`), publish.

    `published` is the compacted view of every output topic (last value per key).
    """

    def __init__(self, story: StoryInfo | None = None, inline: int = INLINE_EVENT_IDS) -> None:
        self.info = story if story is not None else info()
        self.inline = inline  # event ids an index entry keeps
        self.state: ViewState | None = None
        self.kv: dict[bytes, bytes] = {}
        self._sorted: list[bytes] = []
        self.published: dict[tuple[str, str], object] = {}
        self.outputs: list[Output] = []

    # the store the stage's viewer-list functions write to
    def get_many(self, keys: Iterable[bytes]) -> list[bytes | None]:
        return [self.kv.get(key) for key in keys]

    def put_many(self, items: list[tuple[bytes, bytes]]) -> None:
        for key, value in items:
            if key not in self.kv:
                bisect.insort(self._sorted, key)
            self.kv[key] = value

    def delete(self, key: bytes) -> None:
        if key in self.kv:
            del self.kv[key]
            self._sorted.pop(bisect.bisect_left(self._sorted, key))

    def apply(
        self, events: Sequence[StoryViewed | View], context: Ctx | None = None
    ) -> list[Output]:
        """One batch of this story's views, as the stage would run it."""
        views = [as_view(event) for event in events]
        story_id = self.info.story_id
        lookup = lookup_viewers(self, story_id, self.info.author_id, views, self.inline)
        result = apply_views(
            self.state, self.info, views, lookup.known, lookup.seen, context or ctx()
        )
        write_views(self, story_id, result, lookup, self.inline)
        if result.changed:
            assert result.state is not None
            self.state = _VIEW_STATE.decode(_VIEW_STATE.encode(result.state))
        outputs: list[Output] = [*expand(result.outputs)]
        for output in outputs:
            if isinstance(output, Put):
                self.published[(type(output.value).__name__, output.key)] = output.value
        self.outputs.extend(outputs)
        return outputs

    def apply_in_batches(self, views: Sequence[StoryViewed], cuts: Sequence[int]) -> None:
        """Apply `views` split at the `cuts` indexes."""
        bounds = [0, *sorted(set(cuts)), len(views)]
        for start, stop in zip(bounds, bounds[1:], strict=False):
            if start < stop:
                self.apply(views[start:stop])

    def _iter_from(self, start: bytes) -> Iterator[bytes]:
        index = bisect.bisect_left(self._sorted, start)
        yield from self._sorted[index:]

    def page(self, limit: int, cursor: str | None = None) -> ViewerPage:
        start, prefix = page_bounds(self.info.story_id, cursor)
        return read_page(self._iter_from(start), prefix, limit)

    def viewer_list(self, limit: int = 7) -> list[tuple[str, datetime]]:
        """The whole list, page by page."""
        viewers: list[tuple[str, datetime]] = []
        cursor = None
        while True:
            page = self.page(limit, cursor)
            viewers.extend(page.viewers)
            if page.next_cursor is None:
                return viewers
            cursor = page.next_cursor
