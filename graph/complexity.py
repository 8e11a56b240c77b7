"""The cost of a GraphQL document, checked at validation against `--max-complexity`.

The estimate Apollo and graphql-cost-analysis users know: every field costs
1, and a list field multiplies the cost of what it selects by the rows it
is expected to return: its literal `limit` argument, else
`DEFAULT_LIST_SIZE`, and never more than `--max-limit` when that is set
(the server returns no more). A `limit` given as a variable is unknown at
validation (documents are validated once, before their variables) and
counts as if absent.

Introspection fields (`__schema`, `__type` and what they select) cost 1
each like any other field, but their lists are not multiplied: they list
the schema, whose size is the server's, not rows a client can ask more of
(the nesting that multiplies introspection work is bounded by graphql-core's
MaxIntrospectionDepthRule). GraphiQL's whole introspection query costs about
220. The `aggregate` object of a `t_aggregate` field costs 1, whatever it
selects: it is one row of numbers, read in one pass. `__typename` costs nothing: it is answered from the type without
reading anything, and Apollo's client adds it to every selection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

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
    SchemaMetaFieldDef,
    TypeMetaFieldDef,
)

if TYPE_CHECKING:
    from graphql import (
        FragmentDefinitionNode,
        GraphQLField,
        GraphQLOutputType,
        GraphQLSchema,
        SelectionSetNode,
    )

DEFAULT_LIST_SIZE = 10
"""Rows assumed for a list field without a literal `limit`."""


class DocumentContext(Protocol):
    """What the estimates read of graphql-core's ValidationContext (graph.document_limits
    gives the same without a validation pass)."""

    @property
    def schema(self) -> GraphQLSchema: ...

    def get_fragment(self, name: str) -> FragmentDefinitionNode | None: ...


def complexity_error(
    context: DocumentContext, node: OperationDefinitionNode, max_complexity: int, max_limit: int = 0
) -> GraphQLError | None:
    """The error for an operation that costs more than `max_complexity`, else None."""
    root = context.schema.get_root_type(node.operation)
    if root is None:
        return None  # reported by graphql-core's own rules
    cost = Estimate(context, max_limit).selection_cost(root, node.selection_set)
    if cost <= max_complexity:
        return None
    return GraphQLError(
        f"the query cost {cost} exceeds the maximum cost of {max_complexity}"
        " (each field costs 1; a list multiplies what it selects by its limit)",
        node,
    )



class Estimate:
    def __init__(self, context: DocumentContext, max_limit: int) -> None:
        self.context = context
        self.max_limit = max_limit
        self._fragments: dict[tuple[str, str], int] = {}

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
                    narrowed = self._narrowed(parent, fragment)
                    # Once per fragment and type: a fragment spreading another twice, 40
                    # levels down, must not cost 2**40 steps to estimate.
                    key = (node.name.value, narrowed.name)
                    cost = self._fragments.get(key)
                    if cost is None:
                        inner = seen | {node.name.value}
                        cost = self._fragments[key] = self.selection_cost(narrowed, fragment.selection_set, inner)
                    total += cost
        return total

    def field_cost(self, parent: GraphQLObjectType, node: FieldNode, seen: frozenset[str]) -> int:
        name = node.name.value
        if name == "__typename":
            return 0
        definition = field_definition(self.context, parent, name)
        if definition is None:
            return 1  # an unknown field: graphql-core's FieldsOnCorrectType reports it
        output, is_list = _unwrap(definition.type)
        if name == "aggregate" and output is not None and output.name.endswith("_aggregate_fields"):
            # One row of numbers whatever it selects (one pass over the rows): 1, as a column.
            return 1
        inner = self.selection_cost(output, node.selection_set, seen) if output else 0
        if is_list and not _introspection(output):
            return 1 + self.rows(node) * inner
        return 1 + inner

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


def field_definition(context: DocumentContext, parent: GraphQLObjectType | None, name: str) -> GraphQLField | None:
    """The definition of field `name` on `parent`, the root's introspection fields included."""
    if parent is None:
        return None
    if name == "__schema" and parent is context.schema.query_type:
        return SchemaMetaFieldDef
    if name == "__type" and parent is context.schema.query_type:
        return TypeMetaFieldDef
    return parent.fields.get(name)


def _introspection(output: GraphQLObjectType | None) -> bool:
    return output is not None and output.name.startswith("__")


def _unwrap(output: GraphQLOutputType) -> tuple[GraphQLObjectType | None, bool]:
    """The object type a field selects from (None for scalars), and whether it is a list."""
    is_list = False
    while isinstance(output, GraphQLNonNull | GraphQLList):
        is_list = is_list or isinstance(output, GraphQLList)
        output = output.of_type
    return (output if isinstance(output, GraphQLObjectType) else None), is_list
