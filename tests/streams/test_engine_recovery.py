"""The engine on the real broker: state survives a restart from the changelog alone (local
RocksDB wiped) or from local RocksDB plus the changelog's tail, with nothing applied twice."""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from streams.codecs.registry import EmbeddedRegistry
from streams.kafka.admin import create_topics
from streams.kafka.partitioning import partition_for
from streams.publish.publisher import publish_lines
from streams.runtime.durability import _Base
from streams.runtime.engine import Engine
from streams.runtime.metrics import Metrics
from streams.runtime.restore import Restorer
from streams.runtime.store import PartitionStore
from streams.settings import Settings
from streams.stages.topology import build_topology
from streams.stages.viewer_list import page_bounds, read_page
from streams.stages.views import view_state
from streams.topics import internal_topics
from streams.worker.build import build_engine

pytestmark = pytest.mark.integration


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _posted(story: str, author: str, at: datetime) -> dict[str, object]:
    return {"type": "story_posted", "story_id": story, "author_id": author, "created_at": _iso(at)}


def _viewed(story: str, viewer: str, at: datetime) -> dict[str, object]:
    return {"type": "story_viewed", "story_id": story, "viewer_id": viewer, "viewed_at": _iso(at)}


def _publish(settings: Settings, events: list[dict[str, object]]) -> None:
    lines = iter([(i + 1, json.dumps(e).encode()) for i, e in enumerate(events)])
    assert publish_lines(lines, settings.bootstrap()).published == len(events)


def _restorer(settings: Settings, state_dir: Path) -> Restorer:
    topology = build_topology(EmbeddedRegistry(), settings.app_id, settings.partitions)
    group = f"{settings.app_id}-engine"
    return Restorer(settings.bootstrap(), group, topology, state_dir, Metrics())


class Running:
    def __init__(self, settings: Settings, state_dir: Path) -> None:
        self.engine: Engine = build_engine(
            settings, lambda: datetime.now(UTC), "w", state_dir=state_dir
        )
        self.thread = threading.Thread(target=self.engine.run, daemon=True)
        self.thread.start()

    def wait(self, check: Callable[[], bool], seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while not check():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.05)

    def stop(self) -> None:
        self.engine.stop()
        self.thread.join(60)


@pytest.fixture
def app(settings: Settings) -> Settings:
    isolated = settings.model_copy(update={"app_id": f"recovery-{uuid.uuid4().hex[:6]}"})
    create_topics(isolated, internal_topics(isolated.app_id))
    return isolated


@pytest.mark.parametrize("wipe_local_state", [True, False])
def test_restart_restores_state_without_double_counting(
    app: Settings, tmp_path: Path, wipe_local_state: bool
) -> None:
    tag = uuid.uuid4().hex[:6]
    story = f"s-{tag}"
    now = datetime.now(UTC).replace(microsecond=0)
    _publish(
        app,
        [_posted(story, f"a-{tag}", now)],
    )
    views = [_viewed(story, f"v{i % 30}", now + timedelta(seconds=i)) for i in range(60)]
    _publish(app, views[:40])
    partition = partition_for(story, app.partitions)

    def total(engine: Engine) -> int:
        store = engine.store(partition)
        state = view_state(store, story) if store else None
        return state.total_views if state else 0

    first = Running(app, tmp_path / "state")
    first.wait(lambda: total(first.engine) == 40)
    first.stop()
    if wipe_local_state:
        shutil.rmtree(tmp_path / "state")
    _publish(app, views[40:])

    second = Running(app, tmp_path / "state")
    try:
        second.wait(lambda: total(second.engine) == 60)
        time.sleep(1.0)  # anything redelivered would land now
        assert total(second.engine) == 60
        store = second.engine.store(partition)
        assert store is not None
        start, prefix = page_bounds(story, None)
        page = read_page((k for k, _ in store.scan_committed(prefix, start)), prefix, 100)
        assert sorted(v for v, _ in page.viewers) == sorted(f"v{i}" for i in range(30))
        state = view_state(store, story)
        assert state is not None and state.unique_viewers == 30
    finally:
        second.stop()


