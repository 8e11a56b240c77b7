"""Answer every query: one cached SQL statement for the generated root fields, graphql-core for the rest.

A plan is compiled once per document, operation and role, and per the
values of the variables that are not bound per request (`_query_variables`):
never per user, since the session variables the role's row rules read are
statement parameters too (graph.access.RoleAccess), bound per request from
the session. The document is read into a selection tree
(`graph.compile._query_shape`), the tree into one SELECT that builds the answer's JSON
(`graph.compile._query_statement`), the SELECT compiled by SQLAlchemy into SQL text
and parameters. A request with that key then costs one statement on a driver
connection (`Backend.fetch`) and, at most, one parse and one dump of JSON.

Every root field of the document is read in that one statement (one
snapshot). graphql-core completes the answer (`graph.compile._query_shell`)
when the document also selects fields the compiler does not own
(introspection, `changeCursor`), when a root field's arguments are refused,
when the statement fails, or when a value is one GraphQL refuses: it then
tells each error at its own path, as a resolver raising it would. A
statement that fails is run again one root field at a time, so that each
field fails or answers alone. Variables that do not coerce are graphql-core's
own errors. There is no other path: a fault of ours is an error answer
(`unexpected`, logged by `graph.execution.format_error`).
"""

from __future__ import annotations

import logging
import re
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from graphql import ExecutionResult, FragmentDefinitionNode, GraphQLError, get_operation_ast
from graphql.execution.values import VariableValues, get_variable_values

from graph.byte_cache import ByteBoundedCache
from graph.compile._query_backend import MARK, QueryFailed
from graph.compile._query_batch import Batched, batched, row_of
from graph.compile._query_shape import (
    AggregateField,
    AggregateRoot,
    ArrayAggregateField,
    ArrayField,
    ByPkRoot,
    Foreign,
    ListRoot,
    ListSelection,
    NodesField,
    ObjectField,
    Owned,
    Reading,
    Refused,
    Root,
    RowSelection,
    Typename,
    root_fields,
)
from graph.compile._query_shell import Cut, complete, unmarked
from graph.compile._query_statement import Fixes, StatementBuilder
from graph.compile._query_variables import (
    Probe,
    bindable_variables,
    is_bindable,
    probe_for,
    probe_slots,
)
from graph.config import Limits
from graph.sql.compiled import Statement

if TYPE_CHECKING:
    from graphql import DocumentNode, GraphQLSchema, OperationDefinitionNode
    from sqlalchemy.sql.compiler import SQLCompiler

    from graph.access import Access
    from graph.auth import Session
    from graph.compile._query_backend import Backend
    from graph.compile.custom import Custom
    from graph.dialect import Database, Execute
    from graph.execution import Executor, Prepared
    from graph.model import DatabaseModel, Table
    from graph.root_field import RootKind
    from graph.rules.permissions import Permissions
    from graph.rules.to_sql import SessionParameters, Visible
    from graph.sql.select import Reader

log = logging.getLogger("forgegraph")
MAX_QUERY_LENGTH = 65_536
"""Longer documents are compiled for each request, not kept: the cache holds their text."""
PLANS_PER_DOCUMENT = 16
"""Plans of one document (values of variables that are not bound per request)."""
PLAN_BYTES = 1_000
"""Estimated bytes of one plan beside its SQL text and parameters (its fixes, its slots)."""
PARAMETER_BYTES = 100
BATCH_ROWS = 1_000
"""Requests answered by one batched statement at most (`answer_many`)."""
PLANNED_KEPT = 10_000
"""Requests of `answer_many` whose plan and coerced variables are kept for their next answer."""
CUT_KEYS = 10_000
"""Parent rows per statement of a cut relationship (their keys are its parameters)."""
IN_TRANSACTION: ContextVar[Execute | None] = ContextVar("forgegraph_reads_in_transaction", default=None)
"""Set while a custom mutation's rows are read (graph.compile.custom): the statements then run in
its transaction, which sees what it wrote, instead of on the plans' own connections."""


