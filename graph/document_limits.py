"""The checks of `Limits` on a parsed document: depth, aliases per operation, cost (graph.complexity).

Introspection counts like any other field. `__Type.ofType` alone adds no
depth: it unwraps one list or non-null wrapper of a type reference, a chain
as long as the schema's deepest wrapping (null beyond), and GraphiQL's
standard query follows it nine times. The nesting that does multiply
introspection work (`fields { type { fields ...`) is bounded by graphql-core's
own MaxIntrospectionDepthRule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    InlineFragmentNode,
    OperationDefinitionNode,
    get_named_type,
)

from graph.complexity import DocumentContext, complexity_error, field_definition

if TYPE_CHECKING:
    from graphql import DocumentNode, GraphQLSchema, SelectionSetNode

    from graph.config import Limits


def depth_error(context: DocumentContext, node: OperationDefinitionNode, max_depth: int) -> GraphQLError | None:
    root = context.schema.get_root_type(node.operation)
    depth = _depth(context, root, node.selection_set, frozenset(), {})
    if depth <= max_depth:
        return None
    return GraphQLError(f"the query depth {depth} exceeds the maximum depth of {max_depth}", node)



def _depth(
    context: DocumentContext,
    parent: GraphQLObjectType | None,
    selection_set: SelectionSetNode | None,
    seen: frozenset[str],
    memo: dict[tuple[str, str | None], int],
) -> int:
    if selection_set is None:
        return 0
    deepest = 0
    for node in selection_set.selections:
        if isinstance(node, FieldNode):
            name = node.name.value
            definition = field_definition(context, parent, name)
            named = get_named_type(definition.type) if definition is not None else None
            inner = named if isinstance(named, GraphQLObjectType) else None
            level = 0 if name == "ofType" and parent is not None and parent.name == "__Type" else 1
            deepest = max(deepest, level + _depth(context, inner, node.selection_set, seen, memo))
        elif isinstance(node, InlineFragmentNode):
            deepest = max(deepest, _depth(context, _narrowed(context, parent, node), node.selection_set, seen, memo))
        elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen:
            fragment = context.get_fragment(node.name.value)
            if fragment is not None:
                narrowed = _narrowed(context, parent, fragment)
                # Once per fragment and type, as for the cost (graph.complexity).
                key = (node.name.value, narrowed.name if narrowed is not None else None)
                depth = memo.get(key)
                if depth is None:
                    inner_seen = seen | {node.name.value}
                    depth = memo[key] = _depth(context, narrowed, fragment.selection_set, inner_seen, memo)
                deepest = max(deepest, depth)
    return deepest


def _narrowed(
    context: DocumentContext, parent: GraphQLObjectType | None, node: InlineFragmentNode | FragmentDefinitionNode
) -> GraphQLObjectType | None:
    if node.type_condition is None:
        return parent
    named = context.schema.get_type(node.type_condition.name.value)
    return named if isinstance(named, GraphQLObjectType) else parent


def alias_error(
    node: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
    max_aliases: int,
    counted: dict[str, int] | None = None,
) -> GraphQLError | None:
    """The error for an operation with more than `max_aliases` aliased fields, else None.

    Aliases are how one document asks for the same work many times (2,000
    aliases of `__schema`); an operation counts the aliases it reaches, those
    of the fragments it spreads included, once per spread.
    """
    aliases = _aliases(node.selection_set, fragments, {} if counted is None else counted, frozenset())
    if aliases <= max_aliases:
        return None
    return GraphQLError(
        f"the operation has {aliases} aliases, more than the maximum of {max_aliases} (--max-aliases)",
        node,
    )



def _fragments(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


def _aliases(
    selection_set: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    counted: dict[str, int],
    seen: frozenset[str],
) -> int:
    """Aliases under `selection_set`; each fragment's count is worked out once (`counted`)."""
    if selection_set is None:
        return 0
    total = 0
    for node in selection_set.selections:
        if isinstance(node, FieldNode):
            total += (node.alias is not None) + _aliases(node.selection_set, fragments, counted, seen)
        elif isinstance(node, InlineFragmentNode):
            total += _aliases(node.selection_set, fragments, counted, seen)
        elif isinstance(node, FragmentSpreadNode):
            name = node.name.value
            if name in counted:
                total += counted[name]
            elif name not in seen and name in fragments:  # a cycle is NoFragmentCycles' to report
                counted[name] = _aliases(fragments[name].selection_set, fragments, counted, seen | {name})
                total += counted[name]
    return total



@dataclass(frozen=True)
class _Document:
    """A DocumentContext for checking a parsed document without a validation pass."""

    schema: GraphQLSchema
    fragments: dict[str, FragmentDefinitionNode]

    def get_fragment(self, name: str) -> FragmentDefinitionNode | None:
        return self.fragments.get(name)


def limit_errors(schema: GraphQLSchema, document: DocumentNode, limits: Limits) -> list[GraphQLError]:
    """The limits' errors, read straight off the document.

    Run before graphql-core's validation, whose visitor walks every node with
    type information: a document past a limit (2,000 aliases) is refused for
    the price of counting, and the aliases are counted first.
    """
    context = _Document(schema, _fragments(document))
    counted: dict[str, int] = {}
    errors: list[GraphQLError | None] = []
    for node in document.definitions:
        if not isinstance(node, OperationDefinitionNode):
            continue
        if limits.max_aliases:
            error = alias_error(node, context.fragments, limits.max_aliases, counted)
            if error is not None:
                errors.append(error)
                continue  # depth and cost would walk what the aliases repeat
        if limits.max_depth:
            errors.append(depth_error(context, node, limits.max_depth))
        if limits.max_complexity:
            errors.append(complexity_error(context, node, limits.max_complexity, limits.max_limit))
    return [error for error in errors if error is not None]
