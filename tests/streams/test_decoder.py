"""Every input topic's decoder turns hostile bytes into a dead letter with its reason, alone:
the valid records around it are decoded."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from processors.views import View
from schemas.events import EVENT_TYPES, Event, parse_event
from streams.codecs.avro import AvroCodec
from streams.codecs.binary import varint
from streams.codecs.registry import EmbeddedRegistry
from streams.codecs.view_slicer import view_reader
from streams.runtime.records import InRecord
from streams.stages.common import Decoder
from streams.stages.views import check_view
from streams.topics import EVENT_ROUTES, TopicSpec

REGISTRY = EmbeddedRegistry()
AT = "2026-11-22T10:00:00Z"
RENDITION = {"name": "720", "url": "https://x/y", "width": 720, "height": 1280, "content_type": "image/jpeg"}  # fmt: skip
# One valid event of each type, with every optional field, as its JSON line.
SAMPLES: dict[str, dict[str, Any]] = {
    "story_posted": {"story_id": "s1", "author_id": "a1", "created_at": AT, "media_id": "m1",
                     "media": [RENDITION], "media_type": "image", "audience": "public",
                     "mentions": ["u1"], "hashtags": ["sun"], "location": "here"},
    "story_viewed": {"story_id": "s1", "viewer_id": "u1", "viewed_at": AT},
    "story_reacted": {"story_id": "s1", "user_id": "u1", "reaction": "🔥", "reacted_at": AT,
                      "text": "nice"},
    "highlight_added": {"story_id": "s1", "author_id": "a1", "highlight_id": "h1", "at": AT,
                        "title": "t"},
    "story_deleted": {"story_id": "s1", "author_id": "a1", "deleted_at": AT},
    "user_followed": {"follower_id": "u1", "followee_id": "a1", "at": AT},
    "close_friend_added": {"user_id": "a1", "friend_id": "u1", "at": AT},
    "media_uploaded": {"media_id": "m1", "author_id": "a1", "object_key": "k",
                       "content_type": "image/jpeg", "at": AT, "size_bytes": 5, "story_id": "s1"},
    "media_transcoded": {"media_id": "m1", "renditions": [RENDITION], "at": AT,
                         "duration_ms": 1500, "error": None},
}  # fmt: skip


# The key of every sample, by topic: its key field's value (a record keyed otherwise is refused).
SAMPLE_KEYS = {"user-follows": b"a1", "media-uploaded": b"m1", "media-transcoded": b"m1"}


def sample(kind: str, **changes: Any) -> Event:
    return parse_event({"type": kind, **SAMPLES[kind], **changes})


def input_topics() -> dict[str, TopicSpec]:
    """Every topic an input event goes to, by name."""
    return {spec.name: spec for spec, _ in EVENT_ROUTES.values()}


def decoder(spec: TopicSpec) -> Decoder:
    """The topic's decoder as its handler builds it (the views one with its fast path)."""
    if spec.record == "StoryViewed":
        return Decoder(spec, REGISTRY, fast=(view_reader, check_view))
    return Decoder(spec, REGISTRY)


class Letters:
    """A partition context that only collects dead letters."""

    def __init__(self) -> None:
        self.letters: list[tuple[int, str]] = []

    def dead_letter(self, record: InRecord, reason: str) -> None:
        self.letters.append((record.offset, reason))


def record_key(topic: str, value: dict[str, Any]) -> bytes:
    """The key a producer gives a record of `topic` with this (decoded) value."""
    if topic == "user-follows":
        followed = value["type"] in ("user_followed", "user_unfollowed")
        return str(value["followee_id" if followed else "user_id"]).encode()
    return str(value["media_id" if topic.startswith("media-") else "story_id"]).encode()


