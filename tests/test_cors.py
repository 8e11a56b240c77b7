"""Browsers and the API (SPEC section 8): JSON-only POSTs, CORS, and Origin on stream handshakes.

Each test runs a real server and speaks to it as a browser would: preflights
with `Origin` and `Access-Control-Request-*`, the "simple" POSTs a page may
send to any origin without one (text/plain, forms, no content type at all),
and WebSocket and EventSource handshakes, which carry the page's `Origin`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin, Subprotocol

from graph.app import create_app
from graph.cli import UsageError, build_parser, resolve_settings
from graph.config import Settings, parse_origins
from tests.conftest import LiveServer

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])
pytestmark = sqlite_only

APP = "https://app.example"
OTHER_APP = "http://localhost:5173"
EVIL = "https://evil.example"
MUTATION = 'mutation { insert_users_one(object: {name: "csrf"}) { id } }'
COUNT = '{ users(where: {name: {_eq: "csrf"}}) { id } }'
# What Apollo Client and urql ask for in a preflight.
REQUESTED_HEADERS = "content-type,authorization,x-admin-secret,apollo-require-preflight"


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": REQUESTED_HEADERS,
    }


@pytest.fixture
def http() -> Iterator[Any]:
    clients: list[httpx.Client] = []

    def open_client(server: LiveServer) -> httpx.Client:
        client = httpx.Client(base_url=server.url, timeout=30, trust_env=False)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()


def ws_url(server: LiveServer, path: str) -> str:
    return "ws" + server.url.removeprefix("http") + path


async def handshake(server: LiveServer, path: str, origin: str | None) -> int:
    """The HTTP status the WebSocket handshake got: 101 when accepted."""
    subprotocols = [Subprotocol("graphql-transport-ws")] if path == "/graphql" else None
    try:
        async with connect(
            ws_url(server, path), origin=None if origin is None else Origin(origin),
            subprotocols=subprotocols, open_timeout=10, proxy=None,
        ):
            return 101
    except InvalidStatus as refused:
        if refused.response.status_code == 403:  # with a GraphQL error, as the other refusals
            (error,) = json.loads(refused.response.body or b"{}")["errors"]
            assert error["extensions"] == {"code": "permission-denied"}, error
            assert origin is not None and origin in error["message"]
        return refused.response.status_code


def error_of(response: httpx.Response) -> dict[str, Any]:
    (error,) = response.json()["errors"]
    return error  # type: ignore[no-any-return]


# -- POST bodies: application/json only (CSRF) -----------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [None, "", "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
     "multipart/form-data; boundary=x", "application/graphql"],
)
def test_a_post_that_is_not_json_is_415_and_runs_nothing(
    serve: Any, http: Any, library_url: str, content_type: str | None
) -> None:
    # What `fetch(url, {method: "POST", mode: "no-cors", body})` sends from any page, without a preflight.
    client = http(serve(database=library_url))
    headers = {"Origin": EVIL} if content_type is None else {"Origin": EVIL, "Content-Type": content_type}
    body = json.dumps({"query": MUTATION}).encode()
    response = client.post("/graphql", content=body, headers=headers)
    assert content_type is not None or "content-type" not in response.request.headers
    assert response.status_code == 415, response.text
    assert error_of(response)["extensions"] == {"code": "validation-failed"}
    assert "application/json" in error_of(response)["message"]
    assert "access-control-allow-origin" not in response.headers
    assert client.post("/graphql", json={"query": COUNT}).json() == {"data": {"users": []}}


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
     "Application/Json ; Charset=UTF-8", "application/graphql-response+json"],
)
def test_json_posts_run(serve: Any, http: Any, library_url: str, content_type: str) -> None:
    client = http(serve(database=library_url))
    body = json.dumps({"query": "{ users_by_pk(id: 1) { name } }"}).encode()
    response = client.post("/graphql", content=body, headers={"Content-Type": content_type})
    assert response.json() == {"data": {"users_by_pk": {"name": "Alice"}}}


# -- CORS on HTTP routes -------------------------------------------------------------


def test_by_default_no_origin_gets_cross_origin_access(serve: Any, http: Any, library_url: str) -> None:
    client = http(serve(database=library_url))
    response = client.options("/graphql", headers=preflight(APP))
    assert response.status_code == 405
    assert not any(name.startswith("access-control-") for name in response.headers)
    answered = client.post("/graphql", json={"query": "{ __typename }"}, headers={"Origin": APP})
    assert answered.status_code == 200
    assert not any(name.startswith("access-control-") for name in answered.headers)


def test_allowed_origins_get_cors_and_others_do_not(serve: Any, http: Any, library_url: str) -> None:
    client = http(serve(database=library_url, cors_origins=f"{APP}, {OTHER_APP}"))
    for origin in (APP, OTHER_APP):
        allowed = client.options("/graphql", headers=preflight(origin))
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["access-control-allow-origin"] == origin
        assert {m.strip() for m in allowed.headers["access-control-allow-methods"].split(",")} >= {
            "GET", "POST", "OPTIONS"}
        assert allowed.headers["access-control-allow-headers"].lower() == REQUESTED_HEADERS
        answered = client.post("/graphql", json={"query": MUTATION}, headers={"Origin": origin})
        assert answered.status_code == 200 and "errors" not in answered.json(), answered.text
        assert answered.headers["access-control-allow-origin"] == origin
        assert "Origin" in answered.headers["vary"]
    # A disallowed origin: Starlette's 400 to the preflight, and no CORS header anywhere.
    refused = client.options("/graphql", headers=preflight(EVIL))
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    answered = client.post("/graphql", json={"query": "{ __typename }"}, headers={"Origin": EVIL})
    assert answered.status_code == 200 and "access-control-allow-origin" not in answered.headers
    # Clients that are not browsers send no Origin and are served as before.
    assert client.post("/graphql", json={"query": "{ __typename }"}).json() == {
        "data": {"__typename": "query_root"}}


def test_a_star_allows_every_origin(serve: Any, http: Any, library_url: str) -> None:
    client = http(serve(database=library_url, cors_origins="*"))
    for origin in (APP, EVIL):
        allowed = client.options("/graphql", headers=preflight(origin))
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "*"
        answered = client.get("/graphql", params={"query": "{ __typename }"}, headers={"Origin": origin})
        assert answered.headers["access-control-allow-origin"] == "*"


# -- Origin on WebSocket and SSE handshakes ---------------------------------------------


async def test_websocket_handshakes_check_the_origin(serve: Any, library_url: str) -> None:
    server = serve(database=library_url, cors_origins=[APP])
    for path in ("/graphql", "/realtime"):
        assert await handshake(server, path, APP) == 101
        assert await handshake(server, path, EVIL) == 403
        assert await handshake(server, path, None) == 101  # not a browser
        assert await handshake(server, path, server.url) == 101  # the server's own pages (playground)
    # Without --cors-origins handshakes are not checked.
    open_server = serve(database=library_url)
    assert await handshake(open_server, "/graphql", EVIL) == 101
    # With `*` every origin may connect.
    star = serve(database=library_url, cors_origins="*")
    assert await handshake(star, "/realtime", EVIL) == 101


async def test_sse_checks_the_origin(serve: Any, http: Any, library_url: str) -> None:
    server = serve(database=library_url, cors_origins=[APP])
    client = http(server)
    refused = client.get("/realtime/sse", params={"table": "users"}, headers={"Origin": EVIL})
    assert refused.status_code == 403
    error = error_of(refused)
    assert error["extensions"] == {"code": "permission-denied"}
    assert EVIL in error["message"] and "--cors-origins" in error["message"]
    for headers in ({"Origin": APP}, {}):
        with client.stream("GET", "/realtime/sse", params={"table": "users"}, headers=headers) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.headers.get("access-control-allow-origin") == headers.get("Origin")


# -- the flag, its variable and create_app -----------------------------------------------


def test_cors_origins_is_a_flag_a_variable_and_a_create_app_keyword(library_url: str) -> None:
    parser = build_parser()
    flag = resolve_settings("serve", parser.parse_args(["serve", "--cors-origins", f"{APP},{OTHER_APP}"]), {})
    assert flag.cors_origins == (APP, OTHER_APP)
    env = resolve_settings("serve", parser.parse_args(["serve"]), {"FORGEGRAPH_CORS_ORIGINS": " * "})
    assert env.cors_origins == ("*",)
    assert resolve_settings("serve", parser.parse_args(["serve"]), {}).cors_origins == ()
    with pytest.raises(UsageError, match="invalid value for --cors-origins"):
        resolve_settings("serve", parser.parse_args(["serve", "--cors-origins", "app.example/path"]), {})
    assert parse_origins("HTTPS://App.Example/, https://app.example") == (APP,)
    assert create_app(database=library_url, cors_origins=[APP]).state.runtime.settings.cors_origins == (APP,)
    assert Settings(cors_origins=f"{APP},").cors_origins == (APP,)  # type: ignore[arg-type]
