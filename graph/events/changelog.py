"""The change log: triggers write every committed row change into one table.

Triggers run inside the writing transaction, so the log sees bulk writes,
`ON DELETE/UPDATE CASCADE` and other programs' writes alike, and a rolled-back
transaction leaves nothing behind. The log's key is the event cursor.

On PostgreSQL, sequence values are handed out before commit, so two writers
could commit out of cursor order and a reader could step past a cursor that
commits later. The trigger therefore takes a transaction-level advisory lock
first: writers that change captured tables take turns from their first
captured change until they commit, which keeps cursor order = commit order.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from graph.dialect.postgres import APPLICATION_NAME
from graph.errors import InvalidCursor
from graph.events.change import BLOB_KEY, ChangeEvent, decode_row
from graph.metrics import CaptureMeter

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from graph.dialect import Driver
    from graph.model import DatabaseModel, Table
    from graph.sql.compiled import Compiled, Statements

log = logging.getLogger("forgegraph.realtime")
LOG = "_forgegraph_changes"
META = "_forgegraph_meta"
NOTIFY_CHANNEL = "forgegraph_changes"
# SQLite caps a function at 127 arguments: build wide rows 60 columns at a time.
SQLITE_COLUMNS_PER_CALL = 60
MAX_DOUBLE = "1.7976931348623157e308"

PAUSED_KEY = "capture_paused"
"""Set in the meta table by `forgegraph capture pause`: no process installs triggers until `resume`."""
JOURNAL_KEY = "journal_mode_found"
"""SQLite's journal mode before forgegraph first switched it to WAL, for `forgegraph uninstall`."""
DIGEST_KEY = "ddl_digest"
POSTGRES_TRIGGER = "_forgegraph_capture"
"""Every captured table's one trigger on PostgreSQL (it calls the function of the same name)."""
SQLITE_EVENTS = ("insert", "update", "delete")
SQLITE_OUR_TRIGGERS = (
    "SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger' AND substr(name, 1, 12) = '_forgegraph_'"
)
PREFIX = "_forgegraph"
"""Every object capture adds to a database is named with it (graph.events.admin removes them)."""

META_SCHEMA = f"CREATE TABLE IF NOT EXISTS {META} (key TEXT PRIMARY KEY, value TEXT NOT NULL)"

PRUNED_OP = "pruned"
"""The op of the SQLite log's newest row once pruned: kept, emptied, for its cursor (SQLITE_SCHEMA)."""

