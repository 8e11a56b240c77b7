"""Engines for the databases we serve, with the same semantics on each (SPEC section 4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from graph.errors import StartupError

ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
SQLITE_BUSY_TIMEOUT_SECONDS = 30


def normalise_url(url: str) -> sa.URL:
    """Parse `url`, defaulting each backend to its async driver; StartupError when unusable."""
    try:
        parsed = sa.make_url(url.replace("postgres://", "postgresql://", 1))
    except exc.ArgumentError:
        raise StartupError(f"invalid database URL {url!r}") from None
    backend = parsed.get_backend_name()
    if backend not in ASYNC_DRIVERS:
        raise StartupError(
            f"unsupported database {backend!r} in {url!r}: use sqlite+aiosqlite:// or postgresql+asyncpg://"
        )
    if parsed.drivername == backend:
        parsed = parsed.set(drivername=ASYNC_DRIVERS[backend])
    return parsed


def sqlite_path(url: sa.URL) -> Path | None:
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def create_engine(url: str, *, must_exist: bool = True) -> AsyncEngine:
    parsed = normalise_url(url)
    path = sqlite_path(parsed)
    if must_exist and path is not None and not path.exists():
        raise StartupError(f"database file {str(path)!r} does not exist")
    options: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
    else:
        # A pooled connection may have died with a server restart: test it
        # on checkout instead of failing the request that draws it.
        options["pool_pre_ping"] = True
    try:
        engine = create_async_engine(parsed, **options)
    except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as error:
        raise StartupError(f"cannot use database URL {url!r}: {error}") from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    configure_sqlite(dbapi_connection)


def configure_sqlite(dbapi_connection: Any) -> None:
    """What every SQLite connection of ours needs, pooled or not (graph.sql.driver)."""
    cursor = dbapi_connection.cursor()
    # SQLite ignores foreign keys unless asked, per connection (SPEC: enforced).
    cursor.execute("PRAGMA foreign_keys=ON")
    # Write-ahead logging lets the change capture and queries read while a
    # writer commits, and with synchronous=NORMAL a commit needs no fsync
    # (a power cut may lose the last commits, never corrupt the file). This
    # is the journal mode every SQLite-backed server uses; it is persistent.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(sa.text("SELECT 1"))
