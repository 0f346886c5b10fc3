"""`storystream dev` keeps an archive: its workers run the archive connector into its object
store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.archive import ArchiveReader
from connectors.object_store import ObjectStoreError
from connectors.s3_store import S3ObjectStore
from infra.process import free_port

pytestmark = pytest.mark.integration


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("STORYSTREAM_")}


def test_dev_archives_the_input_topics(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = _clean_env() | {
        "STORYSTREAM_DATA_DIR": str(data_dir),
        "STORYSTREAM_API_PORT": str(free_port()),
        "STORYSTREAM_ARCHIVE_FLUSH_INTERVAL": "1s",
    }
    output = tmp_path / "dev.out"
    with open(output, "wb") as out:
        dev = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "dev", "--broker-port", str(free_port())],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while "ready: " not in output.read_text():
            assert dev.poll() is None and time.monotonic() < deadline, output.read_text()
            time.sleep(0.5)
        assert "archive: s3://storystream-media/archive/ (written by the workers)" in (
            output.read_text()
        )
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        lines = [
            {"type": "story_posted", "story_id": "s1", "author_id": "ann", "created_at": now},
            {"type": "story_viewed", "story_id": "s1", "viewer_id": "bob", "viewed_at": now},
        ]
        published = subprocess.run(
            [sys.executable, "-m", "streams.cli", "publish", "-"],
            input="".join(json.dumps(line) + "\n" for line in lines),
            capture_output=True,
            text=True,
            env=_clean_env() | {"STORYSTREAM_DATA_DIR": str(data_dir)},
            timeout=60,
        )
        assert published.returncode == 0, published.stderr
        state = json.loads((data_dir / "dev.json").read_text())
        reader = ArchiveReader(
            S3ObjectStore(
                "storystream-media",
                endpoint_url=state["s3_endpoint_url"],
                credentials=(state["s3_credentials"][0], state["s3_credentials"][1]),
            )
        )

        def archived(topic: str) -> list[bytes | None]:
            try:
                files = reader.files(topic)
            except ObjectStoreError:  # no bucket until the workers first write to it
                return []
            return [r.key for partition in files.values() for r in reader.records(partition)]

        deadline = time.monotonic() + 60
        while not (archived("story-posted") and archived("story-viewed")):
            assert dev.poll() is None and time.monotonic() < deadline, "nothing archived"
            time.sleep(0.5)
        assert archived("story-posted") == [b"s1"]
        assert archived("story-viewed") == [b"s1"]
    finally:
        os.killpg(dev.pid, signal.SIGINT)
        try:
            dev.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait()
    assert dev.returncode == 0, output.read_text()
