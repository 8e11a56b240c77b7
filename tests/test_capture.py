"""Capture and replay under faults (issue 12, items 1, 5, 6, 14), over real sockets.

- A change that cannot be turned into events is skipped, logged once with its
  cursor and counted; later changes still reach every subscriber.
- A replay that the pruner overtakes is an `invalid-cursor` error, never a gap.
- `changeCursor` and `since: "0"`, and the SDK's gap-free first subscribe.
- A slow broker never delays local delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from graph.client import ChangeEvent
from graph.config import Capture
from graph.dialect import open_database
from graph.events.changelog import LOG, META, ChangeLog, Retention
from tests.conftest import LEGACY_WS, TRANSPORT_WS, GraphQLWS, LiveServer
from tests.test_auth import SECRET
from tests.test_client import Proxy, client_for, until
from tests.test_forgebase import RawClient, ws_url
from tests.test_realtime import CHANGES, Api, Launch, change, changes, error_codes, subscribe
from tests.test_sse import events as sse_events

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])


async def rename(api: Api, title: str) -> None:
    await api(f'mutation {{ update_posts_by_pk(pk_columns: {{id: 1}}, _set: {{title: "{title}"}}) {{ id }} }}')


async def write_log(url: str, sql: str) -> int:
    """Run `sql` (an INSERT into the change log) as another program would; its row's cursor."""
    database = open_database(url)
    engine = database.engine
    try:
        async with engine.begin() as conn:
            return int((await conn.execute(sa.text(sql + " RETURNING cursor"))).scalar_one())
    finally:
        await database.close()


async def prune_all(api: Api, url: str) -> None:
    """Prune the whole log, as a retention of zero would, from this test's own engine."""
    from graph.events.changelog import ChangeLog

    database = open_database(url)
    engine = database.engine
    try:
        await ChangeLog(engine, api.server.app.state.runtime.model).prune(Retention(0, 0))
    finally:
        await database.close()


async def metric(server: LiveServer, name: str) -> float:
    async with httpx.AsyncClient(base_url=server.url, timeout=10, trust_env=False) as http:
        text = (await http.get("/metrics")).text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


# -- item 1: one change that cannot become events is contained to that change ----------------


# SQLite keeps any text in the log's TEXT column; PostgreSQL's JSONB only valid JSON,
# so there the captured image is JSON that is not a row (a string).
CORRUPT = {"sqlite": "{not json", "postgres": '"not a row"'}


async def test_a_change_that_cannot_become_an_event_is_skipped_logged_and_counted(
    api: Api, library_url: str, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="forgegraph")
    async with api.ws() as ws, RawClient.open(ws_url(api.server)) as raw:
        await subscribe(ws, "1", "posts")
        await raw.subscribe("posts")
        await rename(api, "before")
        (before,) = await changes(ws, 1, "1")
        assert (await raw.receive())["record"]["title"] == "before"

        # Another program writes two changes no subscriber can be given: a row image that
        # is not a row (fails converting it), and a delete without its row (fails rendering).
        bad = [
            await write_log(library_url, f"INSERT INTO {LOG} (table_name, op, new) "
                                         f"VALUES ('posts', 'create', '{CORRUPT[backend]}')"),
            await write_log(library_url, f"INSERT INTO {LOG} (table_name, op) VALUES ('posts', 'delete')"),
        ]
        await rename(api, "after")
        after = await change(ws, "1")
        assert after["record"]["title"] == "after"
        assert int(after["cursor"]) > bad[-1]
        raw_after = await raw.receive()
        assert (raw_after["record"]["title"], raw_after["cursor"]) == ("after", after["cursor"])

        # The log moved on, once: a resume from before them replays only the good change.
        await ws.subscribe("2", CHANGES, {"table": "posts", "since": before["cursor"]})
        assert (await change(ws, "2"))["cursor"] == after["cursor"]
        await rename(api, "later")
        assert {(await change(ws))["record"]["title"] for _ in range(2)} == {"later"}

    assert await metric(api.server, "forgegraph_events_failed_total") == 2
    for cursor in bad:
        logged = [r for r in caplog.records if f"change {cursor} " in r.getMessage()]
        assert len(logged) == 1, [r.getMessage() for r in caplog.records]
        assert logged[0].levelno >= logging.WARNING and "\n" not in logged[0].getMessage()
        # It names the table and why, so an operator can find the row and its cause.
        assert "(table posts)" in logged[0].getMessage()
        assert not logged[0].getMessage().endswith(": None")