# No AUTOINCREMENT: it would create `sqlite_sequence`, which SQLite never lets
# anyone drop, so `forgegraph uninstall` could not leave the schema as found.
# The rowid is then the largest one + 1, never reused as long as the newest row
# stays in the log (`ChangeLog.prune` keeps it on SQLite, emptied: `PRUNED_OP`).
SQLITE_SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS {LOG} (
        cursor INTEGER PRIMARY KEY,
        table_name TEXT NOT NULL,
        op TEXT NOT NULL,
        old TEXT,
        new TEXT,
        created_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0))""",
    META_SCHEMA,
)
POSTGRES_SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS {LOG} (
        cursor BIGSERIAL PRIMARY KEY,
        table_name TEXT NOT NULL,
        op TEXT NOT NULL,
        old JSON,
        new JSON,
        created_at DOUBLE PRECISION NOT NULL DEFAULT extract(epoch from clock_timestamp()))""",
    META_SCHEMA,
    # JSON, not JSONB, and row_to_json, not to_jsonb: a json column's value is
    # kept as written (JSONB reorders its keys), as queries answer it. Logs made
    # by earlier versions (JSONB) are converted once.
    f"""DO $$ BEGIN
        IF (SELECT data_type FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name = '{LOG}' AND column_name = 'new') = 'jsonb'
        THEN
            ALTER TABLE {LOG} ALTER COLUMN old TYPE json USING old::json, ALTER COLUMN new TYPE json USING new::json;
        END IF;
    END $$""",
    # One function for every table, reading the row as a whole (row_to_json),
    # never its columns by name: the application's ALTER TABLE ... DROP/RENAME
    # COLUMN and DROP TABLE go through, and the events follow the new columns.
    # The function's own settings, whatever the writer's session says: floats
    # with the shortest exact digits, timestamptz in UTC, bytea as hex; so an
    # event's values are the ones queries answer (graph.events.change).
    # Only other programs' writes NOTIFY (for a postgres:// broadcast): the
    # process that wrote reads the log at its commit and publishes the cursor
    # itself (graph.events.capture), while a NOTIFY is queued under a lock held
    # until commit, inside the turn the advisory lock makes writers take, so it
    # lengthened every turn (inserts through forgegraph: about 15% more per
    # second without it). Its connections are known by their application_name.
    f"""CREATE OR REPLACE FUNCTION {POSTGRES_TRIGGER}() RETURNS trigger
    LANGUAGE plpgsql
    SET extra_float_digits = 1 SET "TimeZone" = 'UTC' SET bytea_output = 'hex' SET "DateStyle" = 'ISO'
    AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock(hashtext('{LOG}'));
        IF TG_OP = 'INSERT' THEN
            INSERT INTO {LOG} (table_name, op, new) VALUES (TG_TABLE_NAME, 'create', row_to_json(NEW));
        ELSIF TG_OP = 'UPDATE' THEN
            INSERT INTO {LOG} (table_name, op, old, new)
                VALUES (TG_TABLE_NAME, 'update', row_to_json(OLD), row_to_json(NEW));
        ELSE
            INSERT INTO {LOG} (table_name, op, old) VALUES (TG_TABLE_NAME, 'delete', row_to_json(OLD));
        END IF;
        IF current_setting('application_name') IS DISTINCT FROM '{APPLICATION_NAME}' THEN
            PERFORM pg_notify('{NOTIFY_CHANNEL}', '');
        END IF;
        RETURN NULL;
    END $$""",
)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sqlite_value(ref: str) -> str:
    """One stored value as JSON that loses nothing, whatever the column's declared type.

    json_object() alone writes reals with 15 significant digits (0.1 + 0.2
    arrives as 0.3, where a query answers 0.30000000000000004), writes an
    infinity as `Inf` (no JSON) and refuses blobs. So: reals with 20 digits,
    which SQLite prints exactly enough to read back as the same double (17
    are not: its printf rounds through long double); infinities as text;
    blobs as {"hex": ...} (graph.events.change.BLOB_KEY), which no other stored
    value becomes, so that NULL stays null and a text stays a text.
    """
    exact = f"printf('%!.20g', {ref})"
    return (
        f"CASE typeof({ref}) "
        f"WHEN 'real' THEN CASE WHEN {ref} BETWEEN -{MAX_DOUBLE} AND {MAX_DOUBLE} "
        f"THEN json({exact}) ELSE {exact} END "
        f"WHEN 'blob' THEN json_object('{BLOB_KEY}', hex({ref})) "
        f"ELSE {ref} END"
    )


def _sqlite_row_json(table: Table, row: str) -> str:
    # Keyed by the database's names, as PostgreSQL's row_to_json keys them (graph.events.change reads them).
    columns = [(c.sql_name, _sqlite_value(f"{row}.{_quote(c.sql_name)}")) for c in table.columns]
    first, rest = columns[:SQLITE_COLUMNS_PER_CALL], columns[SQLITE_COLUMNS_PER_CALL:]
    expr = "json_object(" + ", ".join(f"{_literal(n)}, {v}" for n, v in first) + ")"
    while rest:
        chunk, rest = rest[:SQLITE_COLUMNS_PER_CALL], rest[SQLITE_COLUMNS_PER_CALL:]
        pairs = ", ".join(f"{_literal('$.' + _quote(n))}, {v}" for n, v in chunk)
        expr = f"json_set({expr}, {pairs})"
    return expr


def sqlite_trigger_name(table: str, event: str) -> str:
    """The capture trigger of a SQLite table (its database name) for one of SQLITE_EVENTS."""
    return f"_forgegraph_{table}_{event}"


