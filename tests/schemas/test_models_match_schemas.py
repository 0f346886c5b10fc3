"""The pydantic models mirror the Avro schemas field by field."""

from __future__ import annotations

import pytest

from schemas.avro import current_schemas
from schemas.events import EVENT_TYPES
from schemas.records import RECORD_TYPES

MODELS = [*EVENT_TYPES, *RECORD_TYPES]


def _optional(field: dict[str, object]) -> bool:
    return "default" in field


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_model_fields_exist_in_its_schema(model: type) -> None:
    schema_fields = {f["name"]: f for f in current_schemas()[model.avro_record]["fields"]}
    assert set(model.model_fields) <= set(schema_fields), model.__name__


@pytest.mark.parametrize("record", sorted(current_schemas()))
def test_every_schema_field_is_in_a_model(record: str) -> None:
    if record == "Rendition":
        from schemas.events import Rendition

        models = [Rendition]
    else:
        models = [m for m in MODELS if m.avro_record == record]
    assert models, f"no model for {record}"
    covered = set().union(*(m.model_fields for m in models))
    for field in current_schemas()[record]["fields"]:
        assert field["name"] in covered, f"{record}.{field['name']} has no model field"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_required_schema_fields_are_required_or_defaulted_in_the_model(model: type) -> None:
    for field in current_schemas()[model.avro_record]["fields"]:
        if field["name"] not in model.model_fields:
            assert _optional(field), f"{model.__name__} lacks required {field['name']}"
