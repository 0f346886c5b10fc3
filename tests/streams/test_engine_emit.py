"""Outputs given many at a time (PutMany, ForwardMany) reach the same places, with the same
bytes, as the single outputs they stand for."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from processors.context import ForwardMany, Output, Policy, PutMany, expand
from processors.messages import StoryLifecycle, StorySeen
from schemas.records import StoryViewer
from streams.engine import Engine, PartitionContext
from streams.handlers.common import encode_message, encode_message_batch
from streams.registry import EmbeddedRegistry

AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


class _Recorder:
    """Takes the engine's produce calls (no broker: this is the engine's routing alone)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes | None, int]] = []

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int = -1,
        **_: Any,
    ) -> None:
        self.records.append((topic, key, value, partition))


def _routed(tmp: Path, outputs: list[Output]) -> tuple[list[Any], list[Any], list[Any]]:
    """(records produced, forward batches encoded, local forwards applied) for `outputs`."""
    engine = Engine(
        bootstrap="unused:9092",
        group_id="g",
        state_dir=tmp,
        partitions=4,
        handlers=[],
        registry=EmbeddedRegistry(),
        policy=Policy(),
        changelog_topic="app-changelog",
    )
    recorder = _Recorder()
    engine.attach_producer(recorder)  # type: ignore[arg-type]
    engine.route_stage("tray", "app-stage-tray", encode_message, encode_message_batch)
    engine.route_stage("story", "app-stage-story", encode_message)
    applied: list[Any] = []
    engine.route_local("lifecycle", lambda ctx, key, message: applied.append((key, message)))
    ctx = PartitionContext(engine, 0, None, AT)  # type: ignore[arg-type]  # emit needs no store
    engine.emit(ctx, outputs)
    batches = sorted(
        (stage, partition, encode_message_batch(items))
        for (stage, partition), items in engine._forward_batches.items()
    )
    return recorder.records, batches, applied


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
    assert len({partition for topic, _, _, partition in records if topic == "story-viewers"}) == 1
    assert sum(len(encoded) for _, _, encoded in batches) > 0 and len(batches) > 1
    assert applied == [("s1", StoryLifecycle.model_validate(lifecycle))]
