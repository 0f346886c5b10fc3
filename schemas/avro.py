"""Loads the `.avsc` files: one self-contained record per file, and every registered version."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).parent
HISTORY_DIR = SCHEMA_DIR / "history"
NAMESPACE = "io.storystream"
_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
_HISTORY_NAME = re.compile(r"^(?P<name>[A-Za-z]+)\.v(?P<version>\d+)\.avsc$")


@dataclass(frozen=True)
class SchemaVersion:
    """One registered version of a record schema: self-contained JSON and its parsed form."""

    name: str
    version: int
    schema_id: int
    definition: dict[str, Any]

    @property
    def text(self) -> str:
        return json.dumps(self.definition, separators=(",", ":"), sort_keys=True)

    @property
    def parsed(self) -> Any:
        return _parse(self.text)


@cache
def _parse(text: str) -> Any:
    import fastavro  # imported when first needed: most commands never parse a schema with it

    return fastavro.parse_schema(json.loads(text), _force=True)


def _fullname(definition: dict[str, Any], namespace: str) -> str:
    name = definition["name"]
    return name if "." in name else f"{definition.get('namespace', namespace)}.{name}"


def _collect(node: Any, namespace: str, out: dict[str, dict[str, Any]]) -> None:
    if isinstance(node, list):
        for item in node:
            _collect(item, namespace, out)
    elif isinstance(node, dict):
        kind = node.get("type")
        if kind in ("record", "enum", "fixed"):
            out[_fullname(node, namespace)] = node
            namespace = node.get("namespace", namespace)
        for key in ("fields", "items", "values"):
            if key in node:
                _collect(node[key], namespace, out)
        if isinstance(kind, (list, dict)):
            _collect(kind, namespace, out)


def named_types(definition: Any) -> dict[str, dict[str, Any]]:
    """Every named type (record, enum, fixed) defined in a schema, by full name."""
    named: dict[str, dict[str, Any]] = {}
    _collect(definition, NAMESPACE, named)
    return named


def expand(node: Any, named: dict[str, dict[str, Any]], seen: set[str] | None = None) -> Any:
    """Inline named-type references so the schema stands alone (as a registry stores it)."""
    seen = set() if seen is None else seen
    if isinstance(node, str):
        if node in _PRIMITIVES:
            return node
        fullname = node if "." in node else f"{NAMESPACE}.{node}"
        if fullname in seen:
            return fullname
        if fullname not in named:
            raise KeyError(f"unknown Avro type {node!r}")
        return expand(named[fullname], named, seen)
    if isinstance(node, list):
        return [expand(item, named, seen) for item in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    if kind in ("record", "enum", "fixed"):
        fullname = _fullname(node, NAMESPACE)
        if fullname in seen:
            return fullname
        seen.add(fullname)
    out = dict(node)
    if kind == "record":
        out["fields"] = [
            {**fld, "type": expand(fld["type"], named, seen)} for fld in node["fields"]
        ]
    elif kind == "array":
        out["items"] = expand(node["items"], named, seen)
    elif kind == "map":
        out["values"] = expand(node["values"], named, seen)
    elif isinstance(kind, (list, dict)):
        out["type"] = expand(kind, named, seen)
    return out


def load_records(directory: Path) -> dict[str, dict[str, Any]]:
    """Every record in `directory/*.avsc`, by file name. Each file stands alone (any registry or
    `fastavro.parse_schema` loads it as it is), so a named type used by several records is
    defined in each of them: the copies must be identical, which keeps one meaning per name."""
    records: dict[str, dict[str, Any]] = {}
    defined: dict[str, tuple[str, dict[str, Any]]] = {}
    for path in sorted(directory.glob("*.avsc")):
        definition = json.loads(path.read_text())
        named = named_types(definition)
        try:
            expand(definition, named)
        except KeyError as exc:
            raise ValueError(
                f"{path.name}: {exc.args[0]}, not defined in this file; define it inline "
                "(a copy of its definition elsewhere) so the file loads alone"
            ) from None
        for fullname, node in named.items():
            first_file, first = defined.setdefault(fullname, (path.name, node))
            if node != first:
                raise ValueError(
                    f"{fullname} is defined differently in {first_file} and {path.name}: "
                    "every copy of a named type must be identical"
                )
        records[path.stem] = definition
    return records


@cache
def current_schemas() -> dict[str, dict[str, Any]]:
    """Every record in `schemas/*.avsc`, by record name; each one stands alone."""
    return load_records(SCHEMA_DIR)


@cache
def schema_ids() -> dict[str, int]:
    """Registered schema ids, fixed in the repo: `Name.vN` -> id (stable on every machine)."""
    ids: dict[str, int] = json.loads((SCHEMA_DIR / "ids.json").read_text())
    return ids


@cache
def history() -> dict[str, list[SchemaVersion]]:
    """Every registered version of every record, oldest first."""
    ids = schema_ids()
    versions: dict[str, list[SchemaVersion]] = {}
    for path in sorted(HISTORY_DIR.glob("*.avsc")):
        match = _HISTORY_NAME.match(path.name)
        if not match:
            raise ValueError(f"{path.name}: history files are named Record.vN.avsc")
        name, version = match["name"], int(match["version"])
        key = f"{name}.v{version}"
        if key not in ids:
            raise ValueError(f"{path.name}: no schema id for {key} in schemas/ids.json")
        versions.setdefault(name, []).append(
            SchemaVersion(name, version, ids[key], json.loads(path.read_text()))
        )
    for items in versions.values():
        items.sort(key=lambda v: v.version)
    return versions


def latest(name: str) -> SchemaVersion:
    """The newest registered version of a record (equal to the current `.avsc`)."""
    return history()[name][-1]
