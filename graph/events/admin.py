"""`forgegraph uninstall` and `forgegraph capture pause|resume`: what capture added, removed or put back.

Capture adds, and only these, each named with `_forgegraph` (changelog.PREFIX):
the change log and the meta table; on SQLite three triggers per captured table
(and WAL mode, whose earlier mode the meta table keeps); on PostgreSQL one
trigger per captured table and the function they call (and whatever else a
`_forgegraph` function or event trigger is). `uninstall` removes all of it,
whatever the current schema (a table dropped since has taken its triggers
with it); `pause` removes only the triggers and records in the meta table that
capture is paused, which every `ChangeLog.install` reads (a server starting,
or one re-installing after a schema change, installs no trigger meanwhile);
`resume` clears it and installs the triggers for the schema as it is now.

These run on connections that never switch SQLite to WAL (`open_database(wal=False)`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc

from graph.dialect import display_url, open_database
from graph.dialect.sqlite import SQLiteDatabase
from graph.errors import StartupError
from graph.events.changelog import (
    DIGEST_KEY,
    JOURNAL_KEY,
    LOG,
    META,
    META_SCHEMA,
    PAUSED_KEY,
    PREFIX,
    ChangeLog,
    meta_value,
    set_meta,
    take_install_lock,
)

if TYPE_CHECKING:
    from graph.dialect import Database

T = TypeVar("T")
LIKE_PREFIX = PREFIX.replace("_", "\\_") + "%"
"""`LIKE` pattern of our objects' names (`_` is a wildcard in LIKE)."""


@dataclass
class Removed:
    """What one command removed, for its one line of output."""

    triggers: int = 0
    functions: int = 0
    tables: list[str] = field(default_factory=list)


def _sqlite_triggers(conn: sa.Connection) -> list[str]:
    rows = conn.execute(
        sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE :p ESCAPE '\\'"),
        {"p": LIKE_PREFIX},
    )
    return [str(row[0]) for row in rows]


def _postgres_triggers(conn: sa.Connection) -> list[tuple[str, str]]:
    """(trigger, table) of every trigger that calls one of our functions, in any schema."""
    rows = conn.execute(
        sa.text(
            "SELECT t.tgname, t.tgrelid::regclass::text FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
            "WHERE NOT t.tgisinternal AND p.proname LIKE :p ESCAPE '\\'"
        ),
        {"p": LIKE_PREFIX},
    )
    return [(str(row[0]), str(row[1])) for row in rows]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _drop_triggers(conn: sa.Connection, dialect: str) -> int:
    if dialect == "postgresql":
        found = _postgres_triggers(conn)
        for trigger, table in found:
            # regclass::text is already quoted (and schema-qualified) as needed.
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {_quote(trigger)} ON {table}")
        return len(found)
    names = _sqlite_triggers(conn)
    for name in names:
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {_quote(name)}")
    return len(names)


def _uninstall(conn: sa.Connection, dialect: str) -> Removed:
    take_install_lock(conn, dialect)
    removed = Removed()
    removed.triggers = _drop_triggers(conn, dialect)
    if dialect == "postgresql":
        events = conn.execute(
            sa.text("SELECT evtname FROM pg_event_trigger WHERE evtname LIKE :p ESCAPE '\\'"), {"p": LIKE_PREFIX}
        ).scalars().all()
        for name in events:
            conn.exec_driver_sql(f"DROP EVENT TRIGGER IF EXISTS {_quote(str(name))}")
        removed.triggers += len(events)
        functions = conn.execute(
            sa.text(
                "SELECT p.oid::regprocedure::text FROM pg_proc p "
                "WHERE p.pronamespace = current_schema()::regnamespace AND p.proname LIKE :p ESCAPE '\\'"
            ),
            {"p": LIKE_PREFIX},
        ).scalars().all()
        for function in functions:
            conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {function} CASCADE")
        removed.functions = len(functions)
    inspector = sa.inspect(conn)
    for table in (LOG, META):
        if inspector.has_table(table):
            conn.exec_driver_sql(f"DROP TABLE {table}")
            removed.tables.append(table)
    if dialect == "sqlite" and inspector.has_table("sqlite_sequence"):
        # A log made by a version whose log was AUTOINCREMENT: its counter goes too
        # (the table itself SQLite never drops).
        conn.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = :n"), {"n": LOG})
    return removed


