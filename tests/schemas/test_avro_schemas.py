"""Every schema parses, documents its fields, and reads data written with every older version."""

from __future__ import annotations

import io
import json
from pathlib import Path

import fastavro
import pytest
from fastavro.utils import generate_many

from schemas.avro import (
    HISTORY_DIR,
    NAMESPACE,
    SCHEMA_DIR,
    current_schemas,
    history,
    latest,
    load_records,
    schema_ids,
)

RECORDS = sorted(current_schemas())


def _fields(node: object) -> list[dict[str, object]]:
    """Every field of every record nested in a schema."""
    out: list[dict[str, object]] = []
    if isinstance(node, dict):
        if node.get("type") == "record":
            for field in node["fields"]:
                out.append(field)
                out.extend(_fields(field["type"]))
        for key in ("items", "values"):
            if key in node:
                out.extend(_fields(node[key]))
    elif isinstance(node, list):
        for item in node:
            out.extend(_fields(item))
    return out


@pytest.mark.parametrize("name", RECORDS)
def test_schema_parses_with_namespace_and_docs(name: str) -> None:
    schema = current_schemas()[name]
    fastavro.parse_schema(schema, _force=True)
    assert schema["namespace"] == NAMESPACE
    assert schema.get("doc")
    for field in _fields(schema):
        assert field.get("doc"), f"{name}.{field['name']} has no doc"


def test_times_are_timestamp_millis() -> None:
    for name in RECORDS:
        for field in _fields(current_schemas()[name]):
            if str(field["name"]).endswith("_at") or field["name"] == "at":
                text = json.dumps(field["type"])
                assert '"timestamp-millis"' in text, f"{name}.{field['name']}"


@pytest.mark.parametrize(
    "path",
    sorted([*SCHEMA_DIR.glob("*.avsc"), *HISTORY_DIR.glob("*.avsc")]),
    ids=lambda path: f"{path.parent.name}/{path.name}",
)
def test_every_avsc_file_parses_alone(path: Path) -> None:
    """What a registry, a Kafka UI or an analyst's fastavro gets: the file as it is, nothing
    else loaded before it."""
    parsed = fastavro.parse_schema(json.loads(path.read_text()), named_schemas={})
    assert isinstance(parsed, dict) and parsed["name"] == f"{NAMESPACE}.{path.name.split('.')[0]}"


def _write(directory: Path, name: str, fields: list[dict[str, object]]) -> None:
    record = {"type": "record", "name": name, "namespace": NAMESPACE, "fields": fields}
    (directory / f"{name}.avsc").write_text(json.dumps(record))


_KIND = {"type": "enum", "name": "Kind", "symbols": ["a", "b"]}


def test_a_type_defined_only_in_another_file_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, "First", [{"name": "kind", "type": _KIND}])
    _write(tmp_path, "Second", [{"name": "kind", "type": "io.storystream.Kind"}])
    with pytest.raises(
        ValueError,
        match=r"Second.avsc: unknown Avro type .io.storystream.Kind., not defined in this file",
    ):
        load_records(tmp_path)


def test_a_named_type_defined_differently_in_two_files_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, "First", [{"name": "kind", "type": _KIND}])
    _write(tmp_path, "Second", [{"name": "kind", "type": {**_KIND, "symbols": ["a", "c"]}}])
    with pytest.raises(ValueError, match="io.storystream.Kind is defined differently in First"):
        load_records(tmp_path)


def test_identical_copies_of_a_named_type_load(tmp_path: Path) -> None:
    _write(tmp_path, "First", [{"name": "kind", "type": _KIND}])
    _write(tmp_path, "Second", [{"name": "kind", "type": dict(_KIND)}])
    assert sorted(load_records(tmp_path)) == ["First", "Second"]


def test_one_file_per_record() -> None:
    for path in SCHEMA_DIR.glob("*.avsc"):
        assert json.loads(path.read_text())["name"] == path.stem


@pytest.mark.parametrize("name", RECORDS)
def test_current_schema_is_the_latest_registered_version(name: str) -> None:
    """Changing a schema requires a new history version (and id): the registry serves it."""
    assert latest(name).definition == current_schemas()[name]


def test_schema_ids_are_unique_and_every_version_has_one() -> None:
    ids = schema_ids()
    assert len(set(ids.values())) == len(ids)
    versions = [f"{v.name}.v{v.version}" for vs in history().values() for v in vs]
    assert sorted(versions) == sorted(ids)


@pytest.mark.parametrize(
    ("name", "version"),
    [(name, v.version) for name, versions in history().items() for v in versions],
)
def test_every_older_version_is_readable_with_the_current_schema(name: str, version: int) -> None:
    writer = next(v for v in history()[name] if v.version == version)
    reader = fastavro.parse_schema(current_schemas()[name], _force=True)
    for record in generate_many(writer.parsed, 20):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, writer.parsed, record)
        buf.seek(0)
        decoded = fastavro.schemaless_reader(buf, writer.parsed, reader)
        assert isinstance(decoded, dict)
        assert set(decoded) == {f["name"] for f in current_schemas()[name]["fields"]}