@pytest.mark.parametrize("backend", ["postgres"])
async def test_processes_installing_the_capture_at_once_take_turns(api: Api, library_url: str) -> None:
    """Workers start together: each rewrites the triggers when the DDL changed, and on
    PostgreSQL two CREATE OR REPLACE of one function at once fail unless they take turns."""
    model = api.server.app.state.runtime.model
    databases = [open_database(library_url) for _ in range(4)]
    engines = [database.engine for database in databases]
    try:
        for _ in range(3):
            async with engines[0].begin() as conn:
                await conn.execute(sa.text(f"DELETE FROM {META} WHERE key = 'ddl_digest'"))
            await asyncio.gather(*(ChangeLog(engine, model).install() for engine in engines))
    finally:
        for database in databases:
            await database.close()
    async with api.ws() as ws:
        await subscribe(ws, "1", "posts")
        await rename(api, "after")
        assert (await change(ws, "1"))["record"]["title"] == "after"


@sqlite_only
async def test_a_value_that_does_not_fit_its_column_is_counted_once(api: Api, library_url: str) -> None:
    """Another program stores text in a REAL column: the event carries it as stored, and
    /metrics counts it once, as it is captured."""
    async with api.ws() as ws:
        await subscribe(ws, "1", "users")
        database = open_database(library_url)
        engine = database.engine
        try:
            async with engine.begin() as conn:
                await conn.execute(sa.text("UPDATE users SET score = 'high' WHERE id = 1"))
        finally:
            await database.close()
        (event,) = await changes(ws, 1, "1")
    assert event["record"]["score"] == "high"
    assert await metric(api.server, "forgegraph_events_unconvertible_values_total") == 1


@sqlite_only
async def test_corrupt_changes_among_many_cost_no_transport_any_good_event(api: Api, library_url: str) -> None:
    """Another program writes 50 corrupt log rows among 200 inserts: every transport gets the 200, in order."""
    async with (
        api.ws() as modern, api.ws(protocol=LEGACY_WS) as legacy,
        RawClient.open(ws_url(api.server)) as raw,
        sse_events(api.server, "posts") as sse,
    ):
        await subscribe(modern, "1", "posts")
        await subscribe(legacy, "1", "posts")
        await raw.subscribe("posts")
        database = open_database(library_url)
        engine = database.engine
        try:
            for batch in range(20):  # 20 commits, so the capture loop reads them in several batches
                async with engine.begin() as conn:
                    for i in range(batch * 10, batch * 10 + 10):
                        await conn.execute(sa.text(f"INSERT INTO posts (title, user_id) VALUES ('m{i}', 3)"))
                        if i % 4 == 0:
                            await conn.execute(sa.text(
                                f"INSERT INTO {LOG} (table_name, op, new) VALUES ('posts', 'create', '{{oops')"))
        finally:
            await database.close()
        expected = [f"m{i}" for i in range(200)]
        assert [e["record"]["title"] for e in await changes(modern, 200, "1")] == expected
        assert [e["record"]["title"] for e in await changes(legacy, 200, "1")] == expected
        assert [(await raw.receive())["record"]["title"] for _ in range(200)] == expected
        assert [(await sse.message())[1]["record"]["title"] for _ in range(200)] == expected
    assert await metric(api.server, "forgegraph_events_failed_total") == 50


