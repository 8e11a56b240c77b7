"""graphql-core completing a query answer around what the compiled statement answered.

The compiled statement answers every generated root field of a document in
one snapshot. graphql-core answers the rest of it: the root fields the
compiler does not own (introspection, `changeCursor`), and every answer that
holds an error. The generated root fields' resolvers then only hand over
their precomputed value, or raise their precomputed error
(`graph.schema.Precomputed`), so graphql-core says every error as it always
has: a root field's error at its path, a value the GraphQL scalar refuses at
the value's own path, nulls propagated to the nearest nullable field. The
keys of the answer follow the document, as graphql-core orders them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphql import ExecutionResult, execute
from graphql.pyutils import is_awaitable

from graph.plans._query_backend import MARK, unmark
from graph.schema import Precomputed

if TYPE_CHECKING:
    from collections.abc import Mapping

    from graphql import DocumentNode, GraphQLSchema


async def complete(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    answered: Mapping[str, Any],
    context: Any,
) -> ExecutionResult:
    """The answer, with `answered` (response key -> value or exception) as the generated fields' own."""
    result = execute(
        schema,
        document,
        root_value=Precomputed(answered),
        context_value=context,
        variable_values=dict(variables or {}),
        operation_name=operation_name,
    )
    if is_awaitable(result):
        result = await result
    assert isinstance(result, ExecutionResult)
    return result


def unmarked(node: Any) -> tuple[Any, int]:
    """`node` with each marker replaced by the value it holds, and how many there were."""
    if isinstance(node, dict):
        if len(node) == 1 and MARK in node:
            return unmark(node[MARK]), 1
        found = 0
        for key, value in node.items():
            if isinstance(value, dict | list):
                node[key], n = unmarked(value)
                found += n
        return node, found
    if isinstance(node, list):
        found = 0
        for index, value in enumerate(node):
            if isinstance(value, dict | list):
                node[index], n = unmarked(value)
                found += n
        return node, found
    return node, 0
