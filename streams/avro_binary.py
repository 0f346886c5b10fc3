"""Avro binary encoding and decoding compiled from a schema, for the hot paths.

fastavro walks the schema for every record; these walk it once, into generated functions with
primitive fields inline. They cover the types of this project's schemas (records, enums, arrays,
maps, `["null", X]` unions, primitives); anything else raises `NotImplementedError` at compile
time and the caller keeps fastavro. A property test checks both against fastavro, byte for byte.

Values: a record is a mapping or an object with `__dict__` (a pydantic model); a
`timestamp-millis` long is written from an aware datetime or from an int of milliseconds, and
read back as an aware UTC datetime.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from schemas.types import EPOCH, from_millis, millis

_MILLI = timedelta(milliseconds=1)

Parts = list[bytes]
FieldWriter = Callable[[Any, Parts], None]
FieldReader = Callable[[bytes, int], tuple[Any, int]]

_SMALL = [bytes((n,)) for n in range(128)]  # a varint below 128 is that one byte
_DOUBLE = struct.Struct("<d")
_FLOAT = struct.Struct("<f")


def varint(n: int) -> bytes:
    """Avro's zig-zag variable-length encoding of an int or long."""
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
    out = bytearray()
    while n > 127:
        out.append(n & 127 | 128)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """The zig-zag varint at `pos`, and the position after it."""
    byte = data[pos]
    pos += 1
    n = byte & 127
    shift = 7
    while byte > 127:
        byte = data[pos]
        pos += 1
        n |= (byte & 127) << shift
        shift += 7
    return (n >> 1) ^ -(n & 1), pos


# -- writing ----------------------------------------------------------------------------------
def compile_writer(schema: Any, prefix: bytes = b"") -> Callable[[Any], bytes]:
    """A function encoding one value of `schema` (parsed JSON, named types inlined), its bytes
    after `prefix` (a wire-format header, say)."""
    if isinstance(schema, dict) and schema["type"] == "record":
        kinds = {_inline_kind(f["type"]) for f in schema["fields"]}
        if kinds <= {"string", "timestamp"} and not any("default" in f for f in schema["fields"]):
            return _flat_encoder(schema, prefix)
    write = _writer(schema, {})

    def encode(value: Any) -> bytes:
        parts: Parts = [prefix]
        write(value, parts)
        return b"".join(parts)

    return encode


def _flat_encoder(schema: dict[str, Any], prefix: bytes) -> Callable[[Any], bytes]:
    """The encoder of a record of strings and timestamps (a StoryViewer, one per new viewer):
    its parts joined in one expression, no list appended to nor writer called."""
    lines = [
        "def encode(value):",
        "    d = value if type(value) is dict else getattr(value, '__dict__', value)",
    ]
    parts = ["P"]
    for i, field in enumerate(schema["fields"]):
        lines.append(f"    x{i} = d[{field['name']!r}]")
        if _inline_kind(field["type"]) == "string":
            lines += [f"    b{i} = x{i}.encode()", f"    n{i} = len(b{i})"]
            parts += [f"(S[n{i} * 2] if n{i} < 64 else varint(n{i}))", f"b{i}"]
        else:  # millis inline: a call costs as much as the arithmetic
            parts.append(f"varint(x{i} if type(x{i}) is int else (x{i} - EPOCH) // MILLI)")
    lines.append(f"    return b''.join(({', '.join(parts)}))")
    env = {"varint": varint, "S": _SMALL, "EPOCH": EPOCH, "MILLI": _MILLI, "P": prefix}
    encode: Callable[[Any], bytes] = _generated("encode", lines, env, f"<avro {schema['name']}>")
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


def _write_timestamp(value: datetime | int, parts: Parts) -> None:
    parts.append(varint(value if type(value) is int else millis(value)))  # type: ignore[arg-type]


def _write_boolean(value: bool, parts: Parts) -> None:
    parts.append(b"\x01" if value else b"\x00")


def _write_null(value: None, parts: Parts) -> None:
    if value is not None:
        raise TypeError(f"{value!r} is not null")


