"""Which web pages may use the API: CORS on HTTP routes, `Origin` on stream handshakes.

`--cors-origins` (SPEC section 8) lists the origins whose pages may call the
API from a browser, or `*` for any. With none (the default) this module adds
nothing: browsers get no CORS headers (a preflight is 405), so a page on
another origin can neither read answers nor send `application/json` POSTs;
the 415 for any other content type (graph.http) is what stops a "simple"
cross-origin POST, which needs no preflight, from running a mutation.

With some, `CrossOrigin` answers preflights and adds `Access-Control-*`
headers through Starlette's CORS middleware, and refuses WebSocket
handshakes and SSE requests whose `Origin` is not allowed with HTTP 403 (a
browser opens both without a preflight and sends the page's origin). A
request without `Origin` (curl, the SDK, servers) and a page of the server's
own origin (the playground) are always let through. Requests without an
`Origin` header skip the CORS middleware entirely: it costs them nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from starlette.middleware.cors import CORSMiddleware

from graph.config import ANY_ORIGIN
from graph.delivery.admission import refuse
from graph.errors import PermissionDenied

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

ORIGIN = b"origin"
HOST = b"host"
METHODS = ("GET", "POST", "OPTIONS")
# Any header a preflight asks for, as Hasura does: Apollo and urql send
# content-type and authorization, some clients x-admin-secret,
# apollo-require-preflight or their own; the origin is what is trusted.
HEADERS = ("*",)
MAX_AGE_SECONDS = 600


class OriginPolicy:
    """The one rule: may a page of `origin` use this server?"""

    def __init__(self, origins: Collection[str]) -> None:
        self.any = ANY_ORIGIN in origins
        self.origins = frozenset(origins)

    def allows(self, origin: str, host: str | None = None) -> bool:
        """`origin` as the browser sent it; `host` the request's Host header (its own origin)."""
        if self.any:
            return True
        origin = origin.lower()
        if origin in self.origins:
            return True
        return host is not None and origin.partition("://")[2] == host.lower()


class _CORS(CORSMiddleware):
    """Starlette's CORS middleware, deciding by `OriginPolicy` like the handshake check."""

    def __init__(self, app: ASGIApp, policy: OriginPolicy) -> None:
        super().__init__(
            app,
            allow_origins=sorted(policy.origins),
            allow_methods=METHODS,
            allow_headers=HEADERS,
            max_age=MAX_AGE_SECONDS,
        )
        self.policy = policy

    def is_allowed_origin(self, origin: str) -> bool:
        return self.policy.allows(origin)


class CrossOrigin:
    """ASGI middleware: CORS for HTTP requests that carry `Origin`; 403 for disallowed stream handshakes."""

    def __init__(self, app: ASGIApp, origins: Collection[str], stream_paths: Collection[str]) -> None:
        self.app = app
        self.policy = OriginPolicy(origins)
        self.cors = _CORS(app, self.policy)
        self.stream_paths = frozenset(stream_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        origin, host = _origin_and_host(scope)
        if origin is None:
            await self.app(scope, receive, send)
            return
        if kind == "websocket":
            checked = True
        else:
            # A preflight is Starlette's to answer (400 and no CORS headers when refused).
            checked = scope.get("path") in self.stream_paths and scope.get("method") != "OPTIONS"
        if checked and not self.policy.allows(origin, host):
            error = PermissionDenied(
                f"origin {origin!r} may not open a connection here: add it to --cors-origins"
            )
            await refuse(scope, receive, send, error)
        elif kind == "websocket":
            await self.app(scope, receive, send)
        else:
            await self.cors(scope, receive, send)


def _origin_and_host(scope: Scope) -> tuple[str | None, str | None]:
    origin = host = None
    for name, value in scope.get("headers", ()):
        if name == ORIGIN:
            origin = value.decode("latin-1")
        elif name == HOST:
            host = value.decode("latin-1")
    return origin, host