def test_views_before_their_post_are_held_then_applied(app: Settings, tmp_path: Path) -> None:
    """Topics are fetched independently: a view may be read before its story's post."""
    tag = uuid.uuid4().hex[:6]
    story = f"early-{tag}"
    now = datetime.now(UTC).replace(microsecond=0)
    partition = partition_for(story, app.partitions)
    running = Running(app, tmp_path / "state")
    try:
        running.wait(lambda: running.engine.store(partition) is not None)
        _publish(
            app,
            [_viewed(story, f"v{i}", now + timedelta(seconds=1)) for i in range(5)],
        )
        running.wait(lambda: running.engine.metrics.processed.value("story-viewed") >= 5)
        _publish(
            app,
            [_posted(story, f"a-{tag}", now)],
        )

        def total() -> int:
            store = running.engine.store(partition)
            state = view_state(store, story) if store else None
            return state.total_views if state else 0

        running.wait(lambda: total() == 5, 30)
    finally:
        running.stop()


@pytest.mark.parametrize("standby", [True, False])
def test_a_standby_replica_leaves_only_the_changelog_tail_to_replay(
    app: Settings, tmp_path: Path, standby: bool
) -> None:
    """Two engines in one group; the survivor takes the other's partitions over. With standby
    replicas it has kept them current and replays nothing; without, it replays them whole."""
    settings = app.model_copy(
        update={"standby_interval": timedelta(seconds=0.5) if standby else None}
    )
    tag = uuid.uuid4().hex[:6]
    stories: dict[int, str] = {}
    for i in range(1000):
        stories.setdefault(partition_for(f"sb-{tag}-{i}", app.partitions), f"sb-{tag}-{i}")
        if len(stories) == app.partitions:
            break
    now = datetime.now(UTC).replace(microsecond=0)

    def total(engine: Engine, partition: int) -> int:
        store = engine.store(partition)
        state = view_state(store, stories[partition]) if store else None
        return state.total_views if state else 0

    first = Running(settings, tmp_path / "first")
    second: Running | None = None
    try:
        first.wait(lambda: len(first.engine.assigned_partitions) == app.partitions)
        second = Running(settings, tmp_path / "second")
        survivor = second
        first.wait(
            lambda: (
                bool(survivor.engine.assigned_partitions)
                and len(first.engine.assigned_partitions | survivor.engine.assigned_partitions)
                == app.partitions
                and not first.engine.assigned_partitions & survivor.engine.assigned_partitions
            )
        )
        events: list[dict[str, object]] = []
        for story in stories.values():
            events.append(_posted(story, f"a-{tag}", now))
            events += [_viewed(story, f"v{i}", now + timedelta(seconds=1)) for i in range(20)]
        _publish(settings, events)
        taken_over = sorted(first.engine.assigned_partitions)
        first.wait(lambda: all(total(first.engine, p) == 20 for p in taken_over))
        if standby:  # two catch-ups that started after the state was final
            caught_up = survivor.engine.metrics.standby_caught_up
            marks = {p: caught_up.value(str(p)) for p in taken_over}
            first.wait(lambda: all(caught_up.value(str(p)) >= marks[p] + 2 for p in taken_over))
        replayed = survivor.engine.metrics.restored_records
        before = {p: replayed.value(str(p)) for p in taken_over}
        first.stop()
        survivor.wait(lambda: len(survivor.engine.assigned_partitions) == app.partitions)
        survivor.wait(lambda: all(total(survivor.engine, p) == 20 for p in stories))
        replayed_now = {p: replayed.value(str(p)) - before[p] for p in taken_over}
        if standby:
            assert replayed_now == {p: 0 for p in taken_over}
        else:
            assert all(count > 0 for count in replayed_now.values()), replayed_now
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_a_cold_standby_is_caught_up_a_checkpoint_at_a_time(app: Settings, tmp_path: Path) -> None:
    """A standby turn stops at the first checkpoint after its time (here: none at all), so a
    replica with the whole changelog to replay never holds the engine thread long; the turns
    resume where the last one stopped and end with the state a full restore gives."""
    tag = uuid.uuid4().hex[:6]
    story = f"cold-{tag}"
    partition = partition_for(story, app.partitions)
    now = datetime.now(UTC).replace(microsecond=0)
    running = Running(app, tmp_path / "owner")
    try:
        running.wait(lambda: running.engine.store(partition) is not None)
        _publish(
            app,
            [_posted(story, f"a-{tag}", now)],
        )
        for round_ in range(4):  # one batch (and checkpoint) at a time
            _publish(
                app,
                [_viewed(story, f"v{round_}-{i}", now + timedelta(seconds=1)) for i in range(5)],
            )
            running.wait(
                lambda n=round_: (
                    running.engine.metrics.processed.value("story-viewed") >= 5 * (n + 1)
                )
            )
            time.sleep(0.3)  # committed: the next round is a batch of its own
    finally:
        running.stop()

    cold = _restorer(app, tmp_path / "cold")
    turns = 0
    while True:
        turns += 1
        standby, caught_up_now = cold.restore(partition, standby_turn=0.0)
        standby.store.close()
        if caught_up_now:
            break
        assert turns < 100
    assert turns >= 4  # a checkpoint a turn: the post's batch and the four rounds'
    restored, _ = _restorer(app, tmp_path / "full").restore(partition)
    caught_up, _ = cold.restore(partition)  # nothing left to replay
    try:
        for assigned in (restored, caught_up):
            state = view_state(assigned.store, story)
            assert state is not None and state.total_views == 20
        assert caught_up.applied == restored.applied
    finally:
        restored.store.close()
        caught_up.store.close()


