"""Commands find what a running `storystream dev` started, its schema registry among them."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.cli import devstate
from streams.settings import Settings

REGISTRY = "http://127.0.0.1:8081"


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BROKER", "SCHEMA_REGISTRY_URL", "S3_ENDPOINT_URL"):
        monkeypatch.delenv(f"STORYSTREAM_{name}", raising=False)


def _dev(data_dir: Path) -> None:
    devstate.write(data_dir, broker="127.0.0.1:9092", schema_registry_url=REGISTRY)


def test_commands_take_devs_broker_and_registry(tmp_path: Path) -> None:
    _dev(tmp_path)
    resolved = devstate.resolve(Settings(data_dir=tmp_path))
    assert (resolved.broker, resolved.schema_registry_url) == ("127.0.0.1:9092", REGISTRY)


def test_a_registry_given_is_kept(tmp_path: Path) -> None:
    _dev(tmp_path)
    given = Settings(data_dir=tmp_path, schema_registry_url="http://registry.example:8081")
    assert devstate.resolve(given).schema_registry_url == "http://registry.example:8081"


def test_another_broker_does_not_take_devs_registry(tmp_path: Path) -> None:
    _dev(tmp_path)
    other = devstate.resolve(Settings(data_dir=tmp_path, broker="kafka.example:9092"))
    assert other.schema_registry_url is None


def test_a_dev_that_is_gone_gives_nothing(tmp_path: Path) -> None:
    _dev(tmp_path)
    path = tmp_path / devstate.FILE_NAME
    path.write_text(path.read_text().replace('"pid": ', '"pid": 999999999, "was": '))
    assert devstate.resolve(Settings(data_dir=tmp_path)).schema_registry_url is None
