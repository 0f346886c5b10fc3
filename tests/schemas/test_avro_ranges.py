"""Every Avro `int` and `long` of every schema is bounded in its models; times stay datetimes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from schemas.avro import current_schemas
from schemas.events import EVENT_TYPES, Rendition, StoryPosted, parse_event
from schemas.records import RECORD_TYPES
from schemas.types import from_millis

# The Avro specification's ranges (not the code's constants: the test checks those).
AVRO_INTEGER_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}

MODELS: list[type[BaseModel]] = [*EVENT_TYPES, *RECORD_TYPES, Rendition]
Wrap = Callable[[Any], Any]


def _record_of(model: type[BaseModel]) -> str:
    return "Rendition" if model is Rendition else str(model.avro_record)  # type: ignore[attr-defined]


def _integers(avro_type: Any, wrap: Wrap) -> Iterator[tuple[str, Wrap]]:
    """The Avro integer types inside a field's type, each with how to place a value there
    (in a map, an array, a union's branch). Nested records have models of their own."""
    if isinstance(avro_type, list):
        for branch in avro_type:
            yield from _integers(branch, wrap)
    elif isinstance(avro_type, str) and avro_type in AVRO_INTEGER_RANGES:
        yield avro_type, wrap
    elif isinstance(avro_type, dict):
        kind = avro_type["type"]
        if kind == "map":
            yield from _integers(avro_type["values"], lambda v: wrap({"k": v}))
        elif kind == "array":
            yield from _integers(avro_type["items"], lambda v: wrap([v]))
        elif kind in AVRO_INTEGER_RANGES and "logicalType" not in avro_type:
            yield kind, wrap


def _integer_fields() -> list[tuple[str, str, str, Wrap]]:
    """(record, field, Avro type, placement) for every integer in every current schema."""
    out = []
    for record, schema in sorted(current_schemas().items()):
        for field in schema["fields"]:
            for kind, wrap in _integers(field["type"], lambda v: v):
                out.append((record, field["name"], kind, wrap))
    return out


INTEGERS = _integer_fields()


def test_the_schemas_have_the_integers_this_test_walks() -> None:
    # so the test below cannot pass by finding nothing
    found = {(record, field, kind) for record, field, kind, _ in INTEGERS}
    assert ("Rendition", "width", "int") in found
    assert ("ReactionCounts", "counts", "long") in found
    assert ("MediaUploaded", "size_bytes", "long") in found
    assert ("DeadLetter", "partition", "int") in found
    assert not any(field.endswith("_at") for _, field, _, _ in INTEGERS)  # times are apart


@pytest.mark.parametrize(
    ("record", "field", "kind", "wrap"), INTEGERS, ids=[f"{r}.{f}" for r, f, _, _ in INTEGERS]
)
def test_every_avro_integer_is_bounded_in_every_model_of_its_record(
    record: str, field: str, kind: str, wrap: Wrap
) -> None:
    low, high = AVRO_INTEGER_RANGES[kind]
    models = [m for m in MODELS if _record_of(m) == record and field in m.model_fields]
    assert models, f"no model has {record}.{field}"
    for model in models:
        info = model.model_fields[field]
        hint = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
        adapter: TypeAdapter[Any] = TypeAdapter(hint)
        adapter.validate_python(wrap(high))
        for outside in (high + 1, low - 1, 2**70, -(2**70)):
            with pytest.raises(ValidationError):
                adapter.validate_python(wrap(outside))
            with pytest.raises(ValidationError):
                adapter.validate_json(json.dumps(wrap(outside)))


def test_the_time_bounds_are_those_of_python_datetimes() -> None:
    from schemas.types import MAX_MILLIS, MIN_MILLIS, millis

    first = datetime(1, 1, 1, tzinfo=UTC)
    last = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    assert (from_millis(MIN_MILLIS), from_millis(MAX_MILLIS)) == (first, last)
    assert (millis(first), millis(last)) == (MIN_MILLIS, MAX_MILLIS)
    low, high = AVRO_INTEGER_RANGES["long"]
    assert low < MIN_MILLIS and MAX_MILLIS < high  # every datetime is an Avro long
    with pytest.raises(OverflowError):
        from_millis(MAX_MILLIS + 1)
    with pytest.raises(OverflowError):
        from_millis(MIN_MILLIS - 1)


def test_a_derived_expiry_past_year_9999_names_expires_at() -> None:
    post = {"type": "story_posted", "story_id": "s", "author_id": "a"}
    with pytest.raises(ValidationError, match="expires_at: created_at \\+ the story TTL"):
        parse_event({**post, "created_at": "9999-12-31T00:00:01Z"})
    with pytest.raises(ValidationError, match="expires_at"):
        StoryPosted.model_validate_json(json.dumps({**post, "created_at": "9999-12-31T00:00:01Z"}))
    last = parse_event({**post, "created_at": "9999-12-30T23:59:59.999Z"})
    assert last.expires_at == datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)  # type: ignore[attr-defined]
    given = {**post, "created_at": "9999-12-31T00:00:01Z", "expires_at": "9999-12-31T23:00:00Z"}
    assert parse_event(given, story_ttl=timedelta(hours=24)).occurred_at.year == 9999
