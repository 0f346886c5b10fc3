"""The embedded registry's contents: fixed ids under record and topic subjects, lookups and
registrations that match schemas by meaning, and refusals in Confluent's error codes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.schema_store import ConfluentError, SchemaStore, canonical
from schemas.avro import HISTORY_DIR, SCHEMA_DIR, history, latest, schema_ids
from streams.codecs.registry import topic_subjects


@pytest.fixture
def store() -> SchemaStore:
    return SchemaStore([v for vs in history().values() for v in vs], topic_subjects())


def _body(definition: Any, **extra: Any) -> dict[str, Any]:
    return {"schema": json.dumps(definition), **extra}


def _refused(status: int, code: int) -> Any:
    def check(exc: pytest.ExceptionInfo[ConfluentError]) -> None:
        assert (exc.value.status, exc.value.code) == (status, code), exc.value.message

    return check


def test_every_fixed_id_is_served_as_its_history_file(store: SchemaStore) -> None:
    for key, schema_id in schema_ids().items():
        name, _, version = key.partition(".v")
        served = store.schema(schema_id)
        assert (served.name, served.version) == (name, int(version))
        assert json.loads(served.text) == json.loads((HISTORY_DIR / f"{key}.avsc").read_text())


def test_topic_and_record_subjects_hold_the_records_versions(store: SchemaStore) -> None:
    subjects = store.subjects()
    assert "story-state-value" in subjects and "io.storystream.StoryState" in subjects
    assert "story-dead-letters-value" in subjects
    assert not [s for s in subjects if s.endswith("-key")]  # keys are UTF-8, not Avro
    for subject, record in topic_subjects().items():
        answer = store.version(subject, "latest")
        assert answer == {
            "subject": subject,
            "version": len(history()[record]),
            "id": latest(record).schema_id,
            "schema": latest(record).text,
        }
        versions = len(history()[record])
        assert store.version(subject, "-1") == answer == store.version(subject, str(versions))
        if versions > 1:  # an older version keeps its own id
            older = store.version(subject, "1")
            assert (older["version"], older["id"]) == (1, history()[record][0].schema_id)
    assert store.subjects("story-s") == ["story-state-value"]


def test_versions_and_subjects_that_do_not_exist(store: SchemaStore) -> None:
    with pytest.raises(ConfluentError) as exc:
        store.versions("nope-value")
    _refused(404, 40401)(exc)
    past = len(history()["StoryState"]) + 1
    with pytest.raises(ConfluentError) as exc:
        store.version("story-state-value", str(past))
    _refused(404, 40402)(exc)
    for bad in ("0", "x", "-2", str(2**31)):
        with pytest.raises(ConfluentError) as exc:
            store.version("story-state-value", bad)
        _refused(422, 42202)(exc)
    with pytest.raises(ConfluentError) as exc:
        store.schema(999)
    _refused(404, 40403)(exc)


def test_the_current_avsc_registers_as_its_fixed_id(store: SchemaStore) -> None:
    for path in sorted(SCHEMA_DIR.glob("*.avsc")):
        body = {"schema": path.read_text(), "schemaType": "AVRO"}
        assert store.register(f"io.storystream.{path.stem}", body) == latest(path.stem).schema_id


def test_a_schema_matches_whatever_its_layout_docs_and_name_qualification(
    store: SchemaStore,
) -> None:
    definition = json.loads((SCHEMA_DIR / "StoryViewer.avsc").read_text())
    rewritten: dict[str, Any] = {
        "name": "StoryViewer",  # bare name, namespace given apart; keys in another order
        "namespace": "io.storystream",
        "type": "record",
        "fields": [
            {**{k: v for k, v in f.items() if k != "doc"}, "doc": "another text"}
            for f in definition["fields"]
        ],
    }
    rewritten["fields"][0]["type"] = {"type": "string"}  # the long form of "string"
    assert canonical(rewritten) == canonical(definition)
    found = store.lookup("story-viewers-value", _body(rewritten))
    assert found["id"] == latest("StoryViewer").schema_id and found["version"] == 1


def test_a_changed_default_is_another_schema(store: SchemaStore) -> None:
    definition = json.loads((SCHEMA_DIR / "StoryState.avsc").read_text())
    field = next(f for f in definition["fields"] if f["name"] == "highlight_ids")
    field["default"] = ["x"]
    with pytest.raises(ConfluentError) as exc:
        store.lookup("story-state-value", _body(definition))
    _refused(404, 40403)(exc)
    with pytest.raises(ConfluentError, match="schemas/history") as exc:
        store.register("story-state-value", _body(definition))
    _refused(422, 42205)(exc)
    every = list(range(1, len(history()["StoryState"]) + 1))
    assert store.versions("story-state-value") == every  # nothing half-registered


def test_lookup_of_a_known_schema_under_another_subject_is_not_found(store: SchemaStore) -> None:
    with pytest.raises(ConfluentError) as exc:
        store.lookup("story-state-value", _body(latest("Tray").definition))
    _refused(404, 40403)(exc)
    with pytest.raises(ConfluentError) as exc:
        store.lookup("nope-value", _body(latest("Tray").definition))
    _refused(404, 40401)(exc)


def test_a_new_subject_takes_a_known_schema_with_its_fixed_id(store: SchemaStore) -> None:
    """What a replay's prefixed output topics register."""
    body = _body(latest("StoryState").definition)
    assert store.register("analysis1-story-state-value", body) == latest("StoryState").schema_id
    assert store.register("analysis1-story-state-value", body) == latest("StoryState").schema_id
    assert store.versions("analysis1-story-state-value") == [1]
    assert {"subject": "analysis1-story-state-value", "version": 1} in store.usages(
        latest("StoryState").schema_id
    )


