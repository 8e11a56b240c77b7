"""`tableChanged` end to end (SPEC sections 5 and 8): real sockets, real databases.

Every test subscribes before it writes and waits until the server has joined
the subscription (`subscribed`), so no event is missed by a race with the
subscribe message. "No event" is shown by a later marker event arriving next.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from graph.config import Limits
from graph.dialect import open_database
from graph.events.changelog import ChangeLog, Retention
from tests.conftest import (
    LEGACY_WS,
    TRANSPORT_WS,
    Api,
    GraphQLWS,
    Launch,
    asyncpg_dsn,
    by_another_program,
)

CHANGES = """subscription($table: String!, $where: JSON, $since: String) {
  tableChanged(table: $table, where: $where, since: $since) { type table id record old_record cursor } }"""
POST = "id title body published user_id editor_id rating published_at"


async def subscribed(ws: GraphQLWS) -> None:
    """Return once the server has handled every message sent so far (subscriptions joined).

    The server reads a connection's messages one at a time and finishes a
    subscribe before reading the next, so an answer to a later message proves it.
    Only for a quiet connection: the next message must be that answer.
    """
    if ws.legacy:
        await ws.subscribe("sync", "{ __typename }")
        assert await ws.next("sync") == {"data": {"__typename": "query_root"}}
        assert await ws.receive() == {"id": "sync", "type": "complete"}
    else:
        await ws.send({"type": "ping"})
        assert await ws.receive() == {"type": "pong"}


async def subscribe(
    ws: GraphQLWS, op_id: str, table: str, *, where: dict[str, Any] | None = None, since: str | None = None
) -> None:
    await ws.subscribe(op_id, CHANGES, {"table": table, "where": where, "since": since})
    await subscribed(ws)


async def change(ws: GraphQLWS, op_id: str | None = None, timeout: float = 5) -> dict[str, Any]:
    payload = await ws.next(op_id, timeout)
    assert "errors" not in payload, payload
    return payload["data"]["tableChanged"]


async def changes(ws: GraphQLWS, count: int, op_id: str | None = None, timeout: float = 5) -> list[dict[str, Any]]:
    return [await change(ws, op_id, timeout) for _ in range(count)]


def cursors(events: list[dict[str, Any]]) -> list[int]:
    """The events' cursors, checked to be decimal strings in strictly increasing order."""
    for event in events:
        assert isinstance(event["cursor"], str) and event["cursor"].isdigit(), event
    values = [int(e["cursor"]) for e in events]
    assert values == sorted(set(values)), values
    return values


def error_codes(message: dict[str, Any]) -> list[str]:
    assert message["type"] == "error", message
    errors = message["payload"] if isinstance(message["payload"], list) else [message["payload"]]
    return [e["extensions"]["code"] for e in errors]


async def post_row(api: Api, post_id: int) -> dict[str, Any]:
    return (await api(f"{{ posts_by_pk(id: {post_id}) {{ {POST} }} }}"))["posts_by_pk"]


# -- event shapes -------------------------------------------------------------


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_create_update_delete_events_carry_rows_and_increasing_cursors(
    api: Api, protocol: str
) -> None:
    async with api.ws(protocol=protocol) as ws:
        await subscribe(ws, "1", "posts")
        created = await api(f"""mutation {{ insert_posts_one(object: {{title: "new", user_id: 2,
                               rating: "1.25", published_at: "2024-01-02T03:04:05+00:00"}}) {{ {POST} }} }}""")
        row = created["insert_posts_one"]
        post_id = row["id"]
        event = await change(ws, "1")
        assert event == {"type": "create", "table": "posts", "id": post_id, "record": row,
                         "old_record": None, "cursor": event["cursor"]}
        assert event["record"] == await post_row(api, post_id)

        await api(f"""mutation {{ update_posts_by_pk(pk_columns: {{id: {post_id}}},
                      _set: {{title: "renamed", published: true, editor_id: 1}}) {{ id }} }}""")
        updated = await post_row(api, post_id)
        assert updated["title"] == "renamed"
        event2 = await change(ws, "1")
        assert event2 == {"type": "update", "table": "posts", "id": post_id, "record": updated,
                          "old_record": row, "cursor": event2["cursor"]}

        await api(f"mutation {{ delete_posts_by_pk(id: {post_id}) {{ id }} }}")
        event3 = await change(ws, "1")
        assert event3 == {"type": "delete", "table": "posts", "id": post_id, "record": None,
                          "old_record": updated, "cursor": event3["cursor"]}
        cursors([event, event2, event3])

        await ws.complete("1")
        if ws.legacy:
            assert await ws.receive() == {"id": "1", "type": "complete"}


