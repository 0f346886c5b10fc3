"""Outputs given many at a time (PutMany, ForwardMany) reach the same places, with the same
bytes, as the single outputs they stand for."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from processors.context import ForwardMany, Output, Policy, PutMany, expand
from processors.messages import StoryLifecycle, StorySeen, message_from_fields
from schemas.records import StoryViewer
from streams.codecs.registry import EmbeddedRegistry
from streams.runtime.context import StageContext
from streams.runtime.metrics import Metrics
from streams.runtime.routing import Router
from streams.runtime.store import PartitionStore
from streams.runtime.topology import Route, Stage, Topology

AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


class _Quiet:
    def handle(self, ctx: Any, records: Any) -> None: ...

    def tick(self, ctx: Any) -> None: ...


def _routed(tmp: Path, outputs: list[Output]) -> tuple[list[Any], list[Any], list[Any]]:
    """(records made, forward batches made, in-place forwards applied) for `outputs`."""
    applied: list[Any] = []
    topology = Topology(
        (Stage("tray", ("app-stage-tray",), _Quiet()),),
        {
            "tray": Route("tray", "app-stage-tray", batched=True),
            "story": Route("story", "app-stage-story"),
            "lifecycle": Route(
                "lifecycle", apply=lambda ctx, key, message: applied.append((key, message))
            ),
        },
        partitions=4,
        changelog="app-changelog",
    )
    router = Router(topology, EmbeddedRegistry(), Metrics())
    store = PartitionStore(tmp)
    ctx = StageContext(0, store, AT, Policy(), Metrics(), router)
    router.emit(ctx, outputs)
    router.keep()
    records = router.take_records()
    batches = sorted(router.take_forwards())
    store.close()
    return records, batches, applied


def test_many_outputs_are_routed_as_the_single_outputs_they_stand_for(tmp_path: Path) -> None:
    viewers = [f"u{i}" for i in range(12)]
    seen = [(v, {"kind": "story_seen", "user_id": v, "story_id": "s1", "at": AT}) for v in viewers]
    lifecycle = {
        "kind": "story_lifecycle",
        "story_id": "s1",
        "author_id": "a",
        "expires_at": AT,
        "phase": "live",
    }
    outputs: list[Output] = [
        PutMany(
            StoryViewer,
            "s1",
            [
                (f"s1/{v}", {"story_id": "s1", "viewer_id": v, "first_viewed_at": AT})
                for v in viewers
            ],
        ),
        ForwardMany("tray", StorySeen, seen),
        ForwardMany("story", StoryLifecycle, [("s1", lifecycle)]),
        ForwardMany("lifecycle", StoryLifecycle, [("s1", lifecycle)]),
    ]
    many = _routed(tmp_path / "many", outputs)
    single = _routed(tmp_path / "single", list(expand(outputs)))
    assert many == single
    records, batches, applied = many
    assert len(records) == 12 + 1  # the viewers, all in their story's partition; the story forward
    assert len({r.partition for r in records if r.topic == "story-viewers"}) == 1
    assert all(record.value for record in batches) and len(batches) > 1
    assert applied == [("s1", message_from_fields(StoryLifecycle, lifecycle))]
