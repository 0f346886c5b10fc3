"""The OpenAPI description covers exactly the routes a worker serves, and is a valid
OpenAPI 3.1 document."""

from __future__ import annotations

from typing import Any

import schemathesis

from streams.api.openapi import openapi, openapi_endpoint
from streams.api.routes import read_endpoints
from streams.api.uploads import upload_routes
from streams.api.writes import write_routes
from streams.settings import Settings


def served() -> set[tuple[str, str]]:
    """(method, path) of every endpoint a worker installs (handlers are not called here)."""
    nothing: Any = None
    endpoints = [
        *read_endpoints(nothing),
        *write_routes(nothing, nothing),
        *upload_routes(nothing, nothing, nothing, Settings(), nothing),
        openapi_endpoint(),
    ]
    return {(method, path) for method, path, _ in endpoints} | {("GET", "/metrics")}


def test_every_served_route_is_described_and_nothing_else() -> None:
    described = {
        (method.upper(), path)
        for path, operations in openapi()["paths"].items()
        for method in operations
    }
    assert described == served()


def test_the_description_is_valid_openapi_3_1() -> None:
    schema = schemathesis.openapi.from_dict(openapi())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(served())


def test_internal_routes_are_marked_and_need_a_workers_token() -> None:
    paths = openapi()["paths"]
    for path in ("/internal/authors/{author_id}", "/internal/stories/{story_id}"):
        operation = paths[path]["get"]
        assert operation["x-internal"] is True
        assert operation["security"] == [{"workerToken": []}]


def test_every_write_answers_202_and_names_its_limits() -> None:
    for path, operations in openapi()["paths"].items():
        for method, operation in operations.items():
            if method in ("post", "put", "delete") and path not in ("/uploads",):
                codes = set(operation["responses"])
                expected = {"400", "401", "429"} | ({"202", "503"} if method != "put" else set())
                assert expected <= codes, (method, path, codes)


def test_a_story_answer_describes_its_blurhash() -> None:
    schemas = openapi()["components"]["schemas"]
    for name in ("StoryState", "StoryView"):
        blurhash = schemas[name]["properties"]["blurhash"]
        assert {"type": "string"} in blurhash["anyOf"] and {"type": "null"} in blurhash["anyOf"]
        assert "blurhash" not in schemas[name].get("required", [])
        assert "BlurHash" in blurhash["description"]
