"""A custom subscription (graph.extend): the user's async generator, run by graphql-core's `subscribe`.

Unlike `tableChanged`, nothing is shared between subscribers: each runs its
own generator, with the session's `Context` (graph.compile.custom). Every
result goes through the connection's send queue as an event does, so the
same slow-consumer rule closes a connection that does not keep up; the
socket's owner cancels the task on `complete`, on close and at token expiry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from graphql import (
    ExecutionResult,
    FragmentDefinitionNode,
    OperationType,
    get_operation_ast,
    subscribe,
)
from graphql.pyutils import is_awaitable

from graph.compile.selection import collect_fields
from graph.errors import contained
from graph.execution import format_error
from graph.extend import is_custom

if TYPE_CHECKING:
    from graphql import DocumentNode, GraphQLSchema


def is_custom_subscription(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None, variables: Mapping[str, Any] | None
) -> bool:
    """Whether the subscription's root field is a custom one (a validated subscription has one)."""
    operation = get_operation_ast(document, operation_name)
    root = schema.subscription_type
    if operation is None or operation.operation is not OperationType.SUBSCRIPTION or root is None:
        return False
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    fields = collect_fields(fragments, dict(variables or {}), [operation.selection_set])
    return any(is_custom(root.fields.get(nodes[0].name.value)) for nodes in fields.values())


def _body(result: ExecutionResult) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if result.errors:
        body["errors"] = [format_error(e) for e in result.errors]
    body["data"] = result.data
    return body


async def run_custom_subscription(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    context: Any,
    deliver: Callable[[dict[str, Any]], None],
    fail: Callable[[list[dict[str, Any]]], None],
    done: Callable[[], None],
) -> None:
    """Deliver each result of the subscription; `fail` with its errors, or `done` when it ends."""
    try:
        started = subscribe(
            schema, document, context_value=context, variable_values=dict(variables or {}),
            operation_name=operation_name,
        )
        if is_awaitable(started):
            started = await started
        if isinstance(started, ExecutionResult):
            fail(_body(started).get("errors") or [])
            return
        results = cast("AsyncIterator[ExecutionResult]", started)  # awaited above
        try:
            async for result in results:
                deliver(_body(result))
        finally:
            close = getattr(results, "aclose", None)
            if close is not None:
                await close()
    except Exception as error:  # noqa: BLE001 - the user's generator failed: this operation's error only
        fail([contained(error, "running a custom subscription").to_graphql()])
        return
    done()
