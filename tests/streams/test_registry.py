"""Both registries: the embedded one (ids fixed in the repo) and the Confluent HTTP client,
the latter against a minimal Confluent-compatible registry served over real HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from infra.schema_registry import EmbeddedSchemaRegistry
from schemas.avro import current_schemas, history, latest
from schemas.events import parse_event
from streams.codecs.avro import AvroCodec, CodecError
from streams.codecs.registry import (
    ConfluentRegistry,
    EmbeddedRegistry,
    RegistryError,
    make_registry,
    topic_subjects,
)
from streams.topics import TOPICS


class _Registry(BaseHTTPRequestHandler):
    schemas: list[str] = []

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # POST /subjects/{subject}/versions
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body["schema"] not in self.schemas:
            self.schemas.append(body["schema"])
        self._reply(200, {"id": 100 + self.schemas.index(body["schema"])})

    def do_GET(self) -> None:  # GET /schemas/ids/{id}
        schema_id = int(self.path.split("?")[0].rstrip("/").split("/")[-1])
        if 100 <= schema_id < 100 + len(self.schemas):
            self._reply(200, {"schema": self.schemas[schema_id - 100]})
        else:
            self._reply(404, {"error_code": 40403, "message": "Schema not found"})


@pytest.fixture
def registry_url() -> Iterator[str]:
    _Registry.schemas = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


VIEW = parse_event(
    {
        "type": "story_viewed",
        "story_id": "s1",
        "viewer_id": "u1",
        "viewed_at": "2026-11-22T10:00:00Z",
    }
)


def test_embedded_ids_are_the_ones_fixed_in_the_repo() -> None:
    registry = EmbeddedRegistry()
    assert registry.id_for("StoryViewed", "any") == latest("StoryViewed").schema_id
    assert EmbeddedRegistry().id_for("StoryViewed", "other") == registry.id_for("StoryViewed", "x")


def test_make_registry_picks_by_url(registry_url: str) -> None:
    assert isinstance(make_registry(None), EmbeddedRegistry)
    assert isinstance(make_registry(registry_url), ConfluentRegistry)


def test_confluent_registry_registers_and_resolves_over_http(registry_url: str) -> None:
    codec = AvroCodec("StoryViewed", ConfluentRegistry(registry_url), "story-viewed-value")
    data = codec.encode(VIEW)
    # The stub numbers schemas from 100 as they come; the client registers every topic's.
    assert len(_Registry.schemas) == len({spec.record for spec in TOPICS})
    text = json.dumps(current_schemas()["StoryViewed"])
    assert data[1:5] == (100 + _Registry.schemas.index(text)).to_bytes(4, "big")
    # A fresh client (another process) resolves the writer schema by id from the server.
    reader = AvroCodec("StoryViewed", ConfluentRegistry(registry_url), "story-viewed-value")
    assert reader.decode(data) == VIEW


def test_confluent_registry_unknown_id_is_a_codec_error(registry_url: str) -> None:
    codec = AvroCodec("StoryViewed", ConfluentRegistry(registry_url), "story-viewed-value")
    with pytest.raises(CodecError, match="unknown schema id 7"):
        codec.decode(b"\x00\x00\x00\x00\x07\x00")


def test_confluent_registry_gets_the_fixed_ids_from_the_embedded_registry(
    schema_registry_url: str,
) -> None:
    """The project's client path against what `storystream dev` serves: every topic's record
    registers under its subject as the id fixed in the repo, and every id resolves to a writer
    schema that reads the current records."""

    registry = ConfluentRegistry(schema_registry_url)
    for spec in TOPICS:
        assert registry.id_for(spec.record, spec.subject) == latest(spec.record).schema_id
    for versions in history().values():
        for version in versions:
            assert registry.writer_schema(version.schema_id)["name"].endswith(version.name)
    codec = AvroCodec("StoryViewed", registry, "story-viewed-value")
    assert AvroCodec("StoryViewed", EmbeddedRegistry(), "x").decode(codec.encode(VIEW)) == VIEW


def test_an_unreachable_registry_is_an_error_of_its_own_not_a_bad_record() -> None:
    """A record must not be dead-lettered because the registry is down: not a CodecError."""

    with EmbeddedSchemaRegistry(topic_subjects()) as server:
        registry = ConfluentRegistry(server.url)
        codec = AvroCodec("StoryViewed", registry, "story-viewed-value")
        data = codec.encode(VIEW)  # registered while it answered
    assert codec.decode(data) == VIEW  # the current id needs no registry
    with pytest.raises(RegistryError, match=r"schema 7: .*onnect"):
        codec.decode(b"\x00\x00\x00\x00\x07\x00")  # another writer's id: asked, unreachable
    fresh = AvroCodec("StoryViewed", ConfluentRegistry(server.url), "story-viewed-value")
    with pytest.raises(RegistryError, match=r"cannot register \w+ under [\w-]+-value: .*onnect"):
        fresh.encode(VIEW)
