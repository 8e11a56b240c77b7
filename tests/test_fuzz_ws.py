"""Fuzzing the WebSocket protocols: graphql-transport-ws, legacy graphql-ws and the raw /realtime.

Each example opens a connection, sends random and malformed frames (binary,
wrong types, frames before init, duplicate ids, junk tokens and cursors),
then a probe the protocol must answer. Every message the server sends must
be JSON with coded errors; the connection either answers the probe or is
closed with one of the protocol's close codes, within a timeout; the server
logs no error and still serves a normal request afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from tests.conftest import LiveServer
from tests.fuzzing import (
    ADMIN_SECRET,
    TABLES,
    Fuzzed,
    bool_exps,
    check_body,
    check_errors,
    dumps,
    fuzz,
    healthy,
    json_values,
    junk_text,
    library_server,
    scalars,
)

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
# How long one probe may take before the connection counts as hung.
PROBE_SECONDS = 10
# Close codes each protocol may end a fuzzed connection with (SPEC sections 6-8).
TRANSPORT_CLOSES = {1000, 1009, 4400, 4401, 4403, 4409, 4429}
LEGACY_CLOSES = {1000, 1009, 4400, 4403, 4429}
RAW_CLOSES = {1000, 1009, 4403, 4429}

CHANGES = "subscription($t: String!, $w: JSON, $s: String) { tableChanged(table: $t, where: $w, since: $s) { type table id record old_record cursor } }"
DOCUMENTS = [
    CHANGES,
    'subscription { tableChanged(table: "posts") { type } }',
    "subscription { a: tableChanged(table: \"posts\") { type } b: tableChanged(table: \"users\") { type } }",
    "{ users { id name } }",
    'mutation { delete_tags(where: {name: {_eq: "nope"}}) { affected_rows } }',
    "subscription { tableChanged(table: \"posts\") { ...F } } fragment F on TableChange { cursor }",
    "{ users {",
    "",
]
table_names = st.one_of(st.sampled_from([*TABLES, "_forgegraph_changes", "sqlite_master"]), junk_text, scalars)
cursors = st.one_of(
    st.sampled_from(["0", "1", "²", "٣", "1" * 19, "9" * 25, "-1", " 1", "1.5", "0x10", "", "1_000"]),
    junk_text,
    scalars,
)
tokens = st.one_of(
    junk_text,
    st.sampled_from(["a.b.c", "eyJhbGciOiJub25lIn0.e30.", "Bearer x", "...."]),
    scalars,
)
ids = st.one_of(st.sampled_from(["1", "2", "a"]), junk_text, scalars)


def operation_payloads() -> st.SearchStrategy[Any]:
    table = st.sampled_from(sorted(TABLES))
    variables = st.one_of(
        st.fixed_dictionaries({}, optional={"t": table_names, "w": json_values, "s": cursors}),
        table.flatmap(lambda t: st.fixed_dictionaries({"t": st.just(t), "w": bool_exps(t, 2)}, optional={"s": cursors})),
        json_values,
    )
    return st.one_of(
        st.fixed_dictionaries(
            {"query": st.one_of(st.sampled_from(DOCUMENTS), junk_text, scalars)},
            optional={"variables": variables, "operationName": st.one_of(scalars, json_values)},
        ),
        json_values,
    )


init_payloads = st.one_of(
    st.none(),
    st.fixed_dictionaries({}),
    st.fixed_dictionaries({"headers": st.fixed_dictionaries({"Authorization": tokens.map(lambda t: f"Bearer {t}")})}),
    st.fixed_dictionaries({"Authorization": st.one_of(tokens, tokens.map(lambda t: f"Bearer {t}"))}),
    st.fixed_dictionaries({"x-admin-secret": st.one_of(st.just(ADMIN_SECRET), junk_text)}),
    json_values,
)


def graphql_messages(legacy: bool) -> st.SearchStrategy[Any]:
    start, stop = ("start", "stop") if legacy else ("subscribe", "complete")
    return st.one_of(
        st.fixed_dictionaries({"type": st.just("connection_init")}, optional={"payload": init_payloads}),
        st.fixed_dictionaries({"type": st.just(start), "id": ids}, optional={"payload": operation_payloads()}),
        st.fixed_dictionaries({"type": st.just(stop)}, optional={"id": ids}),
        st.fixed_dictionaries({"type": st.sampled_from(["ping", "pong"])}, optional={"payload": json_values}),
        st.fixed_dictionaries(
            {"type": st.one_of(st.sampled_from(["start", "stop", "subscribe", "complete", "next", "error",
                                                "connection_terminate", "ka", "data"]), junk_text, scalars)},
            optional={"id": ids, "payload": json_values},
        ),
        json_values,
    )


raw_messages = st.one_of(
    st.fixed_dictionaries({"type": st.just("subscribe")}, optional={"table": table_names, "since": cursors}),
    st.fixed_dictionaries({"type": st.just("unsubscribe")}, optional={"table": table_names}),
    st.fixed_dictionaries({"type": st.just("auth")}, optional={"token": tokens}),
    st.fixed_dictionaries({"type": st.one_of(junk_text, scalars)}, optional={"table": table_names}),
    json_values,
)


def frames(messages: st.SearchStrategy[Any]) -> st.SearchStrategy[list[str | bytes]]:
    """Frames to send: encoded messages, raw text and binary."""
    frame = st.one_of(
        messages.map(dumps),
        messages.map(lambda m: dumps(m).encode()),  # the right JSON in a binary frame
        st.text(max_size=40),
        st.binary(max_size=40),
    )
    return st.lists(frame, max_size=6)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    with library_server(tmp_path_factory.mktemp("fuzz-ws")) as served:
        yield served


def ws_url(server: LiveServer, path: str) -> str:
    return "ws" + server.url.removeprefix("http") + path


def check_message(raw: str | bytes) -> dict[str, Any]:
    """A server message: a JSON object with a type; GraphQL errors in it carry codes."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    check_body(text)
    message = orjson.loads(text)
    assert isinstance(message, dict) and isinstance(message.get("type"), str), message
    payload = message.get("payload")
    if message["type"] == "connection_error":  # legacy: why connection_init failed
        assert isinstance(payload, dict) and isinstance(payload.get("message"), str), message
    elif message["type"] == "error" and "payload" in message:
        # graphql-transport-ws sends a list; the legacy protocol one error or a list
        check_errors(payload if isinstance(payload, list) else [payload])
    elif message["type"] in ("next", "data") and isinstance(payload, dict) and "errors" in payload:
        check_errors(payload["errors"])
    elif message["type"] == "error":  # the raw protocol: ForgeBase's {"type": "error", "message"}
        assert list(message) == ["type", "message"] and isinstance(message["message"], str), message
    return message


