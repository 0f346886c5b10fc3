"""Avro readers compiled from a schema, bounded against hostile bytes."""

from __future__ import annotations

import struct
from datetime import datetime
from typing import Any

from schemas.types import EPOCH, MAX_MILLIS, MIN_MILLIS, from_millis
from streams.codecs.binary import (
    _DOUBLE,
    _FLOAT,
    _MILLI,
    FieldReader,
    _fullname,
    _generated,
    _inline_kind,
    _short,
    read_int,
    read_varint,
)


def compile_reader(schema: Any) -> FieldReader:
    """A function decoding one value of `schema` at a position: (value, position after it)."""
    return _reader(schema, _Named(_definitions(schema, {})))


class _Named(dict[str, FieldReader]):
    """The readers of named types compiled so far, and every named type's definition."""

    def __init__(self, schemas: dict[str, Any]) -> None:
        super().__init__()
        self.schemas = schemas


def _definitions(schema: Any, out: dict[str, Any]) -> dict[str, Any]:
    """Every named type defined in `schema`, by its short name."""
    if isinstance(schema, list):
        for branch in schema:
            _definitions(branch, out)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "enum", "fixed"):
            out.setdefault(_fullname(schema), schema)
        for field in schema.get("fields", ()):
            _definitions(field["type"], out)
        for key in ("items", "values"):
            if key in schema:
                _definitions(schema[key], out)
        if isinstance(kind, (dict, list)):
            _definitions(kind, out)
    return out


def _min_size(schema: Any, schemas: dict[str, Any], seen: frozenset[str] = frozenset()) -> int:
    """The fewest bytes a value of `schema` takes (a reference to a record being defined
    counts as none)."""
    if isinstance(schema, list):
        return 1  # the branch index
    if isinstance(schema, str):
        if schema in _PRIMITIVE_READERS:
            return _PRIMITIVE_SIZES[schema]
        name = _short(schema)
        if name in seen or name not in schemas:
            return 0
        return _min_size(schemas[name], schemas, seen | {name})
    kind = schema["type"]
    if kind == "record":
        seen = seen | {_fullname(schema)}
        return sum(_min_size(field["type"], schemas, seen) for field in schema["fields"])
    if kind == "fixed":
        return int(schema["size"])
    if kind in ("enum", "array", "map"):
        return 1
    return _min_size(kind, schemas, seen)


def _read_string(data: bytes, pos: int) -> tuple[str, int]:
    size, pos = read_varint(data, pos)
    end = pos + size
    if size < 0 or end > len(data):
        raise EOFError(f"a string of {size} bytes at {pos} overruns {len(data)} bytes")
    return data[pos:end].decode(), end


def _read_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    size, pos = read_varint(data, pos)
    end = pos + size
    if size < 0 or end > len(data):
        raise EOFError(f"{size} bytes at {pos} overrun {len(data)} bytes")
    return data[pos:end], end


def _read_timestamp(data: bytes, pos: int) -> tuple[datetime, int]:
    value, end = read_varint(data, pos)
    if not MIN_MILLIS <= value <= MAX_MILLIS:
        raise ValueError(f"a time at {pos}: {value} ms is outside years 1-9999")
    return from_millis(value), end


def _read_boolean(data: bytes, pos: int) -> tuple[bool, int]:
    byte = data[pos]
    if byte > 1:
        raise ValueError(f"boolean byte {byte} at {pos}")
    return byte == 1, pos + 1


def _read_fixed(codec: struct.Struct) -> FieldReader:
    def read(data: bytes, pos: int) -> tuple[Any, int]:
        if pos + codec.size > len(data):
            raise EOFError(f"{codec.size} bytes at {pos} overrun {len(data)} bytes")
        return codec.unpack_from(data, pos)[0], pos + codec.size

    return read