async def test_values_in_events_are_as_queries_return_them(api: Api) -> None:
    fields = "id name email score active born created_at profile"
    async with api.ws() as ws:
        await subscribe(ws, "1", "users")
        inserted = await api(f"""mutation($p: JSON) {{ insert_users_one(object: {{name: "Tia", score: 0.1,
            active: false, born: "1990-05-17", created_at: "2024-01-02T03:04:05", profile: $p}}) {{ {fields} }} }}""",
            {"p": {"nested": [1, 2.5, None, True, "x"], "big": 2**53 + 1}})
        event = await change(ws, "1")
    row = inserted["insert_users_one"]
    assert event["record"] == row
    assert (await api(f"{{ users_by_pk(id: {row['id']}) {{ {fields} }} }}"))["users_by_pk"] == row


async def test_numeric_values_in_events_are_as_queries_return_them(api: Api) -> None:
    async with api.ws() as ws:
        await subscribe(ws, "1", "posts")
        inserted = await api('mutation { insert_posts_one(object: {title: "n", user_id: 1, rating: "12345678.90"}) '
                             '{ rating } }')
        event = await change(ws, "1")
    # What a query returns (SQLite keeps numerics as REAL; PostgreSQL keeps the digits).
    assert event["record"]["rating"] == inserted["insert_posts_one"]["rating"]


# -- bulk and cascade -----------------------------------------------------------


async def test_bulk_update_yields_one_event_per_row_in_cursor_order(api: Api) -> None:
    async with api.ws() as ws:
        await subscribe(ws, "posts", "posts")
        objects = ", ".join(f'{{title: "bulk-{i:02}", user_id: {1 + i % 3}}}' for i in range(50))
        inserted = await api(f"mutation {{ insert_posts(objects: [{objects}]) {{ returning {{ id title }} }} }}")
        rows = inserted["insert_posts"]["returning"]
        ids = {r["id"] for r in rows}
        creates = await changes(ws, 50, "posts")
        cursors(creates)
        assert {e["id"] for e in creates} == ids
        assert all(e["type"] == "create" for e in creates)

        result = await api("""mutation { update_posts(where: {title: {_like: "bulk-%"}},
                              _set: {published: true}) { affected_rows } }""")
        assert result["update_posts"]["affected_rows"] == 50
        updates = await changes(ws, 50, "posts")
        assert cursors(updates)[0] > cursors(creates)[-1]
        assert {e["id"] for e in updates} == ids
        for event in updates:
            assert event["type"] == "update"
            assert event["old_record"]["published"] is False
            assert event["record"]["published"] is True
            assert event["record"]["title"] == event["old_record"]["title"]


async def test_cascade_delete_yields_every_deleted_row(api: Api) -> None:
    async with api.ws() as ws:
        for table in ("users", "posts", "comments", "tags"):
            await subscribe(ws, table, table)
        # Post 3's editor is user 1 (no cascade on editor_id): clear it first.
        await api("mutation { update_posts_by_pk(pk_columns: {id: 3}, _set: {editor_id: null}) { id } }")
        assert (await change(ws, "posts"))["type"] == "update"
        result = await api("mutation { delete_users_by_pk(id: 1) { id } }")
        assert result["delete_users_by_pk"] == {"id": 1}
        seen: dict[str, list[dict[str, Any]]] = {"users": [], "posts": [], "comments": [], "tags": []}
        for _ in range(7):
            message = await ws.receive()
            assert message["type"] == "next", message
            seen[message["id"]].append(message["payload"]["data"]["tableChanged"])
    everything = sorted((e for events in seen.values() for e in events), key=lambda e: int(e["cursor"]))
    cursors(everything)
    assert all(e["type"] == "delete" and e["record"] is None for e in everything)
    assert [e["id"] for e in seen["users"]] == [1]
    assert seen["users"][0]["old_record"]["name"] == "Alice"
    assert sorted(e["id"] for e in seen["posts"]) == [1, 2]
    assert all(e["old_record"]["user_id"] == 1 for e in seen["posts"])
    assert sorted(e["id"] for e in seen["comments"]) == [1, 2]
    assert sorted((e["id"]["post_id"], e["id"]["name"]) for e in seen["tags"]) == [(1, "intro"), (1, "news")]