async def send_all(connection: ClientConnection, sent: list[str | bytes]) -> bool:
    """Send every frame; False when the server closed the connection on the way."""
    for frame in sent:
        try:
            await connection.send(frame)
        except ConnectionClosed:
            return False
    return True


async def answer_or_close(connection: ClientConnection, answered: Any, closes: set[int]) -> None:
    """Read until a message `answered(message)` accepts, or a close with an allowed code."""
    try:
        async with asyncio.timeout(PROBE_SECONDS):
            while True:
                message = check_message(await connection.recv())
                if answered(message):
                    return
    except ConnectionClosed as closed:
        code = closed.rcvd.code if closed.rcvd is not None else None
        assert code in closes, (code, closed.rcvd.reason if closed.rcvd else None)
    except TimeoutError:
        pytest.fail(f"the server neither answered the probe nor closed within {PROBE_SECONDS} s")


def after_probe(server: Fuzzed) -> None:
    with httpx.Client(base_url=server.live.url, timeout=30, trust_env=False) as http:
        healthy(http)
    assert server.errors.take() == []


# -- graphql-transport-ws -------------------------------------------------------


async def transport_probe(live: LiveServer, init: bool, sent: list[str | bytes]) -> None:
    async with connect(
        ws_url(live, "/graphql"), subprotocols=[Subprotocol(TRANSPORT_WS)], open_timeout=10, proxy=None
    ) as connection:
        if init:
            await connection.send(dumps({"type": "connection_init", "payload": {}}))
            await answer_or_close(connection, lambda m: m["type"] == "connection_ack", set())
        probe = dumps({"type": "ping", "payload": {"probe": True}})
        pong = {"type": "pong", "payload": {"probe": True}}
        delivered = await send_all(connection, [*sent, probe])
        await answer_or_close(connection, lambda m: delivered and m == pong, TRANSPORT_CLOSES)


