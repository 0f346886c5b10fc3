"""The contract's validation rules for input events."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.events import (
    EVENT_ADAPTER,
    StoryPosted,
    StoryReacted,
    StoryViewed,
    derive_event_id,
    parse_event,
)

T0 = "2026-11-22T10:00:00Z"


def viewed(**overrides: object) -> dict[str, object]:
    return {
        "type": "story_viewed",
        "story_id": "s1",
        "viewer_id": "u1",
        "viewed_at": T0,
        **overrides,
    }


def errors_of(data: dict[str, object], as_json: bool = False) -> list[tuple[str, ...]]:
    """The fields the validation errors name; `as_json`: the data as a JSON line, as
    `publish` reads one."""
    with pytest.raises(ValidationError) as caught:
        if as_json:
            EVENT_ADAPTER.validate_json(json.dumps(data))
        else:
            parse_event(data)
    return [tuple(str(p) for p in e["loc"][1:]) for e in caught.value.errors()]


@pytest.mark.parametrize("bad", ["", "a b", "x" * 65, "é", "a/b", "a.b"])
def test_identifiers_are_1_to_64_safe_characters(bad: str) -> None:
    assert errors_of(viewed(story_id=bad)) == [("story_id",)]


def test_identifier_of_64_characters_is_fine() -> None:
    assert parse_event(viewed(story_id="a" * 64)).story_id == "a" * 64


@pytest.mark.parametrize("bad", ["2026-11-22T10:00:00+01:00", "2026-11-22T10:00:00", "yesterday"])
def test_times_must_be_utc(bad: str) -> None:
    assert errors_of(viewed(viewed_at=bad)) == [("viewed_at",)]


@pytest.mark.parametrize(
    "bad",
    [
        1795341600,  # epoch seconds (pydantic alone takes them)
        1795341600000,
        "2026-11-22 10:00:00Z",  # a space for the T
        "2026-11-22T10:00:00z",
        "2026-11-22T10:00:00-00:00",
        "2026-11-22T10:00Z",  # no seconds
        "2026-11-22",
    ],
)
def test_json_times_are_iso_8601_as_the_contract_writes_them(bad: object) -> None:
    assert errors_of(viewed(viewed_at=bad), as_json=True) == [("viewed_at",)]


@pytest.mark.parametrize(
    ("text", "micros"),
    [("2026-11-22T10:00:00Z", 0), ("2026-11-22T10:00:00.5+00:00", 500_000),
     ("2026-11-22T10:00:00,25Z", 250_000), ("2026-11-22T10:00:00.123456789Z", 123_000)],
)  # fmt: skip
def test_json_times_may_have_a_fraction(text: str, micros: int) -> None:
    event = EVENT_ADAPTER.validate_json(json.dumps(viewed(viewed_at=text)))
    assert event.occurred_at == datetime(2026, 11, 22, 10, tzinfo=UTC) + timedelta(
        microseconds=micros
    )


def test_a_bad_created_at_is_named_once() -> None:
    """expires_at, derived from created_at, is not reported too."""
    posted = {"type": "story_posted", "story_id": "s1", "author_id": "a1"}
    assert errors_of({**posted, "created_at": "2026-11-22 10:00:00Z"}, as_json=True) == [
        ("created_at",)
    ]


def test_plus_zero_offset_is_utc() -> None:
    event = parse_event(viewed(viewed_at="2026-11-22T10:00:00+00:00"))
    assert event.viewed_at == datetime(2026, 11, 22, 10, tzinfo=UTC)


def test_times_are_kept_to_the_millisecond() -> None:
    event = parse_event(viewed(viewed_at="2026-11-22T10:00:00.123456Z"))
    assert event.viewed_at.microsecond == 123000


@pytest.mark.parametrize(
    "reaction",
    ["like", "love", "laugh", "wow", "sad", "fire", "👍", "👍🏽", "❤️", "👨\u200d👩\u200d👧", "🇫🇷"],
)
def test_reactions_named_or_emoji(reaction: str) -> None:
    event = parse_event(
        {
            "type": "story_reacted",
            "story_id": "s",
            "user_id": "u",
            "reaction": reaction,
            "reacted_at": T0,
        }
    )
    assert isinstance(event, StoryReacted) and event.reaction == reaction


@pytest.mark.parametrize(
    "reaction", ["meh", "", "LIKE", "a👍", "👍" * 17, "🔥🔥", "🇫", "\u200d👍", "👍\u200d"]
)  # an emoji is one: two of them, half a flag, a joiner with nothing to join are not
def test_other_reactions_are_rejected(reaction: str) -> None:
    data = {
        "type": "story_reacted",
        "story_id": "s",
        "user_id": "u",
        "reaction": reaction,
        "reacted_at": T0,
    }
    assert errors_of(data) == [("reaction",)]


def test_reply_is_at_most_1000_characters() -> None:
    data = {
        "type": "story_reacted",
        "story_id": "s",
        "user_id": "u",
        "reaction": "like",
        "reacted_at": T0,
    }
    assert parse_event({**data, "text": "x" * 1000})
    assert errors_of({**data, "text": "x" * 1001}) == [("text",)]


def test_expires_at_defaults_to_created_plus_the_configured_ttl() -> None:
    data = {"type": "story_posted", "story_id": "s", "author_id": "a", "created_at": T0}
    assert parse_event(data).expires_at == datetime(2026, 11, 23, 10, tzinfo=UTC)
    short = parse_event(data, story_ttl=timedelta(seconds=90))
    assert isinstance(short, StoryPosted)
    assert short.expires_at == datetime(2026, 11, 22, 10, 1, 30, tzinfo=UTC)


def test_expires_at_must_follow_created_at() -> None:
    data = {
        "type": "story_posted",
        "story_id": "s",
        "author_id": "a",
        "created_at": T0,
        "expires_at": T0,
    }
    with pytest.raises(ValidationError, match="expires_at must be after created_at"):
        parse_event(data)


def test_event_id_is_derived_from_the_content_when_absent() -> None:
    first, again, other = (
        parse_event(viewed()),
        parse_event(viewed()),
        parse_event(viewed(viewer_id="u2")),
    )
    assert isinstance(first, StoryViewed)
    assert first.event_id == again.event_id != other.event_id


@given(st.binary(max_size=2000))
def test_derived_event_ids_are_the_blake2b_digest_of_the_content(content: bytes) -> None:
    # Ids already published must stay the same: the rule is blake2b, 16 bytes, in hex.
    assert derive_event_id(content) == hashlib.blake2b(content, digest_size=16).hexdigest()
    assert derive_event_id(content) == derive_event_id(content)


def test_given_event_id_is_kept() -> None:
    assert parse_event(viewed(event_id="evt-1")).event_id == "evt-1"


def test_unknown_fields_and_types_are_rejected() -> None:
    assert errors_of(viewed(colour="red")) == [("colour",)]
    with pytest.raises(ValidationError):
        parse_event({"type": "story_exploded", "story_id": "s"})