# -- writes by another program ---------------------------------------------------


async def test_rows_written_by_another_program_arrive_within_a_second(api: Api, library_url: str) -> None:
    insert = "INSERT INTO posts (title, user_id, published) VALUES ('from outside', 3, true)"
    async with api.ws() as ws:
        await subscribe(ws, "1", "posts")
        await by_another_program(library_url, insert)
        written = time.monotonic()
        event = await change(ws, "1", timeout=5)
        elapsed = time.monotonic() - written
    assert event["type"] == "create"
    assert event["record"]["title"] == "from outside"
    assert event["record"]["published"] is True
    assert elapsed < 1.0, f"delivered after {elapsed:.2f} s"


# -- transactions ----------------------------------------------------------------


async def test_a_rolled_back_request_yields_no_event(api: Api) -> None:
    async with api.ws() as ws:
        await subscribe(ws, "users", "users")
        await subscribe(ws, "posts", "posts")
        duplicate = await api.raw("""mutation {
            a: insert_users_one(object: {name: "Dora", email: "dora@example.com"}) { id }
            b: insert_users_one(object: {name: "Alias", email: "alice@example.com"}) { id } }""")
        assert [e["extensions"]["code"] for e in duplicate["errors"]] == ["constraint-violation"]
        dangling = await api.raw("""mutation {
            a: insert_posts_one(object: {title: "fine", user_id: 1}) { id }
            b: insert_posts_one(object: {title: "orphan", user_id: 999}) { id } }""")
        assert [e["extensions"]["code"] for e in dangling["errors"]] == ["constraint-violation"]
        assert (await api('{ users(where: {name: {_eq: "Dora"}}) { id } }'))["users"] == []

        await api('mutation { insert_users_one(object: {name: "Zed"}) { id } }')
        message = await ws.receive()
        assert message["id"] == "users", message
        event = message["payload"]["data"]["tableChanged"]
        assert (event["type"], event["record"]["name"]) == ("create", "Zed")


# -- filters ---------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_where_filter_turns_leaving_into_delete_and_entering_into_create(api: Api) -> None:
    async with api.ws() as ws:
        await subscribe(ws, "1", "posts", where={"published": {"_eq": True}})
        # Posts 1, 3 and 4 are published, 2 is not.
        await api('mutation { update_posts_by_pk(pk_columns: {id: 2}, _set: {body: "still hidden"}) { id } }')
        await api('mutation { insert_posts_one(object: {title: "draft", user_id: 1}) { id } }')
        await api("mutation { update_posts_by_pk(pk_columns: {id: 2}, _set: {published: true}) { id } }")
        await api("mutation { update_posts_by_pk(pk_columns: {id: 1}, _set: {published: false}) { id } }")
        await api('mutation { update_posts_by_pk(pk_columns: {id: 3}, _set: {title: "Third!"}) { id } }')
        await api('mutation { insert_posts_one(object: {title: "out", user_id: 1, published: true}) { id } }')
        events = await changes(ws, 4, "1")
    cursors(events)
    assert [(e["type"], e["id"]) for e in events] == [("create", 2), ("delete", 1), ("update", 3), ("create", 6)]
    entered, left, updated, _ = events
    assert entered["old_record"] is None and entered["record"]["published"] is True
    assert left["record"] is None and left["old_record"]["published"] is True
    assert updated["old_record"]["title"] == "Third" and updated["record"]["title"] == "Third!"


# -- resuming --------------------------------------------------------------------


