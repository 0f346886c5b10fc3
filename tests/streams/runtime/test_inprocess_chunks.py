"""The in-process driver applies records of one time together, on a timer boundary too: a
burst of posts in one millisecond is one batch, so each follower's tray is published once for
it, as the live engine publishes it once per batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from processors.context import Policy
from streams.runtime.inprocess import InProcessDriver
from streams.stages.topology import build_topology
from tests.streams.runtime.test_replay_equals_live import BASE, PARTITIONS, REGISTRY, _inputs

POSTS = 40


def _burst() -> list[Any]:
    follow = {"type": "user_followed", "follower_id": "bob", "followee_id": "ann",
              "at": BASE.isoformat()}  # fmt: skip
    posts = [
        {"type": "story_posted", "story_id": f"s{i}", "author_id": "ann",
         "created_at": BASE.replace(minute=1).isoformat()}
        for i in range(POSTS)
    ]  # fmt: skip
    return _inputs([follow, *posts])


@pytest.mark.parametrize("tick_ms", [1000, 60_000])
def test_records_of_one_time_on_a_timer_boundary_are_applied_together(
    tmp_path: Path, tick_ms: int
) -> None:
    records = _burst()
    assert records[-1].timestamp % tick_ms == 0  # the posts' time is a boundary
    driver = InProcessDriver(
        build_topology(REGISTRY, "app", PARTITIONS), REGISTRY, Policy(), tmp_path, tick_ms=tick_ms
    )
    applied: list[int] = []
    process = driver.driver.process

    def counted(partitions: Any, chunk: Any, now: Any, **kwargs: Any) -> set[int]:
        if chunk and not chunk[0].topic.startswith("app-"):  # inputs, not forwards
            applied.append(len(chunk))
        return process(partitions, chunk, now, **kwargs)

    driver.driver.process = counted  # type: ignore[method-assign]
    driver.pipe(records[:1])  # the follow, a minute before
    driver.pipe(records[1:])
    assert applied[-1] == POSTS  # every post of the burst in one chunk
    trays = [r for r, _ in driver.outputs if r.topic == "story-trays" and r.key == b"bob"]
    assert len(trays) == 1  # bob's tray published once, holding all of them
    driver.close()
