"""The ASGI application: routes of SPEC section 3 around one `Runtime`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from graph.config import Settings
from graph.cors import CrossOrigin
from graph.delivery.admission import ConnectionLimit
from graph.delivery.forgebase import forgebase_websocket
from graph.delivery.graphql_ws import graphql_websocket
from graph.delivery.sse import SSEEndpoint
from graph.http import GraphQLEndpoint
from graph.playground import playground_routes
from graph.runtime import Runtime

SSE_PATH = "/realtime/sse"


def cross_origin(origins: tuple[str, ...]) -> list[Middleware]:
    """CORS and the handshakes' Origin check (graph.cors); nothing when no origin is allowed."""
    return [Middleware(CrossOrigin, origins=origins, stream_paths=[SSE_PATH])] if origins else []


def create_app(settings: Settings | None = None, **overrides: Any) -> Starlette:
    """The ASGI app; keyword arguments mirror `forgegraph serve`'s flags."""
    settings = (settings or Settings()).with_overrides(**overrides)
    runtime = Runtime(settings)

    async def healthz(_request: Request) -> JSONResponse:
        parts = await runtime.health()
        if all(state == "ok" for state in parts.values()):
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "unavailable", **parts}, status_code=503)

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

    app = Starlette(
        routes=[
            Route("/graphql", GraphQLEndpoint(runtime).handle, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql_ws),
            WebSocketRoute("/realtime", realtime_ws),
            Route(SSE_PATH, SSEEndpoint(runtime).handle, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
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