_PRIMITIVE_READERS: dict[str, FieldReader] = {
    "null": lambda data, pos: (None, pos),
    "boolean": _read_boolean,
    "int": read_int,
    "long": read_varint,
    "string": _read_string,
    "bytes": _read_bytes,
    "float": _read_fixed(_FLOAT),
    "double": _read_fixed(_DOUBLE),
}
_PRIMITIVE_SIZES = {"null": 0, "float": 4, "double": 8} | {
    kind: 1 for kind in ("boolean", "int", "long", "string", "bytes")
}


def _reader(schema: Any, named: _Named) -> FieldReader:
    if isinstance(schema, str):
        if schema in _PRIMITIVE_READERS:
            return _PRIMITIVE_READERS[schema]
        if _short(schema) in named:
            return named[_short(schema)]
        raise NotImplementedError(f"Avro type {schema!r}")
    if isinstance(schema, list):
        return _union_reader(schema, named)
    kind = schema["type"]
    if kind == "long" and schema.get("logicalType") == "timestamp-millis":
        return _read_timestamp
    if kind == "record":
        return _record_reader(schema, named)
    if kind == "enum":
        named[_fullname(schema)] = reader = _enum_reader(schema["symbols"])
        return reader
    if kind in ("array", "map"):
        items = schema["items" if kind == "array" else "values"]
        # Each item takes a byte at least (a map's key does), so a block's count is bounded by
        # the bytes left: a declared count never allocates or loops past the record's size.
        if kind == "array" and _min_size(items, named.schemas) == 0:
            raise NotImplementedError(f"an array of {items!r}: items that may take no bytes")
        return _block_reader(_reader(items, named), pairs=kind == "map")
    return _reader(kind, named)


def _record_reader(schema: dict[str, Any], named: _Named) -> FieldReader:
    """One generated function per record, with short strings, small longs, enums and
    `["null", X]` unions of them read inline (the common case takes no call)."""
    compiled: list[FieldReader] = []
    named[_fullname(schema)] = lambda data, pos: compiled[0](data, pos)  # self-reference
    env: dict[str, Any] = {
        "RV": read_varint,
        "RI": read_int,
        "RS": _read_string,
        "EPOCH": EPOCH,
        "MILLI": _MILLI,
    }
    lines = ["def read(data, pos):", "    n = len(data)"]
    names = []
    for i, field in enumerate(schema["fields"]):
        lines += _inline_reader(field["type"], named, env, f"x{i}", f"F{i}", "    ", field["name"])
        names.append(f"{field['name']!r}: x{i}")
    lines.append(f"    return {{{', '.join(names)}}}, pos")
    compiled.append(_generated("read", lines, env, f"<avro reader {schema['name']}>"))
    return compiled[0]


