"""One owner of the connections (graph.dialect): a PostgreSQL worker holds at most
`--pool-size` connections plus one to LISTEN, whatever it answers, and none once stopped.

The load is real: many HTTP queries at once over several tables (answered by
the compiled plans, graphql-core around them), mutations (the driver) and a
subscription replaying the change log, while pg_stat_activity is sampled.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

from graph.cli import build_parser, main, resolve_settings
from graph.config import Settings
from graph.dialect import open_database
from graph.dialect.postgres import APPLICATION_NAME
from tests.conftest import POSTGRES, Launch
from tests.test_realtime import changes, subscribe

postgres_only = pytest.mark.parametrize("backend", ["postgres"])

QUERIES = [
    "{ users(order_by: {id: asc}) { id name score profile } }",
    "{ posts(where: {published: {_eq: true}}) { id title rating published_at comments { body } } }",
    "{ comments(order_by: {id: desc}) { id body post { title author: user { name } } } }",
    "{ tags { post_id name weight } tags_aggregate { aggregate { count } } }",
    "{ users_by_pk(id: 2) { name email posts_by_user_id { title } } }",
    # A root field the compiled plans do not answer: graphql-core and the engine do.
    "{ changeCursor posts(limit: 2) { id } }",
]
CONCURRENT_QUERIES = 240
MUTATIONS = 40


class Activity:
    """The peak number of connections to one database, sampled from pg_stat_activity."""

    def __init__(self, conn: asyncpg.Connection, database: str) -> None:
        self.conn = conn
        self.database = database
        self.peak = 0
        self.peak_ours = 0
        self.samples = 0

    async def count(self) -> tuple[int, int]:
        row = await self.conn.fetchrow(
            "SELECT count(*), count(*) FILTER (WHERE application_name = $2)"
            " FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            self.database, APPLICATION_NAME,
        )
        assert row is not None
        return int(row[0]), int(row[1])

    async def sample(self, until: asyncio.Event) -> None:
        while not until.is_set():
            every, ours = await self.count()
            self.peak, self.peak_ours = max(self.peak, every), max(self.peak_ours, ours)
            self.samples += 1
            await asyncio.sleep(0.002)

    async def settle(self, expected: int, timeout: float = 10) -> int:
        """The count once it reaches `expected` (a closed connection leaves pg_stat_activity soon after)."""
        deadline = time.monotonic() + timeout
        while (every := (await self.count())[0]) != expected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return every


@contextlib.asynccontextmanager
async def activity(url: str) -> AsyncIterator[Activity]:
    admin = sa.make_url(POSTGRES)
    conn = await asyncpg.connect(
        host=admin.host, port=admin.port or 5432, user=admin.username or "postgres",
        password=admin.password, database=admin.database or "postgres", timeout=5,
    )
    try:
        yield Activity(conn, str(sa.make_url(url).database))
    finally:
        await conn.close()


async def load(api: Any, ws: Any) -> None:
    semaphore = asyncio.Semaphore(120)  # requests in flight at once, far above any pool size

    async def query(i: int) -> None:
        async with semaphore:
            await api(QUERIES[i % len(QUERIES)])

    async def insert(i: int) -> None:
        async with semaphore:
            data = await api(f'mutation {{ insert_posts_one(object: {{title: "load {i}", user_id: 1}}) {{ id }} }}')
            assert data["insert_posts_one"]["id"]

    await asyncio.gather(
        *(query(i) for i in range(CONCURRENT_QUERIES)),
        *(insert(i) for i in range(MUTATIONS)),
    )
    events = await changes(ws, MUTATIONS, "posts", timeout=20)
    assert sorted(e["record"]["title"] for e in events) == sorted(f"load {i}" for i in range(MUTATIONS))


@postgres_only
@pytest.mark.parametrize("pool_size", [3, None])
async def test_a_worker_holds_its_pool_and_one_to_listen_and_none_once_stopped(
    launch: Launch, library_url: str, pool_size: int | None
) -> None:
    # The broadcast on PostgreSQL too: its LISTEN connection is the one beyond the pool.
    settings: dict[str, Any] = {"broadcast": library_url}
    if pool_size is not None:
        settings["pool_size"] = pool_size
    budget = pool_size or Settings().pool_size
    api = await launch(**settings)
    runtime = api.server.app.state.runtime
    async with activity(library_url) as seen:
        done = asyncio.Event()
        sampler = asyncio.create_task(seen.sample(done))
        try:
            async with api.ws() as ws:
                await subscribe(ws, "posts", "posts", since="0")  # replays the log on the engine
                await load(api, ws)
        finally:
            done.set()
            await sampler
        assert seen.samples > 10
        assert 2 <= seen.peak <= budget + 1, (seen.peak, budget)
        assert seen.peak_ours <= budget
        answered = {(op, path) for (op, path, _transport), n in runtime.metrics.operations.items() if n}
        assert answered == {("query", "compiled"), ("mutation", "compiled")}

        api.server.stop()
        assert await seen.settle(0) == 0


@postgres_only
async def test_the_engine_waits_for_a_connection_rather_than_open_one_more(library_url: str) -> None:
    database = open_database(library_url, pool_size=1)
    try:
        async with activity(library_url) as seen:
            assert database.driver is not None
            reads = database.reads()
            assert reads is not None
            async with database.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
                waiting = asyncio.ensure_future(reads.fetch_value("SELECT 'plans'", ()))
                await asyncio.sleep(0.2)
                assert not waiting.done()  # the one connection is the engine's meanwhile
                assert (await seen.count())[0] == 1
            assert await waiting == "plans"
            assert (await seen.count())[0] == 1
    finally:
        await database.close()


@postgres_only
async def test_closing_the_database_closes_every_connection(library_url: str) -> None:
    database = open_database(library_url, pool_size=4)
    async with activity(library_url) as seen:
        try:
            reads = database.reads()
            assert reads is not None
            # Engine, plans' reads and the driver all at once: the pool opens several.
            async def engine_read() -> None:
                async with database.engine.connect() as conn:
                    await conn.execute(sa.text("SELECT pg_sleep(0.05)"))

            await asyncio.gather(
                *(engine_read() for _ in range(3)),
                *(reads.fetch_value("SELECT pg_sleep(0.05)::text", ()) for _ in range(3)),
            )
            assert 1 < (await seen.count())[0] <= 4
        finally:
            await database.close()
        assert await seen.settle(0) == 0


@pytest.mark.parametrize(
    ("argv", "environ", "shown"),
    [
        (["serve", "--pool-size", "0"], {}, "--pool-size: '0'"),
        (["serve", "--pool-size", "-2"], {}, "--pool-size: '-2'"),
        (["serve", "--pool-size", "many"], {}, "--pool-size: 'many'"),
        (["serve"], {"FORGEGRAPH_POOL_SIZE": "0"}, "FORGEGRAPH_POOL_SIZE: '0'"),
    ],
)
def test_a_bad_pool_size_is_a_one_line_error(
    argv: list[str], environ: dict[str, str], shown: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (
        f"forgegraph: error: invalid value for {shown} (expected a whole number of connections, at least 1)\n"
    )


def test_the_pool_size_comes_from_the_flag_or_the_environment() -> None:
    parse = build_parser().parse_args
    assert resolve_settings("serve", parse(["serve"]), {}).pool_size == 10
    assert resolve_settings("serve", parse(["serve", "--pool-size", "3"]), {}).pool_size == 3
    assert resolve_settings("serve", parse(["serve"]), {"FORGEGRAPH_POOL_SIZE": "4"}).pool_size == 4
    assert resolve_settings("serve", parse(["serve", "--pool-size", "2"]), {"FORGEGRAPH_POOL_SIZE": "4"}).pool_size == 2
    with pytest.raises(ValueError, match="pool_size must be at least 1"):
        Settings(pool_size=0)
