"""One owner of a database's connections per process: `open_database(url)` -> `Database`.

A `Database` holds everything that talks to the database: the SQLAlchemy
engine (reflection, the change log, `changeCursor`, the health check), the
driver the compiled mutations run their transactions on, and the reads the
query plans fetch their one statement on. It is picked by the
URL's scheme, one file per dialect (`sqlite.py`, `postgres.py`), and closed
once, by whoever opened it, which closes every connection it made.

On PostgreSQL all of them draw on one bounded pool of `pool_size`
connections; the only other connection a worker holds is the broadcast's
LISTEN one (graph.events), when the broadcast is PostgreSQL. SQLite has no
connection budget: `pool_size` does not apply to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from graph.config import DEFAULT_POOL_SIZE
from graph.dialect._driver import Awaited, Driver, Execute, Job, Rows, StatementObserver, drive
from graph.dialect._migration import error_reason, migration_engine
from graph.dialect._url import display_url, normalise_url, sqlite_path

if TYPE_CHECKING:
    from sqlalchemy.engine import URL
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "DEFAULT_POOL_SIZE",
    "Awaited",
    "Database",
    "Driver",
    "Execute",
    "Job",
    "Reads",
    "Rows",
    "SQLFunction",
    "StatementObserver",
    "display_url",
    "drive",
    "error_reason",
    "migration_engine",
    "normalise_url",
    "open_database",
    "sqlite_path",
]


@dataclass(frozen=True)
class SQLFunction:
    """A Python function the query plans' SQL calls (SQLite only: PostgreSQL has its own)."""

    name: str
    arguments: int
    function: Callable[..., Any]
    deterministic: bool = False


class Reads(Protocol):
    """Where the query plans run their one statement each, outside any transaction."""

    async def fetch_value(self, sql: str, params: Sequence[Any]) -> Any:
        """The first column of the first row (None when no row); raises what the database raised."""
        ...


class Database(Protocol):
    name: str
    """The SQLAlchemy backend name: "sqlite" or "postgresql"."""
    url: URL
    pool_size: int
    engine: AsyncEngine
    journal_mode_found: str | None
    """SQLite's journal mode before this process switched it to WAL; None on PostgreSQL."""

    @property
    def driver(self) -> Driver:
        """The connections compiled mutations run on."""
        ...

    def reads(self, functions: Sequence[SQLFunction] = ()) -> Reads:
        """Connections for the query plans' statements."""
        ...

    async def ping(self) -> None:
        """Raise unless the database answers."""
        ...

    async def close(self) -> None:
        """Close every connection this database made; it is not used again."""
        ...


def open_database(
    url: str, *, pool_size: int = DEFAULT_POOL_SIZE, must_exist: bool = True, wal: bool = True
) -> Database:
    """The `Database` for `url`; StartupError when the URL is unusable (nothing is connected yet).

    `wal`: switch SQLite to write-ahead logging (capture's mode); False leaves its journal mode as it is.
    """
    if pool_size < 1:
        raise ValueError(f"pool_size must be at least 1: {pool_size}")
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        from graph.dialect.sqlite import SQLiteDatabase

        return SQLiteDatabase(url, parsed, pool_size, must_exist=must_exist, wal=wal)
    from graph.dialect.postgres import PostgresDatabase

    return PostgresDatabase(url, parsed, pool_size)
