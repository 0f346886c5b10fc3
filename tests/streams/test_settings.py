"""Settings: environment prefix and durations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.cli.main import _parser, build_settings
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


def test_given_values_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORYSTREAM_PARTITIONS", "7")
    monkeypatch.setenv("storystream_app_id", "lower-case-name")  # any case, as before
    monkeypatch.setenv("STORYSTREAM_NOT_A_SETTING", "ignored")
    assert Settings().partitions == 7
    assert Settings(partitions=3).partitions == 3
    assert Settings().app_id == "lower-case-name"


def test_invalid_environment_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORYSTREAM_PARTITIONS", "0")
    with pytest.raises(ValidationError, match="partitions"):
        Settings()


def test_processing_guarantee_is_one_of_two(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORYSTREAM_PROCESSING_GUARANTEE", "exactly_once")
    assert Settings().processing_guarantee == "exactly_once"
    monkeypatch.setenv("STORYSTREAM_PROCESSING_GUARANTEE", "exactly-twice")
    with pytest.raises(ValidationError, match="processing_guarantee"):
        Settings()


def test_dev_refuses_exactly_once_on_the_embedded_broker(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORYSTREAM_")} | {
        "STORYSTREAM_PROCESSING_GUARANTEE": "exactly_once",
        "STORYSTREAM_DATA_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "dev"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode != 0
    assert "exactly_once needs a Kafka broker with transactions" in result.stderr
    assert not (tmp_path / "broker.log").exists()  # nothing was started


def _running_dev(data_dir: Path, **state: object) -> None:
    """A dev.json as a running `storystream dev` writes it (this process stands in for it)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "dev.json").write_text(json.dumps({"pid": os.getpid(), **state}))


def _without_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("STORYSTREAM_"):
            monkeypatch.delenv(name)


def test_commands_take_a_running_devs_broker_and_ttl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_environment(monkeypatch)
    _running_dev(tmp_path, broker="127.0.0.1:19092", story_ttl_seconds=120.0)
    settings = build_settings(_parser().parse_args(["publish", "-", "--data-dir", str(tmp_path)]))
    assert settings.broker == "127.0.0.1:19092"
    assert settings.story_ttl == timedelta(seconds=120)  # publish's default expires_at follows it


def test_a_ttl_given_to_the_command_wins_over_devs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_environment(monkeypatch)
    _running_dev(tmp_path, broker="127.0.0.1:19092", story_ttl_seconds=120.0)
    monkeypatch.setenv("STORYSTREAM_STORY_TTL", "90s")
    args = _parser().parse_args(["--data-dir", str(tmp_path), "publish", "-"])
    assert build_settings(args).story_ttl == timedelta(seconds=90)
    monkeypatch.setenv("STORYSTREAM_BROKER", "elsewhere:9092")  # another system: not dev's TTL
    monkeypatch.delenv("STORYSTREAM_STORY_TTL")
    assert build_settings(args).story_ttl == timedelta(hours=24)


def test_data_dir_is_accepted_after_the_command_too() -> None:
    parser = _parser()
    assert parser.parse_args(["dev", "--data-dir", "a"]).data_dir == "a"
    assert parser.parse_args(["--data-dir", "b", "dev"]).data_dir == "b"  # not reset by dev's
    assert parser.parse_args(["--data-dir", "b", "worker", "--data-dir", "c"]).data_dir == "c"


def test_state_memory_is_a_setting_with_a_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().state_memory_mb == 1024
    monkeypatch.setenv("STORYSTREAM_STATE_MEMORY_MB", "4096")
    assert Settings().state_memory_mb == 4096
    monkeypatch.setenv("STORYSTREAM_STATE_MEMORY_MB", "8")
    with pytest.raises(ValidationError, match="state_memory_mb"):
        Settings()