async def test_resume_replays_missed_events_then_continues_live_without_gap_or_duplicate(api: Api) -> None:
    async def rename(title: str) -> None:
        await api(f'mutation {{ update_posts_by_pk(pk_columns: {{id: 1}}, _set: {{title: "{title}"}}) {{ id }} }}')

    async with api.ws() as ws:
        await subscribe(ws, "1", "posts")
        for n in range(3):
            await rename(f"t{n}")
        seen = await changes(ws, 3, "1")
    assert [e["record"]["title"] for e in seen] == ["t0", "t1", "t2"]
    last = seen[-1]["cursor"]

    # Missed while away: more than one replay page (1000 events), then two renames.
    missed = 1100
    objects = ", ".join(f'{{title: "m{i}", user_id: 3}}' for i in range(missed))
    await api(f"mutation {{ insert_posts(objects: [{objects}]) {{ affected_rows }} }}")
    for n in range(3, 5):
        await rename(f"t{n}")

    async def write_during_replay() -> None:
        for n in range(5, 10):
            await rename(f"t{n}")
            await asyncio.sleep(0.01)

    async with api.ws() as ws:
        writer = asyncio.create_task(write_during_replay())
        await ws.subscribe("1", CHANGES, {"table": "posts", "since": last})
        resumed = await changes(ws, missed + 7, "1")
        await writer
        await rename("t10")
        resumed.append(await change(ws, "1"))
    assert cursors(resumed)[0] > int(last)
    titles = [e["record"]["title"] for e in resumed]
    assert titles == [f"m{i}" for i in range(missed)] + [f"t{n}" for n in range(3, 11)]
    assert [e["type"] for e in resumed] == ["create"] * missed + ["update"] * 8


async def test_invalid_cursors_are_errors(api: Api, library_url: str) -> None:
    async with api.ws() as ws:
        await subscribe(ws, "1", "posts")
        for title in ("a", "b"):
            await api(f'mutation {{ update_posts_by_pk(pk_columns: {{id: 1}}, _set: {{title: "{title}"}}) {{ id }} }}')
        first, latest = await changes(ws, 2, "1")

        malformed = "malformed cursor {!r}: expected decimal digits".format
        never = "cursor {} was never issued by this database".format
        # The longest cursor (2**63 - 1) has 19 digits: one more is malformed, not unknown.
        for n, (cursor, reason) in enumerate([
            ("abc", malformed("abc")), ("-1", malformed("-1")), ("1e3", malformed("1e3")),
            ("99999999999", never("99999999999")), ("9223372036854775807", never("9223372036854775807")),
            ("10000000000000000000", malformed("10000000000000000000")),
        ]):
            await ws.subscribe(f"bad{n}", CHANGES, {"table": "posts", "since": cursor})
            message = await ws.receive()
            assert message["id"] == f"bad{n}"
            assert error_codes(message) == ["invalid-cursor"], cursor
            assert message["payload"][0]["message"] == reason

        # Prune the whole log, as a retention of zero would, from this test's own engine.
        database = open_database(library_url)
        engine = database.engine
        try:
            removed = await ChangeLog(engine, api.server.app.state.runtime.model).prune(Retention(0, 0))
        finally:
            await database.close()
        assert removed >= 2
        await ws.subscribe("old", CHANGES, {"table": "posts", "since": first["cursor"]})
        message = await ws.receive()
        assert error_codes(message) == ["invalid-cursor"]
        assert message["payload"][0]["message"] == (
            f"cursor {first['cursor']} is older than the retained change log; query the current rows instead"
        )

        # The newest pruned cursor is still a place to resume from: nothing was missed after it.
        await subscribe(ws, "head", "posts", since=latest["cursor"])
        await api('mutation { update_posts_by_pk(pk_columns: {id: 1}, _set: {title: "c"}) { id } }')
        live = await changes(ws, 2)  # one for "1", one for "head"
    assert all(e["record"]["title"] == "c" for e in live)
    assert int(live[0]["cursor"]) == int(live[1]["cursor"]) > int(latest["cursor"])


# -- subscribe-time errors and limits ------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_unknown_table_is_an_error_and_the_connection_stays_usable(api: Api) -> None:
    async with api.ws() as ws:
        await ws.subscribe("1", CHANGES, {"table": "nope"})
        message = await ws.receive()
        assert message["id"] == "1"
        assert error_codes(message) == ["validation-failed"]
        assert "'nope'" in message["payload"][0]["message"]
        await ws.subscribe("2", CHANGES, {"table": "audit_log"})  # no primary key, no events
        assert error_codes(await ws.receive()) == ["validation-failed"]
        await subscribe(ws, "1", "users")  # the failed id is free again
        await api('mutation { insert_users_one(object: {name: "Nia"}) { id } }')
        assert (await change(ws, "1"))["record"]["name"] == "Nia"


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_too_many_subscriptions_on_one_connection(launch: Launch) -> None:
    api = await launch(limits=Limits(max_subscriptions_per_connection=2))
    async with api.ws() as ws:
        await subscribe(ws, "1", "users")
        await subscribe(ws, "2", "posts")
        await ws.subscribe("3", CHANGES, {"table": "comments"})
        message = await ws.receive()
        assert message["id"] == "3"
        assert error_codes(message) == ["validation-failed"]
        await ws.complete("2")
        await subscribe(ws, "3", "comments")
        await api('mutation { insert_comments_one(object: {post_id: 1, body: "hi"}) { id } }')
        assert (await change(ws, "3"))["record"]["body"] == "hi"


