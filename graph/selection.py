"""A GraphQL field's sub-selection, read once into the plans of `graph.sql.plan`.

Fragments, aliases and @skip/@include are resolved here, so the SQL layer
sees only columns, relationships and arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLIncludeDirective,
    GraphQLSkipDirective,
    InlineFragmentNode,
    SelectionSetNode,
)
from graphql.execution.values import get_argument_values, get_directive_values

from graph.sql.plan import ListQuery, RowShape

if TYPE_CHECKING:
    from graphql import GraphQLObjectType, GraphQLResolveInfo

    from graph.model import DatabaseModel, Table


def subfields(info: GraphQLResolveInfo, nodes: Iterable[FieldNode]) -> dict[str, list[FieldNode]]:
    """The fields selected under `nodes`, grouped by response key, in document order."""
    selection_sets = [n.selection_set for n in nodes if n.selection_set is not None]
    return collect_fields(info.fragments, info.variable_values, selection_sets)


def collect_fields(
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Any,
    selection_sets: Iterable[SelectionSetNode],
) -> dict[str, list[FieldNode]]:
    """Fields by response key, with fragments spread and @skip/@include applied."""
    out: dict[str, list[FieldNode]] = {}
    seen: set[str] = set()

    def walk(selection_set: SelectionSetNode) -> None:
        for node in selection_set.selections:
            if not _included(variables, node):
                continue
            if isinstance(node, FieldNode):
                key = node.alias.value if node.alias else node.name.value
                out.setdefault(key, []).append(node)
            elif isinstance(node, InlineFragmentNode):
                walk(node.selection_set)
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                fragment = fragments.get(name)
                if fragment is not None and name not in seen:
                    seen.add(name)
                    walk(fragment.selection_set)

    for selection_set in selection_sets:
        walk(selection_set)
    return out


def _included(variables: Any, node: Any) -> bool:
    skip = get_directive_values(GraphQLSkipDirective, node, variables)
    if skip and skip.get("if"):
        return False
    include = get_directive_values(GraphQLIncludeDirective, node, variables)
    return not (include is not None and not include.get("if"))


def list_query(
    info: GraphQLResolveInfo,
    model: DatabaseModel,
    table: Table,
    nodes: list[FieldNode],
    args: dict[str, Any],
) -> ListQuery:
    return ListQuery(
        shape=row_shape(info, model, table, nodes),
        where=args.get("where"),
        order_by=_as_list(args.get("order_by")),
        limit=args.get("limit"),
        offset=args.get("offset"),
    )


def row_shape(
    info: GraphQLResolveInfo, model: DatabaseModel, table: Table, nodes: list[FieldNode]
) -> RowShape:
    object_type: GraphQLObjectType = info.schema.get_type(table.name)  # type: ignore[assignment]
    relationships = {rel.name: rel for rel in table.relationships}
    columns = set(table.column_names)
    shape = RowShape(table=table)
    for key, field_nodes in subfields(info, nodes).items():
        name = field_nodes[0].name.value
        if name in columns:
            shape.columns.append((key, name))
        elif name in relationships:
            rel = relationships[name]
            remote = model.table(rel.remote_table)
            if rel.is_array:
                args = get_argument_values(
                    object_type.fields[name], field_nodes[0], info.variable_values
                )
                shape.arrays.append((key, rel, list_query(info, model, remote, field_nodes, args)))
            else:
                shape.objects.append((key, rel, row_shape(info, model, remote, field_nodes)))
    return shape


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]
