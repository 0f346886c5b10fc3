"""`storystream post`: what it says when no object store is configured, and its `--wait` poll."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from infra.process import free_port
from streams.cli.post import PostError, WaitTimeout, missing_object_store, wait_for_story
from streams.settings import Settings

STORY = {"story_id": "s1", "author_id": "alice", "renditions": []}


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No S3 keys anywhere boto3 looks (environment, files, instance metadata)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)


def test_no_object_store_names_what_to_set(no_aws: None, tmp_path: Path) -> None:
    settings = Settings(broker="localhost:1", data_dir=tmp_path / "data")
    reason = missing_object_store(settings)
    assert reason is not None
    assert "Unable to locate credentials" not in reason
    assert "STORYSTREAM_DATA_DIR" in reason and str((tmp_path / "data").absolute()) in reason
    assert "STORYSTREAM_S3_ENDPOINT_URL" in reason and "STORYSTREAM_S3_ACCESS_KEY_ID" in reason


def test_an_endpoint_without_keys_names_the_keys(no_aws: None, tmp_path: Path) -> None:
    settings = Settings(broker="b:1", data_dir=tmp_path, s3_endpoint_url="http://127.0.0.1:9")
    reason = missing_object_store(settings)
    assert reason is not None and "http://127.0.0.1:9" in reason
    assert "STORYSTREAM_S3_ACCESS_KEY_ID and STORYSTREAM_S3_SECRET_ACCESS_KEY" in reason


def test_keys_of_its_own_or_in_aws_s_chain_are_enough(
    no_aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyed = Settings(
        broker="b:1", data_dir=tmp_path, s3_access_key_id="k", s3_secret_access_key="s"
    )
    assert missing_object_store(keyed) is None
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    assert missing_object_store(Settings(broker="b:1", data_dir=tmp_path)) is None


class _Api:
    """A stand-in for a worker's `GET /stories/{id}`: answers from a script, then repeats the
    last one; records the requests' Authorization headers."""

    def __init__(self, answers: list[tuple[int, object]]) -> None:
        self.answers = answers
        self.tokens: list[str | None] = []
        self.paths: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                api.tokens.append(self.headers.get("Authorization"))
                api.paths.append(self.path)
                status, body = api.answers.pop(0) if len(api.answers) > 1 else api.answers[0]
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def api_factory() -> Iterator[type[_Api]]:
    started: list[_Api] = []

    class Started(_Api):
        def __init__(self, answers: list[tuple[int, object]]) -> None:
            super().__init__(answers)
            started.append(self)

    yield Started
    for api in started:
        api.server.shutdown()
        api.server.server_close()


def test_wait_goes_through_not_yet_known_and_processing_to_the_result(
    api_factory: type[_Api],
) -> None:
    active = {**STORY, "status": "active", "renditions": [{"name": "640"}]}
    api = api_factory([
        (404, {"error": "story s1 not found"}),
        (503, {"error": "partition 1 has no owner yet; retry"}),
        (200, {**STORY, "status": "processing"}),
        (200, active),
    ])  # fmt: skip
    assert wait_for_story(api.url, "tok", "s1", timeout=30, every=0.01) == active
    assert api.paths == ["/stories/s1"] * 4
    assert set(api.tokens) == {"Bearer tok"}


def test_wait_returns_a_failure_with_its_reason(api_factory: type[_Api]) -> None:
    failed = {**STORY, "status": "failed", "error": "corrupt image: image file is truncated"}
    api = api_factory([(200, failed)])
    assert wait_for_story(api.url, "tok", "s1", timeout=30, every=0.01) == failed


def test_a_refused_token_stops_the_wait_at_once(api_factory: type[_Api]) -> None:
    api = api_factory([(401, {"error": "invalid token: Signature verification failed"})])
    with pytest.raises(PostError, match="refused the author's token.*STORYSTREAM_API_SECRET"):
        wait_for_story(api.url, "tok", "s1", timeout=30, every=0.01)
    assert len(api.paths) == 1


def test_wait_times_out_naming_the_last_answer(api_factory: type[_Api]) -> None:
    api = api_factory([(200, {**STORY, "status": "processing"})])
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(WaitTimeout, match="after 5 s.*status processing"):
        wait_for_story(api.url, "t", "s1", timeout=5, every=1, clock=lambda: now[0], sleep=sleep)
    assert len(api.paths) == 6  # at 0, 1, ..., 5 s


def test_no_api_is_waited_for_then_named() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(WaitTimeout, match="no answer"):
        wait_for_story(url, "t", "s1", timeout=2, every=1, clock=lambda: now[0], sleep=sleep)
