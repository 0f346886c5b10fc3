"""A worker that serves the HTTP API without the engine (`storystream worker --api-only`): it
takes writes, forwards reads to the worker owning the partition, and never joins the engine's
group, so requests and stream processing run in separate processes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from infra.s3 import EmbeddedS3
from streams.settings import Settings
from tests.integration import worker_fixture
from tests.integration.test_write_api import post_ready_story, s3_env
from tests.integration.worker_fixture import StartWorker
from tests.integration.workers import SECRET, wait_for
from tests.integration.write_client import call

pytestmark = pytest.mark.integration
embedded_s3 = worker_fixture.embedded_s3
start_worker = worker_fixture.start_worker


def test_an_api_only_worker_writes_and_reads_through_the_engine_worker(
    settings: Settings, embedded_s3: EmbeddedS3, start_worker: StartWorker, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    common = {"app_id": f"ao-{tag}", "api_secret": SECRET, **s3_env(embedded_s3, f"ao-{tag}")}
    engine = start_worker(tmp_path / "engine", **common)
    api = start_worker(tmp_path / "api", worker_engine="false", **common)
    everything = list(range(settings.partitions))
    wait_for(lambda: engine.get("/health")[1]["partitions"] == everything, 60, "the engine's group")
    assert api.get("/health") == (200, {"status": "ok", "partitions": []})

    story, author, viewer = f"s-{tag}", f"ann-{tag}", f"bob-{tag}"
    post_ready_story(settings, story, author)
    wait_for(lambda: api.get(f"/stories/{story}", author)[0] == 200, 30, "the story, forwarded")
    assert call(api, "POST", f"/stories/{story}/views", viewer).status == 202
    counted = wait_for(
        lambda: (v := call(api, "GET", f"/stories/{story}/views", author).body)["total_views"]
        == 1 and v,
        30,
        "the view counted by the engine worker, read through the API-only one",
    )  # fmt: skip
    assert counted == {"story_id": story, "unique_viewers": 1, "total_views": 1}
    # the API-only worker took no partition from the engine worker
    assert engine.get("/health")[1]["partitions"] == everything
    assert api.get("/health")[1]["partitions"] == []
