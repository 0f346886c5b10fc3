"""Schema registries: an embedded one with ids fixed in the repo, and a Confluent HTTP client."""

from __future__ import annotations

import json
from functools import cache
from typing import Any, Protocol

from schemas.avro import current_schemas, history, latest


class SchemaRegistry(Protocol):
    """Where schema ids come from and go to."""

    def id_for(self, record: str, subject: str) -> int:
        """The id of the current schema of `record`, registered under `subject`."""
        ...

    def writer_schema(self, schema_id: int) -> Any:
        """The parsed schema that wrote records carrying `schema_id` (KeyError if unknown)."""
        ...


class EmbeddedRegistry:
    """Needs no server: every version in `schemas/history` has an id fixed in `schemas/ids.json`,
    so ids are the same across restarts, machines and clusters."""

    def __init__(self) -> None:
        self._versions = {v.schema_id: v for versions in history().values() for v in versions}

    def id_for(self, record: str, subject: str) -> int:
        return latest(record).schema_id

    def writer_schema(self, schema_id: int) -> Any:
        return self._versions[schema_id].parsed  # parsed when first asked for (then cached)


class ConfluentRegistry:
    """A Confluent-compatible HTTP registry (confluent-kafka's client), topic-name subjects."""

    def __init__(self, url: str) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self._client = SchemaRegistryClient({"url": url})
        self._ids: dict[tuple[str, str], int] = {}
        self._parsed: dict[int, Any] = {}

    def id_for(self, record: str, subject: str) -> int:
        key = (record, subject)
        if key not in self._ids:
            from confluent_kafka.schema_registry import Schema

            text = json.dumps(current_schemas()[record])
            self._ids[key] = self._client.register_schema(subject, Schema(text, "AVRO"))
        return self._ids[key]

    def writer_schema(self, schema_id: int) -> Any:
        if schema_id not in self._parsed:
            try:
                schema = self._client.get_schema(schema_id)
            except Exception as exc:  # the client raises SchemaRegistryError for unknown ids
                raise KeyError(schema_id) from exc
            import fastavro  # only for records of other writers' schemas (see AvroCodec)

            self._parsed[schema_id] = fastavro.parse_schema(json.loads(schema.schema_str))
        return self._parsed[schema_id]


@cache
def _embedded() -> EmbeddedRegistry:
    return EmbeddedRegistry()


def make_registry(url: str | None) -> SchemaRegistry:
    """The Confluent client when a URL is configured, else the embedded registry."""
    return ConfluentRegistry(url) if url else _embedded()