@dataclass(eq=False)
class Plan:
    """One statement answering a document for some of its variables' values."""

    sql: str | None
    """None when no root field is read (only introspection, `changeCursor`, refused fields)."""
    params: tuple[Any, ...]
    slots: tuple[tuple[int, str, Callable[[Any], Any] | None], ...]
    """(parameter index, variable, the driver's conversion) for variables bound per request."""
    session_slots: tuple[tuple[int, str, Callable[[Any], Any] | None], ...]
    """(parameter index, session parameter, the driver's conversion) for the session's values."""
    fixes: Fixes
    errors: Mapping[str, Exception]
    """Root fields refused while reading or building, by response key: their answer is their error."""
    shell: bool
    """Whether graphql-core completes every answer (root fields not ours, or errors)."""
    cuts: tuple[ObjectField | ArrayField | ArrayAggregateField, ...] = ()
    """Relationships too deep for the statement, read by statements of their own (`Backend.max_nesting`)."""

    @property
    def size(self) -> int:
        """Estimated bytes of the plan; its SQL text is its document's (`statements`)."""
        return PLAN_BYTES + PARAMETER_BYTES * len(self.params)

    def bind(self, variables: Mapping[str, Any], session: SessionParameters) -> Sequence[Any]:
        if not self.slots and not self.session_slots:
            return self.params
        params = list(self.params)
        for index, name, process in self.slots:
            value = variables[name]
            params[index] = value if process is None else process(value)
        for index, key, process in self.session_slots:
            value = session[key]
            params[index] = value if process is None else process(value)
        return params


@dataclass(eq=False)
class Document:
    """A query document read once for a role: its schema, and its row rules with session parameters."""

    schema: GraphQLSchema
    document: DocumentNode
    roots: Mapping[str, tuple[RootKind, Table]]
    operation: OperationDefinitionNode
    fragments: dict[str, FragmentDefinitionNode]
    visible: Visible
    bindable: dict[str, int]
    """Variables bound per request (`_query_variables`), with how often each is written."""
    plans: OrderedDict[Any, Plan] = field(default_factory=OrderedDict)
    statements: dict[str, str] = field(default_factory=dict)
    size: int = 0
    """Estimated bytes of the document (graph.byte_cache), without its plans."""

    def bytes(self) -> int:
        """What the document and its plans hold, as the plan cache counts it."""
        plans = sum(plan.size for plan in self.plans.values())
        # A plan's key holds the values of the variables not bound per request, as JSON.
        keys = sum(len(values or b"") for _bound, values in self.plans)
        return self.size + plans + keys + sum(len(sql) for sql in self.statements)

    def coerce(self, raw: Mapping[str, Any] | None) -> VariableValues | list[GraphQLError]:
        """The request's variables as graphql-core coerces them, or its errors when they do not coerce."""
        definitions = self.operation.variable_definitions
        if not definitions:
            return NO_VARIABLES
        return get_variable_values(self.schema, definitions, dict(raw or {}))


NO_VARIABLES = VariableValues({}, {})


@dataclass(eq=False)
class Beside:
    """A SQL expression (no parameters) read in the same statement as a query's rows: one snapshot.

    A stream (graph.delivery.streams) reads the change log's newest cursor
    beside its first rows, so it knows exactly which changes those rows
    already hold. `value` stays None when the answer took more than one
    statement (a root field refused, a statement that failed).
    """

    sql: str
    value: str | None = None


