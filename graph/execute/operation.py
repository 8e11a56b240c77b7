"""`answer`: one query or mutation; queries always by the compiled path, mutations by it when they can."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from graphql import ExecutionResult, GraphQLError, OperationType

from graph.execution import format_error

if TYPE_CHECKING:
    from graphql import DocumentNode

    from graph.access import Access
    from graph.auth import Session
    from graph.context import RequestContext
    from graph.execution import Executor, Prepared
    from graph.metrics import Metrics
    from graph.plans.mutation import MutationPlans
    from graph.plans.query_plans import QueryPlans

COMPILED = "compiled"
RESOLVERS = "resolvers"


class Services(Protocol):
    """What answering needs of the server (graph.runtime.Runtime)."""

    @property
    def query_plans(self) -> QueryPlans | None: ...

    @property
    def mutations(self) -> MutationPlans: ...

    @property
    def access(self) -> Access: ...

    @property
    def metrics(self) -> Metrics: ...

    def request_context(self, session: Session) -> RequestContext: ...


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
    plans = services.query_plans
    if kind is OperationType.QUERY and plans is not None and plans.enabled:
        # Every query: its generated fields in one cached statement, graphql-core around them.
        # Compiled even when graphql-core completed it: no SQL but the compiler's ran.
        services.metrics.count_operation(kind.value, COMPILED, transport)
        try:
            outcome = await plans.answer(
                operation.executor,
                operation.session,
                operation.query,
                operation.operation_name,
                operation.variables,
                operation.prepared,
                lambda: services.request_context(operation.session),
            )
        except Exception as error:  # noqa: BLE001 - a fault of ours: `unexpected`, logged by format_error
            return failure(error)
        if isinstance(outcome, bytes):
            return Answer(outcome, failed=False)
        return _answer(outcome)
    result: ExecutionResult | None = None
    if kind is OperationType.MUTATION:
        result = await services.mutations.execute(
            operation.executor.schema,
            operation.document,
            operation.query,
            operation.operation_name,
            operation.variables,
            services.access.for_session(operation.session),
        )
    path = COMPILED
    if result is None:
        path = RESOLVERS
        context = services.request_context(operation.session)
        result = await operation.executor.execute(
            operation.document, context, operation.variables, operation.operation_name
        )
    services.metrics.count_operation(kind.value, path, transport)
    return _answer(result)


def failure(error: Exception) -> Answer:
    """An operation that raised instead of answering, told as its error (logged by format_error)."""
    return _answer(ExecutionResult(None, [GraphQLError(str(error), original_error=error)]))


def _answer(result: ExecutionResult) -> Answer:
    body: dict[str, Any] = {}
    if result.errors:
        body["errors"] = [format_error(e) for e in result.errors]
    body["data"] = result.data
    return Answer(orjson.dumps(body), failed=result.data is None and bool(result.errors))
