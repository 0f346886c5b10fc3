"""The embedded schema registry over HTTP, asked by confluent-kafka's own registry client (what
serializers, deserializers and tools call) and by plain HTTP for the wire details."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from infra.registry_server import CONTENT_TYPE
from infra.schema_registry import EmbeddedSchemaRegistry
from schemas.avro import SCHEMA_DIR, history, latest, schema_ids
from streams.codecs.registry import topic_subjects


@pytest.fixture
def client(schema_registry_url: str) -> Iterator[SchemaRegistryClient]:
    yield SchemaRegistryClient({"url": schema_registry_url})


def _http(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, str, Any]:
    request = urllib.request.Request(url, data=body, method=method)
    request.add_header("Content-Type", CONTENT_TYPE)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.headers["Content-Type"], json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], json.loads(exc.read())


def test_starts_answers_and_stops() -> None:
    server = EmbeddedSchemaRegistry(topic_subjects())
    with server:
        assert server.running and server.url.startswith("http://127.0.0.1:")
        assert _http(server.url + "/schemas/types")[2] == ["AVRO"]
        proc = server._proc
    assert not server.running
    assert proc is not None and proc.poll() is not None  # reaped, not orphaned


def test_every_fixed_id_serves_a_schema_that_loads_alone(client: SchemaRegistryClient) -> None:
    for key, schema_id in schema_ids().items():
        schema = client.get_schema(schema_id)
        assert schema.schema_type == "AVRO"
        parsed = fastavro.parse_schema(json.loads(schema.schema_str), named_schemas={})
        assert (
            isinstance(parsed, dict)
            and parsed["name"] == "io.storystream." + key.partition(".v")[0]
        )


def test_subjects_and_versions_as_the_client_reads_them(client: SchemaRegistryClient) -> None:
    subjects = client.get_subjects()
    assert set(topic_subjects()) <= set(subjects)
    assert {f"io.storystream.{name}" for name in history()} <= set(subjects)
    assert client.get_versions("story-trays-value") == [1]
    newest = client.get_latest_version("story-trays-value")
    assert (newest.schema_id, newest.version, newest.subject) == (
        latest("Tray").schema_id,
        1,
        "story-trays-value",
    )
    assert client.get_version("story-trays-value", 1).schema_id == latest("Tray").schema_id
    assert "story-trays-value" in client.get_subjects_by_schema_id(latest("Tray").schema_id)
    assert client.get_compatibility() == "BACKWARD"
    assert client.get_mode("story-trays-value") == "READWRITE"


def test_lookup_and_register_give_the_fixed_ids(
    client: SchemaRegistryClient, schema_registry_url: str
) -> None:
    text = (SCHEMA_DIR / "StoryViewed.avsc").read_text()
    found = client.lookup_schema("story-viewed-value", Schema(text, "AVRO"))
    assert (found.schema_id, found.version) == (schema_ids()["StoryViewed.v1"], 1)
    subject = f"t{uuid.uuid4().hex[:6]}-story-state-value"  # a replay's prefixed topic
    state = Schema((SCHEMA_DIR / "StoryState.avsc").read_text(), "AVRO")
    assert client.register_schema(subject, state) == latest("StoryState").schema_id
    assert SchemaRegistryClient({"url": schema_registry_url}).get_versions(subject) == [1]


def test_errors_reach_the_client_with_confluents_codes(client: SchemaRegistryClient) -> None:
    with pytest.raises(SchemaRegistryError) as exc:
        client.get_schema(999_999)
    assert (exc.value.http_status_code, exc.value.error_code) == (404, 40403)
    with pytest.raises(SchemaRegistryError) as exc:
        client.get_latest_version("no-such-topic-value")
    assert exc.value.error_code == 40401
    foreign = '{"type": "record", "name": "Mine", "fields": [{"name": "a", "type": "int"}]}'
    with pytest.raises(SchemaRegistryError, match="schemas/history") as exc:
        client.register_schema(f"t{uuid.uuid4().hex[:6]}-value", Schema(foreign, "AVRO"))
    assert (exc.value.http_status_code, exc.value.error_code) == (422, 42205)


def test_wire_details(schema_registry_url: str) -> None:
    status, content_type, body = _http(
        schema_registry_url + "/subjects/story-state-value/versions/latest"
    )
    assert (status, content_type) == (200, CONTENT_TYPE)
    assert body["id"] == latest("StoryState").schema_id
    assert json.loads(body["schema"]) == latest("StoryState").definition
    status, _, raw = _http(schema_registry_url + f"/schemas/ids/{body['id']}/schema")
    assert (status, raw) == (200, latest("StoryState").definition)
    assert _http(schema_registry_url + "/nowhere") == (
        404,
        CONTENT_TYPE,
        {"error_code": 404, "message": "HTTP 404 Not Found"},
    )
    status, _, error = _http(schema_registry_url + "/subjects/story-state-value", "DELETE")
    assert (status, error["error_code"]) == (422, 42205)
    assert (
        _http(schema_registry_url + "/subjects/story-state-value/versions", "POST", b"{x")[2][
            "error_code"
        ]
        == 400
    )
    assert _http(schema_registry_url + "/subjects/story-state-value/versions")[2] == [1, 2]