def _three_views_committed(app: Settings, state_dir: Path) -> tuple[str, int]:
    """A new story and three views of it, applied and committed by an engine on `state_dir`
    (stopped since); the story and its partition."""
    tag = uuid.uuid4().hex[:6]
    story = f"s-{tag}"
    now = datetime.now(UTC).replace(microsecond=0)
    _publish(app, [_posted(story, f"a-{tag}", now)])
    _publish(app, [_viewed(story, f"v{i}", now) for i in range(3)])
    running = Running(app, state_dir)
    try:
        running.wait(lambda: running.engine.metrics.processed.value("story-viewed") >= 3)
        time.sleep(0.5)  # committed
    finally:
        running.stop()
    return story, partition_for(story, app.partitions)


@pytest.mark.parametrize("age_hours", [1, 30])
def test_local_state_older_than_the_changelogs_tombstones_is_rebuilt(
    app: Settings, tmp_path: Path, age_hours: int
) -> None:
    """Compaction may drop a tombstone a day (delete.retention.ms) after it was written: local
    state older than that cannot replay the changelog's tail (a key deleted since would live
    on), so it is rebuilt from the whole changelog; recent local state replays the tail."""
    story, partition = _three_views_committed(app, tmp_path / "state")
    # given local state holding a key the changelog no longer has (its tombstone compacted
    # away), written `age_hours` ago
    local = PartitionStore(tmp_path / "state" / f"p{partition}")
    checkpoint = json.loads(local.checkpoint or b"{}")
    checkpoint["written_at"] = int(time.time() * 1000) - age_hours * 3_600_000
    local.put(b"zz-deleted-since", b"x")
    local.flush(json.dumps(checkpoint).encode())
    local.close()
    # when the partition is restored
    assigned, _ = _restorer(app, tmp_path / "state").restore(partition)
    try:
        # then stale local state was rebuilt, recent one kept, and the views are all there
        assert (assigned.store.get(b"zz-deleted-since") is None) == (age_hours > 23)
        state = view_state(assigned.store, story)
        assert state is not None and state.total_views == 3
    finally:
        assigned.store.close()


@pytest.mark.parametrize("position", [None, -1])
def test_local_state_that_knows_no_changelog_position_is_rebuilt(
    app: Settings, tmp_path: Path, position: int | None
) -> None:
    """A checkpoint delivered without an offset (the idempotent producer's retry of a batch
    the broker had written, after an outage) leaves the local state with no position in the
    changelog: the partition is rebuilt from the changelog, not restored from a guess."""
    story, partition = _three_views_committed(app, tmp_path / "state")
    local = PartitionStore(tmp_path / "state" / f"p{partition}")
    checkpoint = json.loads(local.checkpoint or b"{}")
    checkpoint["changelog_offset"] = position
    local.put(b"zz-not-in-the-changelog", b"x")
    local.flush(json.dumps(checkpoint).encode())
    local.close()
    assigned, _ = _restorer(app, tmp_path / "state").restore(partition)
    try:
        assert assigned.store.get(b"zz-not-in-the-changelog") is None  # rebuilt
        state = view_state(assigned.store, story)
        assert state is not None and state.total_views == 3
    finally:
        assigned.store.close()


def test_a_checkpoint_delivered_without_an_offset_leaves_no_position() -> None:
    class Delivered:  # what a delivery report gives: a partition, an offset or None
        def __init__(self, partition: int, offset: int | None) -> None:
            self._partition, self._offset = partition, offset

        def partition(self) -> int:
            return self._partition

        def offset(self) -> int | None:
            return self._offset

    base = _Base("changelog", threading.Event())
    base._checkpointed(None, Delivered(2, 41))  # type: ignore[arg-type]
    assert base._checkpoint_offsets == {2: 41}
    base._checkpointed(None, Delivered(2, None))  # type: ignore[arg-type]
    assert base._checkpoint_offsets == {}  # not the older 41: the local state claims nothing