# -- many subscribers, slow subscribers ------------------------------------------


@asynccontextmanager
async def many_sockets(api: Api, count: int) -> AsyncIterator[list[GraphQLWS]]:
    """`count` acknowledged graphql-transport-ws connections, opened concurrently."""
    async with AsyncExitStack() as stack:
        sockets = await asyncio.gather(*(stack.enter_async_context(api.ws()) for _ in range(count)))
        yield list(sockets)


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_200_subscribers_each_receive_all_100_events_in_order(api: Api) -> None:
    async with many_sockets(api, 200) as sockets:
        for ws in sockets:
            await subscribe(ws, "1", "posts")

        async def collect(ws: GraphQLWS) -> list[dict[str, Any]]:
            return await changes(ws, 100, "1", timeout=20)

        readers = [asyncio.create_task(collect(ws)) for ws in sockets]
        for n in range(100):
            await api(f'mutation {{ update_posts_by_pk(pk_columns: {{id: 4}}, _set: {{body: "{n}"}}) {{ id }} }}')
        results = await asyncio.wait_for(asyncio.gather(*readers), 60)
    expected = [str(n) for n in range(100)]
    first = cursors(results[0])
    for events in results:
        assert [e["record"]["body"] for e in events] == expected
        assert cursors(events) == first


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_consumer_that_stops_reading_is_closed_with_1013_and_others_carry_on(launch: Launch) -> None:
    api = await launch(limits=Limits(send_queue_size=20))
    # The stalled reader: a tiny receive buffer, no compression (so big frames stay big),
    # and a client that stops reading from its socket after one queued message.
    stalled_sock = socket.socket()
    stalled_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled_sock.connect(("127.0.0.1", int(api.server.url.rsplit(":", 1)[1])))
    body = os.urandom(96 * 1024).hex()  # 192 KiB of text per event
    total = 60
    async with api.ws() as steady, api.ws(sock=stalled_sock, compression=None, max_queue=1, max_size=None) as stalled:
        await subscribe(steady, "1", "posts")
        await subscribe(stalled, "1", "posts")
        received = asyncio.create_task(changes(steady, total, "1", timeout=20))
        for n in range(total):
            await api("mutation($b: String!, $t: String!) { insert_posts_one(object: "
                      "{title: $t, body: $b, user_id: 1}) { id } }", {"b": body, "t": f"big-{n}"})
        events = await received
        assert [e["record"]["title"] for e in events] == [f"big-{n}" for n in range(total)]
        # Now read again: what was in flight, then the server's close frame.
        got = 0
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                async with asyncio.timeout(10):
                    await stalled.connection.recv()
                got += 1
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    assert got < total


