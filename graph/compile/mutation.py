"""Mutations answered without graphql-core's execution: read once per document, run on the driver.

A document of generated mutation fields is read once per role's schema (and
per values of the variables its @skip/@include read) by `_mutation_fields`;
each request then only coerces its variables and arguments (graphql-core's
own functions, so the same values and errors) and runs the fields'
statements in one transaction on the database driver (`_mutation_writes`,
`graph.dialect`). The answer is built from the RETURNING rows (and the
relationships read after them) before the commit.

Every outcome is answered here, as graphql-core's execution answered it:
variables that do not coerce are the request's errors; a root field that
fails is an error at its path, the other fields still run, and the whole
transaction is rolled back (data null); a COMMIT the database refuses, or
one whose outcome is unknown (the connection lost while committing: never
run again), is the request's one error. graphql-core executes only the
custom root fields (graph.extend), each in the transaction as a step of the
job (graph.compile.custom); a root field the schema builder did not tag is a
fault of ours (`unexpected`).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from graphql import ExecutionResult, GraphQLError, OperationType, get_operation_ast, located_error
from graphql.execution.values import get_variable_values

from graph.compile._mutation_fields import (
    CUSTOM,
    INSERT,
    INSERT_ONE,
    TYPENAME,
    UPDATE_BY_PK,
    MutationField,
    MutationOperation,
    directive_variables,
    read_mutation,
)
from graph.compile._mutation_nested import has_nested
from graph.compile._mutation_writes import FieldErrors, Request, Writes

if TYPE_CHECKING:
    import sqlalchemy as sa
    from graphql import DocumentNode, GraphQLSchema
    from graphql.execution.values import VariableValues

    from graph.access import SessionAccess
    from graph.compile._query_backend import Backend
    from graph.compile.custom import Custom
    from graph.dialect import Driver, Execute
    from graph.model import DatabaseModel
    from graph.sql.compiled import Statements
    from graph.sql.select import Reader

PLAN_CACHE_SIZE = 1024
# Inserts of up to this many rows (and one-row updates) are short enough to run
# without leaving the event loop on SQLite; anything else runs in its thread.
SHORT_INSERT_ROWS = 100
SHORT_KINDS = (INSERT_ONE, INSERT, UPDATE_BY_PK, TYPENAME)


class MutationPlans:
    """The mutation plans of one process: documents read once, per role's schema."""

    def __init__(
        self,
        model: DatabaseModel,
        tables: Mapping[str, sa.Table],
        reader: Reader,
        statements: Statements,
        driver: Driver,
        on_commit: Callable[[], None],
        backend: Backend,
        custom: Custom | None = None,
        written: Callable[[list[tuple[Any, str, list[Any]]], str], None] | None = None,
    ) -> None:
        self.model = model
        self.written = written
        """Told each committed mutation's rows, when they are the events (`serve --no-capture`)."""
        self.custom = custom
        self.driver = driver
        self.on_commit = on_commit
        self.writes = Writes(model, tables, reader, statements, backend)
        self.reads = 0
        """Documents read into plans (each once per role's schema, while cached)."""
        self._plans: OrderedDict[tuple[Any, ...], MutationOperation] = OrderedDict()
        self._directives: OrderedDict[tuple[int, str, str | None], tuple[str, ...] | None] = OrderedDict()

    def plan(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        query: str,
        operation_name: str | None,
        variables: VariableValues,
    ) -> MutationOperation:
        """The document's plan for this schema (and these directives' values)."""
        key: tuple[Any, ...] = (id(schema), query, operation_name)
        names = _cached(self._directives, key, lambda: directive_variables(document))
        if names is not None:
            values = json.dumps([variables.coerced.get(name) for name in names], default=str)
            key = (*key, values)
        if key in self._plans:
            self._plans.move_to_end(key)
            return self._plans[key]
        self.reads += 1
        operation = get_operation_ast(document, operation_name)
        if operation is None:
            raise ValueError(f"no operation {operation_name!r} in the document")
        plan = read_mutation(schema, self.model, document, operation, variables)
        _put(self._plans, key, plan)
        return plan

    async def execute(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        query: str,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        access: SessionAccess,
    ) -> ExecutionResult:
        """The answer to a validated mutation document."""
        try:
            operation = get_operation_ast(document, operation_name)
            if operation is None or operation.operation is not OperationType.MUTATION:
                raise ValueError(f"no mutation {operation_name!r} in the document")
            coerced = get_variable_values(schema, operation.variable_definitions or (), dict(variables or {}))
            if isinstance(coerced, list):
                return ExecutionResult(None, coerced)  # as graphql-core's execute answers them
            plan = self.plan(schema, document, query, operation_name, coerced)
            request = Request(schema, plan, [_arguments(f, coerced) for f in plan.fields], coerced, access)
            custom = self.custom
            if custom is not None and any(f.kind == CUSTOM for f in plan.fields):
                found = operation

                def run_custom(field: MutationField, execute: Execute) -> Awaitable[ExecutionResult]:
                    return custom.mutation_field(
                        schema, found, plan.fragments, field.nodes, variables, access.session, execute
                    )

                request.custom = run_custom
            result = await self._run(request)
        except Exception as error:  # noqa: BLE001 - a fault of ours: format_error logs it, the client gets `unexpected`
            return ExecutionResult(None, [GraphQLError(str(error), original_error=error)])
        return result

    async def _run(self, request: Request) -> ExecutionResult:
        if self.written is not None:
            request.access.written = []
        try:
            data = await self.driver.transact(
                self.writes.job(request), on_commit=self.on_commit, short=_short(request)
            )
        except FieldErrors as failed:
            # On PostgreSQL the fields after a failed one fail too ("current transaction
            # is aborted"): they report nothing of their own, the first failure is the answer.
            return ExecutionResult(None, [e for e in failed.errors if not _after_failure(e)] or failed.errors)
        except Exception as error:  # told to the client as graphql-core's path told it
            if request.returned:
                # The COMMIT failed (refused, or its outcome unknown): the request's one error.
                return ExecutionResult(None, [GraphQLError(str(error), original_error=error)])
            # No transaction (the database unreachable): the error of the field that needed it.
            field = request.current or next((f for f in request.plan.fields if f.kind != TYPENAME), None)
            if field is None:
                raise
            return ExecutionResult(None, [located_error(error, list(field.nodes), [field.key])])
        if self.written is not None and request.access.written:
            self.written(request.access.written, self.model.dialect)
        return ExecutionResult(data, None)


