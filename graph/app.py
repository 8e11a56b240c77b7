"""The ASGI application: routes of SPEC section 3 around one `Runtime`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

from graph.config import Settings
from graph.cors import CrossOrigin
from graph.delivery.admission import ConnectionLimit
from graph.delivery.forgebase import forgebase_websocket
from graph.delivery.graphql_ws import graphql_websocket
from graph.delivery.sse import SSEEndpoint
from graph.http import GraphQLEndpoint
from graph.playground import playground_routes
from graph.reload import RELOAD_PATH, reload_endpoint
from graph.runtime import Runtime

SSE_PATH = "/realtime/sse"


def cross_origin(origins: tuple[str, ...]) -> list[Middleware]:
    """CORS and the handshakes' Origin check (graph.cors); nothing when no origin is allowed."""
    return [Middleware(CrossOrigin, origins=origins, stream_paths=[SSE_PATH])] if origins else []


class ForgegraphApp(Starlette):
    """Starlette, with POST /graphql answered without its routing and middleware layers.

    Those layers cost about a tenth of a small query's CPU, and a POST to
    /graphql needs none of them when no cross-origin access is configured: the
    route is known, the connection limit counts only WebSockets and SSE, and
    uvicorn answers an exception with a 500 as ServerErrorMiddleware does.
    """

    def __init__(self, *args: Any, direct_graphql: GraphQLEndpoint | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._direct = direct_graphql

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        direct = self._direct
        if direct is None or scope["type"] != "http" or scope["path"] != "/graphql" or scope["method"] != "POST":
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        response = await direct.handle(Request(scope, receive))
        await response(scope, receive, send)


def create_app(settings: Settings | None = None, **overrides: Any) -> Starlette:
    """The ASGI app; keyword arguments mirror `forgegraph serve`'s flags."""
    settings = (settings or Settings()).with_overrides(**overrides)
    runtime = Runtime(settings)

    async def healthz(_request: Request) -> JSONResponse:
        parts = await runtime.health()
        # Rules a schema change broke deny what they granted: reported, still healthy.
        problems = {"broken_rules": broken} if (broken := runtime.schema_problems()) else {}
        if all(state == "ok" for state in parts.values()):
            return JSONResponse({"status": "ok", **problems})
        return JSONResponse({"status": "unavailable", **parts, **problems}, status_code=503)

    async def schema_problems(_request: Request) -> JSONResponse:
        """What of the database is not served, and why (database names)."""
        problems = runtime.model.problems if runtime.started else ()
        return JSONResponse([
            {"table": p.table, **({"column": p.column} if p.column is not None else {}), "reason": p.reason}
            for p in problems
        ])

    async def graphql_ws(websocket: WebSocket) -> None:
        await graphql_websocket(runtime, websocket)

    async def realtime_ws(websocket: WebSocket) -> None:
        await forgebase_websocket(runtime, websocket)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    endpoint = GraphQLEndpoint(runtime)
    app = ForgegraphApp(
        direct_graphql=None if settings.cors_origins else endpoint,
        routes=[
            Route("/graphql", endpoint.handle, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql_ws),
            WebSocketRoute("/realtime", realtime_ws),
            Route(SSE_PATH, SSEEndpoint(runtime).handle, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/schema/problems", schema_problems, methods=["GET"]),
            Route(RELOAD_PATH, reload_endpoint(runtime), methods=["POST"]),
            Route("/metrics", runtime.metrics.handle, methods=["GET"]),
            *playground_routes(),
        ],
        lifespan=lifespan,
        middleware=[
            # Outermost: preflights and refused origins never count as connections.
            *cross_origin(settings.cors_origins),
            Middleware(
                ConnectionLimit,
                limit=settings.limits.max_connections_per_ip,
                stream_paths=[SSE_PATH],
            ),
        ],
    )
    app.state.runtime = runtime
    return app