@fuzz
@given(init=st.booleans(), sent=frames(graphql_messages(legacy=False)))
@example(init=False, sent=[dumps({"type": "subscribe", "id": "1", "payload": {"query": "{ users { id } }"}})])
@example(init=True, sent=[dumps({"type": "subscribe", "id": "1", "payload": {"query": CHANGES, "variables": {"t": "posts"}}})] * 2)
@example(init=True, sent=[dumps({"type": "connection_init"})])
@example(init=True, sent=[b"\x00\xff"])
@example(init=True, sent=["x" * 70_000])
@example(init=True, sent=[dumps({"type": "subscribe", "id": "1", "payload": {"query": CHANGES, "variables": {"t": "posts", "s": "²"}}})])
@example(init=True, sent=[dumps({"type": "subscribe", "id": "1", "payload": {"query": CHANGES, "variables": {"t": "posts", "w": {"title": {"_like": 5}}}}})])
@example(init=False, sent=[dumps({"type": "connection_init", "payload": {"headers": {"Authorization": "Bearer a.b.c"}}})])
def test_graphql_transport_ws(server: Fuzzed, init: bool, sent: list[str | bytes]) -> None:
    asyncio.run(transport_probe(server.live, init, sent))
    after_probe(server)


# -- legacy graphql-ws ----------------------------------------------------------


async def legacy_probe(live: LiveServer, init: bool, sent: list[str | bytes]) -> None:
    async with connect(
        ws_url(live, "/graphql"), subprotocols=[Subprotocol(LEGACY_WS)], open_timeout=10, proxy=None
    ) as connection:
        if init:
            await connection.send(dumps({"type": "connection_init", "payload": {}}))
            await answer_or_close(connection, lambda m: m["type"] == "connection_ack", set())
        probe = dumps({"type": "start", "id": "probe", "payload": {"query": "{ __typename }"}})
        delivered = await send_all(connection, [*sent, probe])
        await answer_or_close(
            connection,
            lambda m: delivered and m.get("id") == "probe" and m["type"] in ("data", "error"),
            LEGACY_CLOSES,
        )


@fuzz
@given(init=st.booleans(), sent=frames(graphql_messages(legacy=True)))
@example(init=False, sent=[dumps({"type": "start", "id": "1", "payload": {"query": "{ users { id } }"}})])
@example(init=True, sent=[dumps({"type": "start", "id": "1", "payload": {"query": CHANGES, "variables": {"t": "posts"}}})] * 2)
@example(init=True, sent=[dumps({"type": "connection_init", "payload": []})])
@example(init=True, sent=[dumps({"type": "start", "id": "1", "payload": {"query": CHANGES, "variables": {"t": "posts", "s": "٣"}}})])
@example(init=True, sent=[dumps({"type": "connection_terminate"})])
def test_legacy_graphql_ws(server: Fuzzed, init: bool, sent: list[str | bytes]) -> None:
    asyncio.run(legacy_probe(server.live, init, sent))
    after_probe(server)


# -- the raw protocol -------------------------------------------------------------


async def raw_probe(live: LiveServer, token: str | None, sent: list[str | bytes]) -> None:
    url = ws_url(live, "/realtime") + (f"?token={quote(token)}" if token is not None else "")
    async with connect(url, open_timeout=10, proxy=None) as connection:
        delivered = await send_all(connection, [*sent, dumps({"type": "sync"})])
        synced = {"type": "error", "message": "unknown message type 'sync'"}
        await answer_or_close(connection, lambda m: delivered and m == synced, RAW_CLOSES)


@fuzz
@given(token=st.one_of(st.none(), junk_text), sent=frames(raw_messages))
@example(token=None, sent=[dumps({"type": "subscribe", "table": "posts", "since": "²"})])
@example(token=None, sent=[dumps({"type": "subscribe", "table": "posts", "since": "٣"})])
@example(token=None, sent=[dumps({"type": "subscribe", "table": "posts"})] * 2 + [dumps({"type": "unsubscribe", "table": "posts"})] * 2)
@example(token="a.b.c", sent=[])
@example(token=None, sent=[dumps({"type": "auth", "token": 5})])
@example(token=None, sent=[dumps({"type": "subscribe", "table": "_forgegraph_changes"})])
def test_raw_protocol(server: Fuzzed, token: str | None, sent: list[str | bytes]) -> None:
    asyncio.run(raw_probe(server.live, token, sent))
    after_probe(server)


def test_an_unknown_subprotocol_is_refused(server: Fuzzed) -> None:
    async def attempt() -> None:
        try:
            async with connect(
                ws_url(server.live, "/graphql"), subprotocols=[Subprotocol("junk")], open_timeout=10, proxy=None
            ) as connection:
                await answer_or_close(connection, lambda m: False, {4400})
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 4400
        except Exception as error:  # noqa: BLE001 - a refused handshake is fine too
            assert "403" in str(error) or "subprotocol" in str(error).lower(), error

    asyncio.run(attempt())
    after_probe(server)
