"""At most N long-lived connections per client IP: WebSockets and SSE streams.

An ASGI middleware, so one count covers every route that holds a connection
open (`WS /graphql`, `WS /realtime`, --websocket-port, `GET /realtime/sse`)
and nothing is allocated for a refused one. Over the limit a WebSocket
handshake is answered with HTTP 429 (the WebSocket Denial Response
extension; clients see the handshake fail and may retry later) and an SSE
request with 429; both bodies are a GraphQL error with code
`too-many-requests`. The count is per server process; the client IP is
uvicorn's, which honours X-Forwarded-For only from trusted proxies.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from typing import TYPE_CHECKING

import orjson
from starlette.responses import Response

from graph.errors import ForgeError, TooManyRequests

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

DENIAL_EXTENSION = "websocket.http.response"
POLICY_VIOLATION = 1008


class ConnectionLimit:
    def __init__(self, app: ASGIApp, limit: int, stream_paths: Collection[str]) -> None:
        self.app = app
        self.limit = limit
        """Connections per client IP; 0 means no limit."""
        self.stream_paths = frozenset(stream_paths)
        self.open: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.limit or not self._holds_connection(scope):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown",))[0]
        if self.open[client] >= self.limit:
            await self._refuse(scope, receive, send, client)
            return
        self.open[client] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.open[client] -= 1
            if self.open[client] <= 0:
                del self.open[client]

    def _holds_connection(self, scope: Scope) -> bool:
        if scope["type"] == "websocket":
            return True
        return scope["type"] == "http" and scope.get("path") in self.stream_paths

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, client: str) -> None:
        error = TooManyRequests(
            f"too many connections from {client}: at most {self.limit} at a time"
        )
        await refuse(scope, receive, send, error)


async def refuse(scope: Scope, receive: Receive, send: Send, error: ForgeError) -> None:
    """Answer an HTTP request, or a WebSocket handshake before accepting it, with `error`.

    The body is a GraphQL error with the error's code, and the status its HTTP
    status; a WebSocket handshake gets that response too where the server
    supports it (the WebSocket Denial Response extension).
    """
    response = Response(
        orjson.dumps({"errors": [error.to_graphql()]}),
        status_code=error.http_status,
        media_type="application/json",
    )
    if scope["type"] == "http":
        await response(scope, receive, send)
        return
    if (await receive())["type"] != "websocket.connect":
        return  # the client has already gone
    if DENIAL_EXTENSION in scope.get("extensions", {}):
        await response(scope, receive, send)  # sent as websocket.http.response.*
    else:
        # A server without the extension: refusing the handshake is all we can do
        # (before accept, uvicorn answers the handshake with 403).
        await send({"type": "websocket.close", "code": POLICY_VIOLATION, "reason": error.message})