def sqlite_triggers(table: Table) -> list[str]:
    name, quoted = table.sql_name, _quote(table.sql_name)
    insert_log = f"INSERT INTO {LOG} (table_name, op, old, new) VALUES ({_literal(name)}, "
    bodies = {
        "insert": f"{insert_log}'create', NULL, {_sqlite_row_json(table, 'NEW')})",
        "update": f"{insert_log}'update', {_sqlite_row_json(table, 'OLD')}, {_sqlite_row_json(table, 'NEW')})",
        "delete": f"{insert_log}'delete', {_sqlite_row_json(table, 'OLD')}, NULL)",
    }
    statements = []
    for event, body in bodies.items():
        trigger = _quote(sqlite_trigger_name(name, event))
        statements.append(f"DROP TRIGGER IF EXISTS {trigger}")
        statements.append(f"CREATE TRIGGER {trigger} AFTER {event.upper()} ON {quoted} BEGIN {body}; END")
    return statements


def postgres_triggers(table: Table) -> list[str]:
    return [
        f"CREATE OR REPLACE TRIGGER {POSTGRES_TRIGGER} AFTER INSERT OR UPDATE OR DELETE "
        f"ON public.{_quote(table.sql_name)} FOR EACH ROW EXECUTE FUNCTION {POSTGRES_TRIGGER}()"
    ]


def meta_value(sync_conn: sa.Connection, key: str) -> str | None:
    """A value of the meta table; None when it or the table is absent."""
    if not sa.inspect(sync_conn).has_table(META):
        return None
    value = sync_conn.execute(sa.text(f"SELECT value FROM {META} WHERE key = :k"), {"k": key}).scalar()
    return None if value is None else str(value)


def set_meta(sync_conn: sa.Connection, key: str, value: str | None) -> None:
    """Set (or with None, remove) a value of the meta table, which must exist."""
    sync_conn.execute(sa.text(f"DELETE FROM {META} WHERE key = :k"), {"k": key})
    if value is not None:
        sync_conn.execute(sa.text(f"INSERT INTO {META} (key, value) VALUES (:k, :v)"), {"k": key, "v": value})


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A logged change that could not be turned into an event."""

    cursor: int
    table: str
    error: Exception


@dataclass(frozen=True, slots=True)
class Batch:
    """What one read of the log gave: its events, how far it read, and what failed to convert."""

    events: list[ChangeEvent]
    through: int
    """The last cursor read, converted or not: where the next read starts."""
    failed: list[Undecodable]
    rows: int = 0
    """How many rows of the log the read returned (a read of `limit` rows may have left more)."""


READ_LIMIT = 1000
"""Rows of the log one read of the capture loop takes at most."""

LATEST_CURSOR_SQL = (
    f"coalesce((SELECT max(cursor) FROM {LOG}), "
    f"(SELECT CAST(value AS BIGINT) FROM {META} WHERE key = 'pruned_through'), 0)"
)
"""`latest_cursor` as one SQL expression, for reading it in the same snapshot as a query's rows."""


async def latest_cursor(conn: AsyncConnection) -> int:
    """The newest cursor now (SPEC section 5's `changeCursor`): resuming from it misses nothing later.

    The newest event's, else the newest pruned one's, else 0 on a log never written.
    """
    value = (await conn.execute(sa.text(f"SELECT max(cursor) FROM {LOG}"))).scalar()
    return int(value) if value is not None else await _pruned_through(conn)


async def _pruned_through(conn: AsyncConnection) -> int:
    value = (await conn.execute(sa.text(f"SELECT value FROM {META} WHERE key = 'pruned_through'"))).scalar()
    return int(value) if value is not None else 0


def _older_than_retained(cursor: int) -> str:
    return f"cursor {cursor} is older than the retained change log; query the current rows instead"


@dataclass(frozen=True)
class Retention:
    hours: float = 24.0
    events: int = 100_000


