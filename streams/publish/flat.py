"""The publish flat lane: event lines with only scalar fields, decoded and checked by msgspec.

Most input lines are flat (identifiers, times, a reaction, an audience). For them the lane
in `publish_lane` still spends its time in Python (orjson's dict, generated checks, the
Avro writer). Here msgspec decodes a line straight into a Struct generated from the event
model's type hints (tagged union on `type`, unknown fields forbidden, types, lengths, literals
and bounds checked in compiled code), and one function generated per event type does what
msgspec cannot (identifier characters, reactions, strict UTC times, the derived `event_id`
and `expires_at`) while it writes the Avro bytes.

Like `publish_lane`, it only says yes or "not mine" (None): a line with a list or nested field
(mentions, media, renditions), an unusual time form, anything the Struct or the checks refuse,
goes on to the other lane and then to the models. The hypothesis property of
`tests/streams/test_publish_lane.py` holds it to the models' bytes too.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints

import msgspec
from pydantic import AwareDatetime, BaseModel

from schemas.avro import current_schemas
from schemas.events import EVENT_TYPES, Event, StoryPosted, derive_event_id
from schemas.types import MAX_MILLIS, check_reaction, to_utc_millis
from streams.codecs.avro import AvroCodec
from streams.codecs.binary import varint
from streams.codecs.binary_writer import compile_writer
from streams.codecs.registry import SchemaRegistry
from streams.publish.lane import (
    _MILLI,
    _constraints,
    _is_reaction,
    _NotMine,
    _Source,
    _Times,
    second_millis,
)
from streams.topics import EVENT_ROUTES

Encoded = tuple[str, bytes, bytes, int]  # topic, key, value, timestamp (ms)

_INT63 = (1 << 63) - 1
# An identifier-like pattern (`^[class]{m,n}$`) becomes lengths checked by msgspec and a
# character check on the encoded bytes: msgspec calls Python's `re` for a pattern (slow).
_CHARSET_PATTERN = re.compile(r"\^\[([^\]\\]+)\]\{(\d+),(\d+)\}\$")
_LENGTHS = [varint(n) for n in range(256)]  # Avro lengths of strings under 256 bytes
_ALNUM = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
# A timestamp's varint: its low 14 bits (two bytes) from a table, the rest cached per ~8 s.
_LOW_TIME_BYTES = [bytes((n & 127 | 128, n >> 7 | 128)) for n in range(1 << 14)]
_TIME_VARINT = (  # six-byte varints (1970-07-28 to 2039-09-07) from the tables, others whole
    "(LOW[{t} * 2 & 16383] + (HIGH.get({t} >> 13) or high({t}))"
    f" if {1 << 34} <= {{t}} < {1 << 41} else varint({{t}}))"
)
_HIGH_TIME_BYTES: dict[int, bytes] = {}


def _high_time_bytes(t: int) -> bytes:
    """The varint of a timestamp less its two low bytes (shared by times ~8 s apart)."""
    if len(_HIGH_TIME_BYTES) > 4096:
        _HIGH_TIME_BYTES.clear()
    _HIGH_TIME_BYTES[t >> 13] = high = varint(t)[2:]
    return high


TimeEntry = tuple[int, int | None, bytes, bytes]


def _time_entry(second: int) -> TimeEntry:
    """What a second's times (`second` ms plus 0-999) share in their six-byte varints.

    The varint of t >= 0 is that of 2t: its two low bytes hold 2t's low 14 bits, its four
    high bytes the rest. For t = second + ms, 2t's low bits are `low + 2 ms` (`low`: those of
    2 * second) and its rest that of 2 * second, plus one when `low + 2 ms` carries into
    bit 14. So a time costs small-int arithmetic and two table lookups. A second whose times
    are not all six-byte varints has no `low` (None): its times are encoded whole.
    """
    if not (1 << 34 <= second and second + 999 < 1 << 41):
        return second, None, b"", b""
    double = second * 2
    rest = double >> 14
    return second, double & 16383, _high_bytes(rest), _high_bytes(rest + 1)


def _high_bytes(rest: int) -> bytes:
    """The four high bytes of a six-byte varint whose value less its low 14 bits is `rest`."""
    return bytes((rest & 127 | 128, rest >> 7 & 127 | 128, rest >> 14 & 127 | 128, rest >> 21))


class _Flat:
    """A model field the flat lane takes: its msgspec type and the checks left to Python."""

    def __init__(self, msgspec_type: Any, charset: bytes | None = None) -> None:
        self.type = msgspec_type
        self.charset = charset  # allowed bytes of an identifier-like string
        self.max_length: int | None = None
        self.reaction = False
        self.time = False


def _flat_field(hint: Any, metadata: list[Any]) -> _Flat | None:
    """How the lane decodes and checks a field, or None if it is not flat (list, model)."""
    origin = get_origin(hint)
    if origin is Annotated:
        base, *more = get_args(hint)
        return _flat_field(base, [*more, *metadata])
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if len(options) != 1 or len(get_args(hint)) != 2 or metadata:
            return None
        inner = _flat_field(options[0], [])
        if inner is not None:
            inner.type = inner.type | None
        return inner
    rules = _constraints(metadata)
    after = rules.pop("after", [])
    if origin is Literal and not rules and not after:
        return _Flat(hint) if all(type(a) is str for a in get_args(hint)) else None
    if hint is AwareDatetime and after == [to_utc_millis] and not rules:
        flat = _Flat(Annotated[str, msgspec.Meta(min_length=20, max_length=32)])
        flat.time = True
        return flat
    if hint is int and not after and set(rules) <= {"ge", "le"}:
        return _Flat(Annotated[int, msgspec.Meta(ge=rules.get("ge"), le=rules.get("le", _INT63))])
    if hint is str and set(after) <= {check_reaction}:
        return _string_field(rules, bool(after))
    return None


def _string_field(rules: dict[str, Any], reaction: bool) -> _Flat | None:
    if set(rules) - {"pattern", "min_length", "max_length"}:
        return None
    lengths = {k: rules[k] for k in ("min_length", "max_length") if k in rules}
    charset = None
    pattern = rules.get("pattern")
    if pattern is not None:
        match = _CHARSET_PATTERN.fullmatch(pattern)
        if match is None or lengths:
            return None
        try:
            allowed = re.compile(f"[{match[1]}]")
        except re.error:
            return None
        charset = bytes(c for c in range(128) if allowed.fullmatch(chr(c)))
        lengths = {"min_length": int(match[2]), "max_length": int(match[3])}
    flat = _Flat(Annotated[str, msgspec.Meta(**lengths)] if lengths else str, charset)
    flat.reaction = reaction
    flat.max_length = lengths.get("max_length")
    return flat


def _avro_kind(avro_type: Any) -> str:
    """An Avro field type's kind (of its non-null branch if it is a union with null)."""
    if isinstance(avro_type, list):
        (avro_type,) = [branch for branch in avro_type if branch != "null"] or ["null"]
    return avro_type if isinstance(avro_type, str) else str(avro_type["type"])


