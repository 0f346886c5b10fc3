"""Settings: environment prefix and durations."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from streams.settings import Settings, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("24h", timedelta(hours=24)),
        ("2d", timedelta(days=2)),
        ("500ms", timedelta(milliseconds=500)),
        (30, timedelta(seconds=30)),
    ],
)
def test_durations(text: object, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["", "10", "ten minutes", "5y", "-5s"])
def test_bad_durations_name_the_value(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(bad)


def test_environment_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORYSTREAM_STORY_TTL", "90s")
    monkeypatch.setenv("STORYSTREAM_CELEBRITY_FOLLOWERS", "5")
    monkeypatch.setenv("STORYSTREAM_API_SECRET", "s3cret")
    settings = Settings()
    assert settings.story_ttl == timedelta(seconds=90)
    assert settings.celebrity_followers == 5
    assert "s3cret" not in repr(settings)


def test_invalid_environment_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORYSTREAM_PARTITIONS", "0")
    with pytest.raises(ValidationError, match="partitions"):
        Settings()
