"""Apply the bundled Alembic migrations (the demo schema) and seed demo rows.

Used by `forgegraph migrate` and by `forgegraph serve` without `--database`,
which creates the embedded demo database on first start.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import DBAPIError

from graph.dialect import display_url, error_reason, migration_engine
from graph.errors import StartupError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["Revisions", "display_url", "ensure_demo_database", "head_revision", "migrate", "seed_demo_data"]

_PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Revisions:
    """The schema revision before and after `migrate` (None: never migrated)."""

    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


def script_location() -> Path:
    # A wheel ships migrations/ as graph/_migrations; a checkout (and an
    # editable install) uses the top-level migrations/ directory.
    for candidate in (_PACKAGE_DIR / "_migrations", _PACKAGE_DIR.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise StartupError(f"cannot find the migrations directory next to {_PACKAGE_DIR}")


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


async def migrate(database_url: str) -> Revisions:
    """Bring the database to the latest revision of the demo schema."""
    # Foreign keys stay off while migrating: SQLite's batch mode rebuilds a
    # table by dropping it, which with enforcement on would cascade deletes.
    async with _connection(database_url, foreign_keys=False) as conn:
        try:
            revisions = await conn.run_sync(_upgrade_head)
            await conn.commit()
        except DBAPIError as exc:
            # Typically a table of the demo schema already exists in a
            # database Alembic does not manage.
            raise StartupError(
                f"cannot migrate database {display_url(conn.engine.url)!r}: {error_reason(exc)}"
            ) from None
    return revisions


async def seed_demo_data(database_url: str) -> bool:
    """Insert the demo rows unless `users` already has some; True when it inserted."""
    async with _connection(database_url, foreign_keys=True) as conn:
        inserted = await conn.run_sync(_seed)
        await conn.commit()
    return inserted


async def ensure_demo_database(database_url: str) -> None:
    """Create, migrate and seed the embedded demo database when it is new.

    An empty database (or a missing SQLite file) gets the demo schema and rows.
    One that Alembic already manages is upgraded to the latest revision. Any
    other database is the user's own and is left exactly as it is.
    """
    async with _connection(database_url, foreign_keys=False) as conn:
        tables = await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names())
    if not tables:
        await migrate(database_url)
        await seed_demo_data(database_url)
    elif "alembic_version" in tables:
        await migrate(database_url)


# -- Alembic, run on a sync connection handed over by AsyncConnection.run_sync --


def _alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    # Our env.py uses this connection instead of opening its own, because it
    # cannot call asyncio.run() inside the running event loop.
    config.attributes["connection"] = connection
    config.attributes["configure_logger"] = False
    return config


def _current_revision(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade_head(connection: sa.Connection) -> Revisions:
    before = _current_revision(connection)
    command.upgrade(_alembic_config(connection), "head")
    return Revisions(before=before, after=_current_revision(connection))


# -- demo rows ---------------------------------------------------------------

_users = sa.table("users", sa.column("id"), sa.column("name"), sa.column("email"))
_posts = sa.table(
    "posts",
    sa.column("id"),
    sa.column("title"),
    sa.column("body"),
    sa.column("published"),
    sa.column("user_id"),
)
_comments = sa.table(
    "comments", sa.column("id"), sa.column("post_id"), sa.column("user_id"), sa.column("body")
)

DEMO_USERS = (
    ("Ada Lovelace", "ada@example.com"),
    ("Grace Hopper", "grace@example.com"),
    ("Alan Turing", "alan@example.com"),
)
# (title, body, published, index of the author in DEMO_USERS)
DEMO_POSTS = (
    ("Hello, forgegraph", "Point it at a database and get a GraphQL API.", True, 0),
    ("Notes on the Analytical Engine", "It might act upon other things besides number.", True, 0),
    ("Draft: loops", "Unfinished thoughts on repetition.", False, 0),
    ("Compilers are friends", "Nobody believed I had a running compiler.", True, 1),
    ("Draft: nanoseconds", "A wire 11.8 inches long.", False, 1),
    ("Can machines think?", "I propose to consider the question.", True, 2),
)
# (body, index of the post in DEMO_POSTS, index of the author or None)
DEMO_COMMENTS = (
    ("Welcome!", 0, 1),
    ("Looking forward to the subscriptions.", 0, 2),
    ("Poetical science indeed.", 1, 2),
    ("A debugging story for the ages.", 3, 0),
    ("The imitation game, then.", 5, 0),
    ("Posted anonymously.", 5, None),
)


def _insert_id(connection: sa.Connection, table: sa.TableClause, **values: Any) -> int:
    # Ids come from the database (rowid / serial): explicit ids would leave a
    # PostgreSQL sequence behind and make the next insert collide.
    result = connection.execute(sa.insert(table).values(**values).returning(table.c.id))
    return int(result.scalar_one())


def _seed(connection: sa.Connection) -> bool:
    if connection.execute(sa.select(sa.func.count()).select_from(_users)).scalar_one():
        return False
    user_ids = [
        _insert_id(connection, _users, name=name, email=email) for name, email in DEMO_USERS
    ]
    post_ids = [
        _insert_id(
            connection,
            _posts,
            title=title,
            body=body,
            published=published,
            user_id=user_ids[author],
        )
        for title, body, published, author in DEMO_POSTS
    ]
    for body, post, author in DEMO_COMMENTS:
        _insert_id(
            connection,
            _comments,
            body=body,
            post_id=post_ids[post],
            user_id=None if author is None else user_ids[author],
        )
    return True


# -- connections and the one-line errors users see ---------------------------


def _check_sqlite_directory(url: URL) -> None:
    # SQLite creates a missing file but not its directory. Said plainly here
    # rather than as "unable to open database file"; it also spares aiosqlite
    # a failed connect, whose worker thread outlives the event loop.
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return
    if database.startswith("file:"):  # a URI filename: leave it to SQLite
        return
    parent = Path(database).expanduser().resolve().parent
    if not parent.is_dir():
        raise StartupError(
            f"cannot open database {display_url(url)!r}: directory {parent} does not exist"
        )


@asynccontextmanager
async def _connection(database_url: str, *, foreign_keys: bool) -> AsyncIterator[AsyncConnection]:
    engine = migration_engine(database_url, foreign_keys=foreign_keys)
    try:
        _check_sqlite_directory(engine.url)
        try:
            conn = await engine.connect()
        except (DBAPIError, OSError) as exc:  # TimeoutError is an OSError
            raise StartupError(
                f"cannot connect to database {display_url(engine.url)!r}: {error_reason(exc)}"
            ) from None
        try:
            yield conn
        finally:
            await conn.close()
    finally:
        await engine.dispose()