class FlatLane:
    """Validates and encodes flat event lines; None for every line it does not vouch for."""

    def __init__(self, registry: SchemaRegistry, story_ttl: timedelta) -> None:
        self._times = _Times()
        self._time_entries: dict[str, TimeEntry] = {}  # by a time's first 19 characters
        self._source = _Source()
        self._source.env.update(
            varint=varint,
            L=_LENGTHS,
            derive_event_id=derive_event_id,
            LOW=_LOW_TIME_BYTES,
            HIGH=_HIGH_TIME_BYTES,
            high=_high_time_bytes,
            TIMES=self._time_entries,
            SUFFIXES=self._times._suffixes,
            time_entry=self._time_entry,
            parse_suffix=self._times._parse_suffix,
            REACTIONS={},
            is_reaction=_is_reaction,
            TTL=story_ttl // _MILLI,
        )
        structs: list[type[msgspec.Struct]] = []
        for model in EVENT_TYPES:
            structs += self._structs(model, registry)
        self._decode = msgspec.json.Decoder(typing.Union[tuple(structs)]).decode  # noqa: UP007

    def _structs(self, model: type[Event], registry: SchemaRegistry) -> list[type[Any]]:
        """One Struct per `type` value of `model`, each with its `encode(line)` method."""
        hints = get_type_hints(model, include_extras=True)
        fields: dict[str, _Flat] = {}
        for name, info in model.model_fields.items():
            if name == "type":
                continue
            flat = _flat_field(hints[name], list(info.metadata))
            if flat is None:
                if info.is_required():
                    return []  # a required list or nested model: not a flat event
                continue  # not decoded: a line that has it is not the lane's
            fields[name] = flat
        spec, key_field = EVENT_ROUTES[model]
        codec = AvroCodec(spec.record, registry, spec.subject)
        out = []
        for tag in get_args(model.model_fields["type"].annotation):
            struct = msgspec.defstruct(
                f"Flat{model.__name__}_{tag}",
                [self._struct_field(model, name, flat) for name, flat in fields.items()],
                tag_field="type",
                tag=tag,
                forbid_unknown_fields=True,
                gc=False,  # scalars only: no cycles, and the collector need not track them
                kw_only=True,
            )
            struct.encode = self._encoder(model, tag, fields, codec, spec.name, key_field)  # type: ignore[attr-defined]
            out.append(struct)
        return out

    @staticmethod
    def _struct_field(model: type[BaseModel], name: str, flat: _Flat) -> tuple[Any, ...]:
        if name in ("event_id", "expires_at"):  # null or absent: derived from the line
            return name, flat.type | None, None
        info = model.model_fields[name]
        return (name, flat.type) if info.is_required() else (name, flat.type, info.default)

    def _encoder(
        self,
        model: type[BaseModel],
        tag: str,
        fields: dict[str, _Flat],
        codec: AvroCodec,
        topic: str,
        key_field: str,
    ) -> Callable[..., Encoded]:
        """Generated `encode(self, line)`: the checks msgspec left, then the Avro bytes."""
        name = self._source.name
        lines: list[str] = []
        parts = [name(codec.header)]
        times: dict[str, str] = {}
        for i, field in enumerate(current_schemas()[codec.record]["fields"]):
            avro_type, field_name = field["type"], field["name"]
            flat = fields.get(field_name)
            if flat is None:  # the type tag, or a field the line did not have: a constant
                info = model.model_fields.get(field_name)
                value = field.get("default") if info is None else info.default
                value = tag if field_name == "type" else value
                parts.append(name(compile_writer(avro_type)(value)))
                continue
            # A string's bytes are a part of their own, after their length: no concatenation.
            string = _avro_kind(avro_type) == "string"
            parts += [f"p{i}", f"q{i}"] if string else [f"p{i}"]
            lines.append(f"    x = self.{field_name}")
            pad = "    "
            if field_name == "event_id":  # derived: 32 hex digits, no check needed
                lines += [
                    "    if x is None: b = derive_event_id(line).encode()",
                    "    else:",
                ]
                pad = "        "
            if field_name == "expires_at":
                lines += [f"    if x is None: t{i} = {times['created_at']} + TTL", "    else:"]
                pad = "        "
            if isinstance(avro_type, list):  # ["null", X]: None is the null branch
                null = avro_type.index("null")
                other = avro_type[1 - null]
                empty = f"; q{i} = b''" if string else ""
                lines += [f"    if x is None: p{i} = {varint(null)!r}{empty}", "    else:"]
                lines += self._value_lines(flat, other, f"p{i}", "        ", times, field_name, i)
                lines.append(f"        p{i} = {varint(1 - null)!r} + p{i}")
            else:
                lines += self._value_lines(flat, avro_type, f"p{i}", pad, times, field_name, i)
            if field_name == "expires_at":
                lines.append(f"    p{i} = {_TIME_VARINT.format(t=f't{i}')}")
            if field_name == "event_id":
                lines.append(f"    p{i} = L[len(b)] if len(b) < 256 else varint(len(b))")
                lines.append(f"    q{i} = b")
        if model is StoryPosted:  # and a derived expiry past year 9999 is the models' to name
            expiry = f"{times['created_at']} < {times['expires_at']} <= {MAX_MILLIS}"
            lines.append(f"    if not {expiry}: raise NOT_MINE")
        time_var = times[model.time_field]  # type: ignore[attr-defined]
        lines.append(
            f"    return {topic!r}, k_{key_field}, b''.join(({', '.join(parts)},)), {time_var}"
        )
        return self._source.function(lines, "self, line")

    def _value_lines(
        self,
        flat: _Flat,
        avro_type: Any,
        var: str,
        pad: str,
        times: dict[str, str],
        field: str,
        index: int,
    ) -> list[str]:
        """Source checking `x` and setting `var` to its Avro bytes (and `k_<field>` to a
        string's UTF-8, `t<n>` to a time's millis)."""
        name = self._source.name
        kind = avro_type if isinstance(avro_type, str) else avro_type["type"]
        if flat.time:
            times[field] = t = f"t{index}"
            return [
                f"{pad}s = x[:19]",
                f"{pad}e = TIMES.get(s)",
                f"{pad}if e is None: e = time_entry(s)",
                f"{pad}s = x[19:]",
                f"{pad}f = SUFFIXES.get(s)",
                f"{pad}if f is None: f = parse_suffix(s)",
                f"{pad}{t} = e[0] + f",
                f"{pad}low = e[1]",
                f"{pad}if low is None: {var} = varint({t})",
                f"{pad}else:",
                f"{pad}    low += f + f",
                f"{pad}    {var} = LOW[low] + e[2] if low < 16384 else LOW[low - 16384] + e[3]",
            ]
        if kind == "enum":
            symbols = name({s: varint(i) for i, s in enumerate(avro_type["symbols"])})
            return [f"{pad}{var} = {symbols}[x]"]
        if kind in ("int", "long"):
            return [f"{pad}{var} = varint(x)"]
        if kind != "string":
            raise ValueError(f"flat field {field}: Avro {avro_type!r}")
        out = [f"{pad}k_{field} = b = x.encode()"]
        if flat.charset is not None:
            # isalnum (ASCII letters and digits) is the common case and costs less than translate
            fast = "not b.isalnum() and " if _ALNUM <= set(flat.charset) else ""
            out.append(f"{pad}if {fast}b.translate(None, {name(flat.charset)}): raise NOT_MINE")
        if flat.reaction:
            out += [
                f"{pad}r = REACTIONS.get(x)",
                f"{pad}if r is None:",
                f"{pad}    if len(REACTIONS) > 4096: REACTIONS.clear()",
                f"{pad}    r = REACTIONS[x] = is_reaction(x)",
                f"{pad}if not r: raise NOT_MINE",
            ]
        if field == "event_id":
            return out  # its length is added after the derived and the given case join
        # UTF-8 takes up to 4 bytes a character, an identifier's allowed characters one
        most = (
            None
            if flat.max_length is None
            else flat.max_length * (4 if flat.charset is None else 1)
        )
        short = most is not None and most < len(_LENGTHS)
        size = "L[len(b)]" if short else "(L[len(b)] if len(b) < 256 else varint(len(b)))"
        out += [f"{pad}{var} = {size}", f"{pad}q{index} = b"]
        return out

    def _time_entry(self, second: str) -> TimeEntry:
        """The cached entry of a time's first 19 characters (NOT_MINE if not a UTC second)."""
        if len(self._time_entries) >= 1 << 16:
            self._time_entries.clear()
        entry = self._time_entries[second] = _time_entry(second_millis(second))
        return entry

    def encode_lines(self, lines: list[bytes]) -> list[Encoded | None]:
        """Stripped JSON lines -> (topic, key, Avro value, timestamp ms) or None, in order."""
        decode = self._decode
        try:
            structs: list[Any] = list(map(decode, lines))
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            structs = [self._decode_or_none(line) for line in lines]
        out: list[Encoded | None] = []
        append = out.append
        for struct, line in zip(structs, lines, strict=True):
            try:
                append(struct.encode(line))
            except (_NotMine, ValueError, KeyError, TypeError, AttributeError):
                append(None)  # AttributeError: None.encode, a line msgspec refused
        return out

    def _decode_or_none(self, line: bytes) -> Any:
        try:
            return self._decode(line)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            return None  # RecursionError: nested deeper than msgspec goes (the models say so)
