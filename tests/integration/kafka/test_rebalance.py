"""Two workers on Apache Kafka, one SIGKILLed: the survivor takes its partitions over through a
real consumer-group rebalance (the dead member's session expiring), restores their state, and
its API answers for every user what both answered before; views after the kill are counted."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from streams.settings import Settings
from tests.integration.kafka.checks import Expected, wait_outcome
from tests.integration.test_fault_tolerance import _env, scenario
from tests.integration.workers import Worker, publish, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def _answers(worker: Worker, users: list[str], stories: list[str], author: dict[str, str]) -> Any:
    """Every user's tray and every story's view counts, as `worker`'s API answers them."""
    trays = {user: worker.get(f"/users/{user}/tray", user) for user in users}
    views = {story: worker.get(f"/stories/{story}/views", author[story]) for story in stories}
    return trays, views


def test_the_survivor_takes_over_and_answers_for_every_user(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    broker = kafka_settings.bootstrap()
    tag = uuid.uuid4().hex[:6]
    prefix = f"r-{tag}-"
    env = _env(broker, f"r-{tag}", prefix)
    workers = [Worker(tmp_path / f"w{i}", env) for i in range(2)]
    try:
        victim, survivor = workers

        def spread() -> list[int] | None:
            mine, theirs = victim.partitions(), survivor.partitions()
            return mine if mine and theirs and sorted(mine + theirs) == [0, 1, 2, 3] else None

        taken = wait_for(spread, 120, "the partitions spread over both workers")
        chunks = scenario(
            tag, chunks=4, authors=10, followers=60, stories=24, views=600, reactions=150
        )
        for chunk in chunks:
            publish(broker, chunk, env={"STORYSTREAM_STORY_TTL": "1h"})
        expected = Expected.of(chunks)
        assert wait_outcome(broker, prefix, tag, expected, 90) == expected
        events = [e for chunk in chunks for e in chunk]
        users = sorted({e["follower_id"] for e in events if e["type"] == "user_followed"})
        author = {e["story_id"]: e["author_id"] for e in events if e["type"] == "story_posted"}
        stories = sorted(author)
        before = _answers(survivor, users, stories, author)
        assert before == _answers(victim, users, stories, author)
        assert all(status == 200 for status, _ in before[0].values())
        assert sum(bool(body["entries"]) for _, body in before[0].values()) > len(users) // 2

        killed_at = time.monotonic()
        victim.kill()
        wait_for(lambda: survivor.partitions() == [0, 1, 2, 3], 90, "the survivor owns all")
        took_over = time.monotonic() - killed_at
        after = wait_for(
            lambda: (found := _answers(survivor, users, stories, author)) == before and found,
            60,
            "the survivor answering as both did",
        )
        answered = time.monotonic() - killed_at
        assert after == before
        # Processing goes on: views after the kill are counted, on the taken-over partitions
        # too.
        at = datetime.now(UTC)
        more = [
            {
                "type": "story_viewed",
                "story_id": story,
                "viewer_id": f"late-{tag}",
                "viewed_at": (at + timedelta(milliseconds=i)).isoformat().replace("+00:00", "Z"),
            }
            for i, story in enumerate(stories)
        ]
        publish(broker, more, env={"STORYSTREAM_STORY_TTL": "1h"})
        grown = Expected.of([*chunks, more])
        assert wait_outcome(broker, prefix, tag, grown, 90) == grown
        for story in stories:
            status, body = survivor.get(f"/stories/{story}/views", author[story])
            assert status == 200 and body["total_views"] == grown.total_views[story], story
        print(
            f"rebalance: partitions {taken} taken over {took_over:.1f}s after the SIGKILL, "
            f"all {len(users)} users' trays and {len(stories)} stories answered as before "
            f"{answered:.1f}s after it; {len(more)} later views counted"
        )
    finally:
        for worker in workers:
            worker.stop()
