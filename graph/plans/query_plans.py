"""Answer a query with one cached SQL statement, without GraphQL execution, when it can.

A plan is compiled once per document, operation, role schema, session values
its row rules read, and variables: the document read into a selection tree
(`graph.plans._query_shape`), the tree into one SELECT that builds the answer's JSON
(`graph.plans._query_statement`), the SELECT compiled by SQLAlchemy into SQL text
and parameters. A request with that key then costs one statement on a driver
connection (`Backend.fetch`) and, at most, one parse and one dump of JSON.

`QueryPlans.answer` returns None for every request it does not answer:
anything but a query over the generated fields, anything the compiler does not
render exactly, and any statement that fails in the database. The normal path
then answers it, with its own errors. It never answers with an error itself.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from graphql import FragmentDefinitionNode, GraphQLError, OperationType, get_operation_ast
from graphql.execution.values import VariableValues, get_variable_values

from graph.byte_cache import ByteBoundedCache
from graph.config import Limits
from graph.errors import ForgeError
from graph.plans._query_backend import QueryFailed, Unrenderable
from graph.plans._query_shape import Reading, Unsupported, root_fields
from graph.plans._query_statement import Fixes, StatementBuilder
from graph.plans._query_variables import (
    Probe,
    bindable_variables,
    is_bindable,
    probe_for,
    probe_slots,
)

if TYPE_CHECKING:
    from graphql import GraphQLSchema, OperationDefinitionNode

    from graph.access import Access
    from graph.auth import Session
    from graph.dialect import Database
    from graph.execution import Executor, Prepared
    from graph.model import DatabaseModel, Table
    from graph.plans._query_backend import Backend
    from graph.root_field import RootKind
    from graph.rules.permissions import Permissions
    from graph.rules.to_sql import Visible
    from graph.sql.select import Reader

log = logging.getLogger("forgegraph")
MAX_QUERY_LENGTH = 65_536
"""Longer documents are not kept (nor answered) here: the cache holds their text."""
PLANS_PER_DOCUMENT = 16
"""Plans of one document (values of variables that are not bound per request)."""
PLAN_BYTES = 1_000
"""Estimated bytes of one plan beside its SQL text and parameters (its fixes, its slots)."""
PARAMETER_BYTES = 100
NO_DOCUMENT_BYTES = 200
"""Estimated bytes of a cached "not answered here" beside the query text of its key."""
RETRY_SECONDS = 5.0
"""How long a plan whose statement failed leaves its document to the normal path."""


@dataclass(eq=False)
class Plan:
    """One statement answering a document for some of its variables' values."""

    sql: str
    params: tuple[Any, ...]
    slots: tuple[tuple[int, str, Callable[[Any], Any] | None], ...]
    """(parameter index, variable, the driver's conversion) for variables bound per request."""
    fixes: Fixes
    failed_until: float = field(default=0.0)

    @property
    def size(self) -> int:
        """Estimated bytes of the plan; its SQL text is its document's (`statements`)."""
        return PLAN_BYTES + PARAMETER_BYTES * len(self.params)

    def bind(self, variables: Mapping[str, Any]) -> Sequence[Any]:
        if not self.slots:
            return self.params
        params = list(self.params)
        for index, name, process in self.slots:
            value = variables[name]
            params[index] = value if process is None else process(value)
        return params


@dataclass(eq=False)
class Document:
    """A query document read once for a role's schema and a session's row rules."""

    schema: GraphQLSchema
    roots: Mapping[str, tuple[RootKind, Table]]
    operation: OperationDefinitionNode
    fragments: dict[str, FragmentDefinitionNode]
    visible: Visible
    bindable: dict[str, int]
    """Variables bound per request (`_query_variables`), with how often each is written."""
    plans: OrderedDict[Any, Plan | None] = field(default_factory=OrderedDict)
    statements: dict[str, str] = field(default_factory=dict)
    size: int = 0
    """Estimated bytes of the document (graph.byte_cache), without its plans."""

    def bytes(self) -> int:
        """What the document and its plans hold, as the plan cache counts it."""
        plans = sum(PLAN_BYTES if plan is None else plan.size for plan in self.plans.values())
        # A plan's key holds the values of the variables not bound per request, as JSON.
        keys = sum(len(values or b"") for _bound, values in self.plans)
        return self.size + plans + keys + sum(len(sql) for sql in self.statements)

    def coerce(self, raw: Mapping[str, Any] | None) -> VariableValues | None:
        """The request's variables as graphql-core coerces them; None when they do not coerce."""
        definitions = self.operation.variable_definitions
        if not definitions:
            return NO_VARIABLES
        coerced = get_variable_values(self.schema, definitions, dict(raw or {}))
        return None if isinstance(coerced, list) else coerced


