"""What a `tableChanged` subscription asks for, read once from its document.

Every valid subscription document on this schema has one root field,
`tableChanged`, whose type has only scalar fields, so a document reduces to
(table, filter, cursor, response keys). Documents that reduce alike share a
stream and each event is encoded once for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from graphql import FragmentDefinitionNode, GraphQLError, OperationType, get_operation_ast
from graphql.execution.values import get_argument_values, get_variable_values

from graph.errors import ValidationFailed
from graph.fanout import StreamKey
from graph.matching import check_filter
from graph.selection import collect_fields

if TYPE_CHECKING:
    from graphql import DocumentNode, GraphQLSchema

    from graph.events import ChangeEvent, ChangeType
    from graph.model import DatabaseModel, Table

TYPENAME = "TableChange"


def unknown_table(name: str) -> ValidationFailed:
    # The same words for a table that does not exist and one the role may not see.
    return ValidationFailed(f"table {name!r} does not exist or is not available to this role")


@dataclass(frozen=True)
class ChangeQuery:
    table: Table
    where: dict[str, Any] | None
    since: str | None
    root_key: str
    fields: tuple[tuple[str, str], ...]
    """(response key, TableChange field)"""

    def stream_key(self, protocol: str) -> StreamKey:
        where = orjson.dumps(self.where, option=orjson.OPT_SORT_KEYS).decode() if self.where else ""
        return StreamKey(protocol, self.table.name, where, (self.root_key, self.fields))

    def render(self, event: ChangeEvent, change: ChangeType) -> str:
        values = {
            "type": change,
            "table": event.table,
            "cursor": str(event.cursor),
            "__typename": TYPENAME,
        }
        out: dict[str, Any] = {}
        for key, name in self.fields:
            if name == "id":
                out[key] = event.key(self.table)
            elif name == "record":
                out[key] = event.new if change != "delete" else None
            elif name == "old_record":
                out[key] = event.old if change != "create" else None
            else:
                out[key] = values[name]
        return orjson.dumps({"data": {self.root_key: out}}).decode()


def plan_change_query(
    schema: GraphQLSchema,
    model: DatabaseModel,
    document: DocumentNode,
    variables: dict[str, Any] | None,
    operation_name: str | None,
) -> ChangeQuery:
    """Read a validated subscription document; GraphQLError or ForgeError when it cannot run."""
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not OperationType.SUBSCRIPTION:
        raise ValidationFailed("expected a subscription operation")
    coerced = get_variable_values(schema, operation.variable_definitions or (), variables or {})
    if isinstance(coerced, list):
        raise coerced[0]
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    roots = collect_fields(fragments, coerced, [operation.selection_set])
    if len(roots) != 1:
        raise ValidationFailed("a subscription selects exactly one root field")
    (root_key, nodes), = roots.items()
    subscription_type = schema.subscription_type
    assert subscription_type is not None
    args = get_argument_values(subscription_type.fields["tableChanged"], nodes[0], coerced)
    table = model.tables.get(args["table"])
    if table is None or not table.primary_key:
        raise unknown_table(args["table"])
    where = args.get("where")
    check_filter(table, where)
    since = args.get("since")
    selected = collect_fields(fragments, coerced, [n.selection_set for n in nodes if n.selection_set])
    fields = tuple((key, field_nodes[0].name.value) for key, field_nodes in selected.items())
    return ChangeQuery(table, where, since, root_key, fields)


__all__ = ["ChangeQuery", "GraphQLError", "plan_change_query", "unknown_table"]