# -- item 5: a replay that the pruner overtakes is an error, never a gap ----------------------


@pytest.fixture
def prune_after_check(api: Api) -> None:
    """Make the server prune its whole log right after it has checked a `since` cursor.

    This is the race of a `since` near the retention horizon, made certain: the
    check passed, and the events after the cursor are gone before the replay reads them.
    """
    changelog = api.server.app.state.runtime.realtime.changelog
    check = changelog.check_cursor

    async def check_then_prune(conn: Any, since: str) -> int:
        cursor = await check(conn, since)
        await changelog.prune(Retention(0, 0))
        return int(cursor)

    changelog.check_cursor = check_then_prune


async def two_changes(api: Api) -> str:
    """Write two changes; the cursor of the first (so the second is after it)."""
    async with api.ws() as ws:
        await subscribe(ws, "1", "posts")
        await rename(api, "one")
        await rename(api, "two")
        first, _ = await changes(ws, 2, "1")
    return str(first["cursor"])


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_replay_overtaken_by_pruning_is_invalid_cursor_on_graphql_ws(
    api: Api, protocol: str, prune_after_check: None
) -> None:
    first = await two_changes(api)
    async with api.ws(protocol=protocol) as ws:
        await ws.subscribe("1", CHANGES, {"table": "posts", "since": first})
        message = await ws.receive()
        assert message["id"] == "1"
        assert error_codes(message) == ["invalid-cursor"], message
        # The connection is fine, and "0" (whatever is retained) still works.
        await subscribe(ws, "2", "posts", since="0")
        await rename(api, "three")
        assert (await change(ws, "2"))["record"]["title"] == "three"


async def test_a_replay_overtaken_by_pruning_is_an_error_on_the_raw_protocol(
    api: Api, prune_after_check: None
) -> None:
    first = await two_changes(api)
    async with RawClient.open(ws_url(api.server)) as raw:
        await raw.send({"type": "subscribe", "table": "posts", "since": first})
        message = await raw.receive()
        assert message["type"] == "error", message
        assert message["message"] == (
            f"cursor {first} is older than the retained change log; query the current rows instead"
        )


async def test_a_replay_overtaken_by_pruning_ends_the_sse_stream(api: Api, prune_after_check: None) -> None:
    first = await two_changes(api)
    async with sse_events(api.server, "posts", headers={"Last-Event-ID": first}) as reader:
        # The body ends with no event in it; EventSource would reconnect and be told why.
        body = ""
        async with asyncio.timeout(5):
            async for chunk in reader.chunks:
                body += chunk
        assert "data:" not in body
    async with httpx.AsyncClient(base_url=api.server.url, timeout=10, trust_env=False) as http:
        response = await http.get("/realtime/sse", params={"table": "posts"}, headers={"Last-Event-ID": first})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "invalid-cursor"