NO_VARIABLES = VariableValues({}, {})
MISSING = object()


class QueryPlans:
    def __init__(
        self,
        model: DatabaseModel,
        reader: Reader,
        access: Access,
        permissions: Permissions,
        backend: Backend,
        cache_bytes: int = Limits.document_cache_bytes,
    ) -> None:
        self.model = model
        self.reader = reader
        self.access = access
        self.permissions = permissions
        self.backend = backend
        self.enabled = True
        """Off: every request takes the normal path (tests compare the two)."""
        self.compiled = 0
        """Plans compiled so far (tests check a document is compiled once)."""
        self.answered = 0
        """Requests answered here (tests check which path answered)."""
        # Bounded in bytes like the executors' documents (Limits.document_cache_bytes).
        self._documents: ByteBoundedCache[tuple[Any, ...], Document | None] = ByteBoundedCache(cache_bytes)
        self._roots: dict[Executor, dict[str, tuple[RootKind, Table]]] = {}
        self._session_rules: dict[str | None, bool] = {}

    async def answer(
        self,
        executor: Executor,
        session: Session,
        query: str,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        prepared: Prepared | None = None,
    ) -> bytes | None:
        """The whole response body of a query this can answer, else None.

        `prepared` is the executor's document of `query`, when the caller has it."""
        if not self.enabled or len(query) > MAX_QUERY_LENGTH:
            return None
        key = (executor, query, operation_name, self._session_key(session))
        if key in self._documents:
            document = self._documents.get(key)
        else:
            document = self._document(executor, session, query, operation_name, prepared)
            size = document.size if document is not None else len(query) + NO_DOCUMENT_BYTES
            self._documents.put(key, document, size)
        if document is None:
            return None
        values = document.coerce(variables)
        if values is None:
            return None
        plans = len(document.plans)
        plan = self._plan(document, values)
        if len(document.plans) != plans and key in self._documents:
            self._documents.put(key, document, document.bytes())  # its plans count too
        if plan is None or plan.failed_until > time.monotonic():
            return None
        return await self._run(plan, values.coerced)

    async def _run(self, plan: Plan, variables: Mapping[str, Any]) -> bytes | None:
        try:
            text = await self.backend.fetch(plan.sql, plan.bind(variables))
        except QueryFailed as error:
            log.debug("query plan fell back to normal execution: %s", error)
            plan.failed_until = time.monotonic() + RETRY_SECONDS
            return None
        if text is None:
            return None
        if not plan.fixes and self.backend.splices:
            self.answered += 1
            return b'{"data":' + text.encode() + b"}"
        try:
            data = orjson.loads(text)
            plan.fixes.apply(data)
            body = orjson.dumps({"data": data})
        except Exception as error:  # noqa: BLE001 - any surprise is the normal path's to answer
            log.debug("query plan answer not usable: %r", error)
            plan.failed_until = time.monotonic() + RETRY_SECONDS
            return None
        self.answered += 1
        return body

    def _session_key(self, session: Session) -> tuple[str | None, str | None]:
        """What of the session a plan's row rules depend on: the role, and the user if read.

        The role as rules see it: None for the admin secret, never the same
        key as a token whose role is named `admin`.
        """
        role = session.rules_role
        reads = self._session_rules.get(role)
        if reads is None:
            reads = self._session_rules[role] = _rules_read_session(self.permissions, self.model, role)
        return (role, session.user_id if reads else None)

    def _document(
        self,
        executor: Executor,
        session: Session,
        query: str,
        operation_name: str | None,
        prepared: Prepared | None,
    ) -> Document | None:
        if prepared is None:
            prepared = executor.prepare(query)
        document = prepared.document
        if document is None:
            return None  # the normal path reports why
        operation = get_operation_ast(document, operation_name)
        if operation is None or operation.operation is not OperationType.QUERY:
            return None
        roots = self._roots.get(executor)
        if roots is None:
            roots = self._roots[executor] = root_fields(executor.schema, self.model)
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        return Document(
            schema=executor.schema,
            roots=roots,
            operation=operation,
            fragments=fragments,
            visible=self.access.for_session(session).select_filter,
            bindable=bindable_variables(operation, fragments),
            size=prepared.size,
        )

    def _plan(self, document: Document, values: VariableValues) -> Plan | None:
        """The plan for these values: one per document, unless variables are not all bindable."""
        coerced = values.coerced
        bound = frozenset(
            name for name in document.bindable if is_bindable(coerced.get(name))
        )
        try:
            key = _plan_key(coerced, bound)
        except orjson.JSONEncodeError:
            return None
        plan = document.plans.get(key, MISSING)
        if plan is not MISSING:
            document.plans.move_to_end(key)
            assert plan is None or isinstance(plan, Plan)
            return plan
        plan = self._compile(document, values, bound)
        if not bound <= document.bindable.keys():  # some go by their values after all
            key = _plan_key(coerced, frozenset(bound & document.bindable.keys()))
        document.plans[key] = plan
        if len(document.plans) > PLANS_PER_DOCUMENT:
            document.plans.popitem(last=False)
        return plan

    def _compile(self, document: Document, values: VariableValues, bound: frozenset[str]) -> Plan | None:
        while bound:
            probes = {name: probe_for(values.coerced[name]) for name in bound}
            probed = VariableValues(values.sources, {**values.coerced, **probes})
            try:
                plan, failed = self._build(document, probed, probes)  # type: ignore[arg-type]
            except Exception as error:  # noqa: BLE001 - a probe may fail where a value would not
                log.debug("variables not bound per request: %r", error)
                plan, failed = None, set(bound)
            if not failed:
                return plan
            # Those go by their values from now on; try again with the others.
            document.bindable = {k: v for k, v in document.bindable.items() if k not in failed}
            document.plans.clear()
            document.statements.clear()
            bound = bound - failed
        try:
            return self._build(document, values, {})[0]
        except (Unsupported, Unrenderable, ForgeError, GraphQLError) as error:
            log.debug("no query plan: %s", error)
        except Exception:  # a fault of ours: said in the log, and the normal path answers
            log.warning("query plan not compiled; normal execution answers", exc_info=True)
        return None

    def _build(
        self, document: Document, variables: VariableValues, probes: Mapping[str, Probe]
    ) -> tuple[Plan | None, set[str]]:
        """The plan, or the probed variables that cannot be bound per request."""
        selection = Reading(
            document.schema, self.model, document.roots, document.fragments, document.operation, variables
        ).read()
        stmt, fixes = StatementBuilder(self.backend, self.reader, document.visible).build(selection)
        compiled = stmt.compile(
            dialect=self.backend.dialect, compile_kwargs={"render_postcompile": True}
        )
        names = tuple(compiled.positiontup or ())
        given = compiled.construct_params()
        values = [given[name] for name in names]
        processors: Mapping[str, Callable[[Any], Any]] = getattr(compiled, "_bind_processors", {})
        slots: tuple[tuple[int, str, Callable[[Any], Any] | None], ...] = ()
        if probes:
            found, failed = probe_slots(values, probes, document.bindable, compiled.string)
            if failed:
                return None, failed
            slots = tuple((index, name, processors.get(names[index])) for index, name in found)
            for index, _name in found:
                values[index] = None
        params = tuple(
            value if (process := processors.get(name)) is None else process(value)
            for name, value in zip(names, values, strict=True)
        )
        self.compiled += 1
        # Plans of one document differing only in their values share their SQL text.
        sql = document.statements.setdefault(compiled.string, compiled.string)
        return Plan(sql, params, slots, fixes), set()