@dataclass(frozen=True)
class Reads:
    """What a query's answer depends on (`QueryPlans.tables_read`)."""

    tables: frozenset[str] | None
    """The tables whose changes may alter it; None: any table."""
    session: bool
    """Whether it binds session values (a row rule reads X-User-Id): users of one role may differ."""


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
        self.compiled = 0
        """Plans compiled so far (tests check a document is compiled once)."""
        self.custom: Custom | None = None
        """Contexts for custom root fields' resolvers (graph.extend), when the schema has any."""
        # Bounded in bytes like the executors' documents (Limits.document_cache_bytes).
        self._documents: ByteBoundedCache[tuple[Any, ...], Document] = ByteBoundedCache(cache_bytes)
        self._roots: dict[Executor, dict[str, tuple[RootKind, Table]]] = {}
        # Kept as long as their plan is: a plan leaves with its document.
        self._batches: weakref.WeakKeyDictionary[Plan, Batched | None] = weakref.WeakKeyDictionary()
        self._planned_kept: OrderedDict[tuple[Any, ...], tuple[Document, Plan, VariableValues] | list[GraphQLError]]
        self._planned_kept = OrderedDict()
        """`answer_many`'s requests, planned: a live query asks the same again after each commit."""

    async def answer(
        self,
        executor: Executor,
        session: Session,
        query: str,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        prepared: Prepared | None = None,
        *,
        beside: Beside | None = None,
    ) -> bytes | ExecutionResult:
        """The answer to a validated query: the whole response body, or graphql-core's result to format.

        `prepared` is the executor's document of `query`, when the caller has it;
        `beside`, an expression to read in the same statement (its `value` is set).
        """
        planned = self._planned(executor, session, query, operation_name, variables, prepared)
        if isinstance(planned, list):
            return ExecutionResult(None, planned)
        document, plan, values = planned
        answered = await self._run(document, plan, values, self.access.parameters(session), beside)
        if isinstance(answered, bytes):
            return answered
        context = self.custom.context(session, variables) if self.custom is not None else None
        return await complete(document.schema, document.document, operation_name, variables, answered, context)

    async def _fetch(self, sql: str, params: Sequence[Any]) -> str | None:
        """The statement's one value: on the plans' connections, or in a transaction (`IN_TRANSACTION`)."""
        run = IN_TRANSACTION.get()
        if run is None:
            return await self.backend.fetch(sql, params)
        try:
            rows = await run(Statement(sql, tuple(params)))
        except Exception as error:  # whatever it is, graph.errors classifies its cause
            raise QueryFailed(str(error)) from error
        value = rows[0][0] if rows else None
        if value is not None and not isinstance(value, str):
            raise QueryFailed(f"unexpected answer {type(value).__name__}")
        return value

    def tables_read(
        self,
        executor: Executor,
        session: Session,
        query: str,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        prepared: Prepared | None = None,
    ) -> Reads:
        """What the answer to this query (a live query's) depends on, beside its variables and role.

        Its tables: the selection's, and every table the plan's statement
        names (row rules and filters through relationships read theirs in
        it). A relationship read by a statement of its own, or a view (whose
        tables are not known here), counts as reading every table.
        """
        planned = self._planned(executor, session, query, operation_name, variables, prepared)
        if isinstance(planned, list):
            return Reads(frozenset(), session=False)  # the answer is its errors, whatever changes
        document, plan, values = planned
        if plan.cuts:
            return Reads(None, session=True)
        names: set[str] = set()
        for root in self._read(document, values):
            if isinstance(root, Owned):
                _selection_tables(root, names)
        if plan.sql is not None:
            words = set(_WORD.findall(plan.sql))
            names.update(name for name in self.model.tables if name in words or f'"{name}"' in plan.sql)
        if any(self.model.tables[name].is_view for name in names if name in self.model.tables):
            return Reads(None, session=bool(plan.session_slots))
        return Reads(frozenset(names), session=bool(plan.session_slots))

    def _planned(
        self,
        executor: Executor,
        session: Session,
        query: str,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        prepared: Prepared | None,
    ) -> tuple[Document, Plan, VariableValues] | list[GraphQLError]:
        """The document's plan for these variables, or the variables' errors."""
        # The role as rules see it: None for the admin secret, never the same
        # key as a token whose role is named `admin`. Never the user: the
        # session's values are the plan's parameters.
        role = session.rules_role
        key = (executor, query, operation_name, role)
        document = self._documents.get(key) if len(query) <= MAX_QUERY_LENGTH else None
        if document is None:
            document = self._document(executor, role, query, operation_name, prepared)
            if len(query) <= MAX_QUERY_LENGTH:
                self._documents.put(key, document, document.size)
        values = document.coerce(variables)
        if isinstance(values, list):
            return values
        plans = len(document.plans)
        plan = self._plan(document, values)
        if len(document.plans) != plans and key in self._documents:
            self._documents.put(key, document, document.bytes())  # its plans count too
        return document, plan, values

    async def _run(
        self,
        document: Document,
        plan: Plan,
        values: VariableValues,
        session: SessionParameters,
        beside: Beside | None = None,
    ) -> bytes | dict[str, Any]:
        """The response body when nothing is left to graphql-core; else each root field's answer."""
        answered: dict[str, Any] = {}
        if plan.sql is not None:
            sql = plan.sql
            if beside is not None:
                # The answer is one text value: the expression's text and a space go before it.
                sql = f"SELECT CAST(({beside.sql}) AS TEXT) || ' ' || ({plan.sql})"
            try:
                params = plan.bind(values.coerced, session)
                # The usual case without a frame of its own: this is every query's path.
                if IN_TRANSACTION.get() is None:
                    text = await self.backend.fetch(sql, params)
                else:
                    text = await self._fetch(sql, params)
            except QueryFailed as failure:
                answered = await self._one_by_one(document, plan, values, session, failure)
            else:
                if beside is not None and text is not None:
                    beside.value, _, text = text.partition(" ")
                done = await self._answered(document, plan, text, session)
                if isinstance(done, bytes):
                    return done
                answered = done
        answered.update(plan.errors)
        return answered

    async def _answered(
        self, document: Document, plan: Plan, text: str | None, session: SessionParameters
    ) -> bytes | dict[str, Any]:
        """The response body from the statement's JSON text; or each root field's answer, for graphql-core."""
        if text is None:
            raise QueryFailed("the statement answered no row")
        if not plan.shell and MARK not in text and not plan.fixes and self.backend.splices:
            return b'{"data":' + text.encode() + b"}"
        answered, raw = await self._finished(document, text, plan.fixes, plan.cuts, session)
        if not plan.shell and not raw:
            return orjson.dumps({"data": answered})
        return dict(answered)

    async def answer_many(
        self,
        executor: Executor,
        query: str,
        operation_name: str | None,
        requests: Sequence[tuple[Session, Mapping[str, Any] | None]],
        prepared: Prepared | None = None,
    ) -> list[bytes | ExecutionResult]:
        """`answer` for each (session, variables) of one document: one statement for the requests
        that share a plan (live queries refreshed together), their bound values its parameter.

        A request the batch cannot carry, or every request of a batch that
        fails, is answered alone, exactly as `answer` would.
        """
        out: list[bytes | ExecutionResult | None] = [None] * len(requests)
        batches: dict[Plan, list[tuple[int, Document, SessionParameters, list[Any]]]] = {}
        for number, (session, variables) in enumerate(requests):
            planned = self._planned_again(executor, session, query, operation_name, variables, prepared)
            if isinstance(planned, list):
                out[number] = ExecutionResult(None, planned)
                continue
            document, plan, values = planned
            parameters = self.access.parameters(session)
            batch = self._batch_of(plan)
            row = None
            if batch is not None:
                row = row_of(plan.bind(values.coerced, parameters), batch.varying)
            if row is not None:
                batches.setdefault(plan, []).append((number, document, parameters, row))
        failed: dict[Plan, list[int]] = {}
        chunks = [
            (plan, members[start : start + BATCH_ROWS])
            for plan, members in batches.items()
            for start in range(0, len(members), BATCH_ROWS)
        ]
        for plan, chunk in chunks:
            if len(chunk) < 2:
                continue
            batch = self._batch_of(plan)
            assert batch is not None
            rows = orjson.dumps([row for *_rest, row in chunk]).decode()
            try:
                text = await self.backend.fetch(batch.sql, (*batch.constants, rows))
                answers = dict(orjson.loads(text or "[]"))
            except (QueryFailed, orjson.JSONDecodeError, TypeError, ValueError) as error:
                log.debug("a batch of %d answers failed; answering each alone: %r", len(chunk), error)
                failed.setdefault(plan, []).extend(number for number, *_rest in chunk)
                continue
            for row_number, (number, document, parameters, _row) in enumerate(chunk):
                try:
                    done = await self._answered(document, plan, answers.get(row_number), parameters)
                except Exception as error:  # noqa: BLE001 - answered alone below, which tells its error
                    log.debug("a batched answer failed; answering it alone: %r", error)
                    continue
                if not isinstance(done, bytes):
                    done.update(plan.errors)
                    _session, variables = requests[number]
                    out[number] = await complete(
                        document.schema, document.document, operation_name, variables, done
                    )
                else:
                    out[number] = done
        for number, (session, variables) in enumerate(requests):
            if out[number] is None:
                out[number] = await self.answer(executor, session, query, operation_name, variables, prepared)
        for plan, numbers in failed.items():
            # Each answered alone, where the batch failed: the batched statement is what fails
            # (too deep for SQLite's parser, say), not the database. Not batched again.
            if all(isinstance(answer := out[n], bytes) and not answer.startswith(b'{"errors"') for n in numbers):
                self._batches[plan] = None
        return [answer for answer in out if answer is not None]

    def _planned_again(
        self,
        executor: Executor,
        session: Session,
        query: str,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        prepared: Prepared | None,
    ) -> tuple[Document, Plan, VariableValues] | list[GraphQLError]:
        """`_planned`, kept: coercing the variables and finding the plan cost three quarters of a
        refresh of 1,000 live queries' variable sets (`make bench`), the statement the rest."""
        try:
            values = orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS).decode()
        except (orjson.JSONEncodeError, TypeError):
            return self._planned(executor, session, query, operation_name, variables, prepared)
        key = (executor, query, operation_name, session.rules_role, values)
        kept = self._planned_kept
        found = kept.get(key)
        if found is not None:
            kept.move_to_end(key)
            return found
        found = kept[key] = self._planned(executor, session, query, operation_name, variables, prepared)
        if len(kept) > PLANNED_KEPT:
            kept.popitem(last=False)
        return found

    def _batch_of(self, plan: Plan) -> Batched | None:
        """The plan's statement batched over its bound values (made once per plan), or None."""
        if plan in self._batches:
            return self._batches[plan]
        batch = None
        varying = {index for index, _name, _process in (*plan.slots, *plan.session_slots)}
        if plan.sql is not None and not plan.shell and not plan.cuts and varying:
            batch = batched(self.backend.dialect.name, plan.sql, plan.params, varying)
        self._batches[plan] = batch
        return batch

    async def _finished(
        self,
        document: Document,
        text: str,
        fixes: Fixes,
        cuts: Sequence[ObjectField | ArrayField | ArrayAggregateField],
        session: SessionParameters,
    ) -> tuple[Any, int]:
        """The statement's JSON as Python, finished, its cut relationships read by statements
        of their own; and how many values GraphQL must refuse itself."""
        data = fixes.apply(orjson.loads(text))
        raw = fixes.take_raw()
        if MARK not in text:
            return data, raw
        data, found = await self._stitched(document, data, cuts, session)
        return data, raw + found

    async def _stitched(
        self, document: Document, data: Any, cuts: Sequence[ObjectField | ArrayField | ArrayAggregateField], session: SessionParameters
    ) -> tuple[Any, int]:
        """`data` with its markers read: values GraphQL refuses (counted), and cut relationships."""
        places: list[Cut] = []
        data, raw = unmarked(data, places)
        by_cut: dict[int, list[Cut]] = {}
        for place in places:
            by_cut.setdefault(place[2], []).append(place)
        for number, wanted in by_cut.items():
            field = cuts[number]
            values, n = await self._cut(document, field, {place[3] for place in wanted}, session)
            raw += n
            empty: Any = [] if isinstance(field, ArrayField) else None
            for container, key, _number, keys in wanted:
                container[key] = values.get(keys, empty)
        return data, raw

    async def _cut(
        self,
        document: Document,
        field: ObjectField | ArrayField | ArrayAggregateField,
        keys: set[tuple[Any, ...]],
        session: SessionParameters,
    ) -> tuple[dict[tuple[Any, ...], Any], int]:
        """A cut relationship's value for each parent's join keys (rows with a NULL key have none)."""
        keys = {k for k in keys if None not in k}
        out: dict[tuple[Any, ...], Any] = {}
        raw = 0
        ordered = sorted(keys, key=repr)
        for start in range(0, len(ordered), CUT_KEYS):
            builder = StatementBuilder(self.backend, self.reader, document.visible)
            stmt, fixes = builder.cut(field, field.relationship.table, ordered[start : start + CUT_KEYS])
            compiled = stmt.compile(dialect=self.backend.dialect, compile_kwargs={"render_postcompile": True})
            params = _processed(compiled, _values(compiled, session))
            try:
                text = await self._fetch(compiled.string, params)
            except QueryFailed as failure:
                # The driver's error, for graph.errors to classify (an outage, a refusal).
                raise (failure.__cause__ if isinstance(failure.__cause__, Exception) else failure) from None
            if text is None:
                raise QueryFailed("the statement answered no row")
            rows = orjson.loads(text)
            width = len(field.relationship.local_columns)
            for row in rows:
                value = row[width]
                if isinstance(field, ArrayField):
                    row[width] = [fixes.apply(item) for item in value]
                elif value is not None:
                    row[width] = fixes.apply(value)
                raw += fixes.take_raw()
            if MARK in text:
                rows, n = await self._stitched(document, rows, builder.cuts, session)
                raw += n
            out.update((tuple(row[:width]), row[width]) for row in rows)
        return out, raw

    async def _one_by_one(
        self,
        document: Document,
        plan: Plan,
        values: VariableValues,
        session: SessionParameters,
        failure: QueryFailed,
    ) -> dict[str, Any]:
        """Each root field's answer on its own statement, once the statement of them all failed.

        The failure (a value the database refuses, an outage) is told at the
        root field it belongs to, the others answer, as when each field had
        its own statement; the driver's error is graph.errors' to classify.
        """
        error: Exception = failure.__cause__ if isinstance(failure.__cause__, Exception) else failure
        roots = [r for r in self._read(document, values) if not isinstance(r, Foreign | Refused)]
        read = [r for r in roots if r.key not in plan.errors and not isinstance(r, Typename)]
        if len(read) <= 1:
            return {r.key: error for r in read}
        answered: dict[str, Any] = {}
        for root in read:
            builder = StatementBuilder(self.backend, self.reader, document.visible)
            stmt, fixes, errors = builder.build([root])
            answered.update(errors)
            if stmt is None:
                continue
            compiled = stmt.compile(dialect=self.backend.dialect, compile_kwargs={"render_postcompile": True})
            params = _processed(compiled, _values(compiled, session))
            try:
                text = await self._fetch(compiled.string, params)
            except QueryFailed as failed:
                answered[root.key] = failed.__cause__ if isinstance(failed.__cause__, Exception) else failed
                continue
            if text is None:
                raise QueryFailed("the statement answered no row")
            finished, _raw = await self._finished(document, text, fixes, builder.cuts, session)
            answered.update(finished)
        return answered

    def _document(
        self,
        executor: Executor,
        role: str | None,
        query: str,
        operation_name: str | None,
        prepared: Prepared | None,
    ) -> Document:
        if prepared is None:
            prepared = executor.prepare(query)
        document = prepared.document
        if document is None:
            raise ValueError("the query plans answer validated documents only")
        operation = get_operation_ast(document, operation_name)
        if operation is None:
            raise ValueError(f"no operation {operation_name!r} in the document")
        roots = self._roots.get(executor)
        if roots is None:
            roots = self._roots[executor] = root_fields(executor.schema, self.model)
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        return Document(
            schema=executor.schema,
            document=document,
            roots=roots,
            operation=operation,
            fragments=fragments,
            visible=self.access.for_role(role).select_filter,
            bindable=bindable_variables(operation, fragments),
            size=prepared.size,
        )

    def _plan(self, document: Document, values: VariableValues) -> Plan:
        """The plan for these values: one per document, unless variables are not all bindable."""
        coerced = values.coerced
        bound = frozenset(
            name for name in document.bindable if is_bindable(coerced.get(name))
        )
        try:
            key = _plan_key(coerced, bound)
        except orjson.JSONEncodeError:  # values JSON cannot key (an integer past 64 bits): not kept
            return self._compile(document, values, frozenset())
        plan = document.plans.get(key)
        if plan is not None:
            document.plans.move_to_end(key)
            return plan
        plan = self._compile(document, values, bound)
        if not bound <= document.bindable.keys():  # some go by their values after all
            key = _plan_key(coerced, frozenset(bound & document.bindable.keys()))
        document.plans[key] = plan
        if len(document.plans) > PLANS_PER_DOCUMENT:
            document.plans.popitem(last=False)
        return plan

    def _compile(self, document: Document, values: VariableValues, bound: frozenset[str]) -> Plan:
        while bound:
            probes = {name: probe_for(values.coerced[name]) for name in bound}
            probed = VariableValues(values.sources, {**values.coerced, **probes})
            try:
                plan, failed = self._build(document, probed, probes)  # type: ignore[arg-type]
            except Exception as error:  # noqa: BLE001 - a probe may fail where a value would not
                log.debug("variables not bound per request: %r", error)
                plan, failed = None, set(bound)
            if plan is not None and not failed:
                return plan
            # Those go by their values from now on; try again with the others.
            document.bindable = {k: v for k, v in document.bindable.items() if k not in failed}
            document.plans.clear()
            document.statements.clear()
            bound = bound - failed
        plan, _failed = self._build(document, values, {})
        assert plan is not None
        return plan

    def _read(self, document: Document, variables: VariableValues) -> tuple[Root, ...]:
        return Reading(
            document.schema, self.model, document.roots, document.fragments, document.operation, variables
        ).read()

    def _build(
        self, document: Document, variables: VariableValues, probes: Mapping[str, Probe]
    ) -> tuple[Plan | None, set[str]]:
        """The plan, or the probed variables that cannot be bound per request."""
        selection = self._read(document, variables)
        builder = StatementBuilder(self.backend, self.reader, document.visible)
        stmt, fixes, errors = builder.build(selection)
        if probes and errors:
            return None, set(probes)  # refused for a probe's sake, or for a value's: go by values
        foreign = any(isinstance(root, Foreign) for root in selection)
        shell = foreign or bool(errors)
        self.compiled += 1
        if stmt is None:
            return Plan(None, (), (), (), fixes, errors, shell=True), set()
        compiled = stmt.compile(
            dialect=self.backend.dialect, compile_kwargs={"render_postcompile": True}
        )
        names = tuple(compiled.positiontup or ())
        given = compiled.construct_params()
        values = [given[name] for name in names]
        processors: Mapping[str, Callable[[Any], Any]] = getattr(compiled, "_bind_processors", {})
        slots: tuple[tuple[int, str, Callable[[Any], Any] | None], ...] = ()
        session_parameters = self.access.filters.session_parameters
        session_slots = tuple(
            (index, name, processors.get(name)) for index, name in enumerate(names) if name in session_parameters
        )
        if probes:
            found, failed = probe_slots(values, probes, document.bindable, compiled.string)
            if failed:
                return None, failed
            slots = tuple((index, name, processors.get(names[index])) for index, name in found)
            for index, _name in found:
                values[index] = None
        params = _processed(compiled, values)
        # Plans of one document differing only in their values share their SQL text.
        sql = document.statements.setdefault(compiled.string, compiled.string)
        plan = Plan(sql, params, slots, session_slots, fixes, errors, shell=shell, cuts=tuple(builder.cuts))
        return plan, set()


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
"""An unquoted identifier of SQL text."""


