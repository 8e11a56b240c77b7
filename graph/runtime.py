"""Everything one server process holds: the database, model, schema, executor.

Built at start-up, and again only when the database's schema changes
(graph.schema_watch, SIGHUP, `forgegraph reload`): never per request.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

from graphql import GraphQLSchema, print_schema
from sqlalchemy import exc

from graph.auth import Authenticator, Session
from graph.dialect import open_database
from graph.errors import StartupError
from graph.events.capture import Realtime
from graph.extend import Extension, load_extension
from graph.generation import Generation, build_generation
from graph.metadata import Metadata, load_metadata
from graph.metrics import Metrics, Observed
from graph.naming import name_model
from graph.reflect import reflect
from graph.rules._text import read_permissions
from graph.schema_watch import SchemaWatch, fingerprint
from graph.sql.compiled import Statements

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from graph.access import Access
    from graph.compile.mutation import MutationPlans
    from graph.compile.query_plans import QueryPlans
    from graph.config import Settings
    from graph.dialect import Database, Driver
    from graph.execution import Executor
    from graph.model import DatabaseModel
    from graph.role_schemas import RoleSchemas
    from graph.rules.permissions import Permissions

log = logging.getLogger("forgegraph")
HEALTH_TIMEOUT_SECONDS = 3


class Connection(Observed, Protocol):
    """A long-lived client connection (WebSocket, SSE stream) the runtime ends on shutdown."""

    async def close_for_shutdown(self) -> None: ...

    def rules_withdrawn(self, tables: frozenset[str], access: Access) -> None:
        """A schema change broke the select rules of `tables`: end what the session may no longer see."""


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._database: Database | None = None
        """The one owner of this process's connections to the database (graph.dialect)."""
        self._generation: Generation | None = None
        """What one reflection of the database built (graph.generation); replaced whole on a schema change."""
        self._extension: Extension | None = None
        self._metadata: Metadata | None = None
        self._rules: Any = None
        """The permissions file as read at start-up (None: open), checked again against each new schema."""
        self.authenticator = Authenticator(settings.jwt_secret, settings.admin_secret)
        self._realtime: Realtime | None = None
        self._driver: Driver | None = None
        self._watch: SchemaWatch | None = None
        self._reloading = asyncio.Lock()
        self._reloads: set[asyncio.Task[Any]] = set()
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
    def generation(self) -> Generation:
        """The current schema's model, rules, executors and plans: read once per operation."""
        generation = self._generation
        if generation is None:
            raise RuntimeError("the runtime has not been started")
        return generation

    @property
    def schemas(self) -> RoleSchemas:
        return self.generation.schemas

    @property
    def schema(self) -> GraphQLSchema:
        """The full schema (what the admin secret sees, and every role without a permissions file)."""
        return self.generation.schemas.full.schema

    def executor_for(self, session: Session) -> Executor:
        return self.generation.schemas.executor(session.rules_role)

    @property
    def realtime(self) -> Realtime:
        if self._realtime is None:
            raise RuntimeError("the runtime has not been started")
        return self._realtime

    @property
    def query_plans(self) -> QueryPlans:
        """Every query, answered by one cached statement (graph.compile)."""
        return self.generation.query_plans

    @property
    def mutations(self) -> MutationPlans:
        return self.generation.mutations

    @property
    def access(self) -> Access:
        return self.generation.access

    @property
    def permissions(self) -> Permissions:
        return self.generation.permissions

    @property
    def driver(self) -> Driver:
        """The driver connections mutations run on (graph.dialect)."""
        if self._driver is None:
            raise RuntimeError("the runtime has not been started")
        return self._driver

    @property
    def model(self) -> DatabaseModel:
        return self.generation.model

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
        if realtime and self.settings.schema_poll > 0:
            self._watch = SchemaWatch(
                database.engine, self.settings.schema_poll, lambda: self.generation.fingerprint,
                self._schema_moved, self._recapture,
            )
            self._watch.start()

    async def _start(self, database: Database, *, realtime: bool) -> None:
        url = self.settings.database_url
        engine = database.engine
        try:
            before = await fingerprint(engine)
            model = await self._reflect(engine)
        except (exc.DBAPIError, OSError) as error:
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            raise StartupError(f"cannot connect to database {url!r}: {reason}") from None
        for reason in model.skipped:
            log.warning("not served: %s", reason)
        self._rules = read_permissions(self.settings.permissions) if self.settings.permissions else None
        changes = Realtime(
            engine, model, self.settings.broadcast, self.settings.capture, self.metrics.capture,
            capture=not self.settings.no_capture,
        )
        changes.changelog.journal_mode_found = database.journal_mode_found
        generation = self._build(database, model, changes, before, 1)
        try:
            if realtime:
                await changes.start()
        except (exc.DBAPIError, OSError) as error:
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            raise StartupError(f"cannot start change capture on {url!r}: {reason}") from None
        try:
            driver = database.driver
            changes.changelog.use_driver(driver, Statements(engine.dialect))
            changes.use_decider(generation.decider)
        except BaseException:
            await changes.stop()
            raise
        self._driver = driver
        self._realtime = changes
        self._generation = generation

    async def _reflect(self, engine: AsyncEngine) -> DatabaseModel:
        """The database's schema as served: at start-up and at each rebuild alike."""
        return name_model(await reflect(engine), self._metadata)

    def _build(
        self, database: Database, model: DatabaseModel, changes: Realtime, before: str, number: int
    ) -> Generation:
        previous = self._generation
        return build_generation(
            number=number,
            database=database,
            model=model,
            settings=self.settings,
            rules=self._rules,
            extension=self._extension,
            metrics=self.metrics,
            changes=changes,
            fingerprint=before,
            backend=previous.query_plans.backend if previous is not None else None,
        )

    async def reload(self, reason: str, *, force: bool = True) -> bool:
        """Reflect the database again and serve what it holds now; whether its schema had changed.

        Under a lock, so rebuilds never overlap. Operations in flight finish on
        the generation they started with; the swap is one assignment. Without
        `force`, nothing is rebuilt when the schema reads as before.
        """
        async with self._reloading:
            database = self.database
            old = self.generation
            before = await fingerprint(database.engine)
            changed = before != old.fingerprint
            if not changed and not force:
                return False
            model = await self._reflect(database.engine)
            changes = self.realtime
            generation = self._build(database, model, changes, before, old.number + 1)
            dropped = sorted(set(old.model.tables) - set(model.tables))
            changes.use_model(model, generation.decider)
            if changes.started and changes.capture:
                try:
                    # Before the swap, so a write through the new schema is captured
                    # with its new columns. Compares a digest: only a changed schema
                    # rewrites triggers (and a paused capture is left paused).
                    await changes.changelog.install()
                    if dropped:  # or renamed, which leaves SQLite triggers logging the old name
                        await changes.changelog.drop_stale_triggers()
                    await self._install_missing(changes)
                except Exception:
                    log.exception("re-installing change capture after a schema change failed")
            self._generation = generation
            for name in dropped:
                changes.end_table(name, f"table {name!r} was dropped")
            withdrawn = _withdrawn(old.permissions, generation.permissions)
            if withdrawn:
                # Subscriptions answer on what they began with: never past a rule that is gone.
                for connection in list(self.connections):
                    connection.rules_withdrawn(withdrawn, generation.access)
            for skipped in model.skipped:
                if skipped not in old.model.skipped:
                    log.warning("not served: %s", skipped)
            for rule in generation.broken_rules:
                if rule not in old.broken_rules:
                    log.warning("permission rule denied after a schema change: %s", rule)
            added = sorted(set(model.tables) - set(old.model.tables))
            log.info(
                "schema %s (%s): %d tables%s%s", "changed" if changed else "re-read", reason, len(model.tables),
                f"; added {', '.join(added)}" if added else "", f"; dropped {', '.join(dropped)}" if dropped else "",
            )
            return changed

    async def _schema_moved(self) -> None:
        await self.reload("noticed a schema change", force=False)

    async def _recapture(self) -> None:
        """Re-install capture triggers a table took with it when it was made again just as it was."""
        async with self._reloading:
            changes = self.realtime
            if changes.started and changes.capture:
                await self._install_missing(changes)

    @staticmethod
    async def _install_missing(changes: Realtime) -> None:
        missing = await changes.changelog.missing_triggers()
        if missing:  # a table made again under its name took its triggers with it
            log.info("re-installing change capture for %s", ", ".join(missing))
            await changes.changelog.forget_installed()
            await changes.changelog.install()

    def request_reload(self) -> None:
        """Re-read the schema soon (SIGHUP): a task of its own, failures logged."""
        if not self.started:
            return

        async def run() -> None:
            try:
                await self.reload("SIGHUP")
            except Exception:
                log.exception("re-reading the schema on SIGHUP failed; serving the previous one")

        task = asyncio.get_running_loop().create_task(run(), name="forgegraph-reload")
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    def schema_problems(self) -> list[str]:
        """Permission rules a schema change broke (each now denies what it granted)."""
        generation = self._generation
        return list(generation.broken_rules) if generation is not None else []

    async def stop(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            await watch.stop()
        for task in list(self._reloads):
            task.cancel()
        for connection in list(self.connections):
            await connection.close_for_shutdown()
        realtime, self._realtime = self._realtime, None
        if realtime is not None:
            await realtime.stop()
        self._driver = None
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


def _withdrawn(before: Permissions, after: Permissions) -> frozenset[str]:
    """The tables some role lost its select rule on (a schema change broke it)."""
    lost = set()
    for name, rules in before.tables.items():
        now = after.tables.get(name)
        if any(now is None or role not in now.select for role in rules.select):
            lost.add(name)
    return frozenset(lost)
