"""The OpenAPI 3.1 description of the whole HTTP API, served at `/openapi.json`.

Response records come from the pydantic models (the same the routes answer with); request
bodies are the write side's fields. `/internal/` routes are included and marked
`x-internal`: only workers may call them (a user's token gets 401).
"""

from __future__ import annotations

import orjson
from faust.web import Request

from streams.api.http import Endpoint, Raw, Route
from streams.api.openapi_schemas import ID, Schema, components, json_content, ref
from streams.api.writes import MAX_BATCH_VIEWS

_ERRORS = {
    400: "invalid: the reason names the field or parameter",
    401: "no token, or not a user's valid token",
    403: "not allowed for this caller",
    404: "no such thing, or not visible to the caller",
    409: "the upload is not where the request says (Upload-Offset tells where it is)",
    413: "body too large",
    415: "not a supported image or video",
    429: "over the caller's rate of writes on this worker (Retry-After)",
    503: "busy (the producer's queue is full, or a partition is moving); retry (Retry-After)",
}


def _answer(description: str, schema: Schema | None, headers: tuple[str, ...] = ()) -> Schema:
    answer: Schema = {"description": description}
    if schema is not None:
        answer["content"] = json_content(schema)
    if headers:
        answer["headers"] = {name: {"schema": {"type": "string"}} for name in headers}
    return answer


def _operation(
    summary: str,
    ok: tuple[int, str, Schema | None],
    errors: tuple[int, ...],
    *,
    params: tuple[str, ...] = (),
    body: Schema | None = None,
    body_required: bool = True,
    secured: bool = True,
    keyed: bool = False,
    ok_headers: tuple[str, ...] = (),
    bodies: bool = True,
) -> Schema:
    status, description, schema = ok
    responses = {str(status): _answer(description, schema, ok_headers)}
    implied = {*((401,) if secured else ()), *((400,) if params or keyed else ())}
    for code in sorted({*errors, *implied}):
        retry = ("Retry-After",) if code in (429, 503) else ()
        offset = ("Upload-Offset",) if code == 409 else ()
        responses[str(code)] = _answer(
            _ERRORS[code], ref("Error") if bodies else None, retry + offset
        )
    operation: Schema = {"summary": summary, "responses": responses}
    parameters = [{"name": name, "in": "path", "required": True, "schema": ID} for name in params]
    if keyed:
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "becomes the event id: a retried request changes nothing",
                "schema": ID,
            }
        )
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {"required": body_required, "content": json_content(body)}
    if not secured:
        operation["security"] = []
    return operation


def _write(
    summary: str,
    params: tuple[str, ...],
    body: Schema | None = None,
    *,
    required: bool = True,
    author: bool = False,
    batch: bool = False,
) -> Schema:
    """An operation that emits events: 202 with their ids."""
    errors = (400, 403, 413, 429, 503) + ((404,) if author else ())
    answer = ref("AcceptedBatch" if batch else "Accepted")
    return _operation(
        summary,
        (202, "the broker has the event(s)", answer),
        errors,
        params=params,
        body=body,
        body_required=required,
        keyed=True,
    )


def _read(
    summary: str,
    params: tuple[str, ...],
    schema: Schema,
    errors: tuple[int, ...] = (),
    internal: bool = False,
) -> Schema:
    operation = _operation(summary, (200, "found", schema), (400, 404, 503, *errors), params=params)
    if internal:
        operation["x-internal"] = True
        operation["security"] = [{"workerToken": []}]
        operation["description"] = "Between workers only: a user's token is refused (401)."
        if "author_id" in params:
            operation["parameters"].append(
                {"name": "viewer", "in": "query", "required": True, "schema": ID}
            )
    return operation


