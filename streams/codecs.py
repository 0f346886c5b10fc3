"""Avro codecs in the Confluent wire format (magic byte 0, 4-byte schema id, Avro binary)."""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import fastavro
from pydantic import BaseModel, ValidationError

from schemas.avro import current_schemas
from schemas.events import EVENT_TYPES, Event
from schemas.records import RECORD_TYPES, Record
from streams.registry import SchemaRegistry

MAGIC = 0
_HEADER = struct.Struct(">bI")


class CodecError(ValueError):
    """A record could not be encoded or decoded; the message says why (dead-letter reason)."""


def _model_types() -> dict[str, dict[str, type[BaseModel]]]:
    """Record name -> event `type` value (or "" for output records) -> model class."""
    out: dict[str, dict[str, type[BaseModel]]] = {}
    for event_cls in EVENT_TYPES:
        for literal in event_cls.model_fields["type"].annotation.__args__:  # type: ignore[union-attr]
            out.setdefault(event_cls.avro_record, {})[literal] = event_cls
    for record_cls in RECORD_TYPES:
        out.setdefault(record_cls.avro_record, {})[""] = record_cls
    return out


_MODELS = _model_types()


class AvroCodec:
    """Encodes and decodes one record type; the reader schema is parsed once."""

    def __init__(self, record: str, registry: SchemaRegistry, subject: str) -> None:
        if record not in current_schemas():
            raise CodecError(f"no schema named {record!r} in schemas/")
        self.record = record
        self.subject = subject
        self._registry = registry
        self._reader = fastavro.parse_schema(current_schemas()[record], _force=True)
        fields = current_schemas()[record]["fields"]
        # Records without nested records encode straight from a model's attribute dict.
        self._flat = not any('"record"' in json.dumps(f["type"]) for f in fields)
        self._schema_id: int | None = None
        self._models = _MODELS.get(record, {})

    @property
    def schema_id(self) -> int:
        if self._schema_id is None:
            self._schema_id = self._registry.id_for(self.record, self.subject)
        return self._schema_id

    # -- encoding ---------------------------------------------------------------------------
    def encode_dict(self, value: dict[str, Any]) -> bytes:
        """Encode an Avro-shaped dict (fields by name; datetimes timezone-aware)."""
        buf = io.BytesIO()
        buf.write(_HEADER.pack(MAGIC, self.schema_id))
        try:
            fastavro.schemaless_writer(buf, self._reader, value)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise CodecError(f"{self.record}: cannot encode: {exc}") from exc
        return buf.getvalue()

    def encode(self, model: Event | Record) -> bytes:
        """Encode a model of this record type."""
        return self.encode_dict(model.__dict__ if self._flat else model.model_dump())

    # -- decoding ---------------------------------------------------------------------------
    def decode_dict(self, data: bytes | None) -> dict[str, Any]:
        """Decode wire bytes into an Avro dict resolved to the current schema."""
        if not data or len(data) < _HEADER.size:
            raise CodecError(f"{self.record}: {len(data or b'')} bytes is too short for Avro")
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise CodecError(f"{self.record}: unknown magic byte {magic} (expected {MAGIC})")
        try:
            writer = self._registry.writer_schema(schema_id)
        except KeyError:
            raise CodecError(f"{self.record}: unknown schema id {schema_id}") from None
        buf = io.BytesIO(data)
        buf.seek(_HEADER.size)
        try:
            value: dict[str, Any] = fastavro.schemaless_reader(
                buf, writer, self._reader if schema_id != self.schema_id else None
            )
        except Exception as exc:  # fastavro raises EOFError, ValueError, SchemaResolutionError...
            raise CodecError(f"{self.record}: undecodable Avro: {exc!r}") from exc
        if buf.tell() != len(data):
            raise CodecError(f"{self.record}: {len(data) - buf.tell()} trailing bytes")
        return value

    def to_model(self, value: dict[str, Any]) -> BaseModel:
        """Validate an Avro dict into its pydantic model (events are re-validated)."""
        model_cls = self._models.get(value.get("type", "")) if "type" in value else None
        model_cls = model_cls or self._models.get("")
        if model_cls is None:
            raise CodecError(f"{self.record}: no model for type {value.get('type')!r}")
        fields = model_cls.model_fields
        try:
            return model_cls.model_validate({k: v for k, v in value.items() if k in fields})
        except ValidationError as exc:
            raise CodecError(f"{self.record}: invalid record: {exc}") from exc

    def decode(self, data: bytes | None) -> BaseModel:
        """Decode wire bytes into the record's model."""
        return self.to_model(self.decode_dict(data))
