"""The archive's files: Avro object container files of ArchivedRecord, one record per Kafka
record with its partition, offset, timestamp, key, value and headers as the broker held them.

The value is kept as the topic's bytes (the Confluent wire format: magic byte, schema id, Avro
body), not decoded: a replay must hand the driver the very bytes a broker consumer gets (a
record of an older schema keeps its schema id, an undecodable one stays undecodable and is
dead-lettered as live did), and the archive needs no change when a schema evolves. Analysts get
decoded rows from `storystream export`.

Files are written here (the record layout is fixed, so it is encoded directly: several times
faster than building a dict per record for fastavro) and read with fastavro, which reads any
valid container file.
"""

from __future__ import annotations

import io
import json
import os
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal, NamedTuple

from streams.codecs.binary import varint

Codec = Literal["null", "deflate"]
ARCHIVE_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "ArchivedRecord",
    "namespace": "io.storystream.archive",
    "doc": "One Kafka record of an input topic, as the broker held it.",
    "fields": [
        {"name": "partition", "type": "int"},
        {"name": "offset", "type": "long"},
        {
            "name": "timestamp",
            "type": "long",
            "doc": "The record's timestamp in epoch milliseconds (its event time).",
        },
        {"name": "key", "type": ["null", "bytes"], "doc": "The key's bytes (UTF-8)."},
        {
            "name": "value",
            "type": ["null", "bytes"],
            "doc": "The value's bytes: Confluent wire format (0, schema id, Avro binary).",
        },
        {
            "name": "headers",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Header",
                    "fields": [
                        {"name": "key", "type": "string"},
                        {"name": "value", "type": ["null", "bytes"]},
                    ],
                },
            },
            "default": [],
        },
    ],
}
_MAGIC = b"Obj\x01"
_BLOCK_BYTES = 1 << 20  # a block is compressed and synced once it holds this much
_NULL = b"\x00"
_SOME = b"\x02"  # union branch 1: bytes
_NO_HEADERS = b"\x00"

Header = tuple[str, bytes | None]
Row = tuple[int, int, int, bytes | None, bytes | None, Sequence[Header] | None]
"""An ArchivedRecord's fields: partition, offset, timestamp, key, value, headers."""


class ArchivedRecord(NamedTuple):
    """One archived Kafka record (the topic is the file's)."""

    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[Header] | None = None


def _headers(headers: Sequence[Header]) -> bytes:
    parts = [varint(len(headers))]
    for name, value in headers:
        encoded = name.encode()
        parts += (varint(len(encoded)), encoded)
        parts += (_NULL,) if value is None else (_SOME, varint(len(value)), value)
    parts.append(_NO_HEADERS)
    return b"".join(parts)


def _block(count: int, body: bytes, codec: Codec, sync: bytes) -> bytes:
    if codec == "deflate":
        compressor = zlib.compressobj(1, zlib.DEFLATED, -15)  # raw deflate, as Avro specifies
        body = compressor.compress(body) + compressor.flush()
    return varint(count) + varint(len(body)) + body + sync


def encode_file(
    topic: str, partition: int, records: Iterable[Row], codec: Codec = "deflate"
) -> bytes:
    """One Avro container file of `records` (ArchivedRecords or their fields, of
    `partition`, in offset order)."""
    sync = os.urandom(16)
    meta = {
        "avro.schema": json.dumps(ARCHIVE_SCHEMA, separators=(",", ":")).encode(),
        "avro.codec": codec.encode(),
        "storystream.topic": topic.encode(),
        "storystream.partition": str(partition).encode(),
    }
    out = [_MAGIC, varint(len(meta))]
    for name, entry in meta.items():
        out += (varint(len(name)), name.encode(), varint(len(entry)), entry)
    out += (_NULL, sync)
    parts: list[bytes] = []
    size = count = 0
    join = b"".join
    head = varint(partition)
    for _, offset, timestamp, key, value, headers in records:
        encoded = join(
            (
                head,
                varint(offset),
                varint(timestamp),
                _NULL if key is None else join((_SOME, varint(len(key)), key)),
                _NULL if value is None else join((_SOME, varint(len(value)), value)),
                _headers(headers) if headers else _NO_HEADERS,
            )
        )
        parts.append(encoded)
        size += len(encoded)
        count += 1
        if size >= _BLOCK_BYTES:
            out.append(_block(count, join(parts), codec, sync))
            parts, size, count = [], 0, 0
    if count:
        out.append(_block(count, b"".join(parts), codec, sync))
    return b"".join(out)


def decode_file(data: bytes) -> Iterator[ArchivedRecord]:
    """The records of an archive file, in the order written."""
    import fastavro  # only readers of the archive need it

    for item in fastavro.reader(io.BytesIO(data)):
        fields: dict[str, Any] = item  # type: ignore[assignment]
        headers = fields.get("headers") or None
        yield ArchivedRecord(
            fields["partition"],
            fields["offset"],
            fields["timestamp"],
            fields["key"],
            fields["value"],
            [(h["key"], h["value"]) for h in headers] if headers else None,
        )