@sqlite_only
async def test_replay_racing_a_concurrent_pruner_never_has_a_gap(api: Api, library_url: str) -> None:
    """Subscribe with `since` again and again while another program prunes: complete or invalid-cursor."""
    objects = ", ".join(f'{{title: "p{i}", user_id: 3}}' for i in range(300))
    await api(f"mutation {{ insert_posts(objects: [{objects}]) {{ affected_rows }} }}")
    async with api.ws() as ws:
        await subscribe(ws, "probe", "posts")
        await rename(api, "probe")
        newest = int((await change(ws, "probe"))["cursor"])
    database = open_database(library_url)
    engine = database.engine
    stop = asyncio.Event()

    async def pruner() -> None:
        # Chop the log from the front, a few events at a time, as retention would.
        horizon = newest - 300
        async with engine.connect() as conn:
            while not stop.is_set() and horizon < newest:
                horizon += 7
                async with conn.begin():
                    await conn.execute(sa.text(f"DELETE FROM {LOG} WHERE cursor <= :h"), {"h": horizon})
                    await conn.execute(sa.text("DELETE FROM _forgegraph_meta WHERE key = 'pruned_through'"))
                    await conn.execute(
                        sa.text("INSERT INTO _forgegraph_meta (key, value) VALUES ('pruned_through', :v)"),
                        {"v": str(horizon)},
                    )
                await asyncio.sleep(0.002)

    task = asyncio.create_task(pruner())
    outcomes = {"complete": 0, "invalid": 0}
    try:
        async with api.ws() as ws:
            for n in range(40):
                since = newest - 280 + n * 5
                await ws.subscribe(f"r{n}", CHANGES, {"table": "posts", "since": str(since)})
                got: list[int] = []
                while not got or got[-1] < newest:
                    message = await ws.receive()
                    if message["type"] == "error":
                        assert error_codes(message) == ["invalid-cursor"]
                        outcomes["invalid"] += 1
                        break
                    got.append(int(message["payload"]["data"]["tableChanged"]["cursor"]))
                else:
                    assert got == list(range(since + 1, newest + 1)), f"a gap replaying after {since}"
                    outcomes["complete"] += 1
                    await ws.complete(f"r{n}")
    finally:
        stop.set()
        await task
        await database.close()
    assert sum(outcomes.values()) == 40


# -- retention: an event goes only when it is both older than the hours and beyond the count --


async def replay(api: Api, since: str, count: int) -> list[str] | str:
    """The titles of the `count` events replayed after `since`, or the error code of the subscribe."""
    async with api.ws() as ws:
        await ws.subscribe("r", CHANGES, {"table": "posts", "since": since})
        first = await ws.receive()
        if first["type"] == "error":
            (code,) = error_codes(first)
            return code
        assert first["type"] == "next" and "errors" not in first["payload"], first
        events = [first["payload"]["data"]["tableChanged"], *await changes(ws, count - 1, "r")]
    return [e["record"]["title"] for e in events]


async def age(url: str, first: int, last: int, seconds: float) -> None:
    """Backdate the log rows from cursor `first` to `last` by `seconds`, as if written that long ago."""
    database = open_database(url)
    engine = database.engine
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(f"UPDATE {LOG} SET created_at = created_at - :s WHERE cursor BETWEEN :a AND :b"),
                {"s": seconds, "a": first, "b": last},
            )
    finally:
        await database.close()


async def until_pruned_past(api: Api, cursor: int, count: int, timeout: float = 20) -> None:
    """Wait until the server's own pruner has dropped the event after `cursor` (its replay is refused)."""
    deadline = time.monotonic() + timeout
    while await replay(api, str(cursor), count) != "invalid-cursor":
        assert time.monotonic() < deadline, f"the pruner did not pass cursor {cursor} within {timeout} s"
        await asyncio.sleep(0.1)


async def test_the_pruner_keeps_what_either_the_hours_or_the_count_retains(
    launch: Launch, library_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Keep the last 3 events or the last hour, pruning every 50 ms. Age is made by
    # backdating log rows, so "old" and "young" are hours apart, not a race with a clock.
    caplog.set_level(logging.INFO, logger="forgegraph")
    api = await launch(capture=Capture(prune_interval=0.05, retention_hours=1.0, retention_events=3))
    await asyncio.sleep(0.2)  # 4 runs of the pruner over an empty log
    titles = [f"e{i}" for i in range(1, 9)]
    async with api.ws() as ws:
        await subscribe(ws, "1", "posts")
        for title in titles:
            await rename(api, title)
        c = [0, *(int(e["cursor"]) for e in await changes(ws, len(titles), "1"))]  # c[1]..c[8]
    hours_old = 2 * 3600.0

    # All young: 5 events are beyond the count, and still nothing is pruned.
    await asyncio.sleep(1.0)  # 20 runs of the pruner
    assert await replay(api, "0", 8) == titles
    assert await replay(api, str(c[1]), 7) == titles[1:]

    # e1..e3 old and beyond the count: pruned. e4, e5 beyond the count but young: kept.
    await age(library_url, c[1], c[3], hours_old)
    await until_pruned_past(api, c[2], 6)
    assert await replay(api, str(c[3]), 5) == titles[3:]
    assert await replay(api, "0", 5) == titles[3:]

    # e4..e7 old too: e4, e5 (beyond the count) pruned; e6, e7 (within the last 3) kept.
    await age(library_url, c[4], c[7], hours_old)
    await until_pruned_past(api, c[4], 4)
    assert await replay(api, str(c[5]), 3) == titles[5:]
    assert await replay(api, "0", 3) == titles[5:]
    await asyncio.sleep(0.5)  # 10 more runs: a settled log prunes no further
    assert await replay(api, str(c[5]), 3) == titles[5:]
    # Each run that removed something said how much; the runs that removed nothing, nothing.
    pruned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("pruned ")]
    assert pruned == ["pruned 3 events from the change log", "pruned 2 events from the change log"]


