"""What the embedded schema registry holds: the versions of `schemas/history` under subjects."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from schemas.avro import NAMESPACE, SchemaVersion, expand, named_types

_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
_NAMED = ("record", "error", "enum", "fixed")
# Subjects registered at run time (a client's own naming) are kept in memory; the cap keeps
# a misbehaving client from growing the process without end.
MAX_SUBJECTS = 10_000
FIXED = (
    "this registry serves the schemas fixed in the repository (schemas/history, ids in "
    "schemas/ids.json)"
)


class ConfluentError(Exception):
    """An answer in Confluent's error form: HTTP status, `error_code` and `message`."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _fullname(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def canonical(node: Any, namespace: str = "") -> Any:
    """The schema without what leaves its meaning alone (docs, JSON layout, how names are
    qualified), so two texts of one schema compare equal."""
    if isinstance(node, str):
        return node if node in _PRIMITIVES else _fullname(node, namespace)
    if isinstance(node, list):
        return [canonical(item, namespace) for item in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    out = {key: value for key, value in node.items() if key not in ("doc", "namespace")}
    if kind in _NAMED and isinstance(node.get("name"), str):
        out["name"] = _fullname(node["name"], node.get("namespace", namespace))
        namespace = out["name"].rpartition(".")[0]
    if kind in ("record", "error") and isinstance(node.get("fields"), list):
        out["fields"] = [
            {
                **{k: v for k, v in field.items() if k != "doc"},
                "type": canonical(field.get("type"), namespace),
            }
            if isinstance(field, dict)
            else field  # kept for the parser to refuse
            for field in node["fields"]
        ]
    elif kind == "array":
        out["items"] = canonical(node.get("items"), namespace)
    elif kind == "map":
        out["values"] = canonical(node.get("values"), namespace)
    elif isinstance(kind, (list, dict)) or (isinstance(kind, str) and kind not in _NAMED):
        if isinstance(kind, str) and len(out) == 1:
            return canonical(kind, namespace)  # {"type": "string"} is "string"
        out["type"] = canonical(kind, namespace)
    return out


def _key(definition: Any) -> str:
    return json.dumps(definition, sort_keys=True, separators=(",", ":"))


class SchemaStore:
    """Subjects and versions over fixed schema ids: one subject per record (record-name
    strategy, `io.storystream.StoryState`) and one per topic (`story-state-value`)."""

    def __init__(self, versions: Iterable[SchemaVersion], topic_subjects: Mapping[str, str]):
        self._by_id: dict[int, SchemaVersion] = {}
        self._by_key: dict[str, int] = {}
        self._subjects: dict[str, list[int]] = {}
        for version in sorted(versions, key=lambda v: (v.name, v.version)):
            self._by_id[version.schema_id] = version
            self._by_key[_key(canonical(version.definition))] = version.schema_id
            self._subjects.setdefault(f"{NAMESPACE}.{version.name}", []).append(version.schema_id)
        for subject, record in topic_subjects.items():
            if f"{NAMESPACE}.{record}" not in self._subjects:
                raise ValueError(f"subject {subject}: no schema of record {record!r}")
            self._subjects[subject] = list(self._subjects[f"{NAMESPACE}.{record}"])

    # -- reading ----------------------------------------------------------------------------
    def schema(self, schema_id: int) -> SchemaVersion:
        """The schema registered with `schema_id`."""
        if schema_id not in self._by_id:
            raise ConfluentError(404, 40403, f"Schema {schema_id} not found")
        return self._by_id[schema_id]

    def schemas(self) -> list[dict[str, Any]]:
        """Every version of every subject, as `version` answers it."""
        return [self._answer(s, n) for s in sorted(self._subjects) for n in self.versions(s)]

    def subjects(self, prefix: str = "") -> list[str]:
        return sorted(s for s in self._subjects if s.startswith(prefix))

    def versions(self, subject: str) -> list[int]:
        return list(range(1, len(self._ids(subject)) + 1))

    def version(self, subject: str, version: str) -> dict[str, Any]:
        """`{subject, version, id, schema}` of a version number, `latest` or -1."""
        ids = self._ids(subject)
        if version in ("latest", "-1"):
            return self._answer(subject, len(ids))
        number = int(version) if version.isdigit() else 0
        if not 1 <= number < 2**31:
            raise ConfluentError(
                422,
                42202,
                f"The specified version '{version}' is not a valid version id. Allowed values "
                'are between [1, 2^31-1] and the string "latest"',
            )
        if number > len(ids):
            raise ConfluentError(404, 40402, f"Version {number} not found.")
        return self._answer(subject, number)

    def usages(self, schema_id: int) -> list[dict[str, Any]]:
        """Every `{subject, version}` that holds `schema_id`."""
        self.schema(schema_id)
        return [
            {"subject": subject, "version": index + 1}
            for subject in sorted(self._subjects)
            for index, held in enumerate(self._subjects[subject])
            if held == schema_id
        ]

    def _ids(self, subject: str) -> list[int]:
        if subject not in self._subjects:
            raise ConfluentError(404, 40401, f"Subject '{subject}' not found.")
        return self._subjects[subject]

    def _answer(self, subject: str, number: int) -> dict[str, Any]:
        schema_id = self._subjects[subject][number - 1]
        text = self._by_id[schema_id].text
        return {"subject": subject, "version": number, "id": schema_id, "schema": text}

    # -- lookup and registration ------------------------------------------------------------
    def lookup(self, subject: str, body: Any) -> dict[str, Any]:
        """The version of `subject` that holds the schema in `body` (POST /subjects/{s})."""
        ids = self._ids(subject)
        schema_id = self._identify(body)
        if schema_id not in ids:
            raise ConfluentError(404, 40403, "Schema not found")
        return self._answer(subject, ids.index(schema_id) + 1)

    def register(self, subject: str, body: Any) -> int:
        """The fixed id of the schema in `body`, now also a version of `subject`. Schemas
        outside the repository are refused: an id given here would be lost at the next start,
        while records carrying it stay on the broker."""
        schema_id = self._identify(body)
        if schema_id is None:
            raise ConfluentError(
                422,
                42205,
                f"Schema is not one of this registry's: {FIXED}. A new schema is a new "
                "version in schemas/history with its id in schemas/ids.json.",
            )
        if isinstance(body.get("id"), int) and body["id"] != schema_id:
            raise ConfluentError(
                422, 42207, f"Schema id {body['id']} given; this schema's id is {schema_id}"
            )
        ids = self._subjects.get(subject)
        if ids is None:
            if len(self._subjects) >= MAX_SUBJECTS:
                raise ConfluentError(422, 42205, f"Too many subjects ({MAX_SUBJECTS})")
            self._subjects[subject] = [schema_id]
        elif schema_id not in ids:
            held = {self._by_id[i].name for i in ids}
            record = self._by_id[schema_id].name
            if held != {record}:
                raise ConfluentError(
                    409,
                    409,
                    f"Schema being registered is incompatible with an earlier schema for "
                    f'subject "{subject}": it holds {", ".join(sorted(held))}, not {record}',
                )
            ids.append(schema_id)
        return schema_id

    def _identify(self, body: Any) -> int | None:
        """The fixed id of the schema a request carries (None when it is none of them)."""
        if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
            raise ConfluentError(422, 42201, 'Invalid schema: the body needs a "schema" string')
        kind = body.get("schemaType") or "AVRO"
        if kind != "AVRO":
            raise ConfluentError(422, 42201, f"Invalid schema: type {kind!r}; {FIXED}, all AVRO")
        try:
            definition = canonical(json.loads(body["schema"]))
            references = body.get("references") or []
            if references:  # named types of other subjects' versions, inlined where used
                named: dict[str, dict[str, Any]] = {}
                for reference in references:
                    found = self.version(str(reference["subject"]), str(reference["version"]))
                    named.update(named_types(canonical(json.loads(found["schema"]))))
                definition = expand(definition, named)
            import fastavro  # here: only registrations and lookups parse a schema

            fastavro.parse_schema(definition, named_schemas={}, _force=True)
        except ConfluentError as exc:
            raise ConfluentError(422, 42201, f"Invalid schema: reference: {exc.message}") from exc
        except Exception as exc:  # JSONDecodeError, KeyError, TypeError, SchemaParseException
            raise ConfluentError(422, 42201, f"Invalid schema: {exc}") from exc
        return self._by_key.get(_key(canonical(definition)))
