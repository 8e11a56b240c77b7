"""The engine `forgegraph migrate` runs Alembic on: one connection, closed with it.

Migrating is a command of its own (or the demo database's first start,
before the server's `Database` opens), so it does not draw on a serving
pool: it holds one connection while it runs and none after.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import ArgumentError, InvalidRequestError, NoSuchModuleError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from graph.dialect._url import display_url, normalise_url
from graph.errors import StartupError

# asyncpg waits 60 s by default for a host that drops packets; a user waiting
# for `serve` to start deserves an answer sooner.
CONNECT_TIMEOUT_SECONDS = 10


def error_reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(str(orig).split())
    return text or type(orig).__name__


def migration_engine(database_url: str, *, foreign_keys: bool) -> AsyncEngine:
    # The server's own URL rules (plain sqlite:// and postgresql:// get their
    # async drivers), so migrate accepts exactly what serve accepts.
    url = normalise_url(database_url)
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql":
        connect_args["timeout"] = CONNECT_TIMEOUT_SECONDS
    try:
        engine = create_async_engine(url, poolclass=NullPool, connect_args=connect_args)
    except ModuleNotFoundError as exc:
        raise StartupError(
            f"invalid database URL {display_url(url)!r}: its driver {exc.name} is not installed"
        ) from None
    except InvalidRequestError:
        # create_async_engine refuses sync drivers such as postgresql+psycopg2.
        raise StartupError(
            f"invalid database URL {display_url(url)!r}: use an async driver, "
            "e.g. sqlite+aiosqlite:///FILE or postgresql+asyncpg://HOST/DB"
        ) from None
    except NoSuchModuleError:
        raise StartupError(
            f"invalid database URL {display_url(url)!r}: unknown database type {url.drivername!r}"
        ) from None
    except ArgumentError as exc:
        raise StartupError(f"invalid database URL {display_url(url)!r}: {error_reason(exc)}") from None
    if url.get_backend_name() == "sqlite":
        _set_sqlite_foreign_keys(engine, foreign_keys)
    return engine


def _set_sqlite_foreign_keys(engine: AsyncEngine, enabled: bool) -> None:
    # SQLite enforces foreign keys only when each connection asks for it.
    pragma = f"PRAGMA foreign_keys={'ON' if enabled else 'OFF'}"

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(pragma)
        finally:
            cursor.close()