_PRIMITIVE_WRITERS: dict[str, FieldWriter] = {
    "null": _write_null,
    "boolean": _write_boolean,
    "int": _write_long,
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
    """One generated function per record, its primitive fields written inline (a call costs
    more than writing a short string)."""
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
        lines += _inline_writer(field["type"], named, env, f"F{i}", "    ")
    compiled.append(_generated("write", lines, env, f"<avro writer {schema['name']}>"))
    return compiled[0]


def _inline_writer(
    schema: Any, named: dict[str, FieldWriter], env: dict[str, Any], slot: str, pad: str
) -> list[str]:
    """Source lines writing the value `x` of `schema` (a call for anything but primitives)."""
    kind = _inline_kind(schema)
    if kind == "timestamp":
        return [f"{pad}add(varint(x if type(x) is int else millis(x)))"]
    if kind == "string":
        return [
            f"{pad}b = x.encode()",
            f"{pad}add(S[len(b) * 2] if len(b) < 64 else varint(len(b)))",
            f"{pad}add(b)",
        ]
    if kind in ("long", "int"):
        return [f"{pad}add(S[x * 2] if 0 <= x < 64 else varint(x))"]
    if kind == "enum":
        env[slot] = _enum_writer(schema, named)[0]
        return [f"{pad}add({slot}[x])"]
    if isinstance(schema, list) and len(schema) == 2 and "null" in schema:
        null_index = schema.index("null")
        other = _inline_writer(schema[1 - null_index], named, env, slot + "u", pad + "    ")
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
    return _reader(schema, {})


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
    value, pos = read_varint(data, pos)
    return from_millis(value), pos


def _read_boolean(data: bytes, pos: int) -> tuple[bool, int]:
    byte = data[pos]
    if byte > 1:
        raise ValueError(f"boolean byte {byte} at {pos}")
    return byte == 1, pos + 1


def _read_fixed(codec: struct.Struct) -> FieldReader:
    def read(data: bytes, pos: int) -> tuple[Any, int]:
        return codec.unpack_from(data, pos)[0], pos + codec.size

    return read


_PRIMITIVE_READERS: dict[str, FieldReader] = {
    "null": lambda data, pos: (None, pos),
    "boolean": _read_boolean,
    "int": read_varint,
    "long": read_varint,
    "string": _read_string,
    "bytes": _read_bytes,
    "float": _read_fixed(_FLOAT),
    "double": _read_fixed(_DOUBLE),
}


def _reader(schema: Any, named: dict[str, FieldReader]) -> FieldReader:
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
        item = _reader(schema["items" if kind == "array" else "values"], named)
        return _block_reader(item, pairs=kind == "map")
    return _reader(kind, named)


def _record_reader(schema: dict[str, Any], named: dict[str, FieldReader]) -> FieldReader:
    """One generated function per record, with short strings, small longs, enums and
    `["null", X]` unions of them read inline (the common case takes no call)."""
    compiled: list[FieldReader] = []
    named[_fullname(schema)] = lambda data, pos: compiled[0](data, pos)  # self-reference
    env: dict[str, Any] = {"RV": read_varint, "RS": _read_string, "EPOCH": EPOCH, "MILLI": _MILLI}
    lines = ["def read(data, pos):", "    n = len(data)"]
    names = []
    for i, field in enumerate(schema["fields"]):
        lines += _inline_reader(field["type"], named, env, f"x{i}", f"F{i}", "    ")
        names.append(f"{field['name']!r}: x{i}")
    lines.append(f"    return {{{', '.join(names)}}}, pos")
    compiled.append(_generated("read", lines, env, f"<avro reader {schema['name']}>"))
    return compiled[0]


def _inline_reader(
    schema: Any, named: dict[str, FieldReader], env: dict[str, Any], var: str, slot: str, pad: str
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
            f"{pad}    b = data[pos]",
            f"{pad}    pos += 1",
            f"{pad}    {var} |= (b & 127) << shift",
            f"{pad}    shift += 7",
            f"{pad}{var} = EPOCH + ((({var} >> 1) ^ -({var} & 1)) * MILLI)",
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
        return _varint_lines(var, pad)
    if kind == "enum":
        env[slot] = symbols = list(schema["symbols"])
        named.setdefault(_fullname(schema), _enum_reader(symbols))
        return [
            *_varint_lines(var, pad),  # the symbol's index
            f"{pad}if not 0 <= {var} < {len(symbols)}:",
            f"{pad}    raise ValueError(f'enum index {{{var}}} out of range')",
            f"{pad}{var} = {slot}[{var}]",
        ]
    if isinstance(schema, list) and len(schema) == 2 and "null" in schema:
        null_index = schema.index("null")
        other = _inline_reader(schema[1 - null_index], named, env, var, slot + "u", pad + "    ")
        return [
            f"{pad}b = data[pos]",
            f"{pad}pos += 1",
            f"{pad}if b == {null_index * 2}:",
            f"{pad}    {var} = None",
            f"{pad}elif b == {(1 - null_index) * 2}:",
            *other,
            f"{pad}else:",
            f"{pad}    raise ValueError(f'union branch {{b}} out of range (2 branches)')",
        ]
    env[slot] = _reader(schema, named)
    return [f"{pad}{var}, pos = {slot}(data, pos)"]


def _varint_lines(var: str, pad: str) -> list[str]:
    """Source lines reading a long, int or enum index into `var`: a value below 64 in magnitude
    is one byte, read inline; anything longer goes through read_varint."""
    return [
        f"{pad}b = data[pos]",
        f"{pad}if b < 128:",
        f"{pad}    {var} = (b >> 1) ^ -(b & 1)",
        f"{pad}    pos += 1",
        f"{pad}else:",
        f"{pad}    {var}, pos = RV(data, pos)",
    ]


def _enum_reader(symbols: list[str]) -> FieldReader:
    def read(data: bytes, pos: int) -> tuple[str, int]:
        index, pos = read_varint(data, pos)
        if not 0 <= index < len(symbols):
            raise ValueError(f"enum index {index} out of range ({len(symbols)} symbols)")
        return symbols[index], pos

    return read


def _union_reader(branches: list[Any], named: dict[str, FieldReader]) -> FieldReader:
    readers = [_reader(branch, named) for branch in branches]

    def read(data: bytes, pos: int) -> tuple[Any, int]:
        index, pos = read_varint(data, pos)
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