def _paths() -> dict[str, Schema]:
    story, user = ("story_id",), ("user_id",)
    chunk = {
        "name": "Content-Range",
        "in": "header",
        "required": True,
        "schema": {"type": "string", "pattern": r"^bytes [0-9]{1,15}-[0-9]{1,15}/[0-9]{1,15}$"},
    }
    put = _operation(
        "send a chunk of an upload",
        (200, "taken", ref("Upload")),
        (400, 403, 404, 409, 413, 415, 429),
        params=("upload_id",),
        ok_headers=("Upload-Offset",),
    )
    put["parameters"].append(chunk)
    put["requestBody"] = {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
    follow = ("POST", "DELETE")
    return {
        "/users/{user_id}/tray": {
            "get": _read("a user's tray (that user only)", user, ref("Tray"), (403,))
        },
        "/users/{author_id}/stories": {
            "get": _read("an author's stories the caller may see", ("author_id",), ref("Stories"))
        },
        "/stories/{story_id}": {
            "get": _read("a story", story, ref("StoryView")),
            "delete": _write("delete a story (its author)", story, author=True),
        },
        "/stories/{story_id}/views": {
            "get": _read("a story's view counts", story, ref("Views")),
            "post": _write("view a story", story, ref("View"), required=False),
        },
        "/stories/{story_id}/viewers": {
            "get": _read("a story's viewers (its author)", story, ref("Viewers"), (403,))
        },
        "/stories/{story_id}/reactions": {
            "get": _read("a story's reaction counts", story, ref("ReactionCounts")),
            "post": _write("react to a story", story, ref("Reaction")),
        },
        "/stories/{story_id}/highlights": {
            "post": _write("highlight a story (its author)", story, ref("Highlight"), author=True),
        },
        "/stories/{story_id}/highlights/{highlight_id}": {
            "delete": _write(
                "remove a highlight (the story's author)", ("story_id", "highlight_id"), author=True
            ),
        },
        "/stories": {
            "post": _operation(
                "post an upload as a story",
                (202, "the broker has both events", ref("StoryAccepted")),
                (400, 403, 404, 409, 413, 429, 503),
                body=ref("NewStory"),
                keyed=True,
            )
        },
        "/views:batch": {
            "post": _write(
                f"views a client collected (up to {MAX_BATCH_VIEWS})",
                (),
                ref("ViewsBatch"),
                batch=True,
            )
        },
        "/follow/{user_id}": {m.lower(): _write(f"{m} follow", user) for m in follow},
        "/close-friends/{user_id}": {m.lower(): _write(f"{m} close friend", user) for m in follow},
        "/uploads": {
            "post": _operation(
                "begin a resumable upload",
                (201, "begun", ref("Upload")),
                (400, 413, 415, 429),
                body=ref("NewUpload"),
                ok_headers=("Location", "Upload-Offset"),
            )
        },
        "/uploads/{upload_id}": {
            "put": put,
            "head": _operation(
                "how much of an upload arrived",
                (200, "Upload-Offset says", None),
                (403, 404),
                params=("upload_id",),
                ok_headers=("Upload-Offset", "Upload-Length"),
                bodies=False,
            ),
        },
        "/internal/authors/{author_id}": {
            "get": _read(
                "an author as a viewer sees them", ("author_id",), {"type": "object"}, internal=True
            )
        },
        "/internal/stories/{story_id}": {
            "get": _read("a story's state", story, ref("StoryState"), internal=True)
        },
        "/health": {
            "get": _operation(
                "200 when the worker is consuming",
                (200, "consuming", ref("Health")),
                (503,),
                secured=False,
            )
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus text",
                "security": [],
                "responses": {
                    "200": {
                        "description": "metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "this description",
                "security": [],
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": json_content({"type": "object"}),
                    }
                },
            }
        },
    }


def openapi() -> Schema:
    """The whole API, as an OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "storystream",
            "version": "1",
            "description": "Stories' HTTP API (contract section 6). Write routes take "
            "one token each from the caller's rate on each worker.",
        },
        "security": [{"bearerAuth": []}],
        "paths": _paths(),
        "components": {
            "schemas": components(),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "workerToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "a worker's own token",
                },
            },
        },
    }


def openapi_endpoint() -> Endpoint:
    """`GET /openapi.json`, for anyone."""
    body = orjson.dumps(openapi())

    async def openapi_json(request: Request, caller: str) -> Raw:
        return Raw(body)

    return ("GET", "/openapi.json", Route(openapi_json, auth="none"))
