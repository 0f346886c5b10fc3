"""Real media end to end: `storystream post` -> S3 -> worker (PyAV) -> story-state -> expiry.

One worker (its own app id, so its consumer groups and internal topics are its own) on the
session broker and a moto S3 server; stories live 8 s and are purged 4 s later.
"""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import blurhash
import pytest
from confluent_kafka import Producer
from PIL import Image

from connectors.s3_store import S3ObjectStore
from infra.process import free_port
from infra.s3 import EmbeddedS3
from processors.media import PUBLIC_PREFIXES, original_key
from streams.cli.consume import Decoded, read_topic
from streams.codecs.registry import make_registry
from streams.kafka.clients import producer_config
from streams.settings import Settings
from streams.topics import (
    DEAD_LETTERS,
    MEDIA_TRANSCODED,
    MEDIA_UPLOADED,
    STORY_POSTED,
    STORY_STATE,
    TopicSpec,
)
from tests.connectors.media_factory import make_image, make_video
from tests.integration import worker_fixture
from tests.integration.cli import run
from tests.integration.worker_fixture import StartWorker, http_get

pytestmark = pytest.mark.integration

embedded_s3 = worker_fixture.embedded_s3
start_worker = worker_fixture.start_worker

TAG = uuid.uuid4().hex[:8]
APP_ID = f"it-media-{TAG}"
BUCKET = f"it-media-{TAG}"
TTL_S, GRACE_S = 8, 4


def _s3_env(s3: EmbeddedS3, data_dir: Path) -> dict[str, str]:
    key_id, secret = s3.credentials
    return {
        "STORYSTREAM_S3_ENDPOINT_URL": s3.endpoint_url,
        "STORYSTREAM_S3_BUCKET": BUCKET,
        "STORYSTREAM_S3_ACCESS_KEY_ID": key_id,
        "STORYSTREAM_S3_SECRET_ACCESS_KEY": secret,
        "STORYSTREAM_STORY_TTL": f"{TTL_S}s",
        "STORYSTREAM_DATA_DIR": str(data_dir),
    }


def _bucket(s3: EmbeddedS3) -> S3ObjectStore:
    return S3ObjectStore(
        BUCKET,
        endpoint_url=s3.endpoint_url,
        region=s3.region,
        credentials=s3.credentials,
        create_bucket=True,
        public_prefixes=PUBLIC_PREFIXES,
    )


def _read(settings: Settings, spec: TopicSpec, keys: set[str], idle: float = 0.7) -> list[Decoded]:
    """Every record of `spec` under `keys`, from the beginning, in offset order per key."""
    records = read_topic(
        spec, settings.bootstrap(), make_registry(None), from_beginning=True, until_idle=idle
    )
    return [r for r in records if r.key in keys]