def decode_all(
    spec: TopicSpec,
    values: list[bytes | None],
    dec: Decoder | None = None,
    key: bytes | None = None,
) -> tuple[list[Any], Letters]:
    """The topic's records, keyed `key` (default: the samples' key), decoded as its handler
    decodes them (by `dec`, or a new decoder): (decoded, dead letters)."""
    key = key or SAMPLE_KEYS.get(spec.name, b"s1")
    records = [InRecord(spec.name, 0, i, key, value, 0) for i, value in enumerate(values)]
    pctx = Letters()
    dec = dec or decoder(spec)
    if spec.record == "StoryViewed":
        return dec.values(pctx, records), pctx  # type: ignore[arg-type]
    return [model for _, model in dec.models(pctx, records)], pctx  # type: ignore[arg-type]


def test_a_view_of_a_time_past_any_datetime_is_dead_lettered_alone() -> None:
    # the record of the report: viewed_at -2**62 ms, between valid views
    spec = input_topics()["story-viewed"]
    codec = AvroCodec(spec.record, REGISTRY, spec.subject)
    valid = [codec.encode(sample("story_viewed", viewer_id=f"u{i}")) for i in range(4)]
    fields = {**sample("story_viewed").__dict__, "viewer_id": "bad", "viewed_at": 0}
    hostile = codec.encode(fields)[:-1] + varint(-(2**62))
    views, pctx = decode_all(spec, [valid[0], valid[1], hostile, valid[2], valid[3]])
    assert [view.viewer_id for view in views] == ["u0", "u1", "u2", "u3"]
    assert all(type(view) is View and type(view.viewed_at) is int for view in views)
    assert pctx.letters == [
        (2, "StoryViewed: undecodable Avro: ValueError('viewed_at: -4611686018427387904 ms is "
            "outside years 1-9999')")
    ]  # fmt: skip


def _other_header(spec: TopicSpec) -> bytes:
    """The header of another record's schema id (a record of the wrong type)."""
    other = "StoryDeleted" if spec.record != "StoryDeleted" else "StoryViewed"
    return AvroCodec(other, REGISTRY, f"{other}-value").header