def take_install_lock(conn: sa.Connection, dialect: str) -> None:
    """Start what installs or removes capture: one process at a time, and what it reads of the
    meta table (paused? which digest?) stays true until it commits."""
    if dialect == "postgresql":
        # Two processes starting at once must not interleave DDL.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('forgegraph-install'))"))
    else:
        # pysqlite begins a transaction only before INSERT/UPDATE/DELETE: without this the
        # meta read and the DDL after it are separate transactions, and a `capture pause`
        # committed between them would have its triggers put back.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class ChangeLog:
    def __init__(self, engine: AsyncEngine, model: DatabaseModel, meter: CaptureMeter | None = None) -> None:
        self.engine = engine
        self.model = model
        self.dialect = model.dialect
        self.meter = meter if meter is not None else CaptureMeter()
        self._driver: tuple[Driver, Compiled] | None = None
        self.paused = False
        """Whether the last `install` found capture paused (and so installed no trigger)."""
        self.journal_mode_found: str | None = None
        """SQLite's journal mode as this process found it, before switching to WAL (graph.dialect.sqlite)."""

    def use_driver(self, driver: Driver, statements: Statements) -> None:
        """Read new events on the driver's connections (`read_new`): one statement, no pool checkout."""
        self._driver = (driver, statements.prepare(self._select(None)))

    def captured_tables(self) -> list[Table]:
        # Views have no rows of their own to capture, and rows without keys
        # cannot be named in an event.
        return [t for t in self.model.tables.values() if t.primary_key and not t.is_view]

    def _schema(self) -> list[str]:
        return list(POSTGRES_SCHEMA if self.dialect == "postgresql" else SQLITE_SCHEMA)

    def _statements(self) -> list[str]:
        postgres = self.dialect == "postgresql"
        statements = self._schema()
        for table in self.captured_tables():
            statements.extend(postgres_triggers(table) if postgres else sqlite_triggers(table))
        return statements

    async def install(self) -> None:
        """Create the log and every captured table's triggers, unless they are already current.

        A digest of the DDL is kept in the meta table, so a restart on an
        unchanged schema costs one query instead of rewriting every trigger.
        While capture is paused (`forgegraph capture pause`) only the log and
        the meta table are made: no trigger, whoever calls this (start-up or a
        re-install after a schema change); `self.paused` tells which it was.
        """
        statements = self._statements()
        digest = hashlib.sha256("\n".join(statements).encode()).hexdigest()

        def apply(sync_conn: sa.Connection) -> None:
            take_install_lock(sync_conn, self.dialect)
            self.paused = meta_value(sync_conn, PAUSED_KEY) is not None
            if self.paused:
                for statement in self._schema():
                    sync_conn.exec_driver_sql(statement)
                self._record_journal_mode(sync_conn)
                return
            if meta_value(sync_conn, DIGEST_KEY) == digest:
                return
            for statement in statements:
                sync_conn.exec_driver_sql(statement)
            self._record_journal_mode(sync_conn)
            set_meta(sync_conn, DIGEST_KEY, digest)

        async with self.engine.begin() as conn:
            await conn.run_sync(apply)
        if self.paused:
            log.warning(
                "change capture is paused in this database (forgegraph capture pause): "
                "writes are not events until `forgegraph capture resume`"
            )

    def _record_journal_mode(self, sync_conn: sa.Connection) -> None:
        # The first install's: a later one finds the WAL mode forgegraph switched on.
        if self.journal_mode_found is not None and meta_value(sync_conn, JOURNAL_KEY) is None:
            set_meta(sync_conn, JOURNAL_KEY, self.journal_mode_found)

    async def missing_triggers(self) -> list[str]:
        """The captured tables whose capture triggers are gone: dropped with their table, which was
        created again since under the same name (a migration rebuilding a table), so the installed
        digest still reads as current."""
        async with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                found = {str(name) for name in (await conn.execute(sa.text(SQLITE_OUR_TRIGGERS))).scalars()}
                return [
                    t.sql_name for t in self.captured_tables()
                    if any(sqlite_trigger_name(t.sql_name, event) not in found for event in SQLITE_EVENTS)
                ]
            found = {str(name) for name in (await conn.execute(sa.text(
                "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE t.tgname = :trigger AND n.nspname = current_schema()"
            ), {"trigger": POSTGRES_TRIGGER})).scalars()}
            return [t.sql_name for t in self.captured_tables() if t.sql_name not in found]

    async def forget_installed(self) -> None:
        """Make the next `install` write every trigger, whatever the digest said."""
        async with self.engine.begin() as conn:
            await conn.run_sync(set_meta, DIGEST_KEY, None)

    async def drop_stale_triggers(self) -> list[str]:
        """Drop the SQLite capture triggers of tables renamed since they were made; their names.

        SQLite keeps a renamed table's triggers, which go on logging its
        changes under the old name (`sqlite_triggers` writes it as a literal):
        a table later created with that name would receive them as its events.
        PostgreSQL's trigger reads the table's name as it fires: nothing to do.
        """
        if self.dialect != "sqlite":
            return []
        async with self.engine.begin() as conn:
            rows = (await conn.execute(sa.text(SQLITE_OUR_TRIGGERS))).all()
            stale = [
                str(name) for name, table in rows
                if name not in {sqlite_trigger_name(table, event) for event in SQLITE_EVENTS}
            ]
            for name in stale:
                await conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {_quote(name)}")
        return stale

    async def latest(self, conn: AsyncConnection) -> int:
        return await latest_cursor(conn)

    async def _pruned_through(self, conn: AsyncConnection) -> int:
        return await _pruned_through(conn)

    def _images(self) -> str:
        # As text on PostgreSQL: the driver would decode JSON numbers as floats
        # and numeric(10,2) 12345678.90 would lose its scale.
        return "old::text, new::text" if self.dialect == "postgresql" else "old, new"

    def _select(self, tables: list[str] | None) -> sa.TextClause:
        sql = f"SELECT cursor, table_name, op, {self._images()} FROM {LOG} WHERE cursor > :after"
        if tables is not None:
            sql += " AND table_name IN :tables"
        statement = sa.text(sql + " ORDER BY cursor LIMIT :limit")
        if tables is not None:
            statement = statement.bindparams(sa.bindparam("tables", expanding=True))
        return statement

    def _select_retained(self) -> sa.TextClause:
        """A page of `_select` with the retention horizon beside it, read in one statement.

        One statement reads one snapshot on both databases, so the horizon it
        answers is the one the page's rows were read under: a pruner that
        overtook the page's starting cursor shows up here, never as a silent
        gap. The meta row is the left side, so an empty page still answers it.
        """
        page = (
            f"SELECT cursor, table_name, op, {self._images()} FROM {LOG} "
            "WHERE cursor > :after AND table_name IN :tables ORDER BY cursor LIMIT :limit"
        )
        horizon = f"SELECT coalesce((SELECT value FROM {META} WHERE key = 'pruned_through'), '0') AS pruned"
        sql = (
            f"SELECT h.pruned, p.cursor, p.table_name, p.op, p.old, p.new "
            f"FROM ({horizon}) AS h LEFT JOIN ({page}) AS p ON 1 = 1 ORDER BY p.cursor"
        )
        return sa.text(sql).bindparams(sa.bindparam("tables", expanding=True))

    def _decode(self, after: int, rows: Sequence[Sequence[Any]]) -> Batch:
        """The rows' events, each row on its own: one that cannot be converted is left out.

        Reading the log is not retried past here; what fails now is one
        change's own content (corrupt JSON, a value its column type refuses),
        which would fail the same way on every retry, so it is reported in
        `failed` and the batch still moves on past it.
        """
        events: list[ChangeEvent] = []
        failed: list[Undecodable] = []
        through = after
        for row in rows:
            through = int(row[0])
            try:
                event = decode_row(self.model, *row)
            except Exception as error:  # noqa: BLE001 - any failure is this change's alone
                served = self.model.by_sql_name.get(str(row[1]))
                failed.append(Undecodable(through, str(row[1]) if served is None else served.name, error))
                continue
            if event is not None:
                events.append(event)
        return Batch(events, through, failed, len(rows))

    async def read_retained(
        self, conn: AsyncConnection, after: int, tables: list[str], *, limit: int = 1000
    ) -> Batch:
        """The next page after `after` for a replay; InvalidCursor if the pruner has overtaken `after`.

        `after` 0 is the start of whatever is still retained, never overtaken.
        """
        # The log names tables as the database does.
        served = self.model.tables
        params = {"after": after, "tables": tuple(served[t].sql_name if t in served else t for t in tables), "limit": limit}
        rows = (await conn.execute(self._select_retained(), params)).all()
        if after and int(rows[0][0]) > after:
            raise InvalidCursor(_older_than_retained(after))
        return self._decode(after, [row[1:] for row in rows if row[1] is not None])

    async def read_new(self, after: int, *, limit: int = READ_LIMIT) -> Batch:
        """The events after cursor `after`, on the driver when there is one (the capture loop).

        A failure to read raises (the caller retries); a row that cannot be
        converted is in the batch's `failed`, and `through` moves past it.
        """
        if self._driver is None:
            async with self.engine.connect() as conn:
                params = {"after": after, "limit": limit}
                batch = self._decode(after, (await conn.execute(self._select(None), params)).all())
        else:
            driver, select = self._driver
            batch = self._decode(after, await driver.fetch(select.bind({"after": after, "limit": limit})))
        self._report_unconvertible(batch.events)
        return batch

    def _report_unconvertible(self, events: list[ChangeEvent]) -> None:
        """Count and log, once per change as it is captured (not per subscriber, not on replay)."""
        for event in events:
            if event.unconvertible:
                self.meter.unconvertible_values += len(event.unconvertible)
                log.warning(
                    "change %s of table %r: column(s) %s hold values that do not fit their declared "
                    "type; delivered as stored",
                    event.cursor, event.table, ", ".join(repr(c) for c in dict.fromkeys(event.unconvertible)),
                )

    async def check_cursor(self, conn: AsyncConnection, since: str) -> int:
        """The cursor `since` names, or InvalidCursor when it cannot be resumed from.

        "0" is the start of whatever is still retained, however much was pruned.
        """
        # isascii(): str.isdigit() also takes "²" and "٣", which int() refuses or reads as 3.
        if not (since.isascii() and since.isdigit()) or len(since) > 19:
            raise InvalidCursor(f"malformed cursor {since!r}: expected decimal digits")
        cursor = int(since)
        if cursor == 0:
            return 0
        if cursor > await self.latest(conn):
            raise InvalidCursor(f"cursor {since} was never issued by this database")
        if cursor < await self._pruned_through(conn):
            raise InvalidCursor(_older_than_retained(cursor))
        return cursor

    async def prune(self, retention: Retention) -> int:
        """Drop events both older than the retention time and beyond the retained count."""
        cutoff = time.time() - retention.hours * 3600
        async with self.engine.begin() as conn:
            latest = (await conn.execute(sa.text(f"SELECT max(cursor) FROM {LOG}"))).scalar()
            if latest is None:
                return 0
            horizon = (
                await conn.execute(
                    sa.text(f"SELECT max(cursor) FROM {LOG} WHERE cursor <= :keep AND created_at < :cutoff"),
                    {"keep": int(latest) - retention.events, "cutoff": cutoff},
                )
            ).scalar()
            if horizon is None:
                return 0
            removed = 0
            if self.dialect == "sqlite" and int(horizon) == int(latest):
                # The newest row stays, emptied (no table: no event): SQLite numbers the
                # next row after the largest one left (SQLITE_SCHEMA has no AUTOINCREMENT).
                emptied = await conn.execute(
                    sa.text(
                        f"UPDATE {LOG} SET table_name = '', op = '{PRUNED_OP}', old = NULL, new = NULL "
                        f"WHERE cursor = :h AND op <> '{PRUNED_OP}'"
                    ),
                    {"h": horizon},
                )
                removed = int(emptied.rowcount or 0)
                horizon_rows = f"cursor < {int(horizon)}"
            else:
                horizon_rows = f"cursor <= {int(horizon)}"
            result = await conn.execute(sa.text(f"DELETE FROM {LOG} WHERE {horizon_rows}"))
            removed += int(result.rowcount or 0)
            await conn.execute(sa.text(f"DELETE FROM {META} WHERE key = 'pruned_through'"))
            await conn.execute(
                sa.text(f"INSERT INTO {META} (key, value) VALUES ('pruned_through', :v)"), {"v": str(horizon)}
            )
            return removed
