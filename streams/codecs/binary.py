"""Avro binary shared by the compiled writers and readers: varints, ranges, generated code.

`binary_writer.compile_writer` and `binary_reader.compile_reader` walk a schema once (fastavro
walks it for every record) and cover the types this project's schemas use; a property test
checks both against fastavro for every schema. Both keep to Avro's ranges: a writer refuses an
`int`, `long` or time its type cannot hold, a reader anything malformed or past its type's range
(ValueError, EOFError or IndexError), never allocating more than the record's bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from schemas.types import AVRO_INTEGER_RANGES, MAX_MILLIS, MIN_MILLIS

_MILLI = timedelta(milliseconds=1)
INT_MIN, INT_MAX = AVRO_INTEGER_RANGES["int"]

Parts = list[bytes]
FieldWriter = Callable[[Any, Parts], None]
FieldReader = Callable[[bytes, int], tuple[Any, int]]

_SMALL = [bytes((n,)) for n in range(128)]  # a varint below 128 is that one byte
_DOUBLE = struct.Struct("<d")
_FLOAT = struct.Struct("<f")


def varint(n: int) -> bytes:
    """Avro's zig-zag variable-length encoding of an int or long (ValueError outside a long's
    range)."""
    value = n
    n = (n << 1) ^ (n >> 63)
    if n < 128:
        return _SMALL[n]
    if n < 16384:
        return bytes((n & 127 | 128, n >> 7))
    if 1 << 35 <= n < 1 << 42:  # a timestamp in milliseconds, 1971-2039: unrolled
        return bytes(
            (
                n & 127 | 128,
                n >> 7 & 127 | 128,
                n >> 14 & 127 | 128,
                n >> 21 & 127 | 128,
                n >> 28 & 127 | 128,
                n >> 35,
            )
        )
    if n >> 64:  # only a value outside a long's range zig-zags this far
        raise ValueError(f"{value} is out of range for an Avro long")
    out = bytearray()
    while n > 127:
        out.append(n & 127 | 128)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """The zig-zag varint (an Avro long) at `pos`, and the position after it."""
    byte = data[pos]
    pos += 1
    n = byte & 127
    shift = 7
    while byte > 127:
        if shift > 63:  # also bounds the work: a run of continuation bytes is not read on
            raise ValueError(f"a varint over 10 bytes at {pos - 10}")
        byte = data[pos]
        pos += 1
        n |= (byte & 127) << shift
        shift += 7
    if n >> 64:
        raise ValueError(f"a varint out of range for an Avro long before {pos}")
    return (n >> 1) ^ -(n & 1), pos


def read_int(data: bytes, pos: int) -> tuple[int, int]:
    """The zig-zag varint of an Avro int at `pos`, and the position after it."""
    value, end = read_varint(data, pos)
    if not INT_MIN <= value <= INT_MAX:
        raise ValueError(f"{value} at {pos} is out of range for an Avro int")
    return value, end


def time_millis(value: int) -> int:
    """`value` if it is a time of years 1-9999 in epoch milliseconds, else ValueError."""
    if not MIN_MILLIS <= value <= MAX_MILLIS:
        raise ValueError(f"{value} ms is outside years 1-9999")
    return value


def _inline_kind(schema: Any) -> str | None:
    """What a generated record function writes or reads inline: "timestamp" (millis),
    "string", "long", "int" or "enum"; None for anything it calls a function for."""
    if isinstance(schema, str):
        return schema if schema in ("string", "long", "int") else None
    if isinstance(schema, dict) and isinstance(schema["type"], str):
        kind: str = schema["type"]
        if kind == "long" and schema.get("logicalType") == "timestamp-millis":
            return "timestamp"
        return kind if kind in ("string", "long", "int", "enum") else None
    return None


def _generated(name: str, lines: list[str], env: dict[str, Any], label: str) -> Any:
    """The function `name` that the source `lines` define, with `env` as its globals."""
    namespace = dict(env)
    exec(compile("\n".join(lines), label, "exec"), namespace)  # noqa: S102
    return namespace[name]


def _fullname(schema: Mapping[str, Any]) -> str:
    """A named type's name without its namespace: references are resolved by that (this
    project's schemas share one namespace)."""
    return _short(schema["name"])


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]
