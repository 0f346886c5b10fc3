"""The publish fast lane: common event lines validated and encoded without building models.

`storystream publish` spent most of its time in pydantic and Avro. The lane parses a line with
orjson and checks it with rules compiled once from the event models' own type hints: identifier
patterns, UTC times, literals, lengths, bounds, reactions, nested models, defaults, the derived
`event_id` and `expires_at`. The result goes to the compiled Avro writer.

The lane only says yes or "not mine". Anything it does not recognise (an unknown field, a time
in another ISO form, a value that breaks a rule, a model with a validator it does not know)
returns None, and the model path decides and names the errors. So it accepts only lines the
models accept and writes the same bytes; a hypothesis property checks both on valid and
broken lines of every event type.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints

import annotated_types
import orjson
from pydantic import AwareDatetime, BaseModel, BeforeValidator, StringConstraints
from pydantic.fields import FieldInfo

from schemas.events import EVENT_TYPES, StoryPosted, derive_event_id
from schemas.types import MAX_MILLIS, check_reaction, check_time_text, to_utc_millis
from streams.codecs.avro import AvroCodec, CodecError
from streams.codecs.registry import SchemaRegistry
from streams.topics import EVENT_ROUTES

Encoded = tuple[str, bytes, bytes, int]  # topic, key, value, timestamp (ms)


class _NotMine(Exception):
    """The lane cannot vouch for this value: the model path decides."""


class Unsupported(Exception):
    """A model uses something the lane does not know: its events take the model path."""


_NOT_MINE = _NotMine()
_MILLI = timedelta(milliseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Model validators the lane reproduces: the derived event_id and StoryPosted's expiry rules.
_KNOWN_MODEL_VALIDATORS = {"_derive_event_id", "_default_expiry", "_expires_after_creation"}


# -- times ------------------------------------------------------------------------------------
_SECOND = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
_SUFFIX = re.compile(r"(?:\.(\d{1,6}))?(?:Z|\+00:00)")
_CACHE_LIMIT = 1 << 16


def second_millis(text: str) -> int:
    """`YYYY-MM-DDTHH:MM:SS` in UTC -> epoch millis (NOT_MINE for any other form)."""
    if not _SECOND.fullmatch(text):
        raise _NOT_MINE
    try:
        at = datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        raise _NOT_MINE from None
    return (at - _EPOCH) // _MILLI


class _Times:
    """UTC times in the strict form `YYYY-MM-DDTHH:MM:SS[.ffffff](Z|+00:00)` to epoch millis.

    A stream's times share their seconds and their fractions, so both halves are parsed once
    and cached (bounded); other forms, which pydantic may still accept, are not the lane's.
    """

    def __init__(self) -> None:
        self._seconds: dict[str, int] = {}
        self._suffixes: dict[str, int] = {}

    def millis(self, value: Any) -> int:
        if type(value) is not str:
            raise _NOT_MINE
        seconds = self._seconds.get(value[:19])
        if seconds is None:
            seconds = self._parse_seconds(value[:19])
        fraction = self._suffixes.get(value[19:])
        if fraction is None:
            fraction = self._parse_suffix(value[19:])
        return seconds + fraction

    def _parse_seconds(self, text: str) -> int:
        if len(self._seconds) >= _CACHE_LIMIT:
            self._seconds.clear()
        self._seconds[text] = millis = second_millis(text)
        return millis

    def _parse_suffix(self, text: str) -> int:
        match = _SUFFIX.fullmatch(text)
        if match is None:
            raise _NOT_MINE
        fraction = int((match[1] or "").ljust(3, "0")[:3])  # truncated, as to_utc_millis does
        if len(self._suffixes) >= _CACHE_LIMIT:
            self._suffixes.clear()
        self._suffixes[text] = fraction
        return fraction


# -- rules from type hints --------------------------------------------------------------------
_BOUNDS = (annotated_types.MinLen, annotated_types.MaxLen, annotated_types.Ge, annotated_types.Le)


def _constraints(metadata: list[Any]) -> dict[str, Any]:
    """Flatten pydantic and annotated-types metadata into {constraint: value}."""
    out: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, FieldInfo):
            out.update(_constraints(item.metadata))
        elif isinstance(item, StringConstraints):
            fields = {k: v for k, v in _attributes(item).items() if v is not None}
            if set(fields) - {"pattern", "min_length", "max_length"}:
                raise Unsupported(f"string constraints {fields}")
            out.update(fields)
        elif isinstance(item, _BOUNDS):
            out.update(_attributes(item))
        elif isinstance(item, BeforeValidator) and item.func is check_time_text:
            continue  # the lanes take only that form of a time themselves (`_Times`)
        elif hasattr(item, "func"):  # AfterValidator
            if item.func not in out.setdefault("after", []):
                out["after"].append(item.func)
        elif type(item).__name__ == "_PydanticGeneralMetadata" and set(vars(item)) == {"pattern"}:
            out["pattern"] = item.pattern
        else:
            raise Unsupported(f"metadata {item!r}")
    return out


def _attributes(item: Any) -> dict[str, Any]:
    return {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}


class _Source:
    """Python source being generated, with the objects it names.

    The checks are generated as one function per model (and per list item type): one closure
    per field cost more in calls than the checks themselves.
    """

    def __init__(self) -> None:
        self.env: dict[str, Any] = {"NOT_MINE": _NOT_MINE, "MISSING": _MISSING}

    def name(self, value: Any) -> str:
        """A global name for `value` in the generated code."""
        key = f"c{len(self.env)}"
        self.env[key] = value
        return key

    def function(self, lines: list[str], args: str = "x") -> Callable[..., Any]:
        """Compile `lines` (the body, indented by 4) into a function of `args`."""
        text = f"def generated({args}):\n" + "\n".join(lines) + "\n"
        namespace = dict(self.env)
        exec(compile(text, "<publish lane>", "exec"), namespace)  # noqa: S102 - our own source
        function: Callable[..., Any] = namespace["generated"]
        function.source = text  # type: ignore[attr-defined]
        return function


_MISSING = object()
Rule = Callable[[str], list[str]]  # indentation -> lines checking and converting `x` in place


class _Rules:
    """Compiles a model's field hints into generated checks, sharing one time parser."""

    def __init__(self, times: _Times) -> None:
        self._times = times
        self.source = _Source()

    def rule(self, hint: Any, metadata: list[Any]) -> Rule:
        origin = get_origin(hint)
        if origin is Annotated:
            base, *more = get_args(hint)
            return self.rule(base, [*more, *metadata])
        rules = _constraints(metadata)
        after = rules.pop("after", [])
        name = self.source.name
        if origin in (typing.Union, types.UnionType):
            options = [a for a in get_args(hint) if a is not type(None)]
            if len(options) != 1 or len(get_args(hint)) != 2 or rules or after:
                raise Unsupported(f"union {hint}")
            inner = self.rule(options[0], [])
            return lambda pad: [f"{pad}if x is not None:", *inner(pad + "    ")]
        if origin is Literal:
            allowed = frozenset(get_args(hint))
            if rules or after or not all(type(a) is str for a in allowed):
                raise Unsupported(f"literal {hint}")
            symbols = name(allowed)
            return lambda pad: [f"{pad}if type(x) is not str or x not in {symbols}: raise NOT_MINE"]
        if origin is list:
            if rules or after:
                raise Unsupported(f"list constraints {rules}")
            item = name(self.function(self.rule(get_args(hint)[0], [])))
            return lambda pad: [
                f"{pad}if type(x) is not list: raise NOT_MINE",
                f"{pad}x = [{item}(i) for i in x]",
            ]
        if hint is AwareDatetime:
            if after != [to_utc_millis] or rules:
                raise Unsupported(f"datetime {rules} {after}")
            millis = name(self._times.millis)
            return lambda pad: [f"{pad}x = {millis}(x)"]
        if hint is str:
            return self._string_rule(rules, after)
        if hint is int:
            return self._int_rule(rules, after)
        if isinstance(hint, type) and issubclass(hint, BaseModel):
            if rules or after:
                raise Unsupported(f"constraints on {hint.__name__}")
            nested = name(self.model(hint))
            return lambda pad: [f"{pad}x = {nested}(x)"]
        raise Unsupported(f"type {hint}")

    def function(self, rule: Rule) -> Callable[[Any], Any]:
        return self.source.function([*rule("    "), "    return x"])

    def _string_rule(self, rules: dict[str, Any], after: list[Callable[..., Any]]) -> Rule:
        if set(rules) - {"pattern", "min_length", "max_length"} or set(after) - {check_reaction}:
            raise Unsupported(f"string rules {rules} {after}")
        tests = ["type(x) is not str"]
        if "min_length" in rules:
            tests.append(f"len(x) < {int(rules['min_length'])}")
        if "max_length" in rules:
            tests.append(f"len(x) > {int(rules['max_length'])}")
        if "pattern" in rules:
            # Python's `$` also matches before a final newline; pydantic's regex does not, so a
            # value with a newline is left to pydantic.
            try:
                search = self.source.name(re.compile(rules["pattern"]).search)
            except re.error as exc:  # a pattern in pydantic's (Rust) syntax only
                raise Unsupported(f"pattern {rules['pattern']!r}: {exc}") from None
            tests += [f"not {search}(x)", "'\\n' in x"]
        if after:
            tests.append(f"not {self.source.name(_is_reaction)}(x)")
        return lambda pad: [f"{pad}if {' or '.join(tests)}: raise NOT_MINE"]

    def _int_rule(self, rules: dict[str, Any], after: list[Callable[..., Any]]) -> Rule:
        if set(rules) - {"ge", "le"} or after:
            raise Unsupported(f"int rules {rules} {after}")
        tests = ["type(x) is not int", "x.bit_length() > 63"]
        if "ge" in rules:
            tests.append(f"x < {int(rules['ge'])}")
        if "le" in rules:
            tests.append(f"x > {int(rules['le'])}")
        return lambda pad: [f"{pad}if {' or '.join(tests)}: raise NOT_MINE"]

    def model(self, model: type[BaseModel]) -> Callable[..., dict[str, Any]]:
        """A function checking a JSON object against `model`: known fields only, required ones
        present (or given in `derived`), defaults filled in; returns the fields to write."""
        decorators = model.__pydantic_decorators__
        unknown = set(decorators.model_validators) - _KNOWN_MODEL_VALIDATORS
        if unknown or decorators.field_validators or decorators.validators:
            raise Unsupported(f"{model.__name__}: validators {sorted(unknown)}")
        if model.model_config.get("extra") != "forbid":
            raise Unsupported(f"{model.__name__}: extra fields not forbidden")
        hints = get_type_hints(model, include_extras=True)
        names = self.source.name(frozenset(model.model_fields))
        lines = [
            f"    if type(value) is not dict or not {names}.issuperset(value): raise NOT_MINE",
            "    out = {}",
        ]
        for field, info in model.model_fields.items():
            if info.alias or info.default_factory is not None:
                raise Unsupported(f"{model.__name__}.{field}: alias or default factory")
            rule = self.rule(hints[field], list(info.metadata))
            lines.append(f"    x = value.get({field!r}, MISSING)")
            if info.is_required():
                lines += [
                    "    if x is MISSING:",
                    f"        if derived is None or {field!r} not in derived: raise NOT_MINE",
                    f"        out[{field!r}] = derived[{field!r}]",
                    "    else:",
                    *rule("        "),
                    f"        out[{field!r}] = x",
                ]
            else:
                default = self.source.name(info.default)
                lines += [
                    f"    if x is MISSING: out[{field!r}] = {default}",
                    "    else:",
                    *rule("        "),
                    f"        out[{field!r}] = x",
                ]
        return self.source.function([*lines, "    return out"], "value, derived=None")


