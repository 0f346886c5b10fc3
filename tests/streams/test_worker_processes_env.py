"""The environment `storystream worker --processes N` gives each of its processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from streams.cli.worker_pool import child_env, run_processes, shifted_url
from streams.settings import Settings


def test_each_process_gets_its_port_directory_and_share_of_the_memory(tmp_path: Path) -> None:
    settings = Settings(
        broker="k:9092",
        api_port=7000,
        state_memory_mb=1024,
        worker_processes=4,
        s3_endpoint_url="http://s3:9000",
        s3_access_key_id="id",
        s3_secret_access_key=SecretStr("secret"),
    )
    env = child_env(settings, 3, tmp_path / "process-3", share=4)
    assert env["STORYSTREAM_API_PORT"] == "7003"
    assert env["STORYSTREAM_DATA_DIR"] == str(tmp_path / "process-3")
    assert env["STORYSTREAM_STATE_MEMORY_MB"] == "256"
    assert env["STORYSTREAM_WORKER_PROCESSES"] == "1"  # a child never supervises
    assert env["STORYSTREAM_BROKER"] == "k:9092"
    assert env["STORYSTREAM_S3_SECRET_ACCESS_KEY"] == "secret"


def test_the_api_url_is_shifted_by_the_index_and_needs_a_port() -> None:
    assert shifted_url("http://host.internal:7000", 0) == "http://host.internal:7000"
    assert shifted_url("https://10.0.0.5:7000/api", 2) == "https://10.0.0.5:7002/api"
    with pytest.raises(ValueError, match="names no port"):
        shifted_url("https://workers.example", 1)


def test_a_child_environment_parses_as_the_settings_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(broker="k:9092", api_port=7000, story_ttl="90s", expiry_grace="5s")
    for name, value in child_env(settings, 1, tmp_path / "p1", share=2).items():
        if name.startswith("STORYSTREAM_"):
            monkeypatch.setenv(name, value)
    child = Settings()
    assert (child.api_port, child.data_dir) == (7001, tmp_path / "p1")
    assert (child.story_ttl, child.expiry_grace) == (settings.story_ttl, settings.expiry_grace)
    assert child.state_memory_mb == settings.state_memory_mb // 2


def test_several_processes_need_a_fixed_port_and_room_above_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_processes(Settings(broker="k:9092", api_port=0, worker_processes=2)) == 2
    assert "fixed API_PORT" in capsys.readouterr().err
    assert run_processes(Settings(broker="k:9092", api_port=65534, worker_processes=3)) == 2
    assert "--processes 3 from API_PORT 65534 runs past port 65535" in capsys.readouterr().err
