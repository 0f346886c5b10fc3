"""`storystream export` on the real embedded broker: the events of a range and a replay's output
tables as Parquet, opened by pyarrow and by DuckDB running the README's own example (views per
hour per author; unique viewers per author from the DataSketches sketches), checked against
known input."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from streams.replay import replay
from streams.settings import Settings
from tests.integration.archive_data import own_broker
from tests.integration.cli import run
from tests.integration.workers import publish

BASE = datetime(2032, 5, 6, 10, tzinfo=UTC)
README = Path(__file__).parents[2] / "README.md"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """This module's own broker (see tests.integration.archive_data)."""
    yield from own_broker(tmp_path_factory)


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _events(tag: str) -> list[dict[str, Any]]:
    """a1 posts s1 and s2, a2 posts s3; views over three hours (v1 views s1 twice)."""
    media = [{"name": "720", "url": "https://cdn.example/x.jpg", "width": 720, "height": 1280,
              "content_type": "image/jpeg"}]  # fmt: skip
    events: list[dict[str, Any]] = [
        {"type": "story_posted", "story_id": f"s{n}-{tag}", "author_id": f"{author}-{tag}",
         "created_at": _iso(BASE + timedelta(minutes=5 * n)), "media": media}
        for n, author in ((1, "a1"), (2, "a1"), (3, "a2"))
    ]  # fmt: skip
    views = {  # hour -> (story, viewers)
        0: [(1, [1, 2, 3, 4]), (3, [1])],
        1: [(1, [1]), (2, [3, 4, 5, 6]), (3, [2, 3])],
        2: [(2, [7])],
    }
    for hour, stories in views.items():
        for story, viewers in stories:
            for n, viewer in enumerate(viewers):
                at = BASE + timedelta(hours=hour, minutes=20 + n)
                events.append({"type": "story_viewed", "story_id": f"s{story}-{tag}",
                               "viewer_id": f"v{viewer}-{tag}", "viewed_at": _iso(at)})  # fmt: skip
    return events


def _readme_example() -> str:
    """The Python block after the README's DuckDB marker."""
    text = README.read_text()
    found = re.search(r"<!-- duckdb example -->\s*```python\n(.*?)```", text, re.S)
    assert found, "README: no ```python block after <!-- duckdb example -->"
    return found[1]


def test_events_and_tables_as_parquet_and_the_readmes_duckdb_query(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = uuid.uuid4().hex[:8]
    broker = settings.bootstrap()
    publish(broker, _events(tag))
    prefix = f"export-{tag}-"
    applied = replay(settings, prefix, BASE, BASE + timedelta(hours=3))
    assert applied.records == 3 + 13

    out = tmp_path / "export"
    env = {"STORYSTREAM_PARTITIONS": str(settings.partitions)}
    window = ["--from", _iso(BASE), "--to", _iso(BASE + timedelta(hours=3))]
    events = run("export", "--events", *window, "--out", str(out), broker=broker, env=env)
    assert events.returncode == 0, events.stderr
    tables = run(
        "export", "--tables", "--output-prefix", prefix, "--out", str(out), broker=broker, env=env
    )
    assert tables.returncode == 0, tables.stderr
    assert f"{out}/tables/story-view-counts.parquet\t3 rows" in tables.stdout

    viewed = pq.read_table(out / "events" / "story-viewed.parquet").to_pylist()
    assert len(viewed) == 13
    assert {row["kafka_key"] for row in viewed} == {f"s{n}-{tag}" for n in (1, 2, 3)}
    assert all(row["viewed_at"] == row["kafka_timestamp"] for row in viewed)
    assert pq.read_table(out / "events" / "media-uploaded.parquet").num_rows == 0
    counts = pq.read_table(out / "tables" / "story-view-counts.parquet").to_pylist()
    assert sorted((r["story_id"], r["total_views"]) for r in counts) == [
        (f"s1-{tag}", 5),
        (f"s2-{tag}", 5),
        (f"s3-{tag}", 3),
    ]
    reactions = pq.read_table(out / "tables" / "story-reaction-counts.parquet")
    assert reactions.num_rows == 0 and "counts" in reactions.column_names

    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(compile(_readme_example(), "README.md", "exec"), namespace)

    def hour(h: int) -> datetime:
        return BASE + timedelta(hours=h)

    assert namespace["views_per_hour"] == [
        (f"a1-{tag}", hour(0), 4),
        (f"a1-{tag}", hour(1), 5),
        (f"a1-{tag}", hour(2), 1),
        (f"a2-{tag}", hour(0), 1),
        (f"a2-{tag}", hour(1), 2),
    ]
    # a1: v1-v4 on s1, v3-v7 on s2: 7 distinct of 10 views; a2: v1-v3 on s3.
    assert namespace["unique_viewers"] == [(f"a1-{tag}", 2, 10, 7.0), (f"a2-{tag}", 1, 3, 3.0)]
    print(namespace["views_per_hour"], namespace["unique_viewers"], sep="\n")