def _is_reaction(value: str) -> bool:
    try:
        check_reaction(value)
    except ValueError:
        return False
    return True


# -- events -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _EventPlan:
    check: Callable[..., dict[str, Any]]
    codec: AvroCodec
    topic: str
    key_field: str
    time_field: str
    expiry: bool  # StoryPosted: expires_at defaults to created_at + TTL, and comes after it


class PublishLane:
    """Validates and encodes the event lines it can vouch for; None for every other line."""

    def __init__(self, registry: SchemaRegistry, story_ttl: timedelta) -> None:
        self._ttl_ms = story_ttl // _MILLI
        self._times = _Times()
        rules = _Rules(self._times)
        self._plans: dict[str, _EventPlan] = {}
        self.unsupported: dict[str, str] = {}  # event type -> why it takes the model path
        for model in EVENT_TYPES:
            spec, key_field = EVENT_ROUTES[model]
            tags = get_args(model.model_fields["type"].annotation)
            try:
                plan = _EventPlan(
                    rules.model(model),
                    AvroCodec(spec.record, registry, spec.subject),
                    spec.name,
                    key_field,
                    model.time_field,
                    model is StoryPosted,
                )
            except Unsupported as exc:
                self.unsupported.update(dict.fromkeys(tags, str(exc)))
                continue
            self._plans.update(dict.fromkeys(tags, plan))

    @property
    def event_types(self) -> frozenset[str]:
        """The `type`s the lane handles."""
        return frozenset(self._plans)

    def encode(self, content: bytes) -> Encoded | None:
        """One stripped JSON line -> (topic, key, Avro value, timestamp ms), or None."""
        try:
            data = orjson.loads(content)
            plan = self._plans[data["type"]]
            derived: dict[str, Any] = {}
            if data.get("event_id") is None:
                data.pop("event_id", None)
                derived["event_id"] = derive_event_id(content)
            if plan.expiry and data.get("expires_at") is None and "created_at" in data:
                data.pop("expires_at", None)
                derived["expires_at"] = self._times.millis(data["created_at"]) + self._ttl_ms
            value = plan.check(data, derived)
            if plan.expiry and not value["created_at"] < value["expires_at"] <= MAX_MILLIS:
                return None  # a derived expiry past year 9999 too: the models name the field
            encoded = plan.codec.encode(value)
        except (orjson.JSONDecodeError, _NotMine, KeyError, TypeError, CodecError):
            return None
        key: str = value[plan.key_field]
        return plan.topic, key.encode(), encoded, value[plan.time_field]