def _inline_reader(
    schema: Any,
    named: _Named,
    env: dict[str, Any],
    var: str,
    slot: str,
    pad: str,
    field: str,
) -> list[str]:
    """Source lines reading a value of `schema` at `pos` into `var` (and advancing `pos`)."""
    kind = _inline_kind(schema)
    if kind == "timestamp":  # the varint's loop and from_millis inline: one per record
        return [
            f"{pad}b = data[pos]",
            f"{pad}pos += 1",
            f"{pad}{var} = b & 127",
            f"{pad}shift = 7",
            f"{pad}while b > 127:",
            f"{pad}    if shift > 63:",
            f"{pad}        raise ValueError(f'{field}: a varint over 10 bytes before {{pos}}')",
            f"{pad}    b = data[pos]",
            f"{pad}    pos += 1",
            f"{pad}    {var} |= (b & 127) << shift",
            f"{pad}    shift += 7",
            f"{pad}{var} = ({var} >> 1) ^ -({var} & 1)",
            f"{pad}if not {MIN_MILLIS} <= {var} <= {MAX_MILLIS}:",
            f"{pad}    raise ValueError(f'{field}: {{{var}}} ms is outside years 1-9999')",
            f"{pad}{var} = EPOCH + {var} * MILLI",
        ]
    if kind == "string":  # a length below 64 is one even byte
        return [
            f"{pad}b = data[pos]",
            f"{pad}if b < 128 and not b & 1:",
            f"{pad}    end = pos + 1 + (b >> 1)",
            f"{pad}    if end > n:",
            f"{pad}        raise EOFError(f'a string of {{b >> 1}} bytes at {{pos}} overruns')",
            f"{pad}    {var} = data[pos + 1 : end].decode()",
            f"{pad}    pos = end",
            f"{pad}else:",
            f"{pad}    {var}, pos = RS(data, pos)",
        ]
    if kind in ("long", "int"):
        return _varint_lines(var, pad, "RV" if kind == "long" else "RI")
    if kind == "enum":
        env[slot] = symbols = list(schema["symbols"])
        named.setdefault(_fullname(schema), _enum_reader(symbols))
        return [
            *_varint_lines(var, pad, "RI"),  # the symbol's index
            f"{pad}if not 0 <= {var} < {len(symbols)}:",
            f"{pad}    raise ValueError(f'{field}: enum index {{{var}}} out of range')",
            f"{pad}{var} = {slot}[{var}]",
        ]
    if isinstance(schema, list) and len(schema) == 2 and "null" in schema:
        null_index = schema.index("null")
        other = _inline_reader(
            schema[1 - null_index], named, env, var, slot + "u", pad + "    ", field
        )
        return [
            f"{pad}b = data[pos]",
            f"{pad}pos += 1",
            f"{pad}if b == {null_index * 2}:",
            f"{pad}    {var} = None",
            f"{pad}elif b == {(1 - null_index) * 2}:",
            *other,
            f"{pad}else:",
            f"{pad}    b = RV(data, pos - 1)[0]  # the branch's index (or why it has none)",
            f"{pad}    raise ValueError(f'{field}: union branch {{b}} out of range (2 branches)')",
        ]
    env[slot] = _reader(schema, named)
    return [f"{pad}{var}, pos = {slot}(data, pos)"]


def _varint_lines(var: str, pad: str, read: str) -> list[str]:
    """Source lines reading a long, int or enum index into `var`: a value below 64 in magnitude
    is one byte, read inline; anything longer goes through `read` (read_varint or read_int)."""
    return [
        f"{pad}b = data[pos]",
        f"{pad}if b < 128:",
        f"{pad}    {var} = (b >> 1) ^ -(b & 1)",
        f"{pad}    pos += 1",
        f"{pad}else:",
        f"{pad}    {var}, pos = {read}(data, pos)",
    ]


def _enum_reader(symbols: list[str]) -> FieldReader:
    def read(data: bytes, pos: int) -> tuple[str, int]:
        index, pos = read_int(data, pos)
        if not 0 <= index < len(symbols):
            raise ValueError(f"enum index {index} out of range ({len(symbols)} symbols)")
        return symbols[index], pos

    return read


def _union_reader(branches: list[Any], named: _Named) -> FieldReader:
    readers = [_reader(branch, named) for branch in branches]

    def read(data: bytes, pos: int) -> tuple[Any, int]:
        index, pos = read_int(data, pos)
        if not 0 <= index < len(readers):
            raise ValueError(f"union branch {index} out of range ({len(readers)} branches)")
        return readers[index](data, pos)

    return read


def _block_reader(item: FieldReader, pairs: bool) -> FieldReader:
    def read(data: bytes, pos: int) -> tuple[Any, int]:
        out: Any = {} if pairs else []
        while True:
            count, pos = read_varint(data, pos)
            if count == 0:
                return out, pos
            if count < 0:  # a negative count is followed by the block's size in bytes
                count = -count
                _, pos = read_varint(data, pos)
            if count > len(data) - pos:  # each item takes a byte at least
                raise EOFError(f"a block of {count} items at {pos} overruns {len(data)} bytes")
            for _ in range(count):
                if pairs:
                    key, pos = _read_string(data, pos)
                    out[key], pos = item(data, pos)
                else:
                    entry, pos = item(data, pos)
                    out.append(entry)

    return read
