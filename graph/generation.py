"""One generation of the served schema: everything built from one reflection of the database.

The model, the role schemas, the rules and the query and mutation plans are
built together from one read of the database's schema and replaced together
when it changes (graph.schema_watch): the runtime holds the current one, and
a request reads it once (`Runtime.generation`), so an operation in flight
finishes on the generation it started with while new ones use the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graph.access import Access
from graph.compile.custom import Custom
from graph.compile.mutation import MutationPlans
from graph.compile.query_plans import QueryPlans, query_plans_for
from graph.events.changelog import latest_cursor
from graph.events.decide import Decider
from graph.role_schemas import RoleSchemas
from graph.rules.permissions import Permissions, parse_permissions, parse_permissions_after_change
from graph.sql.compiled import Statements
from graph.sql.select import Reader
from graph.sql.tables import core_tables

if TYPE_CHECKING:

    from graph.auth import Session
    from graph.compile._query_backend import Backend
    from graph.config import Settings
    from graph.dialect import Database
    from graph.events.capture import Realtime
    from graph.execution import Executor
    from graph.extend import Extension
    from graph.metrics import Metrics
    from graph.model import DatabaseModel


@dataclass(frozen=True, eq=False)
class Generation:
    number: int
    """1 at start-up, one more at each rebuild."""
    model: DatabaseModel
    permissions: Permissions
    access: Access
    schemas: RoleSchemas
    query_plans: QueryPlans
    mutations: MutationPlans
    decider: Decider
    metrics: Metrics
    fingerprint: str
    """The database's schema as graph.schema_watch read it just before this generation's reflection."""
    broken_rules: tuple[str, ...] = ()
    """Permission rules a schema change broke, each denied since (listed by /healthz)."""

    def executor_for(self, session: Session) -> Executor:
        return self.schemas.executor(session.rules_role)


def build_generation(
    *,
    number: int,
    database: Database,
    model: DatabaseModel,
    settings: Settings,
    rules: Any,
    extension: Extension | None,
    metrics: Metrics,
    changes: Realtime,
    fingerprint: str,
    backend: Backend | None = None,
) -> Generation:
    """Build a generation of `model`; `rules`: the permissions file as read at start-up (None: open).

    At start-up (`number` 1) a rule naming something the database lacks stops
    the server (PermissionsError); after a change it is denied and reported.
    `backend`: the previous generation's query connections, reused (SQLite's
    carry the SQL functions, registered once before they connect).
    """
    engine = database.engine
    broken: tuple[str, ...] = ()
    if rules is None:
        permissions = Permissions.open()
    elif number == 1:
        permissions = parse_permissions(rules, model, settings.permissions or "")
    else:
        permissions, broken = parse_permissions_after_change(rules, model, settings.permissions or "")
    tables = core_tables(model)
    reader = Reader(model, tables, max_rows=settings.limits.max_limit)

    async def change_cursor() -> str:
        if not changes.capture:  # serve --no-capture: the newest of this process's own events
            return str(changes.latest_direct)
        async with engine.connect() as conn:
            return str(await latest_cursor(conn))

    schemas = RoleSchemas(model, change_cursor, permissions, settings.limits, extension)
    access = Access(model, permissions, reader.filters)
    cache_bytes = settings.limits.document_cache_bytes
    if backend is None:
        # The plans first: the SQL functions their statements call reach every
        # connection the database opens after, the mutations' driver's too.
        query_plans = query_plans_for(database, model, reader, access, permissions, cache_bytes)
    else:
        query_plans = QueryPlans(model, reader, access, permissions, backend, cache_bytes)
    driver = database.driver
    statements = Statements(engine.dialect)
    custom = (
        Custom(driver, statements, model, query_plans, schemas.executor_of_schema)
        if extension is not None
        else None
    )
    query_plans.custom = custom
    # The query plans' rendering reads the relationships a mutation's answer selects.
    mutations = MutationPlans(
        model, tables, reader, statements, driver, changes.nudge, query_plans.backend, custom,
        written=None if changes.capture else changes.written,
    )
    # Stream filters through relationships are decided on the plans' reads (within --pool-size).
    decider = Decider(model, reader.filters, query_plans.backend)
    return Generation(
        number=number,
        model=model,
        permissions=permissions,
        access=access,
        schemas=schemas,
        query_plans=query_plans,
        mutations=mutations,
        decider=decider,
        metrics=metrics,
        fingerprint=fingerprint,
        broken_rules=broken,
    )