# -- the protocol ----------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(
    ("messages", "code"),
    [
        (["{not json"], 4400),
        (['{"type": "subscribe", "id": "1", "payload": {"query": "{ __typename }"}}'], 4401),
        (['{"type": "connection_init"}', '{"type": "connection_init"}'], 4429),
        (['{"type": "connection_init"}', '{"type": "whatever"}'], 4400),
        (['{"type": "connection_init"}', '[1, 2]'], 4400),
    ],
)
async def test_protocol_errors_close_with_the_protocol_code(api: Api, messages: list[str], code: int) -> None:
    async with api.ws(init=False) as ws:
        for message in messages:
            await ws.send(message)
        assert await ws.close_code() == code
    # The server carries on.
    async with api.ws() as ws:
        await subscribe(ws, "1", "users")


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_duplicate_subscription_id_closes_with_4409(api: Api) -> None:
    async with api.ws() as ws:
        await subscribe(ws, "1", "users")
        await ws.subscribe("1", CHANGES, {"table": "posts"})
        assert await ws.close_code() == 4409


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_no_connection_init_closes_with_4408(launch: Launch) -> None:
    api = await launch(limits=Limits(connection_init_timeout=0.5))
    async with api.ws(init=False) as ws:
        started = time.monotonic()
        assert await ws.close_code(timeout=5) == 4408
        assert time.monotonic() - started < 3


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_queries_and_mutations_over_the_socket_get_next_then_complete(api: Api) -> None:
    async with api.ws() as ws:
        await subscribe(ws, "events", "users")
        await ws.subscribe("q", "{ users_by_pk(id: 2) { name } }")
        assert await ws.next("q") == {"data": {"users_by_pk": {"name": "Bob"}}}
        assert await ws.receive() == {"id": "q", "type": "complete"}
        await ws.subscribe("m", 'mutation { insert_users_one(object: {name: "Ola"}) { name } }')
        messages = [await ws.receive() for _ in range(3)]
    result = next(m for m in messages if m["id"] == "m" and m["type"] == "next")
    assert result["payload"] == {"data": {"insert_users_one": {"name": "Ola"}}}
    assert messages.index(result) < messages.index({"id": "m", "type": "complete"})
    event = next(m for m in messages if m["id"] == "events")
    assert event["payload"]["data"]["tableChanged"]["record"]["name"] == "Ola"


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_complete_from_the_client_stops_the_events(api: Api) -> None:
    async with api.ws() as ws:
        await subscribe(ws, "1", "users")
        await api('mutation { insert_users_one(object: {name: "one"}) { id } }')
        assert (await change(ws, "1"))["record"]["name"] == "one"
        await ws.complete("1")
        await subscribe(ws, "2", "users")
        await api('mutation { insert_users_one(object: {name: "two"}) { id } }')
        assert (await change(ws, "2"))["record"]["name"] == "two"  # and nothing for "1" before it
        await ws.complete("2")
        await subscribed(ws)
        await subscribe(ws, "3", "posts")
        await api('mutation { insert_users_one(object: {name: "three"}) { id } }')
        await api('mutation { insert_posts_one(object: {title: "marker", user_id: 1}) { id } }')
        assert (await change(ws, "3"))["record"]["title"] == "marker"


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_stopping_the_server_sends_a_close_frame(api: Api) -> None:
    async with api.ws() as transport, api.ws(protocol=LEGACY_WS) as legacy:
        await subscribe(transport, "1", "users")
        await subscribe(legacy, "1", "users")
        await asyncio.to_thread(api.server.stop)
        codes = [await transport.close_code(), await legacy.close_code()]
    assert all(code in (1001, 1012) for code in codes), codes


# -- commit order (PostgreSQL) ---------------------------------------------------------


@pytest.mark.parametrize("backend", ["postgres"])
async def test_interleaved_commits_reach_a_reader_once_each_in_cursor_order(api: Api, library_url: str) -> None:
    """Writer A changes a row and holds its transaction open while writer B changes another and
    commits; then A commits. Sequences hand out cursors before commit, so without the capture
    trigger's advisory lock B's later cursor would commit first, the reader would step past A's
    smaller one, and A's change would never be delivered."""
    import asyncpg

    dsn = asyncpg_dsn(library_url)
    first, second = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        async with api.ws() as ws:
            await subscribe(ws, "1", "posts")
            holding = first.transaction()
            await holding.start()
            await first.execute("INSERT INTO posts (title, user_id) VALUES ('first writer', 3)")
            # B in the background: with the lock it waits for A's commit, without it it commits now.
            later = asyncio.create_task(second.execute("INSERT INTO posts (title, user_id) VALUES ('second writer', 3)"))
            await asyncio.sleep(1.0)  # several capture polls while A is still open
            await holding.commit()
            await asyncio.wait_for(later, 10)
            await api("mutation { insert_posts_one(object: {title: \"marker\", user_id: 3}) { id } }")
            events = await changes(ws, 3, "1", timeout=10)
    finally:
        await first.close()
        await second.close()
    assert [e["record"]["title"] for e in events] == ["first writer", "second writer", "marker"]
    assert cursors(events) == sorted(cursors(events))
    assert len(set(cursors(events))) == 3