Mangle = Callable[[TopicSpec, bytes], bytes | None]
# (how the valid record is mangled, a word of the reason) for every topic
HOSTILE: list[tuple[str, Mangle, str]] = [
    ("null value", lambda spec, data: None, "too short"),
    ("empty", lambda spec, data: b"", "too short"),
    ("header only", lambda spec, data: data[:5], "undecodable"),
    ("wrong magic byte", lambda spec, data: b"\x01" + data[1:], "magic byte"),
    ("unknown schema id", lambda spec, data: b"\x00\x00\x00\x03\xe7" + data[5:], "unknown schema id 999"),
    ("another record's schema id", lambda spec, data: _other_header(spec) + data[5:], "undecodable"),
    ("truncated", lambda spec, data: data[:-1], "undecodable"),
    ("cut in half", lambda spec, data: data[: len(data) // 2], "undecodable"),
    ("trailing bytes", lambda spec, data: data + b"\x00", "trailing"),
    ("trailing garbage", lambda spec, data: data + b"\xff" * 40, "trailing"),
    ("invalid UTF-8", lambda spec, data: data[:5] + b"\x04\xff\xfe" + data[8:], "UnicodeDecodeError"),
    ("huge string length", lambda spec, data: data[:5] + varint(2**62) + data[6:], "overrun"),
    ("negative string length", lambda spec, data: data[:5] + varint(-5) + data[6:], "overrun"),
    ("overlong varint", lambda spec, data: data[:5] + b"\xff" * 100_000, "over 10 bytes"),
    ("bad enum index", lambda spec, data: data[:8] + b"\x7f" + data[9:], "enum index -64"),
]  # fmt: skip


@pytest.mark.parametrize("topic", sorted(input_topics()))
@pytest.mark.parametrize(("case", "mangle", "reason"), HOSTILE, ids=[c for c, _, _ in HOSTILE])
def test_hostile_bytes_on_every_input_topic_are_dead_lettered_with_a_reason(
    topic: str, case: str, mangle: Mangle, reason: str
) -> None:
    spec = input_topics()[topic]
    codec = AvroCodec(spec.record, REGISTRY, spec.subject)
    kind = next(tag for model, (s, _) in EVENT_ROUTES.items() if s == spec
                for tag in model.model_fields["type"].annotation.__args__)  # type: ignore[union-attr]  # fmt: skip
    valid = codec.encode(sample(kind, event_id="e1"))  # a two-byte event id: offsets known
    assert valid[5:8] == b"\x04e1"
    decoded, pctx = decode_all(spec, [valid, mangle(spec, valid), valid])
    assert len(decoded) == 2
    assert [offset for offset, _ in pctx.letters] == [1]
    assert reason in pctx.letters[0][1], pctx.letters[0][1]
    assert pctx.letters[0][1].startswith(f"{spec.record}: ")


TIMES = [
    (-(2**62), "outside years 1-9999"),
    (-(2**63), "outside years 1-9999"),
    (2**63 - 1, "outside years 1-9999"),
    (253402300800000, "outside years 1-9999"),  # 10000-01-01
    (-62135596800001, "outside years 1-9999"),  # a millisecond before 0001-01-01
]


@pytest.mark.parametrize("topic", sorted(input_topics()))
@pytest.mark.parametrize(("ms", "reason"), TIMES)
def test_every_time_of_every_input_topic_outside_years_1_to_9999_is_refused(
    topic: str, ms: int, reason: str
) -> None:
    spec = input_topics()[topic]
    models = [model for model, (s, _) in EVENT_ROUTES.items() if s == spec]
    codec = AvroCodec(spec.record, REGISTRY, spec.subject)
    kind = models[0].model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
    event = sample(kind)
    for field, value in event.__dict__.items():
        if not isinstance(value, datetime):
            continue
        # the field's time bytes swapped for `ms`'s: encode a marker time, then replace it
        marker = datetime(2001, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)
        data = codec.encode({**event.__dict__, field: marker})
        encoded_marker = varint(981173106789)
        assert data.count(encoded_marker) == 1
        data = data.replace(encoded_marker, varint(ms))
        decoded, pctx = decode_all(spec, [data])
        assert decoded == [] and len(pctx.letters) == 1, field
        assert f"{field}: {ms} ms is {reason}" in pctx.letters[0][1]


@pytest.mark.parametrize(
    ("kind", "field", "reason"),
    [
        ("media_uploaded", "story_id", "story_id: union branch 4 out of range"),
        ("story_reacted", "text", "text: union branch 4 out of range"),
        ("highlight_added", "title", "title: union branch 4 out of range"),
    ],
)
def test_a_bad_union_branch_is_dead_lettered_naming_its_field(
    kind: str, field: str, reason: str
) -> None:
    event = sample(kind)
    spec = next(s for model, (s, _) in EVENT_ROUTES.items() if isinstance(event, model))
    data = AvroCodec(spec.record, REGISTRY, spec.subject).encode({**event.__dict__, field: None})
    assert data.endswith(b"\x00")  # the field is the record's last: its null branch
    decoded, pctx = decode_all(spec, [data[:-1] + b"\x08"])
    assert decoded == [] and reason in pctx.letters[0][1]


def test_the_decoders_cover_every_input_event() -> None:
    assert {model.avro_record for model in EVENT_TYPES} == {
        spec.record for spec in input_topics().values()
    }


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_a_record_keyed_other_than_its_key_field_is_dead_lettered_alone(kind: str) -> None:
    # Kafka partitions by key: a key naming another story (user, media) would put this record's
    # state on the partition of that other one.
    event = sample(kind)
    spec, field = EVENT_ROUTES[type(event)]
    data = AvroCodec(spec.record, REGISTRY, spec.subject).encode(event)
    right, _ = decode_all(spec, [data])
    assert len(right) == 1
    decoded, pctx = decode_all(spec, [data, data], key=b"elsewhere")
    assert decoded == []
    own = getattr(event, field)
    assert pctx.letters == [
        (i, f"key 'elsewhere' is not the record's {field} {own!r}") for i in (0, 1)
    ]