def _poll(what: str, check: Callable[[], Any], timeout: float, every: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def _post(settings: Settings, env: dict[str, str], *args: str) -> Any:
    return run("post", *args, broker=settings.bootstrap(), env=env, timeout=60)


def _objects_of(store: S3ObjectStore, media_id: str) -> list[str]:
    return store.list_keys(f"uploads/{media_id}/") + store.list_keys(f"media/{media_id}/")


def test_post_refuses_what_is_not_media(
    settings: Settings, embedded_s3: EmbeddedS3, tmp_path: Path
) -> None:
    env = _s3_env(embedded_s3, tmp_path)
    fake = tmp_path / "holiday.jpg"
    fake.write_bytes(os.urandom(4096))
    story_id, media_id = f"s-bad-{TAG}", f"m-bad-{TAG}"
    result = _post(
        settings, env, "--author", f"a-{TAG}", "--media", str(fake),
        "--story-id", story_id, "--media-id", media_id,
    )  # fmt: skip
    assert result.returncode != 0
    assert str(fake) in result.stderr
    assert "not a supported image or video (content not recognised)" in result.stderr
    assert result.stdout == ""

    missing = _post(settings, env, "--author", f"a-{TAG}", "--media", str(tmp_path / "nope.mp4"))
    assert missing.returncode != 0 and "nope.mp4: cannot read" in missing.stderr

    bad_author = _post(settings, env, "--author", "not an id!", "--media", str(fake))
    assert bad_author.returncode != 0 and "invalid author id" in bad_author.stderr

    assert _objects_of(_bucket(embedded_s3), media_id) == []
    assert _read(settings, STORY_POSTED, {story_id}) == []


def _history(settings: Settings, story_ids: set[str]) -> dict[str, list[dict[str, Any] | None]]:
    out: dict[str, list[dict[str, Any] | None]] = {s: [] for s in story_ids}
    for record in _read(settings, STORY_STATE, story_ids):
        assert record.key is not None
        out[record.key].append(record.value)
    return out


def _check_downloads(state: dict[str, Any], kind: str) -> None:
    renditions = state["renditions"]
    assert renditions, state
    for rendition in renditions:
        assert rendition["url"].startswith("http://"), rendition
    image = next(r for r in renditions if r["content_type"].startswith("image/"))
    status, body = http_get(image["url"])
    assert status == 200, image
    with Image.open(io.BytesIO(body)) as picture:
        assert picture.size == (image["width"], image["height"])
    if kind == "video":
        video = next(r for r in renditions if r["content_type"].startswith("video/"))
        status, body = http_get(video["url"])
        assert status == 200, video
        with av.open(io.BytesIO(body), "r") as container:
            frame = next(container.decode(video=0))
            assert (frame.width, frame.height) == (video["width"], video["height"])


def test_posted_media_is_transcoded_shown_and_purged(
    settings: Settings, embedded_s3: EmbeddedS3, start_worker: StartWorker, tmp_path: Path
) -> None:
    env = _s3_env(embedded_s3, tmp_path)
    worker = start_worker(
        tmp_path / "worker", app_id=APP_ID, expiry_grace=f"{GRACE_S}s",
        **{k: v for k, v in env.items() if k != "STORYSTREAM_DATA_DIR"},
    )  # fmt: skip
    store = _bucket(embedded_s3)
    author = f"a-{TAG}"

    # Garbage uploaded straight to the bucket (past the command's check), announced directly.
    bad_story, bad_media = f"s-junk-{TAG}", f"m-junk-{TAG}"
    pending_story = f"s-pending-{TAG}"
    store.put_bytes(original_key(bad_media), os.urandom(8192), "image/jpeg")
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    lines = [
        {"type": "media_uploaded", "media_id": bad_media, "author_id": author,
         "object_key": original_key(bad_media), "content_type": "image/jpeg", "at": now,
         "size_bytes": 8192, "story_id": bad_story},
        {"type": "story_posted", "story_id": bad_story, "author_id": author, "created_at": now,
         "media_id": bad_media, "media_type": "image"},
        # A public story whose media is never uploaded: it stays processing.
        {"type": "story_posted", "story_id": pending_story, "author_id": author,
         "created_at": now, "media_id": f"m-pending-{TAG}", "audience": "public"},
    ]  # fmt: skip
    events = tmp_path / "junk.jsonl"
    events.write_text("".join(json.dumps(line) + "\n" for line in lines))
    published = run("publish", str(events), broker=settings.bootstrap(), env=env)
    assert published.returncode == 0, published.stderr

    # The worker reports the bad media (this also shows its media service is consuming).
    transcoded = _poll(
        "media_transcoded with an error",
        lambda: _read(settings, MEDIA_TRANSCODED, {bad_media}),
        timeout=20,
    )
    assert transcoded[0].value["error"] and transcoded[0].value["renditions"] == []
    assert transcoded[0].value["blurhash"] is None
    letters = _poll("a dead letter", lambda: _read(settings, DEAD_LETTERS, {bad_media}), timeout=10)
    assert letters[0].value["source_topic"] == "media-uploaded"
    assert letters[0].value["error"] == transcoded[0].value["error"]
    # An undecodable upload record is dead-lettered too, and both are counted.
    garbage = f"m-garbage-{TAG}"
    producer = Producer(producer_config(settings.bootstrap()))
    producer.produce(MEDIA_UPLOADED.name, b"\x00not avro", garbage.encode())
    assert producer.flush(10) == 0
    letters = _poll("its dead letter", lambda: _read(settings, DEAD_LETTERS, {garbage}), timeout=20)
    assert letters[0].value["source_topic"] == "media-uploaded", letters
    assert letters[0].value["error"].startswith("undecodable"), letters
    _, metrics = http_get(f"{worker.url}/metrics")
    assert b'storystream_dead_letters_total{topic="media-uploaded"} 2' in metrics, metrics
    # A story waiting for its media is its author's to see (processing), no one else's, public
    # as it is, nor are its counts.
    status, body = _poll(
        "the pending story's state",
        lambda: (
            (answer := worker.get(f"/stories/{pending_story}", user=author))[0] == 200 and answer
        ),
        timeout=30,  # the worker processing the post: slower on a loaded machine
    )
    assert body["status"] == "processing", body
    for path in ("", "/views", "/reactions"):
        status, body = worker.get(f"/stories/{pending_story}{path}", user=f"u-other-{TAG}")
        assert status == 404, (path, status, body)

    # Real media through the command.
    photo = make_image(tmp_path / "photo.png", 800, 600, fmt="PNG")
    clip = make_video(tmp_path / "clip.mp4", 320, 240, seconds=2.0)
    posted: dict[str, dict[str, Any]] = {}
    for media_path, kind in ((photo, "image"), (clip, "video")):
        result = _post(settings, env, "--author", author, "--media", str(media_path),
                       "--audience", "public")  # fmt: skip
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        assert answer["media_type"] == kind
        posted[answer["story_id"]] = {"kind": kind, **answer}
    stories = set(posted)

    def all_active() -> dict[str, list[dict[str, Any] | None]] | None:
        history = _history(settings, stories | {bad_story})
        done = all(h and h[-1] and h[-1]["status"] == "active" for s, h in history.items()
                   if s in stories)  # fmt: skip
        return history if done else None

    history = _poll("both stories active", all_active, timeout=TTL_S - 1)
    # The API first: the stories live TTL_S seconds. Each answer has the state's blurhash.
    for story_id in stories:
        status, body = worker.get(f"/stories/{story_id}", user=author)
        assert status == 200 and body["status"] == "active", body
        assert body["blurhash"] and body["blurhash"] == history[story_id][-1]["blurhash"], body
    transcoded_ok = _read(settings, MEDIA_TRANSCODED, {i["media_id"] for i in posted.values()})
    for story_id, info in posted.items():
        states = history[story_id]
        assert states[0] is not None and states[0]["status"] == "processing", states
        assert states[0]["renditions"] == []
        active = states[-1]
        assert active is not None
        assert active["media_id"] == info["media_id"] and active["media_type"] == info["kind"]
        assert active["audience"] == "public" and active["author_id"] == author
        _check_downloads(active, info["kind"])
        assert store.list_keys(f"media/{info['media_id']}/")
        # A 4x3 blurhash of the image (the video's poster), as media_transcoded carried it.
        assert states[0]["blurhash"] is None
        assert active["blurhash"] and blurhash.components(active["blurhash"]) == (4, 3), active
        done = [d.value for d in transcoded_ok if d.key == info["media_id"]]
        assert [d["blurhash"] for d in done] == [active["blurhash"]], done

    # After TTL + grace: every story tombstoned on story-state, every object purged.
    media_ids = [info["media_id"] for info in posted.values()] + [bad_media]

    def all_gone() -> dict[str, list[dict[str, Any] | None]] | None:
        history = _history(settings, stories | {bad_story})
        if any(not h or h[-1] is not None for h in history.values()):
            return None
        return history if not any(_objects_of(store, m) for m in media_ids) else None

    history = _poll("expiry and purge", all_gone, timeout=TTL_S + GRACE_S + 15, every=1.0)
    junk = history[bad_story]
    assert all(state is None or state["status"] == "processing" for state in junk), junk


def test_post_without_an_object_store_says_what_to_set(settings: Settings, tmp_path: Path) -> None:
    # Outside a running dev's directory, with only STORYSTREAM_BROKER set (and no AWS keys).
    photo = make_image(tmp_path / "photo.jpg", 64, 48)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    no_aws = {
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
    }
    story_id = f"s-nostore-{TAG}"
    result = run("post", "--author", f"a-{TAG}", "--media", str(photo), "--story-id", story_id,
                 broker=settings.bootstrap(), env=no_aws, cwd=elsewhere, timeout=60)  # fmt: skip
    assert result.returncode == 1, result
    assert "Unable to locate credentials" not in result.stderr
    assert "STORYSTREAM_DATA_DIR" in result.stderr and str(elsewhere / "data") in result.stderr
    assert "STORYSTREAM_S3_ENDPOINT_URL" in result.stderr
    assert _read(settings, STORY_POSTED, {story_id}) == []


def test_post_wait_reports_failed_media_to_its_author_alone(
    settings: Settings, embedded_s3: EmbeddedS3, start_worker: StartWorker, tmp_path: Path
) -> None:
    env = _s3_env(embedded_s3, tmp_path) | {"STORYSTREAM_STORY_TTL": "10m"}
    worker = start_worker(
        tmp_path / "worker", app_id=f"{APP_ID}-wait",
        **{k: v for k, v in env.items() if k != "STORYSTREAM_DATA_DIR"},
    )  # fmt: skip
    author = f"a-wait-{TAG}"
    whole = make_image(tmp_path / "whole.jpg", 640, 480).read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(whole[: len(whole) // 2])
    wait = ("--wait", "--timeout", "60", "--api-url", worker.url)

    failed = _post(settings, env, "--author", author, "--media", str(truncated), *wait)
    assert failed.returncode == 1, failed
    assert "failed: corrupt image: image file is truncated" in failed.stderr, failed.stderr
    answer = json.loads(failed.stdout)
    assert answer["status"] == "failed" and "truncated" in answer["error"], answer
    story_id = answer["story_id"]
    # The author sees it failed, with the reason; everyone else, and its counts, 404.
    status, body = worker.get(f"/stories/{story_id}", user=author)
    assert status == 200, body
    assert (body["status"], body["error"], body["renditions"]) == ("failed", answer["error"], [])
    assert body["author_id"] == author and body["media_id"] == answer["media_id"]
    assert worker.get(f"/stories/{story_id}", user=f"u-other-{TAG}")[0] == 404
    assert worker.get(f"/stories/{story_id}/views", user=author)[0] == 404
    assert worker.get(f"/users/{author}/stories", user=author)[1] == {"stories": []}
    # Never on story-state as anything but processing (then its tombstone).
    assert [s and s["status"] for s in _history(settings, {story_id})[story_id]] == [
        "processing",
        None,
    ]

    good = _post(settings, env, "--author", author, "--media", str(tmp_path / "whole.jpg"), *wait)
    assert good.returncode == 0, good
    done = json.loads(good.stdout)
    assert done["status"] == "active"
    assert [(r["name"], r["width"]) for r in done["renditions"]] == [
        ("640", 640),
        ("480", 480),
        ("thumbnail", 150),
    ]

    nowhere = f"http://127.0.0.1:{free_port()}"
    late = _post(settings, env, "--author", author, "--media", str(tmp_path / "whole.jpg"),
                 "--wait", "--timeout", "2", "--api-url", nowhere)  # fmt: skip
    assert late.returncode == 3, late
    assert "no transcode result after 2 s" in late.stderr and "no answer" in late.stderr
    assert json.loads(late.stdout)["story_id"]  # it was posted: its ids are printed
