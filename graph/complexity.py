"""The cost of a GraphQL document, checked at validation against `--max-complexity`.

The estimate Apollo and graphql-cost-analysis users know: every field costs
1, and a list field multiplies the cost of what it selects by the rows it
is expected to return: its literal `limit` argument, else
`DEFAULT_LIST_SIZE`, and never more than `--max-limit` when that is set
(the server returns no more). A `limit` given as a variable is unknown at
validation (documents are validated once, before their variables) and
counts as if absent.

Introspection fields (`__schema`, `__type`, `__typename`) cost nothing, so
GraphiQL's introspection query passes whatever the maximum.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    ValidationRule,
)

if TYPE_CHECKING:
    from graphql import GraphQLOutputType, SelectionSetNode, ValidationContext

DEFAULT_LIST_SIZE = 10
"""Rows assumed for a list field without a literal `limit`."""


def complexity_rule(max_complexity: int, max_limit: int = 0) -> type[ValidationRule]:
    """A validation rule refusing operations that cost more than `max_complexity`."""

    class MaxComplexity(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            root = self.context.schema.get_root_type(node.operation)
            if root is None:
                return  # reported by graphql-core's own rules
            cost = Estimate(self.context, max_limit).selection_cost(root, node.selection_set)
            if cost > max_complexity:
                self.report_error(
                    GraphQLError(
                        f"the query cost {cost} exceeds the maximum cost of {max_complexity}"
                        " (each field costs 1; a list multiplies what it selects by its limit)",
                        node,
                    )
                )

    return MaxComplexity


class Estimate:
    def __init__(self, context: ValidationContext, max_limit: int) -> None:
        self.context = context
        self.max_limit = max_limit

    def selection_cost(
        self,
        parent: GraphQLObjectType,
        selection_set: SelectionSetNode | None,
        seen: frozenset[str] = frozenset(),
    ) -> int:
        if selection_set is None:
            return 0
        total = 0
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                total += self.field_cost(parent, node, seen)
            elif isinstance(node, InlineFragmentNode):
                total += self.selection_cost(self._narrowed(parent, node), node.selection_set, seen)
            elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen:
                # A fragment cycle is reported by graphql-core's NoFragmentCycles.
                fragment = self.context.get_fragment(node.name.value)
                if fragment is not None:
                    inner = seen | {node.name.value}
                    total += self.selection_cost(
                        self._narrowed(parent, fragment), fragment.selection_set, inner
                    )
        return total

    def field_cost(self, parent: GraphQLObjectType, node: FieldNode, seen: frozenset[str]) -> int:
        name = node.name.value
        if name.startswith("__"):
            return 0
        definition = parent.fields.get(name)
        if definition is None:
            return 1  # an unknown field: graphql-core's FieldsOnCorrectType reports it
        output, is_list = _unwrap(definition.type)
        inner = self.selection_cost(output, node.selection_set, seen) if output else 0
        return 1 + (self.rows(node) * inner if is_list else inner)

    def rows(self, node: FieldNode) -> int:
        """How many rows a list field is expected to return, as far as the document says."""
        rows = DEFAULT_LIST_SIZE
        for argument in node.arguments or ():
            if argument.name.value == "limit" and isinstance(argument.value, IntValueNode):
                rows = max(0, int(argument.value.value))
        return min(rows, self.max_limit) if self.max_limit else rows

    def _narrowed(self, parent: GraphQLObjectType, node: Any) -> GraphQLObjectType:
        if node.type_condition is None:
            return parent
        named = self.context.schema.get_type(node.type_condition.name.value)
        return named if isinstance(named, GraphQLObjectType) else parent


def _unwrap(output: GraphQLOutputType) -> tuple[GraphQLObjectType | None, bool]:
    """The object type a field selects from (None for scalars), and whether it is a list."""
    is_list = False
    while isinstance(output, GraphQLNonNull | GraphQLList):
        is_list = is_list or isinstance(output, GraphQLList)
        output = output.of_type
    return (output if isinstance(output, GraphQLObjectType) else None), is_list
