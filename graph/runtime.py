"""Everything one server process holds: engine, model, schema, executor.

Built once at start-up (SPEC: the schema is never built per request).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from graphql import GraphQLSchema, print_schema
from sqlalchemy import exc

from graph.database import create_engine, ping
from graph.errors import StartupError
from graph.execution import Executor
from graph.naming import name_model
from graph.realtime import Realtime
from graph.reflect import reflect
from graph.resolvers import Resolvers
from graph.schema import build_schema
from graph.sql.mutate import Writer
from graph.sql.select import Reader
from graph.sql.tables import core_tables

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from graph.config import Settings
    from graph.model import DatabaseModel

log = logging.getLogger("forgegraph")


class Connection(Protocol):
    """A long-lived client connection (WebSocket, SSE stream) the runtime ends on shutdown."""

    async def close_for_shutdown(self) -> None: ...


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engine: AsyncEngine | None = None
        self._schema: GraphQLSchema | None = None
        self._executor: Executor | None = None
        self._realtime: Realtime | None = None
        self._model: DatabaseModel | None = None
        self.connections: set[Connection] = set()

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the runtime has not been started")
        return self._engine

    @property
    def schema(self) -> GraphQLSchema:
        if self._schema is None:
            raise RuntimeError("the runtime has not been started")
        return self._schema

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            raise RuntimeError("the runtime has not been started")
        return self._executor

    @property
    def realtime(self) -> Realtime:
        if self._realtime is None:
            raise RuntimeError("the runtime has not been started")
        return self._realtime

    @property
    def model(self) -> DatabaseModel:
        if self._model is None:
            raise RuntimeError("the runtime has not been started")
        return self._model

    @property
    def started(self) -> bool:
        return self._engine is not None

    async def start(self, *, realtime: bool = True) -> None:
        """Reflect, build the schema and (unless `realtime` is False) start change capture."""
        if self.started:
            return
        url = self.settings.database_url
        if self.settings.uses_default_database:
            from graph.migrate import ensure_demo_database

            await ensure_demo_database(url)
        engine = create_engine(url)
        try:
            model = name_model(await reflect(engine))
        except (exc.DBAPIError, OSError) as error:
            await engine.dispose()
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            raise StartupError(f"cannot connect to database {url!r}: {reason}") from None
        except BaseException:
            await engine.dispose()
            raise
        for reason in model.skipped:
            log.warning("not served: %s", reason)
        tables = core_tables(model)
        resolvers = Resolvers(model, Reader(model, tables), Writer(model, tables))
        self._schema = build_schema(model, resolvers)
        self._executor = Executor(self._schema, max_depth=self.settings.limits.max_depth)
        changes = Realtime(engine, model, self.settings.broadcast)
        try:
            if realtime:
                await changes.start()
        except (exc.DBAPIError, OSError) as error:
            await engine.dispose()
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            raise StartupError(f"cannot start change capture on {url!r}: {reason}") from None
        except BaseException:
            await engine.dispose()
            raise
        self._realtime = changes
        self._model = model
        self._engine = engine

    async def stop(self) -> None:
        for connection in list(self.connections):
            await connection.close_for_shutdown()
        realtime, self._realtime = self._realtime, None
        if realtime is not None:
            await realtime.stop()
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()

    async def healthy(self) -> bool:
        try:
            await ping(self.engine)
        except Exception:  # noqa: BLE001 - any failure to answer means unhealthy
            return False
        return True

    def schema_sdl(self) -> str:
        return print_schema(self.schema) + "\n"
