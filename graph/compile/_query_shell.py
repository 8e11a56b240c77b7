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

from graph.compile._query_backend import MARK, unmark
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
    context: Any = None,
) -> ExecutionResult:
    """The answer, with `answered` (response key -> value or exception) as the generated fields' own.

    `context`: what custom root fields' resolvers get as `info.context` (graph.compile.custom).
    """
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


Cut = tuple[Any, Any, int, tuple[Any, ...]]
"""Where a cut relationship's value goes: (container, key or index, cut number, the parent's join keys)."""


def unmarked(node: Any, cuts: list[Cut]) -> tuple[Any, int]:
    """`node` with each marker replaced by the value it holds, and how many there were.

    The markers of cut relationships (`Backend.cut`) are left for their own
    statements: where each goes is added to `cuts`.
    """
    found = 0
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(items):
        if isinstance(value, dict) and len(value) == 1 and MARK in value:
            encoded = value[MARK]
            if encoded[0] == "c":
                cuts.append((node, key, encoded[1], tuple(encoded[2:])))
            else:
                node[key] = unmark(encoded)
                found += 1
        elif isinstance(value, dict | list):
            node[key], n = unmarked(value, cuts)
            found += n
    return node, found
