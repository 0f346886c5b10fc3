"""publish -> topics -> consume, on the real embedded broker, through the command line."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from schemas.events import parse_event
from schemas.types import millis
from streams.cli.consume import SETTLE_SECONDS
from streams.cli.main import main
from streams.client.producer import KeyedProducer
from streams.codecs.avro import AvroCodec
from streams.codecs.registry import make_registry
from streams.kafka.admin import _create, all_topics
from streams.kafka.partitioning import partition_for
from streams.publish.publisher import publish_stream, validate_line
from streams.settings import Settings
from streams.topics import STORY_STATE, TOPICS, output_topics
from tests.integration.cli import run

pytestmark = pytest.mark.integration


def _events(tag: str) -> list[tuple[dict[str, object], str, str]]:
    """One event of every type (JSON, expected topic, expected key), ids unique to `tag`."""
    s, a, u, m = f"s-{tag}", f"a-{tag}", f"u-{tag}", f"m-{tag}"
    t = "2026-11-22T10:00:00Z"
    rendition = {
        "name": "720",
        "url": "https://cdn.example/x.jpg",
        "width": 720,
        "height": 1280,
        "content_type": "image/jpeg",
    }
    return [
        (
            {
                "type": "story_posted",
                "story_id": s,
                "author_id": a,
                "created_at": t,
                "media_id": m,
                "audience": "close_friends",
                "mentions": [u],
                "hashtags": ["sun"],
            },
            "story-posted",
            s,
        ),
        (
            {"type": "story_viewed", "story_id": s, "viewer_id": u, "viewed_at": t},
            "story-viewed",
            s,
        ),
        (
            {
                "type": "story_reacted",
                "story_id": s,
                "user_id": u,
                "reaction": "🔥",
                "reacted_at": t,
                "text": "nice",
            },
            "story-reacted",
            s,
        ),
        (
            {
                "type": "highlight_added",
                "story_id": s,
                "author_id": a,
                "highlight_id": "h1",
                "at": t,
                "title": "Summer",
            },
            "story-highlights",
            s,
        ),
        (
            {
                "type": "highlight_removed",
                "story_id": s,
                "author_id": a,
                "highlight_id": "h1",
                "at": t,
            },
            "story-highlights",
            s,
        ),
        (
            {"type": "story_deleted", "story_id": s, "author_id": a, "deleted_at": t},
            "story-deleted",
            s,
        ),
        ({"type": "user_followed", "follower_id": u, "followee_id": a, "at": t}, "user-follows", a),
        (
            {"type": "user_unfollowed", "follower_id": u, "followee_id": a, "at": t},
            "user-follows",
            a,
        ),
        ({"type": "close_friend_added", "user_id": a, "friend_id": u, "at": t}, "user-follows", a),
        (
            {"type": "close_friend_removed", "user_id": a, "friend_id": u, "at": t},
            "user-follows",
            a,
        ),
        (
            {
                "type": "media_uploaded",
                "media_id": m,
                "author_id": a,
                "object_key": f"uploads/{m}",
                "content_type": "image/jpeg",
                "at": t,
                "size_bytes": 1234,
                "story_id": s,
            },
            "media-uploaded",
            m,
        ),
        (
            {
                "type": "media_transcoded",
                "media_id": m,
                "renditions": [rendition],
                "at": t,
                "duration_ms": 1500,
            },
            "media-transcoded",
            m,
        ),
    ]


def _consume(broker: str, topic: str, *flags: str) -> list[dict[str, object]]:
    result = run("consume", topic, "--from-beginning", "--until-idle", "1.5", *flags, broker=broker)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_every_event_type_round_trips_through_its_topic(settings: Settings, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    events = _events(tag)
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e, _, _ in events))
    result = run("publish", str(path), broker=settings.bootstrap())
    assert result.returncode == 0, result.stderr
    assert f"published {len(events)}, invalid 0" in result.stdout

    for topic in {topic for _, topic, _ in events}:
        validated = [
            (validate_line(json.dumps(e).encode(), 1), key) for e, t, key in events if t == topic
        ]
        # The record's timestamp is the event's time: replays and retention go by it.
        expected = [
            (key, event.model_dump(mode="json"), millis(event.occurred_at))  # type: ignore[union-attr]
            for event, key in validated
        ]
        got = [
            (r["key"], r["value"], r["timestamp"])
            for r in _consume(settings.bootstrap(), topic)
            if tag in str(r["key"])
        ]
        assert got == expected, topic


def test_invalid_lines_are_named_and_not_published(settings: Settings, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    good = {
        "type": "story_viewed",
        "story_id": f"s-{tag}",
        "viewer_id": "ok",
        "viewed_at": "2026-11-22T10:00:00Z",
    }
    lines = [
        json.dumps(good),
        json.dumps({**good, "viewer_id": "not ok"}),
        "{not json",
        "",
        json.dumps({**good, "viewer_id": "late", "viewed_at": "2026-11-22T10:00:00+02:00"}),
        json.dumps({**good, "viewer_id": "ok2"}),
    ]
    stdin = ("\n".join(lines) + "\n").encode()
    result = run("publish", "-", broker=settings.bootstrap(), stdin=stdin)
    assert result.returncode == 1
    assert "published 2, invalid 3" in result.stdout
    assert "line 2: viewer_id" in result.stderr
    assert "line 3: not valid JSON" in result.stderr
    assert "line 5: viewed_at" in result.stderr and "UTC" in result.stderr

    viewers = [
        r["value"]["viewer_id"]
        for r in _consume(settings.bootstrap(), "story-viewed")
        if r["key"] == f"s-{tag}"
    ]
    assert viewers == ["ok", "ok2"]

    again = run("publish", "-", "--skip-invalid", broker=settings.bootstrap(), stdin=stdin)
    assert again.returncode == 0 and "invalid 3" in again.stdout


def _hostile_mix(tag: str) -> tuple[list[str], dict[int, str], dict[str, list[str]]]:
    """Valid lines among hostile ones (issue 22, rows 5 and 6): the lines, the hostile ones'
    expected `line N: field` by number, and the ids each topic must hold."""
    t = "2026-11-22T10:00:00Z"
    view = {"type": "story_viewed", "story_id": f"s-{tag}", "viewed_at": t}
    post = {"type": "story_posted", "author_id": f"a-{tag}", "created_at": t}
    rendition = {"name": "720", "url": "https://cdn.example/x.jpg", "width": 720, "height": 1280,
                 "content_type": "image/jpeg"}  # fmt: skip
    upload = {"type": "media_uploaded", "author_id": f"a-{tag}", "object_key": "k",
              "content_type": "image/jpeg", "at": t}  # fmt: skip
    deep = '{"a":' * 1000 + "1" + "}" * 1000  # ~6 KB, nested 1,000 deep
    entries: list[tuple[str, str | None]] = [
        (json.dumps({**view, "viewer_id": "v1"}), None),
        (deep, "not valid JSON: nested too deep"),
        (json.dumps({**view, "viewer_id": "v2"}), None),
        (json.dumps({**view, "viewer_id": "v3"})[:-1] + ', "x": ' + deep + "}", "not valid JSON"),
        (json.dumps({**post, "story_id": f"p1-{tag}", "media": [{**rendition, "width": 2**31 - 1}]}), None),
        (json.dumps({**post, "story_id": f"p2-{tag}", "media": [{**rendition, "width": 2**31}]}), "media.0.width"),
        (json.dumps({**post, "story_id": f"p3-{tag}", "media": [{**rendition, "height": 2**70}]}), "media.0.height"),
        (json.dumps({**upload, "media_id": f"m1-{tag}", "size_bytes": 2**64}), "size_bytes"),
        (json.dumps({**upload, "media_id": f"m2-{tag}", "size_bytes": 2**63 - 1}), None),
        (json.dumps({**post, "story_id": f"p4-{tag}", "created_at": "9999-12-31T23:00:00Z"}), "expires_at"),
        (json.dumps({**view, "viewer_id": "v4"}), None),
    ]  # fmt: skip
    lines = [line for line, _ in entries]
    bad = {number: field for number, (_, field) in enumerate(entries, start=1) if field}
    kept = {
        "story-viewed": ["v1", "v2", "v4"],
        "story-posted": [f"p1-{tag}"],
        "media-uploaded": [f"m2-{tag}"],
    }
    return lines, bad, kept


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_hostile_lines_are_named_and_every_valid_line_is_published(
    settings: Settings, tmp_path: Path, source: str
) -> None:
    # given a file mixing valid lines with lines nested 1,000 deep and integers past Avro's
    tag = uuid.uuid4().hex[:8]
    lines, bad, kept = _hostile_mix(tag)
    text = "\n".join(lines) + "\n"
    path = tmp_path / "hostile.jsonl"
    path.write_text(text)
    # when the command publishes it (its worker processes for a file, blocks for stdin)
    if source == "file":
        result = run("publish", str(path), broker=settings.bootstrap())
    else:
        result = run("publish", "-", broker=settings.bootstrap(), stdin=text.encode())
    # then the summary is printed, each hostile line is named with its field, and exit is 1
    assert result.returncode == 1, result.stderr
    assert f"published {len(lines) - len(bad)}, invalid {len(bad)}" in result.stdout
    assert "Traceback" not in result.stderr
    reported = [line for line in result.stderr.splitlines() if line.startswith("invalid: ")]
    assert len(reported) == len(bad), result.stderr
    for report, (number, field) in zip(reported, sorted(bad.items()), strict=True):
        assert report.startswith(f"invalid: line {number}: {field}"), report
    # and every valid line is on its topic
    id_field = {
        "story-viewed": "viewer_id",
        "story-posted": "story_id",
        "media-uploaded": "media_id",
    }
    for topic, ids in kept.items():
        values = [r["value"] for r in _consume(settings.bootstrap(), topic) if tag in str(r["key"])]
        got = [value[id_field[topic]] for value in values]  # type: ignore[index]
        assert got == ids, topic
        if topic == "story-posted":  # an Avro int's largest value, as it was given
            assert values[0]["media"][0]["width"] == 2**31 - 1  # type: ignore[index]


@pytest.mark.parametrize("source", ["file", "pipe"])
def test_invalid_lines_in_later_blocks_keep_their_line_numbers(
    settings: Settings, tmp_path: Path, source: str
) -> None:
    # Each worker numbers the lines of its own block; publish adds the lines before it.
    tag = uuid.uuid4().hex[:8]
    bad_lines = {3, 250, 251, 599}
    lines = []
    for number in range(1, 601):
        view = {
            "type": "story_viewed",
            "story_id": f"s-{tag}",
            "viewer_id": "not ok" if number in bad_lines else f"u{number}",
            "viewed_at": "2026-11-22T10:00:00Z",
        }
        lines.append("" if number % 7 == 0 else json.dumps(view))
    path = tmp_path / "views.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with path.open("rb") as stream:
        piped = io.BufferedReader(io.BytesIO(stream.read())) if source == "pipe" else stream
        summary = publish_stream(piped, settings.bootstrap(), processes=2, block_bytes=700)
    assert [bad.line for bad in summary.invalid] == sorted(bad_lines)
    assert all("viewer_id" in str(bad) for bad in summary.invalid)
    assert summary.published == sum(1 for line in lines if line) - len(bad_lines)


def test_latest_per_key_hides_tombstoned_keys(settings: Settings) -> None:
    tag = uuid.uuid4().hex[:8]
    codec = AvroCodec(STORY_STATE.record, make_registry(None), STORY_STATE.subject)
    producer = Producer({"bootstrap.servers": settings.bootstrap()})
    state = {
        "story_id": "",
        "author_id": "a",
        "created_at": parse_event(
            {
                "type": "story_viewed",
                "story_id": "x",
                "viewer_id": "y",
                "viewed_at": "2026-11-22T10:00:00Z",
            }
        ).viewed_at,
        "audience": "public",
        "status": "active",
    }
    state["expires_at"] = state["created_at"]
    for key, status in [("keep", "processing"), ("gone", "active"), ("keep", "active")]:
        value = codec.encode({**state, "story_id": f"{key}-{tag}", "status": status})
        producer.produce(STORY_STATE.name, value, f"{key}-{tag}".encode())
    producer.produce(STORY_STATE.name, None, f"gone-{tag}".encode())
    producer.flush(10)

    latest = [
        r
        for r in _consume(settings.bootstrap(), "story-state", "--latest-per-key")
        if tag in str(r["key"])
    ]
    assert [(r["key"], r["value"]["status"]) for r in latest] == [(f"keep-{tag}", "active")]
    everything = [r for r in _consume(settings.bootstrap(), "story-state") if tag in str(r["key"])]
    per_key = {
        key: [r["value"] is None for r in everything if r["key"] == key]
        for key in (f"keep-{tag}", f"gone-{tag}")
    }
    assert per_key == {f"keep-{tag}": [False, False], f"gone-{tag}": [False, True]}


def test_topics_create_is_idempotent_and_sets_policies(settings: Settings) -> None:
    first = run("topics", "create", broker=settings.bootstrap())
    assert first.returncode == 0, first.stderr
    second = run("topics", "create", broker=settings.bootstrap())
    specs = all_topics(settings)  # the contract's and the workers' own
    assert [line.split("\t")[0] for line in second.stdout.splitlines()] == [s.name for s in specs]
    assert all(line.endswith("exists") for line in second.stdout.splitlines())

    admin = AdminClient({"bootstrap.servers": settings.bootstrap()})
    resources = [ConfigResource(ConfigResource.Type.TOPIC, spec.name) for spec in specs]
    for resource, future in admin.describe_configs(resources).items():
        configs = {k: v.value for k, v in future.result().items()}
        spec = next(s for s in specs if s.name == resource.name)
        assert configs["cleanup.policy"] == ("compact" if spec.compacted else "delete"), spec.name
        assert "retention.ms" in configs
    metadata = admin.list_topics(timeout=5).topics
    story_partitions = {len(metadata[s.name].partitions) for s in TOPICS if s.story_keyed}
    assert story_partitions == {settings.partitions}


def test_consume_rejects_unknown_topics(settings: Settings) -> None:
    result = run("consume", "no-such-topic", broker=settings.bootstrap())
    assert result.returncode != 0
    assert "unknown topic 'no-such-topic'" in result.stderr


def test_commands_without_a_broker_say_how_to_get_one(tmp_path: Path) -> None:
    result = run("publish", "-", broker="", stdin=b"", cwd=tmp_path)
    assert result.returncode != 0
    assert "STORYSTREAM_BROKER" in result.stderr


def test_published_records_keep_key_order_on_the_default_partitioner(
    settings: Settings, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    views = [
        {
            "type": "story_viewed",
            "story_id": f"s{i % 7}-{tag}",
            "viewer_id": f"u{i}",
            "viewed_at": f"2026-11-22T10:00:{i % 60:02d}.{i:03d}Z",
        }
        for i in range(300)
    ]
    path = tmp_path / "views.jsonl"
    path.write_text("".join(json.dumps(v) + "\n" for v in views))
    result = run("publish", str(path), broker=settings.bootstrap())
    assert result.returncode == 0, result.stderr

    got = [r for r in _consume(settings.bootstrap(), "story-viewed") if tag in str(r["key"])]
    assert len(got) == len(views)
    for record in got:
        assert record["partition"] == partition_for(str(record["key"]), settings.partitions)
    for key in {str(v["story_id"]) for v in views}:
        sent = [v["viewer_id"] for v in views if v["story_id"] == key]
        assert [r["value"]["viewer_id"] for r in got if r["key"] == key] == sent  # type: ignore[index]


def test_delivery_failures_are_reported_not_dropped() -> None:
    # nothing listens; publish's own mode: only failures are reported
    publisher = KeyedProducer("127.0.0.1:1", reports="failures", **{"delivery.timeout.ms": 300})
    publisher.produce_encoded(
        [("story-viewed", b"k1", b"v1", 1), ("story-viewed", b"k2", b"v2", 2)]
    )
    publisher.produce("story-viewed", b"k3", b"v3", 3)
    assert publisher.flush(10) == 0
    assert len(publisher.failed) == 3
    assert "key=b'k1'" in publisher.failed[0]


def test_publish_in_a_process_with_threads_reads_its_file_through_a_fork_server(
    settings: Settings, tmp_path: Path
) -> None:
    # With another thread running, the pool's workers start from a fork server, which does not
    # share the input file's descriptor: they must get the blocks' bytes instead of slices.
    tag = uuid.uuid4().hex[:8]
    path = tmp_path / "views.jsonl"
    lines = [
        {"type": "story_viewed", "story_id": f"fs-{tag}-{i % 7}", "viewer_id": f"u{i}",
         "viewed_at": "2026-11-22T10:00:00Z"}
        for i in range(3000)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with path.open("rb") as stream:
            summary = publish_stream(stream, settings.bootstrap(), processes=2, block_bytes=8192)
    finally:
        stop.set()
        other.join()
    assert (summary.published, summary.invalid, summary.failed) == (3000, [], [])


def test_publish_called_in_process_returns_its_exit_code(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # only the console script ends the process itself after publishing (a quick exit)
    path = tmp_path / "one.jsonl"
    story = f"inproc-{uuid.uuid4().hex[:8]}"
    line = {
        "type": "story_viewed",
        "story_id": story,
        "viewer_id": "u1",
        "viewed_at": "2026-11-22T10:00:00Z",
    }
    path.write_text(json.dumps(line) + "\n")
    code = main(["--broker", settings.bootstrap(), "publish", str(path)])
    assert code == 0
    assert "published 1" in capsys.readouterr().out


def test_workers_starting_together_may_both_create_the_prefixed_outputs(
    settings: Settings,
) -> None:
    # given a group writing under an output prefix whose topics nobody created yet
    prefixed = settings.model_copy(update={"output_prefix": f"race-{uuid.uuid4().hex[:6]}-"})
    admin = AdminClient({"bootstrap.servers": settings.bootstrap()})
    # when one worker lists the topics, another creates them meanwhile, then the first creates
    wanted = [
        NewTopic(spec.name, prefixed.partitions, 1, config=spec.config(3_600_000))
        for spec in output_topics(prefixed.output_prefix)
    ]
    created = _create(admin, wanted)
    raced = _create(admin, wanted)
    # then the second finds them there instead of failing
    assert created and all(r.created for r in created)
    assert [r.name for r in raced] == [r.name for r in created]
    assert not any(r.created for r in raced)


def test_consume_without_from_beginning_prints_only_new_records(
    settings: Settings, tmp_path: Path
) -> None:
    """Records already on the topic are not printed, even those after the end the embedded
    broker reports (the start of a partition's last produce batch plus one)."""
    tag = uuid.uuid4().hex[:8]

    def reactions(users: range, name: str) -> Path:
        path = tmp_path / f"{name}.jsonl"
        lines = [
            {"type": "story_reacted", "story_id": f"s{i % 3}-{tag}", "user_id": f"u{i}-{tag}",
             "reaction": "like", "reacted_at": "2026-11-22T10:00:00Z"}
            for i in users
        ]  # fmt: skip
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        return path

    old = run("publish", str(reactions(range(60), "old")), broker=settings.bootstrap())
    assert old.returncode == 0, old.stderr  # batches of many records per partition
    idle = str(SETTLE_SECONDS + 7)  # outlasts a round below
    consumer = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "consume", "story-reacted", "--until-idle", idle],
        env={**os.environ, "STORYSTREAM_BROKER": settings.bootstrap()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # New records come in rounds, from before the read has surely begun (a loaded machine
    # starts the command slowly) until well after: it prints those that came after it began.
    rounds: list[list[str]] = []
    try:
        time.sleep(SETTLE_SECONDS + 1)
        for number in range(6):
            users = range(100 + 2 * number, 102 + 2 * number)
            path = reactions(users, f"new{number}")
            new = run("publish", str(path), broker=settings.bootstrap())
            assert new.returncode == 0, new.stderr
            rounds.append([f"u{i}-{tag}" for i in users])
            time.sleep(1)
        out, err = consumer.communicate(timeout=60)
    finally:
        consumer.kill()
    assert consumer.returncode == 0, err
    printed = [json.loads(line)["value"]["user_id"] for line in out.splitlines()]
    assert len(printed) == len(set(printed)), printed
    first = next((n for n, users in enumerate(rounds) if set(users) & set(printed)), None)
    assert first is not None and first < len(rounds) - 1, f"the read began too late: {printed}"
    # Nothing already there (the old batch, earlier rounds); everything after the round that
    # was arriving as the read began.
    later = [user for users in rounds[first + 1 :] for user in users]
    assert set(printed) - set(rounds[first]) == set(later), (printed, rounds)
