"""Avro codecs in the Confluent wire format (magic byte 0, 4-byte schema id, Avro binary)."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from schemas.avro import current_schemas
from schemas.events import EVENT_TYPES, Event
from schemas.records import RECORD_TYPES, Record
from streams.codecs.binary import FieldReader
from streams.codecs.binary_reader import compile_reader
from streams.codecs.binary_writer import compile_writer
from streams.codecs.registry import SchemaRegistry

MAGIC = 0
T = TypeVar("T")
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
        self._reader: Any = None  # fastavro's parsed schema, for older writers' records
        # Compiled when first used (a producer never reads, a reader may never write): encoding
        # takes a model's attributes (nested models too) or a dict, and records written with
        # the current schema decode without fastavro's schema walk.
        self._read: FieldReader | None = None
        # Records of other writer schemas are first read with a reader compiled from the writer
        # schema (strict about lengths and ranges, as the current schema's is), then resolved
        # by fastavro, which accepts a string or block cut short by the end of the record.
        self._writer_reads: dict[int, FieldReader | None] = {}
        self._schema_id: int | None = None
        self._header: bytes | None = None
        self._encode: Callable[[Any], bytes] | None = None  # compiled with the header
        self._models = _MODELS.get(record, {})

    @property
    def schema_id(self) -> int:
        if self._schema_id is None:
            self._schema_id = self._registry.id_for(self.record, self.subject)
        return self._schema_id

    # -- encoding ---------------------------------------------------------------------------
    def encode(self, model: Event | Record | dict[str, Any]) -> bytes:
        """Encode a model of this record type, or an Avro-shaped dict (fields by name; times as
        aware datetimes or milliseconds)."""
        try:
            return (self._encode or self.encoder())(model)
        except (ValueError, TypeError, KeyError, AttributeError, struct.error) as exc:
            raise CodecError(f"{self.record}: cannot encode: {exc!r}") from exc

    def encoder(self) -> Callable[[Any], bytes]:
        """`encode` for the engine's own outputs, without the error wrapping (an error there
        is a bug, reported as such): the writer with the wire header compiled in."""
        if self._encode is None:
            self._encode = compile_writer(current_schemas()[self.record], self.header)
        return self._encode

    @property
    def header(self) -> bytes:
        """The wire-format prefix of this record's values: magic byte and schema id."""
        if self._header is None:
            self._header = _HEADER.pack(MAGIC, self.schema_id)
        return self._header

    # -- decoding ---------------------------------------------------------------------------
    def decode_dict(self, data: bytes | None) -> dict[str, Any]:
        """Decode wire bytes into an Avro dict resolved to the current schema."""
        if not data or len(data) < _HEADER.size:
            raise CodecError(f"{self.record}: {len(data or b'')} bytes is too short for Avro")
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise CodecError(f"{self.record}: unknown magic byte {magic} (expected {MAGIC})")
        current = schema_id == self.schema_id
        if not current:
            try:
                writer = self._registry.writer_schema(schema_id)
            except KeyError:
                raise CodecError(f"{self.record}: unknown schema id {schema_id}") from None
        # Compiled outside the try: a schema it cannot compile is a bug, not undecodable bytes.
        read = (self._read or self._compile_reader()) if current else None
        try:
            if read is not None:
                value, end = read(data, _HEADER.size)
            else:  # an older writer schema: fastavro resolves it to the current one
                value, end = self._resolve(data, writer)
        except Exception as exc:  # EOFError, ValueError, UnicodeDecodeError, SchemaResolution...
            raise CodecError(f"{self.record}: undecodable Avro: {exc!r}") from exc
        if end != len(data):
            raise CodecError(f"{self.record}: {len(data) - end} trailing bytes")
        result: dict[str, Any] = value
        return result

    def _compile_reader(self) -> FieldReader:
        self._read = compile_reader(current_schemas()[self.record])
        return self._read

    def _resolve(self, data: bytes, writer: Any) -> tuple[dict[str, Any], int]:
        """A record written with an older schema, read into the current one. fastavro is
        imported here: only this fallback needs it (its import is ~18 ms of every command's
        start)."""
        import fastavro

        schema_id = _HEADER.unpack_from(data)[1]
        if schema_id not in self._writer_reads:
            try:
                self._writer_reads[schema_id] = compile_reader(writer)
            except NotImplementedError:  # a type the compiled readers lack: fastavro alone
                self._writer_reads[schema_id] = None
        strict = self._writer_reads[schema_id]
        if strict is not None:
            _, end = strict(data, _HEADER.size)
            if end != len(data):
                raise ValueError(f"{len(data) - end} trailing bytes")
        if self._reader is None:
            self._reader = fastavro.parse_schema(current_schemas()[self.record], _force=True)
        buf = io.BytesIO(data)
        buf.seek(_HEADER.size)
        value = fastavro.schemaless_reader(buf, writer, self._reader)
        return value, buf.tell()  # type: ignore[return-value]  # a record: a dict

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
