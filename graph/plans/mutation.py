"""Mutations answered without graphql-core's execution: read once per document, run on the driver.

A document made only of generated mutation fields selecting columns is
read once per role's schema (`_mutation_fields`); each request then only
coerces its variables and arguments (graphql-core's own functions, so the
same values and errors) and runs the fields' statements in one transaction
on the database driver (`_mutation_writes`, `graph.dialect`). The answer
is built from the RETURNING rows before the commit.

Nothing here reports an error to the client. Whatever goes wrong before the
commit (a variable that does not coerce, a constraint violation, a failed
permission check, a value the answer cannot hold), or a commit the database
refuses (a deferred constraint), rolls the transaction back and hands the
request to the normal path, which runs it again and answers exactly as it
always has. Only a connection lost while committing, when the
transaction may stand, is answered here, since running it again could
apply it twice.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from graphql import ExecutionResult, GraphQLError
from graphql.execution.values import get_argument_values, get_variable_values

from graph.errors import CommitOutcomeUnknown, ForgeError
from graph.plans._mutation_fields import (
    INSERT,
    INSERT_ONE,
    TYPENAME,
    UPDATE_BY_PK,
    Anomaly,
    MutationField,
    MutationOperation,
    NotPlanned,
    read_mutation,
)
from graph.plans._mutation_writes import Writes

if TYPE_CHECKING:
    import sqlalchemy as sa
    from graphql import DocumentNode, GraphQLSchema
    from graphql.execution.values import VariableValues

    from graph.access import SessionAccess
    from graph.dialect import Driver
    from graph.model import DatabaseModel
    from graph.sql.compiled import Statements
    from graph.sql.select import Reader

log = logging.getLogger("forgegraph.plans")
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
        driver: Driver | None,
        on_commit: Callable[[], None],
    ) -> None:
        self.model = model
        self.driver = driver
        self.on_commit = on_commit
        self.writes = Writes(model, tables, reader, statements)
        self.enabled = driver is not None
        """False sends every mutation down the normal path (tests compare the two)."""
        self.reads = 0
        """Documents read into plans (each once per role's schema, while cached)."""
        self.answered = 0
        self.handed_over = 0
        """Requests a plan existed for that the normal path answered after all."""
        self._plans: OrderedDict[tuple[int, str, str | None], MutationOperation | None] = OrderedDict()

    def plan(
        self, schema: GraphQLSchema, document: DocumentNode, query: str, operation_name: str | None
    ) -> MutationOperation | None:
        """The document's plan for this schema, read on first use; None when it has none."""
        key = (id(schema), query, operation_name)
        if key in self._plans:
            self._plans.move_to_end(key)
            return self._plans[key]
        self.reads += 1
        try:
            plan: MutationOperation | None = read_mutation(schema, self.model, document, operation_name)
        except NotPlanned as reason:
            log.debug("no mutation plan: %s", reason)
            plan = None
        self._plans[key] = plan
        if len(self._plans) > PLAN_CACHE_SIZE:
            self._plans.popitem(last=False)
        return plan

    async def execute(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        query: str,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        access: SessionAccess,
    ) -> ExecutionResult | None:
        """The answer to a mutation, or None when the normal path must answer it."""
        if not self.enabled or self.driver is None:
            return None
        plan = self.plan(schema, document, query, operation_name)
        if plan is None:
            return None
        try:
            fields = _arguments(schema, plan, variables)
            job = self.writes.job(fields, access)
            data = await self.driver.transact(job, on_commit=self.on_commit, short=_short(fields))
        except CommitOutcomeUnknown as error:
            # Not run again: the first attempt may have committed.
            return ExecutionResult(None, [GraphQLError(error.message, original_error=error)])
        except Exception as error:  # every failure is the normal path's to report
            self.handed_over += 1
            if not _expected(error):
                log.warning("a mutation plan failed; the normal path answers: %r", error, exc_info=error)
            return None
        self.answered += 1
        return ExecutionResult(data, None)


def _arguments(
    schema: GraphQLSchema, plan: MutationOperation, variables: Mapping[str, Any] | None
) -> list[tuple[MutationField, Mapping[str, Any]]]:
    coerced: VariableValues | None = None
    if plan.variable_definitions:
        values = get_variable_values(schema, plan.variable_definitions, dict(variables or {}))
        if isinstance(values, list):
            raise _Refused("the variables do not coerce")
        coerced = values
    out: list[tuple[MutationField, Mapping[str, Any]]] = []
    for field in plan.fields:
        if field.arguments is not None:
            out.append((field, field.arguments))
        elif field.field is None or field.node is None:
            out.append((field, {}))
        else:
            out.append((field, get_argument_values(field.field, field.node, coerced)))
    return out


def _short(fields: list[tuple[MutationField, Mapping[str, Any]]]) -> bool:
    for field, args in fields:
        if field.kind not in SHORT_KINDS:
            return False
        if field.kind == INSERT and len(args.get("objects") or ()) > SHORT_INSERT_ROWS:
            return False
    return True


class _Refused(Exception):
    """The request's values are not acceptable; the normal path tells the client why."""


def _expected(error: Exception) -> bool:
    """Failures the normal path reports to the client as errors of the request."""
    if isinstance(error, ForgeError | GraphQLError | Anomaly | _Refused | sqlite3.Error | OSError):
        return True
    return type(error).__module__.startswith("asyncpg")
