"""The HTTP plumbing of the API: answers as JSON, routes by method and path on Faust's web
server (aiohttp), authentication and the write rate before a handler runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

import faust
import orjson
from aiohttp import web
from faust.web import Request, Response, View

from schemas.types import IDENTIFIER, IDENTIFIER_RULE

if TYPE_CHECKING:
    from streams.api.routes import Api


@dataclass(frozen=True)
class Raw:
    """A ready response body (a forwarded answer, or JSON already serialized)."""

    body: bytes
    status: int = 200
    content_type: str = "application/json"
    headers: Mapping[str, str] | None = None


class HttpError(Exception):
    def __init__(self, status: int, reason: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers


Auth = Literal["user", "worker", "none"]
Method = Literal["GET", "HEAD", "POST", "PUT", "DELETE"]


@dataclass(frozen=True)
class Route:
    """One endpoint: its handler, the path parameter naming its key (the request goes to the
    key's owner), who may call it (a user, another worker, or anyone), and whether it counts
    against the caller's rate of writes."""

    handler: Callable[..., Awaitable[Any]]
    key: str | None = None
    auth: Auth = "user"
    limited: bool = False


Endpoint = tuple[Method, str, Route]  # method, path, route


async def answer(api: Api, route: Route, request: Request, params: Mapping[str, str]) -> Raw:
    """The endpoint's answer: its result as JSON, or `{"error": reason}` with its status."""
    try:
        caller = ""
        if route.auth == "user":
            caller = api.authenticate(request)
            if route.limited:
                api.limit(caller)
        elif route.auth == "worker":
            api.authenticate_worker(request)
        for name, value in params.items():
            if not IDENTIFIER.fullmatch(value):
                raise HttpError(400, f"{name}: {IDENTIFIER_RULE}")
        result = None
        if route.key is not None:
            result = await api.forward(request, params[route.key])
        if result is None:
            result = await route.handler(request, caller, **params)
        return result if isinstance(result, Raw) else Raw(orjson.dumps(result))
    except HttpError as exc:
        return Raw(orjson.dumps({"error": exc.reason}), exc.status, headers=exc.headers)


def install(app: faust.App, api: Api, endpoints: Sequence[Endpoint]) -> None:
    """Register the endpoints (and `/metrics`) on the app's web server: straight on its aiohttp
    router, without a Faust view's dispatch (its sensors and casts) in every request."""
    web_app = getattr(app.web, "web_app", None)
    if not isinstance(web_app, web.Application):
        raise TypeError(f"the API needs Faust's aiohttp web server, not {type(app.web)}")
    for method, path, route in endpoints:
        if method == "GET":  # and HEAD, as every Faust view answers it
            web_app.router.add_get(path, _handler(api, route))
        else:
            web_app.router.add_route(method, path, _handler(api, route))

    class Metrics(View):
        async def get(self, request: Request) -> Response:
            return self.text(api.engine.metrics.render(), content_type="text/plain; version=0.0.4")

    app.page("/metrics")(Metrics)
    web_app.middlewares.append(_json_errors)


def _handler(api: Api, route: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The aiohttp handler of one route."""

    async def handle(request: web.Request) -> web.Response:
        params: Mapping[str, str] = request.match_info
        result = await answer(api, route, cast(Request, request), params)
        return web.Response(
            body=result.body,
            status=result.status,
            content_type=result.content_type,
            headers=result.headers,
        )

    handle.__name__ = route.handler.__name__
    return handle


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """The server's own 4xx answers (no such path, method not allowed) in JSON too."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return web.json_response({"error": exc.reason}, status=exc.status, headers=headers)
