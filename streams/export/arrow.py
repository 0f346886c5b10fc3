"""Arrow types of the Avro records (what the Parquet files hold), and a Parquet file written in
row groups under a temporary name, renamed once complete."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.avro import current_schemas

ROW_GROUP = 50_000
_PRIMITIVES = {
    "string": pa.string(),
    "bytes": pa.binary(),
    "int": pa.int32(),
    "long": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
}
TIMESTAMP = pa.timestamp("ms", tz="UTC")


def arrow_type(schema: Any) -> pa.DataType:
    """The Arrow type of an Avro type (named types inlined): records are structs, enums
    strings, maps string-keyed maps, `timestamp-millis` UTC timestamps in milliseconds."""
    if isinstance(schema, list):
        branches = [branch for branch in schema if branch != "null"]
        if len(branches) != 1:
            raise NotImplementedError(f"a union of {schema!r} has no Arrow type here")
        return arrow_type(branches[0])
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return _PRIMITIVES[schema]
        raise NotImplementedError(f"Avro type {schema!r} has no Arrow type here")
    kind = schema["type"]
    if kind == "long" and schema.get("logicalType") == "timestamp-millis":
        return TIMESTAMP
    if kind == "record":
        return pa.struct([_field(f) for f in schema["fields"]])
    if kind == "enum":
        return pa.string()
    if kind == "array":
        return pa.list_(arrow_type(schema["items"]))
    if kind == "map":
        return pa.map_(pa.string(), arrow_type(schema["values"]))
    return arrow_type(kind)


def _field(avro_field: dict[str, Any]) -> pa.Field:
    kind = avro_field["type"]
    nullable = isinstance(kind, list) and "null" in kind
    return pa.field(avro_field["name"], arrow_type(kind), nullable=nullable)


def record_schema(record: str, extra: list[pa.Field]) -> pa.Schema:
    """The columns of a record's fields, then `extra`."""
    return pa.schema([_field(f) for f in current_schemas()[record]["fields"]] + extra)


class ParquetOut:
    """Rows into one Parquet file (snappy, row groups of ROW_GROUP rows); the file appears
    under its name only once complete."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self.rows = 0
        self._tmp = path.with_name(f".{path.name}.tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(self._tmp, schema, compression="snappy")
        self._pending: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self._pending.append(row)
        if len(self._pending) >= ROW_GROUP:
            self._write()

    def _write(self) -> None:
        if self._pending:
            self._writer.write_table(pa.Table.from_pylist(self._pending, schema=self.schema))
            self.rows += len(self._pending)
            self._pending = []

    def close(self) -> None:
        """Write what is left and give the file its name."""
        self._write()
        self._writer.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._writer.close()
        self._tmp.unlink(missing_ok=True)
