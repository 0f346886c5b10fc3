"""The views wiring on a real partition store: a viewer's applied views past their index entry's
are keys of their own, found again when redelivered, in later batches and after a flush."""

from __future__ import annotations

from pathlib import Path

from processors.views import View
from streams.runtime.store import PartitionStore
from streams.stages.viewer_list import (
    INDEX,
    INLINE_EVENT_IDS,
    story_view_prefixes,
    viewer_index_key,
)
from streams.stages.views import (
    INFO,
    apply_view_batch,
    reaction_event_key,
    reaction_event_keys,
    reaction_event_prefix,
    view_state,
)
from tests.processors.factories_views import STORY, at, ctx, info, reacted, viewed
from tests.streams.stage_context import recording_context


def test_a_viewers_many_views_count_once_each_through_the_store(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    INFO.put(store, STORY, info())
    pctx, _ = recording_context(store, at(10), ctx().policy)
    views = [View.of(viewed("u1", i % 60, event_id=f"e{i:04d}").__dict__) for i in range(100)]
    for start in range(0, 100, 7):
        apply_view_batch(pctx, STORY, views[start : start + 7])
        if start % 2:
            store.flush()
    for start in range(0, 100, 9):  # all of them again, in other batches
        apply_view_batch(pctx, STORY, views[start : start + 9])
    store.flush()
    state = view_state(store, STORY)
    assert state is not None and (state.total_views, state.viewers) == (100, 1)
    entry = store.get(viewer_index_key(STORY, "u1"))
    assert entry is not None and len(INDEX.decode(entry).event_ids) == INLINE_EVENT_IDS
    keys = list(store.scan(story_view_prefixes(STORY)[2]))
    assert len(keys) == 100 - INLINE_EVENT_IDS
    store.close()


def test_event_keys_are_apart_from_the_views_keys() -> None:
    events = [reacted("u1", event_id="e1")]
    assert reaction_event_keys(STORY, events) == {reaction_event_key(STORY, "e1"): "e1"}
    assert reaction_event_key(STORY, "e1").startswith(reaction_event_prefix(STORY))
    assert not any(reaction_event_prefix(STORY).startswith(p) for p in story_view_prefixes(STORY))


def test_readers_see_a_storys_counts_only_once_committed(tmp_path: Path) -> None:
    # The API reads counts beside the viewer list (committed): a batch under way, which may
    # still abort, shows in neither.
    store = PartitionStore(tmp_path / "p0")
    INFO.put(store, STORY, info())
    store.flush()
    pctx, _ = recording_context(store, at(10), ctx().policy)
    apply_view_batch(pctx, STORY, [View.of(viewed("u1", 1, event_id="e1").__dict__)])
    assert view_state(store, STORY) is None
    store.flush()
    state = view_state(store, STORY)
    assert state is not None and state.total_views == 1
    store.close()
