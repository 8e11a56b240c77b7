"""Noticing DDL while serving: the schema follows the database (SPEC section 4).

SQLite bumps `PRAGMA schema_version` on every change to its schema, which
costs one cheap statement to read; only when it moved is the schema itself
read (`fingerprint`). PostgreSQL has no such counter short of an event
trigger (superuser only, and one more object to uninstall), so its
fingerprint is one catalog query over the current schema's tables (by oid:
one made again under its name is a change), columns and keys. Either way
forgegraph's own objects (the change log, its meta table, the capture
triggers) are left out, so installing triggers after a change is not itself
a change. On SQLite a table dropped and made again just as it was may read
as before; the version moved all the same, so the runtime is told (`moved`)
and puts back the capture triggers that went with the table.

Each server process watches for itself (`--workers`, several hosts alike).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("forgegraph")

OURS = "_forgegraph"
SQLITE_VERSION = "PRAGMA schema_version"
SQLITE_FINGERPRINT = f"""
SELECT type, name, tbl_name, rootpage, sql FROM sqlite_master
WHERE substr(name, 1, {len(OURS)}) <> '{OURS}' AND substr(name, 1, 7) <> 'sqlite_'
ORDER BY type, name"""
POSTGRES_FINGERPRINT = f"""
SELECT md5(coalesce(string_agg(part, '|' ORDER BY part), '')) FROM (
    SELECT concat_ws(':', c.oid, c.relname, c.relkind, a.attnum, a.attname, a.atttypid, a.atttypmod,
                     a.attnotnull, a.atthasdef) AS part
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND left(c.relname, {len(OURS)}) <> '{OURS}'
    UNION ALL
    SELECT concat_ws(':', c.relname, co.conname, co.contype, co.conkey::text, co.confrelid::regclass::text,
                     co.confkey::text)
    FROM pg_constraint co
    JOIN pg_class c ON c.oid = co.conrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND co.contype IN ('p', 'u', 'f')
      AND left(c.relname, {len(OURS)}) <> '{OURS}'
) AS parts"""


async def fingerprint(engine: AsyncEngine) -> str:
    """The database's schema (tables, views, columns, keys; not forgegraph's own objects) as one digest."""
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = (await conn.execute(sa.text(SQLITE_FINGERPRINT))).all()
            return hashlib.sha256(repr([tuple(row) for row in rows]).encode()).hexdigest()
        return str((await conn.execute(sa.text(POSTGRES_FINGERPRINT))).scalar())


async def _sqlite_version(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(sa.text(SQLITE_VERSION))).scalar() or 0)


class SchemaWatch:
    """Polls the database's schema every `interval` seconds; calls `changed` when it differs from `current()`."""

    def __init__(
        self,
        engine: AsyncEngine,
        interval: float,
        current: Callable[[], str],
        changed: Callable[[], Awaitable[object]],
        moved: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.engine = engine
        self.interval = interval
        self.current = current
        self.changed = changed
        self.moved = moved
        """SQLite: told when the schema version moved but the schema reads as before (a table
        dropped and made again just as it was, which took forgegraph's triggers with it)."""
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._failed: str | None = None
        """The schema whose rebuild failed: not tried again until it changes."""
        self.polls = 0
        """Checks made so far."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="forgegraph-schema-watch")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        sqlite = self.engine.dialect.name == "sqlite"
        version: int | None = None
        while True:
            await asyncio.sleep(self.interval)
            self.polls += 1
            try:
                if sqlite:
                    # One cheap statement per poll; the schema is read only when it moved.
                    current = await _sqlite_version(self.engine)
                    if current == version:
                        continue
                    version = current
                now = await fingerprint(self.engine)
                if now == self.current():
                    if sqlite and self.moved is not None:
                        await self.moved()
                elif now != self._failed:
                    try:
                        await self.changed()
                    except (asyncio.CancelledError, sa.exc.DBAPIError, OSError):
                        raise  # the database away: the next poll tries again
                    except Exception:
                        # Once per schema: the next change is tried again (as SIGHUP always is).
                        self._failed = now
                        log.exception("rebuilding the schema after a change failed; serving the previous one")
                if self._failing:
                    log.info("watching the database schema again")
                self._failing = False
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the database away: try again next poll
                version = None
                if not self._failing:
                    log.warning("cannot check the database schema for changes (%s); retrying", error)
                self._failing = True
