"""Avro binary encoding and decoding compiled from a schema, for the hot paths.

fastavro's `schemaless_writer` and `schemaless_reader` walk the schema for every record: about
6 us to write a five-field record on this project's 2-core machine, more than the rest of the
per-record work. `compile_writer` and `compile_reader` walk it once: a record's writer is one
generated function with its primitive fields written inline, and so is a record's reader.
They cover the types this project's schemas use (records, enums,
arrays, maps, `["null", X]` unions and the primitives); anything else raises
`NotImplementedError` at compile time, and the caller keeps fastavro. A property test checks
both against fastavro, byte for byte and value for value, for every schema in `schemas/`.

Values: a record is a mapping or an object with `__dict__` (a pydantic model); a
`timestamp-millis` long is written from an aware datetime or from an int of milliseconds, and
read back as an aware UTC datetime.

Hostile bytes: both sides keep to Avro's ranges. A writer raises ValueError for an `int` or
`long` its type cannot hold (never wrapped bytes), and for a time outside years 1-9999 (a
Python datetime's). A reader raises EOFError, IndexError or ValueError (UnicodeDecodeError
among them) for anything malformed: a varint over 10 bytes or past its type's range, a time
outside years 1-9999, a string, bytes or block of items longer than the bytes left (so a
declared length never allocates more than the record holds), a bad enum index or union branch.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from schemas.types import AVRO_INTEGER_RANGES, EPOCH, MAX_MILLIS, MIN_MILLIS, from_millis, millis

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


# -- writing ----------------------------------------------------------------------------------
def compile_writer(schema: Any, prefix: bytes = b"") -> Callable[[Any], bytes]:
    """A function encoding one value of `schema` (parsed JSON, named types inlined), its bytes
    after `prefix` (a wire-format header, say)."""
    write = _writer(schema, {})

    def encode(value: Any) -> bytes:
        parts: Parts = [prefix]
        write(value, parts)
        return b"".join(parts)

    return encode


def _write_string(value: str, parts: Parts) -> None:
    data = value.encode()
    size = len(data)
    parts.append(_SMALL[size * 2] if size < 64 else varint(size))
    parts.append(data)


def _write_bytes(value: bytes, parts: Parts) -> None:
    parts.append(varint(len(value)))
    parts.append(value)


def _write_long(value: int, parts: Parts) -> None:
    parts.append(varint(value))


def _write_int(value: int, parts: Parts) -> None:
    if not INT_MIN <= value <= INT_MAX:
        raise ValueError(f"{value} is out of range for an Avro int")
    parts.append(varint(value))


def _write_timestamp(value: datetime | int, parts: Parts) -> None:
    if type(value) is int:
        parts.append(varint(time_millis(value)))
    else:
        parts.append(varint(millis(value)))  # type: ignore[arg-type]  # a datetime


def _write_boolean(value: bool, parts: Parts) -> None:
    parts.append(b"\x01" if value else b"\x00")


def _write_null(value: None, parts: Parts) -> None:
    if value is not None:
        raise TypeError(f"{value!r} is not null")


_PRIMITIVE_WRITERS: dict[str, FieldWriter] = {
    "null": _write_null,
    "boolean": _write_boolean,
    "int": _write_int,
    "long": _write_long,
    "string": _write_string,
    "bytes": _write_bytes,
    "float": lambda value, parts: parts.append(_FLOAT.pack(value)),
    "double": lambda value, parts: parts.append(_DOUBLE.pack(value)),
}


def _writer(schema: Any, named: dict[str, FieldWriter]) -> FieldWriter:
    if isinstance(schema, str):
        if schema in _PRIMITIVE_WRITERS:
            return _PRIMITIVE_WRITERS[schema]
        if _short(schema) in named:
            return named[_short(schema)]
        raise NotImplementedError(f"Avro type {schema!r}")
    if isinstance(schema, list):
        return _union_writer(schema, named)
    kind = schema["type"]
    if kind == "long" and schema.get("logicalType") == "timestamp-millis":
        return _write_timestamp
    if kind == "record":
        return _record_writer(schema, named)
    if kind == "enum":
        return _enum_writer(schema, named)[1]
    if kind == "array":
        return _block_writer(_writer(schema["items"], named), pairs=False)
    if kind == "map":
        return _block_writer(_writer(schema["values"], named), pairs=True)
    return _writer(kind, named)  # {"type": "string"} and friends


def _record_writer(schema: dict[str, Any], named: dict[str, FieldWriter]) -> FieldWriter:
    """One generated function per record, with its primitive fields written inline: a Python
    call costs ~0.1 us on this project's machine, more than writing a short string."""
    compiled: list[FieldWriter] = []
    named[_fullname(schema)] = lambda value, parts: compiled[0](value, parts)  # self-reference
    env: dict[str, Any] = {"varint": varint, "S": _SMALL, "millis": millis}
    lines = [
        "def write(value, parts):",
        "    d = value if type(value) is dict else getattr(value, '__dict__', value)",
        "    add = parts.append",
    ]
    for i, field in enumerate(schema["fields"]):
        name = field["name"]
        if "default" in field:
            # A missing field with a default gets it, as fastavro does (one Avro record can
            # carry several models: FollowChanged has no user_id, CloseFriendChanged has).
            env[f"D{i}"] = field["default"]
            lines.append(f"    x = d[{name!r}] if {name!r} in d else D{i}")
        else:
            lines.append(f"    x = d[{name!r}]")
        lines += _inline_writer(field["type"], named, env, f"F{i}", "    ", name)
    compiled.append(_generated("write", lines, env, f"<avro writer {schema['name']}>"))
    return compiled[0]


