"""A delete or a highlight that arrives before its story's post (another topic, fetched
independently) waits for the post instead of being lost; one for a story that never comes is
dropped after the window and counted."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from processors.context import Policy
from streams.runtime.inprocess import InProcessDriver
from streams.runtime.records import InRecord
from streams.runtime.routing import OutRecord
from streams.stages.topology import build_topology
from tests.streams.runtime.test_replay_equals_live import BASE, PARTITIONS, REGISTRY, _inputs


def _story_state(outputs: list[tuple[OutRecord, int]]) -> list[bool]:
    """Whether each story-state record of s1 is a value (True) or a tombstone (False)."""
    return [r.value is not None for r, _ in outputs if r.topic == "story-state"]


def _run(tmp: Path, batches: list[list[InRecord]]) -> InProcessDriver:
    topology = build_topology(REGISTRY, "app", PARTITIONS)
    driver = InProcessDriver(topology, REGISTRY, Policy(), tmp)
    for batch in batches:
        driver.pipe(batch)
    return driver


def _events(delete_at: timedelta) -> tuple[InRecord, InRecord]:
    posted, deleted = _inputs(
        [
            {"type": "story_posted", "story_id": "s1", "author_id": "ann",
             "created_at": BASE.isoformat()},
            {"type": "story_deleted", "story_id": "s1", "author_id": "ann",
             "deleted_at": (BASE + delete_at).isoformat()},
        ]
    )  # fmt: skip
    return posted, deleted


def test_a_delete_before_its_post_deletes_the_story_when_the_post_comes(tmp_path: Path) -> None:
    posted, deleted = _events(timedelta(seconds=1))
    later = posted._replace(timestamp=deleted.timestamp + 2_000)  # fetched after the delete
    driver = _run(tmp_path, [[deleted], [later]])
    assert _story_state(driver.outputs) == [True, False]  # published, then tombstoned
    driver.close()


def test_a_delete_for_a_story_that_never_comes_is_dropped_and_counted(tmp_path: Path) -> None:
    _, deleted = _events(timedelta(seconds=1))
    driver = _run(tmp_path, [[deleted]])
    driver.advance(BASE + timedelta(minutes=2))  # past the 30 s window
    assert _story_state(driver.outputs) == []
    assert driver.metrics.rejected.value("unknown-story") == 1
    posted, _ = _events(timedelta(seconds=1))
    driver.pipe([posted._replace(timestamp=posted.timestamp + 180_000)])
    assert _story_state(driver.outputs) == [True]  # the dropped delete no longer applies
    driver.close()
