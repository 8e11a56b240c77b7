"""Every root field of one query reads one snapshot of the database (SPEC section 4).

A writer commits, over and over, one row into each of two tables in one
transaction, so that at every committed state the two counts differ by the
same number. A query reading both tables in two root fields must always see
that difference: were its root fields read at different moments (each on its
own connection, as graphql-core's per-field resolvers did), a commit landing
between them would show one table ahead of the other.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import asyncpg_dsn

PADDING_ROWS = 20_000
"""Rows `wide` holds before the writer starts: its count takes a while to scan."""
QUERIES = 60
DISTINCT_STATES = 10
"""Committed states the queries must have seen: the writer ran between them."""
DEADLINE_SECONDS = 120
QUERY = """{
  narrow_aggregate { aggregate { count } }
  wide_aggregate(where: {pad: {_like: "%pad%"}}) { aggregate { count } }
}"""
SCHEMA = (
    "CREATE TABLE narrow (id INTEGER PRIMARY KEY)",
    "CREATE TABLE wide (id INTEGER PRIMARY KEY, pad TEXT NOT NULL)",
)


def _sqlite_database(url: str) -> None:
    with sqlite3.connect(sa.make_url(url).database) as conn:
        for ddl in SCHEMA:
            conn.execute(ddl)
        conn.executemany(
            "INSERT INTO wide (id, pad) VALUES (?, ?)",
            ((i, f"pad {i:08}" * 4) for i in range(1, PADDING_ROWS + 1)),
        )


async def _postgres_database(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        for ddl in SCHEMA:
            await conn.execute(ddl)
        await conn.execute(
            "INSERT INTO wide (id, pad) SELECT i, repeat('pad ' || lpad(i::text, 8, '0'), 4)"
            " FROM generate_series(1, $1::int) AS i",
            PADDING_ROWS,
        )
    finally:
        await conn.close()


class Writer:
    """Commits one row into each table per transaction until stopped, in its own thread."""

    def __init__(self, url: str, backend: str) -> None:
        self.url = url
        self.backend = backend
        self.commits = 0
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        if self.backend == "sqlite":
            self._run_sqlite()
        else:
            asyncio.run(self._run_postgres())

    def _run_sqlite(self) -> None:
        conn = sqlite3.connect(sa.make_url(self.url).database, timeout=30, isolation_level=None)
        try:
            key = PADDING_ROWS
            while not self.stop.is_set():
                key += 1
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO narrow (id) VALUES (?)", (key,))
                conn.execute("INSERT INTO wide (id, pad) VALUES (?, 'pad')", (key,))
                conn.execute("COMMIT")
                self.commits += 1
        finally:
            conn.close()

    async def _run_postgres(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(asyncpg_dsn(self.url))
        try:
            key = PADDING_ROWS
            while not self.stop.is_set():
                key += 1
                async with conn.transaction():
                    await conn.execute("INSERT INTO narrow (id) VALUES ($1)", key)
                    await conn.execute("INSERT INTO wide (id, pad) VALUES ($1, 'pad')", key)
                self.commits += 1
        finally:
            await conn.close()


def test_a_query_reads_its_root_fields_in_one_snapshot_while_a_writer_commits(
    backend: str, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'snapshot.db'}"
        _sqlite_database(url)
    else:
        url = request.getfixturevalue("fresh_postgres")
        asyncio.run(_postgres_database(url))
    # Asked for after the database, so that the server stops before the database is dropped.
    server = request.getfixturevalue("serve")(database=url)
    seen: list[tuple[int, int]] = []
    with (
        httpx.Client(base_url=server.url, timeout=60, trust_env=False) as http,
        Writer(url, backend) as writer,
    ):
        deadline = time.monotonic() + DEADLINE_SECONDS
        # Until the writer has visibly committed between queries, or nothing was shown.
        while len(seen) < QUERIES or len({narrow for narrow, _wide in seen}) < DISTINCT_STATES:
            assert time.monotonic() < deadline, (writer.commits, seen)
            body = http.post("/graphql", json={"query": QUERY}).json()
            assert "errors" not in body, body
            data = body["data"]
            narrow = data["narrow_aggregate"]["aggregate"]["count"]
            seen.append((narrow, data["wide_aggregate"]["aggregate"]["count"]))
    assert [wide - narrow for narrow, wide in seen] == [PADDING_ROWS] * len(seen), seen