def _plan_key(coerced: Mapping[str, Any], bound: frozenset[str]) -> tuple[frozenset[str], bytes | None]:
    """Which variables are bound per request, and the values of all the others."""
    fixed = {name: value for name, value in coerced.items() if name not in bound}
    return bound, orjson.dumps(fixed, option=orjson.OPT_SORT_KEYS) if fixed else None


def _rules_read_session(permissions: Permissions, model: DatabaseModel, role: str | None) -> bool:
    """Whether any of `role`'s select rules compares with a session variable."""
    for table in model.tables.values():
        rule = permissions.select(role, table)
        if rule is not None and rule.filter and rule.filter.reads_session:
            return True
    return False


def backend_for(database: Database) -> Backend | None:
    """The backend for the database's dialect, on the connections it owns for the plans.

    None where plans are not served: an in-memory SQLite database is one
    connection that only SQLAlchemy holds.
    """
    dialect = database.engine.dialect
    if database.name == "sqlite":
        from graph.plans._query_sqlite import FUNCTIONS, SQLiteBackend

        reads = database.reads(FUNCTIONS)
        return None if reads is None else SQLiteBackend(dialect, reads)
    if database.name == "postgresql":
        from graph.plans._query_postgres import PostgresBackend

        reads = database.reads()
        return None if reads is None else PostgresBackend(dialect, reads)
    return None


def query_plans_for(
    database: Database,
    model: DatabaseModel,
    reader: Reader,
    access: Access,
    permissions: Permissions,
    cache_bytes: int = Limits.document_cache_bytes,
) -> QueryPlans | None:
    backend = backend_for(database)
    if backend is None:
        return None
    return QueryPlans(model, reader, access, permissions, backend, cache_bytes)
