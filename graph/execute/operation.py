"""`answer`: one query or mutation, by the compiled path (graph.compile), over any transport."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from graphql import ExecutionResult, GraphQLError, OperationType

from graph.execution import format_error

if TYPE_CHECKING:
    from collections.abc import Sequence

    from graphql import DocumentNode

    from graph.access import Access
    from graph.auth import Session
    from graph.compile.mutation import MutationPlans
    from graph.compile.query_plans import QueryPlans
    from graph.execution import Executor, Prepared
    from graph.metrics import Metrics

log = logging.getLogger("forgegraph")


class Services(Protocol):
    """What answering needs of the server (graph.runtime.Runtime)."""

    @property
    def query_plans(self) -> QueryPlans: ...

    @property
    def mutations(self) -> MutationPlans: ...

    @property
    def access(self) -> Access: ...

    @property
    def metrics(self) -> Metrics: ...


@dataclass(frozen=True)
class Operation:
    """A query or mutation to answer: a validated document and one request's values."""

    executor: Executor
    """The session's role's (its schema and document cache)."""
    prepared: Prepared
    document: DocumentNode
    """`prepared.document`, which validated."""
    kind: OperationType
    """QUERY or MUTATION: subscriptions are each transport's own."""
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None
    session: Session


@dataclass(frozen=True)
class Answer:
    body: bytes
    """The whole response: `{"errors": [...], "data": ...}`, or `{"data": ...}` without errors."""
    failed: bool
    """Errors and no data at all: HTTP answers it with its request-error status."""


async def answer(services: Services, operation: Operation, transport: str) -> Answer:
    """The answer to `operation`, sent over `transport` (a label of forgegraph_operations_total)."""
    kind = operation.kind
    services.metrics.count_operation(kind.value, transport)
    if kind is OperationType.MUTATION:
        result = await services.mutations.execute(
            operation.executor.schema,
            operation.document,
            operation.query,
            operation.operation_name,
            operation.variables,
            services.access.for_session(operation.session),
        )
        return _answer(result)
    # Its generated fields in one cached statement, graphql-core around them
    # (introspection, `changeCursor`, errors at their paths).
    try:
        outcome = await services.query_plans.answer(
            operation.executor,
            operation.session,
            operation.query,
            operation.operation_name,
            operation.variables,
            operation.prepared,
        )
    except Exception as error:  # noqa: BLE001 - a fault of ours: `unexpected`, logged by format_error
        return failure(error)
    if isinstance(outcome, bytes):
        return Answer(outcome, failed=False)
    return _answer(outcome)


async def answer_many(services: Services, operations: Sequence[Operation], transport: str) -> list[Answer]:
    """The answers to queries of one document (executor, text, operation) for several sessions and
    variables: one statement for those sharing a plan (live queries refreshed together)."""
    if not operations:
        return []
    first = operations[0]
    try:
        outcomes = await services.query_plans.answer_many(
            first.executor,
            first.query,
            first.operation_name,
            [(operation.session, operation.variables) for operation in operations],
            first.prepared,
        )
    except Exception as error:  # noqa: BLE001 - a fault of ours: each answered alone tells it
        log.debug("answering %d queries together failed: %r", len(operations), error)
        return [await answer(services, operation, transport) for operation in operations]
    for _operation in operations:
        services.metrics.count_operation(OperationType.QUERY.value, transport)
    return [Answer(o, failed=False) if isinstance(o, bytes) else _answer(o) for o in outcomes]


def failure(error: Exception) -> Answer:
    """An operation that raised instead of answering, told as its error (logged by format_error)."""
    return _answer(ExecutionResult(None, [GraphQLError(str(error), original_error=error)]))


def _answer(result: ExecutionResult) -> Answer:
    body: dict[str, Any] = {}
    if result.errors:
        body["errors"] = [format_error(e) for e in result.errors]
    body["data"] = result.data
    return Answer(orjson.dumps(body), failed=result.data is None and bool(result.errors))
