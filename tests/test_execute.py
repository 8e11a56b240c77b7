"""One entry for queries and mutations (graph.execute): HTTP and WebSocket are answered alike.

Over real sockets against a real server, on both databases. What answered
an operation is read where an operator reads it, on /metrics
(`forgegraph_operations_total`), never from a private flag.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import LEGACY_WS, TRANSPORT_WS, GraphQLWS, LiveServer
from tests.test_metrics import Samples, post, scrape
from tests.test_mutation_plans import (
    DIRECTIVE_CASES,
    FAILURE_CASES,
    HEADERS,
    OPEN_CASES,
    PERMISSIONS,
    PERMITTED_CASES,
    PERMITTED_RELATED_CASES,
    RELATED_CASES,
    SECRET,
    Case,
)

QUERY = "{ posts(order_by: {id: asc}, limit: 2) { id title user { name } } }"
MUTATION = 'mutation($t: String!) { insert_posts_one(object: {title: $t, user_id: 1}) { title user_id } }'
# Introspection (graphql-core's, around the compiled path), and an insert the database refuses (no user 999).
INTROSPECTION = "{ __schema { queryType { name } } }"
REFUSED = 'mutation { insert_posts_one(object: {title: "orphan", user_id: 999}) { id } }'


def operations(samples: Samples, transport: str) -> dict[tuple[str, str], float]:
    """(operation, path) -> how many were answered over `transport`."""
    out = {}
    for (name, labels), value in samples.items():
        found = dict(labels)
        if name == "forgegraph_operations_total" and found["transport"] == transport:
            out[(found["operation"], found["path"])] = value
    return out


def counted(**counts: int) -> dict[tuple[str, str], float]:
    """Every (operation, path) at 0 but those given, as `query_compiled=1`: `compiled` is the one path."""
    out: dict[tuple[str, str], float] = {(operation, "compiled"): 0 for operation in ("query", "mutation")}
    for key, value in counts.items():
        operation, path = key.split("_")
        out[(operation, path)] = value
    return out


async def over_ws(server: LiveServer, protocol: str, query: str, variables: dict[str, Any] | None = None) -> Any:
    """The message answering `query` over a fresh connection, after checking it completes."""
    async with GraphQLWS.open(server, protocol=protocol) as ws:
        await ws.subscribe("1", query, variables)
        message = await ws.receive()
        assert message["id"] == "1", message
        assert (await ws.receive()) == {"id": "1", "type": "complete"}
    return message


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_query_and_a_mutation_over_websocket_take_the_compiled_path(
    library_url: str, serve: Any, protocol: str
) -> None:
    server = serve(database=library_url)
    assert operations(await scrape(server), protocol) == counted()

    message = await over_ws(server, protocol, QUERY)
    next_type = "data" if protocol == LEGACY_WS else "next"
    assert message["type"] == next_type
    assert message["payload"] == (await post(server, {"query": QUERY})).json()
    inserted = await over_ws(server, protocol, MUTATION, {"t": "over the socket"})
    assert inserted["payload"] == {"data": {"insert_posts_one": {"title": "over the socket", "user_id": 1}}}

    samples = await scrape(server)
    assert operations(samples, protocol) == counted(query_compiled=1, mutation_compiled=1)
    assert operations(samples, "http") == counted(query_compiled=1)


async def test_a_query_and_a_mutation_over_http_take_the_compiled_path(library_url: str, serve: Any) -> None:
    server = serve(database=library_url)
    assert (await post(server, {"query": QUERY})).status_code == 200
    response = await post(server, {"query": MUTATION, "variables": {"t": "over HTTP"}})
    assert response.json() == {"data": {"insert_posts_one": {"title": "over HTTP", "user_id": 1}}}
    samples = await scrape(server)
    assert operations(samples, "http") == counted(query_compiled=1, mutation_compiled=1)
    assert operations(samples, TRANSPORT_WS) == counted()


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_introspection_and_a_refused_insert_read_the_same_on_both_transports(
    library_url: str, serve: Any, protocol: str
) -> None:
    server = serve(database=library_url)
    for query in (INTROSPECTION, REFUSED):
        over_http = (await post(server, {"query": query})).json()
        assert (await over_ws(server, protocol, query))["payload"] == over_http
    refused = (await post(server, {"query": REFUSED})).json()
    assert refused["data"] is None and refused["errors"][0]["extensions"]["code"], refused

    samples = await scrape(server)
    # Every operation is the compiled path's: introspection too (graphql-core completes it
    # there), and the refused insert, answered with its error.
    assert operations(samples, protocol) == counted(query_compiled=1, mutation_compiled=1)
    assert operations(samples, "http") == counted(query_compiled=1, mutation_compiled=2)


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_request_error_over_http_is_an_operation_error_over_websocket(
    library_url: str, serve: Any
) -> None:
    """graphql-response+json answers a failed request with 400; the socket sends the same body."""
    server = serve(database=library_url)
    async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as http:
        response = await http.post(
            "/graphql", json={"query": REFUSED}, headers={"accept": "application/graphql-response+json"}
        )
    assert response.status_code == 400
    assert (await over_ws(server, TRANSPORT_WS, REFUSED))["payload"] == response.json()


async def _send_all(server: LiveServer, transport: str, cases: list[Case]) -> None:
    """Each case over `transport`, each session on its own socket; every one must end."""
    if transport == "http":
        async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as http:
            for who, query, variables in cases:
                body = {"query": query, "variables": variables}
                response = await http.post("/graphql", json=body, headers=HEADERS[who])
                assert "data" in response.json() or "errors" in response.json(), response.text
        return
    for n, (who, query, variables) in enumerate(cases):
        async with GraphQLWS.open(server, protocol=transport, init=False) as ws:
            await ws.init({"headers": HEADERS[who]})
            await ws.subscribe(str(n), query, variables)
            message = await ws.receive(timeout=30)
            assert message["id"] == str(n), message
            if message["type"] != "error":
                assert (await ws.receive(timeout=30)) == {"id": str(n), "type": "complete"}


@pytest.mark.parametrize("transport", ["http", TRANSPORT_WS, LEGACY_WS])
async def test_every_generated_mutation_takes_the_compiled_path(
    library_url: str, serve: Any, transport: str, tmp_path: Any
) -> None:
    """Writes, failures (constraints, checks, variables), relationships, directives: never graphql-core."""
    rules = tmp_path / "permissions.yaml"
    rules.write_text(PERMISSIONS)
    opened = serve(database=library_url)
    cases = OPEN_CASES + RELATED_CASES + DIRECTIVE_CASES + FAILURE_CASES
    await _send_all(opened, transport, cases)
    assert operations(await scrape(opened), transport) == counted(mutation_compiled=len(cases))
    opened.stop()
    ruled = serve(database=library_url, permissions=str(rules), jwt_secret=SECRET)
    permitted = PERMITTED_CASES + PERMITTED_RELATED_CASES
    await _send_all(ruled, transport, permitted)
    assert operations(await scrape(ruled), transport) == counted(mutation_compiled=len(permitted))