# -- item 6: changeCursor and since "0" --------------------------------------------------------


async def change_cursor(api: Api, **headers: str) -> str:
    response = await api.http.post("/graphql", json={"query": "{ changeCursor }"}, headers=headers)
    body = response.json()
    assert "errors" not in body, body
    return str(body["data"]["changeCursor"])


async def test_tables_without_a_primary_key_are_not_captured(api: Api, library_url: str) -> None:
    """Their rows have no key to name them by: writes to them add nothing to the change log."""
    before = int(await change_cursor(api))
    database = open_database(library_url)
    engine = database.engine
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO audit_log (message, level) VALUES ('x', 1)"))
            await conn.execute(sa.text("UPDATE audit_log SET level = 2"))
            await conn.execute(sa.text("DELETE FROM audit_log"))
    finally:
        await database.close()
    await rename(api, "after")
    assert int(await change_cursor(api)) == before + 1


NOTHING_FOR_ANONYMOUS = """\
tables:
  posts:
    select:
      user: {columns: "*"}
"""


async def test_change_cursor_is_the_newest_cursor_for_every_role(
    launch: Launch, library_url: str, tmp_path: Any
) -> None:
    rules = tmp_path / "permissions.yaml"
    rules.write_text(NOTHING_FOR_ANONYMOUS)
    api = await launch(permissions=str(rules), jwt_secret=SECRET)
    assert await change_cursor(api) == "0"  # nothing logged yet; a role that may read no table may ask
    admin = await launch()
    async with admin.ws() as ws:
        await subscribe(ws, "1", "posts")
        await rename(admin, "a")
        await rename(admin, "b")
        _, last = await changes(ws, 2, "1")
    assert await change_cursor(api) == last["cursor"]
    assert await change_cursor(admin) == last["cursor"]
    # Pruned away, the newest cursor stays what it was: resuming from it loses nothing.
    await prune_all(admin, library_url)
    assert await change_cursor(admin) == last["cursor"]


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_since_change_cursor_sees_exactly_the_later_writes(api: Api, protocol: str) -> None:
    await rename(api, "earlier")
    cursor = await change_cursor(api)
    await rename(api, "later 1")
    await rename(api, "later 2")
    async with api.ws(protocol=protocol) as ws:
        await ws.subscribe("1", CHANGES, {"table": "posts", "since": cursor})
        assert (await change(ws, "1"))["record"]["title"] == "later 1"  # joined: now write live
        await rename(api, "live")
        got = await changes(ws, 2, "1")
    assert [e["record"]["title"] for e in got] == ["later 2", "live"]
    assert int(got[0]["cursor"]) > int(cursor)