def test_another_records_schema_under_a_subject_is_incompatible(store: SchemaStore) -> None:
    with pytest.raises(ConfluentError, match="holds StoryState, not Tray") as exc:
        store.register("story-state-value", _body(latest("Tray").definition))
    _refused(409, 409)(exc)


def test_invalid_requests_name_what_is_wrong(store: SchemaStore) -> None:
    viewer = latest("StoryViewer").definition
    cases: list[tuple[Any, str]] = [
        ({}, 'needs a "schema" string'),
        ({"schema": "{not json"}, "Invalid schema"),
        (_body({"type": "record", "name": "X", "fields": [{"name": "a"}]}), "Invalid schema"),
        ({"schema": '"string"', "schemaType": "PROTOBUF"}, "PROTOBUF"),
        (_body({"type": "array", "items": "io.storystream.Nope"}), "Invalid schema"),
        (_body({**viewer, "fields": [*viewer["fields"], "junk"]}), "Invalid schema"),
    ]
    for body, reason in cases:
        with pytest.raises(ConfluentError, match=reason) as exc:
            store.register("x-value", body)
        _refused(422, 42201)(exc)
    assert "x-value" not in store.subjects()


def test_a_given_id_must_be_the_schemas_own(store: SchemaStore) -> None:
    body = _body(latest("StoryViewer").definition, id=1)
    with pytest.raises(ConfluentError) as exc:
        store.register("story-viewers-value", body)
    _refused(422, 42207)(exc)


def test_references_resolve_named_types_of_other_subjects(store: SchemaStore) -> None:
    """A client that splits Tray into Tray + a reference to TrayEntry gets Tray's id."""
    tray = latest("Tray").definition
    entries = next(f for f in tray["fields"] if f["name"] == "entries")
    split = {
        **tray,
        "fields": [
            f if f is not entries else {**f, "type": {"type": "array", "items": "TrayEntry"}}
            for f in tray["fields"]
        ],
    }
    reference = {"name": "io.storystream.TrayEntry", "subject": "io.storystream.TrayEntry"}
    body = _body(split, references=[{**reference, "version": 1}])
    assert store.register("story-trays-value", body) == latest("Tray").schema_id
    with pytest.raises(ConfluentError, match="reference") as exc:
        store.register("story-trays-value", _body(split, references=[{**reference, "version": 9}]))
    _refused(422, 42201)(exc)
