"""A database error while subscribing fails that operation only (issue 12, item 13).

The database fails for real: another program renames the change log away,
so the server's `since` check hits "no such table". The operation gets a
coded error; the socket and its live subscription carry on.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conftest import LEGACY_WS, TRANSPORT_WS, GraphQLWS, LiveServer
from tests.test_forgebase import RawClient, insert_post, ws_url
from tests.test_realtime import CHANGES, change, subscribe

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])
LOG = "_forgegraph_changes"
UNEXPECTED = {"message": "unexpected error while subscribing", "extensions": {"code": "unexpected"}}


@contextmanager
def change_log_gone(database_url: str) -> Iterator[None]:
    """The change log is missing while inside: every read of it fails."""
    path = database_url.split("///", 1)[1]
    with sqlite3.connect(path) as db:
        db.execute(f"ALTER TABLE {LOG} RENAME TO {LOG}_away")
    try:
        yield
    finally:
        with sqlite3.connect(path) as db:
            db.execute(f"ALTER TABLE {LOG}_away RENAME TO {LOG}")


@sqlite_only
@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_failing_since_read_errors_that_operation_and_the_socket_lives(
    library_url: str, serve: Any, protocol: str
) -> None:
    server: LiveServer = serve(database=library_url)
    async with GraphQLWS.open(server, protocol=protocol) as ws:
        await subscribe(ws, "1", "posts")
        await insert_post(server.url, "first")
        cursor = (await change(ws, "1"))["cursor"]
        with change_log_gone(library_url):
            await ws.subscribe("2", CHANGES, {"table": "posts", "since": cursor})
            error = await ws.receive()
        assert error["type"] == "error" and error["id"] == "2", error
        # graphql-transport-ws: a list of errors; legacy graphql-ws: the one error, then nothing more.
        assert error["payload"] == (UNEXPECTED if protocol == LEGACY_WS else [UNEXPECTED])
        await insert_post(server.url, "after")
        assert (await change(ws, "1"))["record"]["title"] == "after"
        # The failed operation's id is free again, and this time it replays.
        await ws.subscribe("2", CHANGES, {"table": "posts", "since": cursor})
        assert (await change(ws, "2"))["record"]["title"] == "after"


@sqlite_only
async def test_a_failing_since_read_is_an_error_message_on_the_raw_protocol(library_url: str, serve: Any) -> None:
    server: LiveServer = serve(database=library_url)
    async with RawClient.open(ws_url(server)) as client:
        await client.subscribe("posts")
        await insert_post(server.url, "first")
        cursor = (await client.receive())["cursor"]
        with change_log_gone(library_url):
            message = await client.error({"type": "subscribe", "table": "comments", "since": cursor})
        assert message == "unexpected error while subscribing"
        await insert_post(server.url, "after")
        event = await client.receive()
        assert (event["type"], event["record"]["title"]) == ("create", "after")