def _inline_writer(
    schema: Any,
    named: dict[str, FieldWriter],
    env: dict[str, Any],
    slot: str,
    pad: str,
    field: str,
) -> list[str]:
    """Source lines writing the value `x` of `schema` (a call for anything but primitives);
    a value out of its type's range raises ValueError naming `field`."""
    kind = _inline_kind(schema)
    if kind == "timestamp":
        return [
            f"{pad}if type(x) is not int: add(varint(millis(x)))",
            f"{pad}elif {MIN_MILLIS} <= x <= {MAX_MILLIS}: add(varint(x))",
            f"{pad}else: raise ValueError(f'{field}: {{x}} ms is outside years 1-9999')",
        ]
    if kind == "string":
        return [
            f"{pad}b = x.encode()",
            f"{pad}add(S[len(b) * 2] if len(b) < 64 else varint(len(b)))",
            f"{pad}add(b)",
        ]
    if kind in ("long", "int"):
        low, high = AVRO_INTEGER_RANGES[kind]
        return [
            f"{pad}if 0 <= x < 64: add(S[x * 2])",
            f"{pad}elif {low} <= x <= {high}: add(varint(x))",
            f"{pad}else: raise ValueError(f'{field}: {{x!r}} is out of range for an Avro {kind}')",
        ]
    if kind == "enum":
        env[slot] = _enum_writer(schema, named)[0]
        return [f"{pad}add({slot}[x])"]
    if isinstance(schema, list) and len(schema) == 2 and "null" in schema:
        null_index = schema.index("null")
        other = _inline_writer(schema[1 - null_index], named, env, slot + "u", pad + "    ", field)
        null_tag, other_tag = varint(null_index), varint(1 - null_index)
        return [
            f"{pad}if x is None: add({null_tag!r})",
            f"{pad}else:",
            f"{pad}    add({other_tag!r})",
            *other,
        ]
    env[slot] = _writer(schema, named)
    return [f"{pad}{slot}(x, parts)"]


def _enum_writer(
    schema: dict[str, Any], named: dict[str, FieldWriter]
) -> tuple[dict[str, bytes], FieldWriter]:
    """An enum's encoded symbols, and its writer (registered under its name)."""
    index = {symbol: varint(i) for i, symbol in enumerate(schema["symbols"])}
    writer: FieldWriter = lambda value, parts: parts.append(index[value])  # noqa: E731
    named.setdefault(_fullname(schema), writer)
    return index, writer


def _union_writer(branches: list[Any], named: dict[str, FieldWriter]) -> FieldWriter:
    if len(branches) != 2 or "null" not in branches:
        raise NotImplementedError(f"union {branches!r}: only null and one other type")
    null_index = branches.index("null")
    other = _writer(branches[1 - null_index], named)
    null_tag, other_tag = varint(null_index), varint(1 - null_index)

    def write(value: Any, parts: Parts) -> None:
        if value is None:
            parts.append(null_tag)
        else:
            parts.append(other_tag)
            other(value, parts)

    return write


def _block_writer(item: FieldWriter, pairs: bool) -> FieldWriter:
    def write(value: Any, parts: Parts) -> None:
        if value:
            parts.append(varint(len(value)))
            if pairs:
                for key, entry in value.items():
                    _write_string(key, parts)
                    item(entry, parts)
            else:
                for entry in value:
                    item(entry, parts)
        parts.append(b"\x00")

    return write


# -- reading ----------------------------------------------------------------------------------
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
