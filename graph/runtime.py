"""Everything one server process holds: the database, model, schema, executor.

Built once at start-up (SPEC: the schema is never built per request).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol

from graphql import GraphQLSchema, print_schema
from sqlalchemy import exc

from graph.access import Access
from graph.auth import Authenticator, Session
from graph.compile.custom import Custom
from graph.compile.mutation import MutationPlans
from graph.compile.query_plans import QueryPlans, query_plans_for
from graph.dialect import open_database
from graph.errors import StartupError
from graph.events.capture import Realtime
from graph.events.changelog import latest_cursor
from graph.events.decide import Decider
from graph.extend import Extension, load_extension
from graph.metadata import Metadata, load_metadata
from graph.metrics import Metrics, Observed
from graph.naming import name_model
from graph.reflect import reflect
from graph.role_schemas import RoleSchemas
from graph.rules.permissions import Permissions, load_permissions
from graph.sql.compiled import Statements
from graph.sql.select import Reader
from graph.sql.tables import core_tables

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from graph.config import Settings
    from graph.dialect import Database, Driver
    from graph.execution import Executor
    from graph.model import DatabaseModel

log = logging.getLogger("forgegraph")
HEALTH_TIMEOUT_SECONDS = 3


class Connection(Observed, Protocol):
    """A long-lived client connection (WebSocket, SSE stream) the runtime ends on shutdown."""

    async def close_for_shutdown(self) -> None: ...


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._database: Database | None = None
        """The one owner of this process's connections to the database (graph.dialect)."""
        self._schemas: RoleSchemas | None = None
        self._extension: Extension | None = None
        self._metadata: Metadata | None = None
        self.authenticator = Authenticator(settings.jwt_secret, settings.admin_secret)
        self._realtime: Realtime | None = None
        self._model: DatabaseModel | None = None
        self._driver: Driver | None = None
        self._mutations: MutationPlans | None = None
        self._query_plans: QueryPlans | None = None
        self.connections: set[Connection] = set()
        self.metrics = Metrics(self.connections)

    @property
    def database(self) -> Database:
        if self._database is None:
            raise RuntimeError("the runtime has not been started")
        return self._database

    @property
    def engine(self) -> AsyncEngine:
        return self.database.engine

    @property
    def schemas(self) -> RoleSchemas:
        if self._schemas is None:
            raise RuntimeError("the runtime has not been started")
        return self._schemas

    @property
    def schema(self) -> GraphQLSchema:
        """The full schema (what the admin secret sees, and every role without a permissions file)."""
        return self.schemas.full.schema

    def executor_for(self, session: Session) -> Executor:
        return self.schemas.executor(session.rules_role)

    @property
    def realtime(self) -> Realtime:
        if self._realtime is None:
            raise RuntimeError("the runtime has not been started")
        return self._realtime

    @property
    def query_plans(self) -> QueryPlans:
        """Every query, answered by one cached statement (graph.compile)."""
        if self._query_plans is None:
            raise RuntimeError("the runtime has not been started")
        return self._query_plans

    @property
    def mutations(self) -> MutationPlans:
        if self._mutations is None:
            raise RuntimeError("the runtime has not been started")
        return self._mutations

    @property
    def driver(self) -> Driver:
        """The driver connections mutations run on (graph.dialect)."""
        if self._driver is None:
            raise RuntimeError("the runtime has not been started")
        return self._driver

    @property
    def model(self) -> DatabaseModel:
        if self._model is None:
            raise RuntimeError("the runtime has not been started")
        return self._model

    @property
    def started(self) -> bool:
        return self._database is not None

    async def start(self, *, realtime: bool = True) -> None:
        """Reflect, build the schema and (unless `realtime` is False) start change capture."""
        if self.started:
            return
        # The user's module first: a bad --extend is told before any database is touched.
        self._extension = load_extension(self.settings.extend)
        given = self.settings.metadata
        self._metadata = load_metadata(given) if isinstance(given, str) else given
        url = self.settings.database_url
        if self.settings.uses_default_database:
            from graph.migrate import ensure_demo_database

            await ensure_demo_database(url)
        # Without capture SQLite keeps the journal mode it has (graph.dialect.sqlite).
        database = open_database(url, pool_size=self.settings.pool_size, wal=not self.settings.no_capture)
        try:
            await self._start(database, realtime=realtime)
        except BaseException:
            await database.close()
            raise
        self._database = database

    async def _start(self, database: Database, *, realtime: bool) -> None:
        url = self.settings.database_url
        engine = database.engine
        try:
            reflected = await reflect(engine)
        except (exc.DBAPIError, OSError) as error:
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            raise StartupError(f"cannot connect to database {url!r}: {reason}") from None
        model = name_model(reflected, self._metadata)
        for reason in model.skipped:
            log.warning("not served: %s", reason)
        permissions = (
            load_permissions(self.settings.permissions, model)
            if self.settings.permissions
            else Permissions.open()
        )
        tables = core_tables(model)
        reader = Reader(model, tables, max_rows=self.settings.limits.max_limit)

        capture = not self.settings.no_capture

        async def change_cursor() -> str:
            if not capture:
                return str(changes.latest_direct)
            async with engine.connect() as conn:
                return str(await latest_cursor(conn))

        self._schemas = RoleSchemas(model, change_cursor, permissions, self.settings.limits, self._extension)
        self.permissions = permissions
        self.access = Access(model, permissions, reader.filters)
        changes = Realtime(
            engine, model, self.settings.broadcast, self.settings.capture, self.metrics.capture, capture=capture
        )
        changes.changelog.journal_mode_found = database.journal_mode_found
        try:
            if realtime:
                await changes.start()
        except (exc.DBAPIError, OSError) as error:
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            raise StartupError(f"cannot start change capture on {url!r}: {reason}") from None
        try:
            # The plans first: the SQL functions their statements call reach every
            # connection the database opens after, the mutations' driver's too.
            query_plans = query_plans_for(
                database, model, reader, self.access, permissions, self.settings.limits.document_cache_bytes
            )
            driver = database.driver
            statements = Statements(engine.dialect)
            changes.changelog.use_driver(driver, statements)
            # Stream filters through relationships are decided on the plans' reads (within --pool-size).
            changes.use_decider(Decider(model, reader.filters, query_plans.backend))
            schemas = self._schemas
            custom = (
                Custom(driver, statements, model, query_plans, schemas.executor_of_schema)
                if self._extension is not None
                else None
            )
            query_plans.custom = custom
            # The query plans' rendering reads the relationships a mutation's answer selects.
            self._mutations = MutationPlans(
                model, tables, reader, statements, driver, changes.nudge, query_plans.backend, custom,
                written=None if capture else changes.written,
            )
        except BaseException:
            await changes.stop()
            raise
        self._query_plans = query_plans
        self._driver = driver
        self._realtime = changes
        self._model = model

    async def stop(self) -> None:
        for connection in list(self.connections):
            await connection.close_for_shutdown()
        realtime, self._realtime = self._realtime, None
        if realtime is not None:
            await realtime.stop()
        self._driver = None
        self._query_plans = None
        database, self._database = self._database, None
        if database is not None:
            # Every connection of the process: the engine's, the driver's, the plans'.
            await database.close()

    async def health(self) -> dict[str, str]:
        """What /healthz reports: each part "ok" or why not."""
        parts = {"database": "ok", "broadcast": "ok"}
        try:
            await asyncio.wait_for(self.database.ping(), HEALTH_TIMEOUT_SECONDS)
        except Exception:  # noqa: BLE001 - any failure to answer means unhealthy
            parts["database"] = "unreachable"
        if self._realtime is not None and not self._realtime.broker_healthy:
            parts["broadcast"] = "unreachable"
        return parts

    def schema_sdl(self) -> str:
        return print_schema(self.schema) + "\n"
