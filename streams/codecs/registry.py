"""Schema registries: an embedded one with ids fixed in the repo, and a Confluent HTTP client."""

from __future__ import annotations

import json
from functools import cache
from typing import Any, Protocol

from schemas.avro import current_schemas, history, latest
from streams.runtime.errors import Unavailable


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


class RegistryError(Unavailable):
    """The configured registry refused a schema or could not be reached (not a bad record)."""


def _client(url: str) -> Any:
    """confluent-kafka's registry client, quiet: the import of its HTTP stack warns of an
    authlib deprecation, and httpx logs every request at INFO; neither says anything to our
    users, on every command's stderr."""
    import logging
    import warnings

    with warnings.catch_warnings(record=True):  # authlib forces its warning past filters
        from confluent_kafka.schema_registry import SchemaRegistryClient
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return SchemaRegistryClient({"url": url})


class ConfluentRegistry:
    """A Confluent-compatible HTTP registry (confluent-kafka's client), topic-name subjects."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = _client(url)
        self._ids: dict[tuple[str, str], int] = {}
        self._parsed: dict[int, Any] = {}

    def id_for(self, record: str, subject: str) -> int:
        key = (record, subject)
        if key not in self._ids:
            # Every topic's at once: after the first call no record waits on the registry, and
            # a dead letter's id is known before a record needs one.
            wanted = {(r, s) for s, r in topic_subjects().items()} | {key}
            for pair in sorted(wanted - self._ids.keys()):
                self._ids[pair] = self._register(*pair)
        return self._ids[key]

    def _register(self, record: str, subject: str) -> int:
        from confluent_kafka.schema_registry import Schema

        text = json.dumps(current_schemas()[record])
        try:
            schema_id: int = self._client.register_schema(subject, Schema(text, "AVRO"))
        except Exception as exc:  # SchemaRegistryError, or the HTTP client's own errors
            raise RegistryError(
                f"schema registry {self.url}: cannot register {record} under {subject}: {exc}"
            ) from exc
        return schema_id

    def writer_schema(self, schema_id: int) -> Any:
        if schema_id not in self._parsed:
            from confluent_kafka.schema_registry.error import SchemaRegistryError

            try:
                schema = self._client.get_schema(schema_id)
            except SchemaRegistryError as exc:
                if exc.http_status_code == 404:  # an id it does not know: that record is bad
                    raise KeyError(schema_id) from exc
                raise RegistryError(
                    f"schema registry {self.url}: schema {schema_id}: {exc}"
                ) from exc
            except Exception as exc:  # unreachable: no record is to blame, so none is dropped
                raise RegistryError(
                    f"schema registry {self.url}: schema {schema_id}: {exc}"
                ) from exc
            import fastavro  # only for records of other writers' schemas (see AvroCodec)

            self._parsed[schema_id] = fastavro.parse_schema(json.loads(schema.schema_str))
        return self._parsed[schema_id]


@cache
def _embedded() -> EmbeddedRegistry:
    return EmbeddedRegistry()


def make_registry(url: str | None) -> SchemaRegistry:
    """The Confluent client when a URL is configured, else the embedded registry."""
    return ConfluentRegistry(url) if url else _embedded()


def topic_subjects() -> dict[str, str]:
    """Each topic's value subject (topic-name strategy) and the record its values are."""
    from streams.topics import TOPICS

    return {spec.subject: spec.record for spec in TOPICS}