def _pause(conn: sa.Connection, dialect: str) -> int:
    take_install_lock(conn, dialect)
    # The meta table may be all there is: a pause before capture was ever installed holds too.
    conn.exec_driver_sql(META_SCHEMA)
    set_meta(conn, PAUSED_KEY, "1")
    set_meta(conn, DIGEST_KEY, None)  # `resume` must re-create every trigger
    return _drop_triggers(conn, dialect)


def _resume(conn: sa.Connection, dialect: str) -> bool:
    take_install_lock(conn, dialect)
    if meta_value(conn, PAUSED_KEY) is None:
        return False
    set_meta(conn, PAUSED_KEY, None)
    return True


async def _run_sync(database: Database, work: Callable[[sa.Connection], T]) -> T:
    try:
        async with database.engine.begin() as conn:
            return await conn.run_sync(work)
    except (exc.DBAPIError, OSError) as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise StartupError(f"cannot change {display_url(str(database.url))}: {reason}") from None


async def uninstall(url: str) -> str:
    """Remove everything capture added to the database; the one line that says what it did.

    On SQLite the journal mode goes back first: leaving WAL needs the file to
    itself, so a server still using it is found before anything is removed.
    """
    database = open_database(url, pool_size=1, wal=False)
    dialect = database.name
    restored = ""
    try:
        journal = await _run_sync(database, lambda conn: meta_value(conn, JOURNAL_KEY))
        if isinstance(database, SQLiteDatabase) and journal is not None and journal != "wal":
            await database.engine.dispose()  # the file to itself: none of our own connections either
            mode = database.set_journal_mode(journal)
            if mode != journal:
                raise StartupError(
                    f"cannot switch {display_url(url)} back to journal mode {journal}: another program "
                    "(a forgegraph server?) has it open; stop it and run uninstall again (nothing was removed)"
                )
            restored = f"; journal mode {journal} restored"
        removed = await _run_sync(database, lambda conn: _uninstall(conn, dialect))
    finally:
        await database.close()
    if not (removed.triggers or removed.functions or removed.tables):
        return f"nothing of forgegraph's capture is installed in {display_url(url)}{restored}"
    return (
        f"removed {removed.triggers} trigger(s), {removed.functions} function(s) and "
        f"table(s) {', '.join(removed.tables) or 'none'} from {display_url(url)}{restored}"
    )


async def pause(url: str) -> str:
    database = open_database(url, pool_size=1, wal=False)
    dialect = database.name
    try:
        dropped = await _run_sync(database, lambda conn: _pause(conn, dialect))
    finally:
        await database.close()
    return (
        f"capture paused in {display_url(url)}: removed {dropped} trigger(s); writes are not events "
        "until `forgegraph capture resume`"
    )


async def resume(url: str) -> str:
    """Clear the pause and install the triggers of the tables as they are now."""
    from graph.naming import name_model
    from graph.reflect import reflect

    database = open_database(url, pool_size=1, wal=False)
    dialect = database.name
    try:
        was_paused = await _run_sync(database, lambda conn: _resume(conn, dialect))
        try:
            model = name_model(await reflect(database.engine))
            changelog = ChangeLog(database.engine, model)
            changelog.journal_mode_found = database.journal_mode_found
            await changelog.install()
        except (exc.DBAPIError, OSError) as error:
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            raise StartupError(f"cannot install capture in {display_url(url)}: {reason}") from None
        tables = len(changelog.captured_tables())
    finally:
        await database.close()
    state = "resumed" if was_paused else "was not paused; installed"
    return f"capture {state} in {display_url(url)}: triggers on {tables} table(s)"
