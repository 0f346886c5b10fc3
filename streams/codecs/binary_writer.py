"""Avro writers compiled from a schema: a generated function per record, primitives inline."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from schemas.types import AVRO_INTEGER_RANGES, MAX_MILLIS, MIN_MILLIS, millis
from streams.codecs.binary import (
    _DOUBLE,
    _FLOAT,
    _SMALL,
    INT_MAX,
    INT_MIN,
    FieldWriter,
    Parts,
    _fullname,
    _generated,
    _inline_kind,
    _short,
    time_millis,
    varint,
)


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
    call costs more than writing a short string."""
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