async def test_since_zero_replays_everything_retained_on_every_transport(api: Api, library_url: str) -> None:
    async def replay_from_zero(count: int) -> dict[str, list[str]]:
        """The titles each transport replays from "0", followed by a marker written live."""
        seen: dict[str, list[str]] = {}
        async with (
            api.ws() as modern, api.ws(protocol=LEGACY_WS) as legacy,
            RawClient.open(ws_url(api.server)) as raw,
            sse_events(api.server, "posts", headers={"Last-Event-ID": "0"}) as sse,
        ):
            await modern.subscribe("1", CHANGES, {"table": "posts", "since": "0"})
            await legacy.subscribe("1", CHANGES, {"table": "posts", "since": "0"})
            await raw.send({"type": "subscribe", "table": "posts", "since": "0"})

            async def titles(n: int) -> None:
                for name, events in (
                    ("graphql-transport-ws", await changes(modern, n, "1")),
                    ("graphql-ws", await changes(legacy, n, "1")),
                ):
                    seen.setdefault(name, []).extend(e["record"]["title"] for e in events)
                seen.setdefault("forgebase", []).extend(
                    [(await raw.receive())["record"]["title"] for _ in range(n)])
                seen.setdefault("sse", []).extend(
                    [(await sse.message())[1]["record"]["title"] for _ in range(n)])

            await titles(count)  # the replay: every subscription has joined once it is here
            await rename(api, "marker")
            await titles(1)
        return seen

    await rename(api, "a")
    await rename(api, "b")
    for titles in (await replay_from_zero(2)).values():
        assert titles == ["a", "b", "marker"]

    # After a prune, "0" is still valid: it means whatever is retained now.
    await prune_all(api, library_url)
    await rename(api, "c")
    for titles in (await replay_from_zero(1)).values():
        assert titles == ["c", "marker"]


async def test_the_sdk_first_subscribe_has_no_gap_when_cut_before_its_first_event(server: LiveServer) -> None:
    async with Proxy(server.url) as proxy, client_for(proxy.url) as client, client_for(server.url) as direct:
        got: list[ChangeEvent] = []
        await client.table("posts").subscribe(got.append)
        # Cut before any event: the subscription has none to resume from, but it has
        # the changeCursor it started from.
        proxy.accepting = False
        proxy.cut()
        (row,) = await direct.table("posts").insert({"title": "while away", "user_id": 1}, columns=["id"])
        proxy.accepting = True
        await until(lambda: len(got) == 1, what="the change made while disconnected")
        assert (got[0].type, got[0].id) == ("create", row["id"])


@pytest.fixture
async def server(library_url: str, serve: Any) -> LiveServer:
    return serve(database=library_url)  # type: ignore[no-any-return]


# -- item 14: a slow broker never delays local delivery ---------------------------------------


class DelayingProxy:
    """A TCP proxy in front of Redis that, once `delay` is set, holds every byte that long."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.delay = 0.0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._links: set[asyncio.StreamWriter] = set()
        self.url = ""

    async def __aenter__(self) -> DelayingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.url = f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._links:
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        self._links |= {writer, up_writer}
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await source.read(65536):
                if self.delay:
                    await asyncio.sleep(self.delay)
                sink.write(data)
                await sink.drain()
        sink.transport.abort()


@sqlite_only
async def test_a_slow_broker_does_not_delay_local_delivery(
    library_url: str, serve: Any, redis_url: str
) -> None:
    host, port = redis_url.removeprefix("redis://").split(":")
    async with DelayingProxy(host, int(port)) as broker:
        # Started from a thread: the proxy runs on this test's event loop.
        server = await asyncio.to_thread(serve, database=library_url, broadcast=broker.url)
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as http,
            GraphQLWS.open(server) as ws,
        ):
            api = Api(server, http)
            await subscribe(ws, "1", "posts")
            broker.delay = 3.0  # from now on every publish takes 3 s each way
            latencies = []
            for title in ("one", "two", "three"):
                started = time.monotonic()
                await rename(api, title)
                assert (await change(ws, "1"))["record"]["title"] == title
                latencies.append(time.monotonic() - started)
            broker.delay = 0.0
    assert max(latencies) < 1.0, latencies