def _arguments(field: MutationField, variables: VariableValues) -> Mapping[str, Any] | Exception:
    try:
        return field.coerce(variables)
    except Exception as error:  # noqa: BLE001 - the field's error, reported in its turn
        return error


def _short(request: Request) -> bool:
    for field, args in zip(request.plan.fields, request.arguments, strict=True):
        if field.kind not in SHORT_KINDS or isinstance(args, Exception):
            return False
        if field.reads_relationships:
            return False
        if field.kind == INSERT and len(args.get("objects") or ()) > SHORT_INSERT_ROWS:
            return False
        if field.kind in (INSERT, INSERT_ONE) and field.table is not None:
            objects = args.get("objects") if field.kind == INSERT else [args.get("object") or {}]
            if has_nested(field.table, objects or ()):
                return False  # a tree of rows, of any size
    return True


def _after_failure(error: GraphQLError) -> bool:
    """A statement refused because an earlier one failed in the same transaction (SQLSTATE 25P02)."""
    return getattr(error.original_error, "sqlstate", None) == "25P02"


K = Any


def _cached(cache: OrderedDict[K, Any], key: K, make: Callable[[], Any]) -> Any:
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = make()
    _put(cache, key, value)
    return value


def _put(cache: OrderedDict[K, Any], key: K, value: Any) -> None:
    cache[key] = value
    if len(cache) > PLAN_CACHE_SIZE:
        cache.popitem(last=False)
