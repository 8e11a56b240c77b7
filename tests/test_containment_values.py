"""A stored value that does not fit its column never stops the stream (issue 12, item 1).

SQLite keeps whatever another program writes, `'abc'` in an INTEGER column
included. Such a value is delivered as stored, counted in /metrics and
logged once per change; every change before and after it reaches every
subscriber on every transport, in commit order.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.conftest import LEGACY_WS, TRANSPORT_WS, GraphQLWS, LiveServer
from tests.test_forgebase import RawClient, ws_url
from tests.test_sse import events

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])
NORMAL = 500
ODD = 100
TOTAL = NORMAL + ODD
SUBSCRIPTION = "subscription { tableChanged(table: \"tags\") { type record cursor } }"


def write_as_another_program(database: str) -> list[tuple[str, Any]]:
    """600 tag rows through sqlite3: every sixth one has weight 'abc'. Returns (name, weight) in order."""
    written: list[tuple[str, Any]] = []
    conn = sqlite3.connect(database)
    try:
        for i in range(TOTAL):
            weight: Any = "abc" if i % 6 == 5 else i
            conn.execute("INSERT INTO tags (post_id, name, weight) VALUES (1, ?, ?)", (f"n{i}", weight))
            written.append((f"n{i}", weight))
            if i % 10 == 9:
                conn.commit()  # many commits, odd rows between normal ones
        conn.commit()
    finally:
        conn.close()
    assert sum(1 for _, w in written if w == "abc") == ODD
    return written


async def collect(receive: Callable[[], Awaitable[dict[str, Any]]], count: int) -> list[dict[str, Any]]:
    return [await receive() for _ in range(count)]


def check(transport: str, got: list[dict[str, Any]], written: list[tuple[str, Any]]) -> None:
    seen = [(e["record"]["name"], e["record"]["weight"]) for e in got]
    assert seen == written, f"{transport}: events differ from the rows written"
    cursors = [int(e["cursor"]) for e in got]
    assert cursors == sorted(set(cursors)), f"{transport}: not in commit order"
    assert all(e["type"] == "create" for e in got)


@sqlite_only
async def test_unconvertible_values_are_delivered_as_stored_on_every_transport(
    library_url: str, serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server: LiveServer = serve(database=library_url)
    database = library_url.split("///", 1)[1]
    caplog.set_level(logging.WARNING, logger="forgegraph.realtime")

    async with (
        GraphQLWS.open(server, protocol=TRANSPORT_WS) as modern,
        GraphQLWS.open(server, protocol=LEGACY_WS) as legacy,
        RawClient.open(ws_url(server)) as raw,
        events(server, "tags") as sse,
    ):
        await modern.subscribe("m", SUBSCRIPTION)
        await legacy.subscribe("l", SUBSCRIPTION)
        await raw.subscribe("tags")
        await asyncio.sleep(0.3)  # both GraphQL subscriptions registered (raw and SSE are already)

        async def graphql_event(client: GraphQLWS, op_id: str) -> dict[str, Any]:
            payload = await client.next(op_id, timeout=20)
            assert "errors" not in payload, payload
            return payload["data"]["tableChanged"]  # type: ignore[no-any-return]

        async def sse_event() -> dict[str, Any]:
            return (await sse.message(timeout=20))[1]

        readers = [
            collect(lambda: graphql_event(modern, "m"), TOTAL),
            collect(lambda: graphql_event(legacy, "l"), TOTAL),
            collect(lambda: raw.receive(timeout=20), TOTAL),
            collect(sse_event, TOTAL),
        ]
        tasks = [asyncio.create_task(r) for r in readers]
        written = await asyncio.to_thread(write_as_another_program, database)
        results = await asyncio.gather(*tasks)

    for transport, got in zip(["graphql-transport-ws", "graphql-ws", "raw", "sse"], results, strict=True):
        check(transport, got, written)

    async with httpx.AsyncClient(base_url=server.url, trust_env=False) as http:
        metrics = (await http.get("/metrics")).text
    assert f"forgegraph_events_unconvertible_values_total {float(ODD)}" in metrics, [
        line for line in metrics.splitlines() if "unconvertible" in line
    ]
    # Logged once per change (not per subscriber), naming cursor, table and column.
    warnings = [r.getMessage() for r in caplog.records if "do not fit" in r.getMessage()]
    assert len(warnings) == ODD
    assert all("'tags'" in w and "'weight'" in w for w in warnings)


@sqlite_only
async def test_a_query_of_an_unconvertible_value_errs_on_that_field_only(library_url: str, serve: Any) -> None:
    """GraphQL's Int cannot carry 'abc': that field is null with an error, the rest of the answer stands."""
    server: LiveServer = serve(database=library_url)
    database = library_url.split("///", 1)[1]
    conn = sqlite3.connect(database)
    conn.execute("INSERT INTO tags (post_id, name, weight) VALUES (1, 'odd', 'abc')")
    conn.commit()
    conn.close()
    async with httpx.AsyncClient(base_url=server.url, trust_env=False) as http:
        response = await http.post(
            "/graphql", json={"query": '{ tags(where: {post_id: {_eq: 1}}, order_by: {name: asc}) { name weight } }'}
        )
    body = response.json()
    assert response.status_code == 200
    names = [row["name"] for row in body["data"]["tags"]]
    assert "odd" in names
    odd = names.index("odd")
    assert body["data"]["tags"][odd]["weight"] is None
    [error] = body["errors"]
    assert error["path"] == ["tags", odd, "weight"]
    assert "Int cannot represent" in error["message"]