def _selection_tables(
    node: Owned | RowSelection | ListSelection | AggregateRoot | NodesField | AggregateField, out: set[str]
) -> None:
    """Add the tables a root field's selection reads, relationships and aggregates included."""
    if isinstance(node, ListRoot):
        _selection_tables(node.rows, out)
    elif isinstance(node, ByPkRoot | ListSelection):
        _selection_tables(node.row, out)
    elif isinstance(node, AggregateRoot):
        out.add(node.table.name)
        for part in node.fields:
            if isinstance(part, NodesField):
                _selection_tables(part.row, out)
    elif isinstance(node, NodesField):
        _selection_tables(node.row, out)
    elif isinstance(node, RowSelection):
        out.add(node.table.name)
        for item in node.fields:
            if isinstance(item, ObjectField):
                _selection_tables(item.row, out)
            elif isinstance(item, ArrayField | ArrayAggregateField):
                _selection_tables(item.rows, out)


def _values(compiled: SQLCompiler, session: SessionParameters) -> list[Any]:
    """The statement's parameter values, in order, the session's among them."""
    given = compiled.construct_params()
    return [session[name] if name in session else given[name] for name in compiled.positiontup or ()]


def _processed(compiled: SQLCompiler, values: Sequence[Any]) -> tuple[Any, ...]:
    """The statement's parameter values, in order, as the driver takes them."""
    names = tuple(compiled.positiontup or ())
    processors: Mapping[str, Callable[[Any], Any]] = getattr(compiled, "_bind_processors", {})
    return tuple(
        value if (process := processors.get(name)) is None else process(value)
        for name, value in zip(names, values, strict=True)
    )




def _plan_key(coerced: Mapping[str, Any], bound: frozenset[str]) -> tuple[frozenset[str], bytes | None]:
    """Which variables are bound per request, and the values of all the others."""
    fixed = {name: value for name, value in coerced.items() if name not in bound}
    return bound, orjson.dumps(fixed, option=orjson.OPT_SORT_KEYS) if fixed else None


def backend_for(database: Database) -> Backend:
    """The backend for the database's dialect, on the connections it owns for the plans."""
    dialect = database.engine.dialect
    if database.name == "sqlite":
        from graph.compile._query_sqlite import FUNCTIONS, SQLiteBackend

        return SQLiteBackend(dialect, database.reads(FUNCTIONS))
    from graph.compile._query_postgres import PostgresBackend

    return PostgresBackend(dialect, database.reads())


def query_plans_for(
    database: Database,
    model: DatabaseModel,
    reader: Reader,
    access: Access,
    permissions: Permissions,
    cache_bytes: int = Limits.document_cache_bytes,
) -> QueryPlans:
    return QueryPlans(model, reader, access, permissions, backend_for(database), cache_bytes)
