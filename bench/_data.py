"""The databases the benchmark serves: a wide SQLite schema and seeded demo data.

The demo schema always comes from `forgegraph migrate`, so the figures are for
exactly the tables users get; only the rows are inserted here, directly.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

if TYPE_CHECKING:
    import asyncpg

WIDE_ROWS_PER_TABLE = 3
DEMO_USERS = 50
DEMO_POSTS = 1000
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
LOOPBACK = {"127.0.0.1", "localhost"}


class PostgresUnavailable(Exception):
    """No scratch database can be made: a reason to skip, not to fail."""


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path.resolve()}"


# -- the wide schema for start-up time ---------------------------------------


def create_wide_sqlite(path: Path, tables: int) -> None:
    """`tables` tables of mixed column types, each t<i> referencing t<i-1>."""
    conn = sqlite3.connect(path)
    try:
        for i in range(tables):
            # parent_id -> t<i-1> gives every table an object relationship
            # (`parent`) and an array one (`t<i+1>`), so relationship
            # building is part of what start-up costs.
            parent = f", parent_id INTEGER REFERENCES t{i - 1}(id)" if i else ""
            conn.execute(
                f"CREATE TABLE t{i} ("
                "id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL, active BOOLEAN, "
                f"created_at TIMESTAMP, payload JSON{parent})"
            )
            columns = "id, name, score, active, created_at, payload" + (", parent_id" if i else "")
            rows = [
                (
                    r,
                    f"t{i} row {r}",
                    r * 1.5,
                    r % 2,
                    f"2024-01-0{r} 12:00:00",
                    json.dumps({"table": i, "row": r}),
                    *((r,) if i else ()),
                )
                for r in range(1, WIDE_ROWS_PER_TABLE + 1)
            ]
            marks = ", ".join("?" * len(rows[0]))
            conn.executemany(f"INSERT INTO t{i} ({columns}) VALUES ({marks})", rows)
        conn.commit()
    finally:
        conn.close()


# -- demo rows for query throughput ------------------------------------------


def demo_users() -> list[tuple[str, str]]:
    return [(f"User {u}", f"user{u}@example.com") for u in range(1, DEMO_USERS + 1)]


def demo_posts(user_ids: list[int]) -> list[tuple[str, str, bool, int]]:
    # Authors spread round-robin, so any 20 consecutive posts name 20 users.
    return [
        (
            f"Post {p}",
            f"Body of post {p}: " + "lorem ipsum dolor sit amet " * 4,
            p % 3 != 0,
            user_ids[p % len(user_ids)],
        )
        for p in range(1, DEMO_POSTS + 1)
    ]


def seed_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.executemany("INSERT INTO users (name, email) VALUES (?, ?)", demo_users())
        user_ids = [row[0] for row in conn.execute("SELECT id FROM users ORDER BY id")]
        conn.executemany(
            "INSERT INTO posts (title, body, published, user_id) VALUES (?, ?, ?, ?)",
            demo_posts(user_ids),
        )
        conn.commit()
    finally:
        conn.close()


# -- PostgreSQL ---------------------------------------------------------------


def postgres_target(url_text: str) -> URL:
    """The server URL, refusing anything but a loopback host."""
    try:
        url = make_url(url_text)
    except ArgumentError:
        raise PostgresUnavailable(f"cannot parse --postgres {url_text!r}") from None
    if url.get_backend_name() != "postgresql":
        shown = url.render_as_string(hide_password=True)
        raise PostgresUnavailable(f"not a PostgreSQL URL: {shown}")
    if url.host not in LOOPBACK:
        raise PostgresUnavailable(
            f"refusing host {url.host!r}: the benchmark only targets 127.0.0.1"
        )
    return url.set(drivername="postgresql+asyncpg", host="127.0.0.1")


async def _connect(url: URL, database: str) -> asyncpg.Connection:
    # Imported late: asyncpg is an optional extra, needed only with --postgres.
    import asyncpg

    return await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        database=database,
        timeout=5,
    )


def create_postgres_database(url: URL) -> URL:
    """Create `fg_bench_<random>` on the URL's server; the URL of the new database."""
    try:
        import asyncpg
    except ImportError:
        raise PostgresUnavailable("asyncpg is not installed (forgegraph[postgres])") from None
    name = f"fg_bench_{secrets.token_hex(4)}"
    try:
        asyncio.run(_admin(url, f'CREATE DATABASE "{name}"'))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # Refused, timed out, bad password, no CREATEDB right: all mean "skip".
        shown = url.render_as_string(hide_password=True)
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise PostgresUnavailable(f"cannot create a database on {shown}: {reason}") from None
    return url.set(database=name)


def drop_postgres_database(url: URL) -> None:
    # FORCE ends sessions a killed server may have left behind.
    asyncio.run(_admin(url, f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))


def seed_postgres(url: URL) -> None:
    asyncio.run(_seed_postgres(url))


async def _admin(url: URL, statement: str) -> None:
    # The maintenance database always exists; the URL's own may not.
    conn = await _connect(url, "postgres")
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _seed_postgres(url: URL) -> None:
    conn = await _connect(url, url.database or "postgres")
    try:
        await conn.executemany("INSERT INTO users (name, email) VALUES ($1, $2)", demo_users())
        user_ids = [r["id"] for r in await conn.fetch("SELECT id FROM users ORDER BY id")]
        await conn.executemany(
            "INSERT INTO posts (title, body, published, user_id) VALUES ($1, $2, $3, $4)",
            demo_posts(user_ids),
        )
    finally:
        await conn.close()
