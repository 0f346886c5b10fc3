"""The Confluent schema registry REST API that clients call, over `SchemaStore` (aiohttp)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from infra.schema_store import FIXED, ConfluentError, SchemaStore

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
STORE = web.AppKey("store", SchemaStore)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(body: Any, status: int = 200) -> web.Response:
    # ASCII JSON, so no charset parameter: the content type exactly as Confluent's registry
    return web.Response(
        body=json.dumps(body).encode(), status=status, headers={"Content-Type": CONTENT_TYPE}
    )


def _error(status: int, code: int, message: str) -> web.Response:
    return _json({"error_code": code, "message": message}, status)


@web.middleware
async def _confluent_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error in Confluent's form, so clients report the registry's reason."""
    try:
        return await handler(request)
    except ConfluentError as exc:
        return _error(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:  # no such route or method
        return _error(exc.status, exc.status, f"HTTP {exc.status} {exc.reason}")


def _store(request: web.Request) -> SchemaStore:
    return request.app[STORE]


def _schema_id(request: web.Request) -> int:
    text = request.match_info["id"]
    if not text.isdigit():
        raise ConfluentError(404, 40403, f"Schema {text} not found")
    return int(text)


async def _body(request: web.Request) -> Any:
    try:
        return json.loads(await request.read() or b"null")
    except ValueError as exc:
        raise ConfluentError(400, 400, f"Request body is not JSON: {exc}") from exc


async def root(request: web.Request) -> web.Response:
    return _json({})


async def schema_types(request: web.Request) -> web.Response:
    return _json(["AVRO"])


async def schemas(request: web.Request) -> web.Response:
    return _json(_store(request).schemas())


async def schema_by_id(request: web.Request) -> web.Response:
    return _json({"schema": _store(request).schema(_schema_id(request)).text})


async def raw_schema_by_id(request: web.Request) -> web.Response:
    return _json(_store(request).schema(_schema_id(request)).definition)


async def subjects_of_id(request: web.Request) -> web.Response:
    usages = _store(request).usages(_schema_id(request))
    return _json(sorted({usage["subject"] for usage in usages}))


async def versions_of_id(request: web.Request) -> web.Response:
    return _json(_store(request).usages(_schema_id(request)))


async def subjects(request: web.Request) -> web.Response:
    prefix = request.query.get("subjectPrefix") or request.query.get("subject") or ""
    return _json(_store(request).subjects(prefix))


async def versions(request: web.Request) -> web.Response:
    return _json(_store(request).versions(request.match_info["subject"]))


async def version(request: web.Request) -> web.Response:
    info = request.match_info
    return _json(_store(request).version(info["subject"], info["version"]))


async def raw_version(request: web.Request) -> web.Response:
    info = request.match_info
    found = _store(request).version(info["subject"], info["version"])
    return _json(json.loads(found["schema"]))


async def referenced_by(request: web.Request) -> web.Response:
    info = request.match_info
    _store(request).version(info["subject"], info["version"])
    return _json([])  # the served schemas are self-contained: none references another


async def lookup(request: web.Request) -> web.Response:
    store = _store(request)
    return _json(store.lookup(request.match_info["subject"], await _body(request)))


async def register(request: web.Request) -> web.Response:
    store = _store(request)
    return _json({"id": store.register(request.match_info["subject"], await _body(request))})


async def config(request: web.Request) -> web.Response:
    return _json({"compatibilityLevel": "BACKWARD"})


async def mode(request: web.Request) -> web.Response:
    return _json({"mode": "READWRITE"})


async def refused(request: web.Request) -> web.Response:
    raise ConfluentError(422, 42205, f"{request.method} {request.path} is not permitted: {FIXED}")


def create_app(store: SchemaStore) -> web.Application:
    """The registry's routes over `store`."""
    app = web.Application(middlewares=[_confluent_errors])
    app[STORE] = store
    app.add_routes(
        [
            web.get("/", root),
            web.get("/schemas", schemas),
            web.get("/schemas/types", schema_types),
            web.get("/schemas/ids/{id}", schema_by_id),
            web.get("/schemas/ids/{id}/schema", raw_schema_by_id),
            web.get("/schemas/ids/{id}/subjects", subjects_of_id),
            web.get("/schemas/ids/{id}/versions", versions_of_id),
            web.get("/subjects", subjects),
            web.post("/subjects/{subject}", lookup),
            web.delete("/subjects/{subject}", refused),
            web.get("/subjects/{subject}/versions", versions),
            web.post("/subjects/{subject}/versions", register),
            web.get("/subjects/{subject}/versions/{version}", version),
            web.delete("/subjects/{subject}/versions/{version}", refused),
            web.get("/subjects/{subject}/versions/{version}/schema", raw_version),
            web.get("/subjects/{subject}/versions/{version}/referencedby", referenced_by),
            web.get("/config", config),
            web.get("/config/{subject}", config),
            web.put("/config", refused),
            web.put("/config/{subject}", refused),
            web.get("/mode", mode),
            web.get("/mode/{subject}", mode),
            web.put("/mode", refused),
            web.put("/mode/{subject}", refused),
        ]
    )
    return app


def main(argv: list[str] | None = None) -> None:
    """`python -m infra.registry_server --port N --subject story-state-value=StoryState ...`"""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--subject", action="append", default=[], help="SUBJECT=Record: a topic's value subject"
    )
    args = parser.parse_args(argv)
    from schemas.avro import history

    topic_subjects = {}
    for item in args.subject:
        subject, _, record = item.rpartition("=")
        topic_subjects[subject] = record
    store = SchemaStore([v for vs in history().values() for v in vs], topic_subjects)
    web.run_app(create_app(store), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
