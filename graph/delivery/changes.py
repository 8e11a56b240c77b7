"""What a `tableChanged` subscription asks for, read once from its document.

Every valid subscription document on this schema has one root field,
`tableChanged`, whose type has only scalar fields, so a document reduces to
(table, filter, cursor, response keys). Documents that reduce alike share a
stream and each event is encoded once for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import orjson
from graphql import FragmentDefinitionNode, GraphQLError, OperationType, get_operation_ast
from graphql.execution.values import get_argument_values, get_variable_values

from graph.compile.selection import collect_fields
from graph.errors import ValidationFailed
from graph.events.hub import StreamKey
from graph.rules.bool_exp import And, BoolExp, canonical
from graph.rules.parse import parse_stream_where

if TYPE_CHECKING:
    from graphql import DocumentNode, GraphQLSchema

    from graph.access import EventView, SessionAccess
    from graph.events.change import ChangeEvent, ChangeType
    from graph.model import DatabaseModel, Table

TYPENAME = "TableChange"


def unknown_table(name: str) -> ValidationFailed:
    # The same words for a table that does not exist and one the role may not see.
    return ValidationFailed(f"table {name!r} does not exist or is not available to this role")


def withdrawn(name: str) -> str:
    """Why a subscription a schema change left without a select rule ends (it never widens access)."""
    return f"table {name!r} is no longer available to this role: a schema change broke its permission rule"


def combine(view: EventView, where: BoolExp | None) -> BoolExp | None:
    """The session's row rule and the subscriber's own filter, as one bool_exp."""
    parts = tuple(exp for exp in (view.filter, where) if exp)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else BoolExp((And(parts),))


def project(row: dict[str, Any] | None, columns: tuple[str, ...] | None) -> dict[str, Any] | None:
    """A row image with only the columns the session may see."""
    if row is None or columns is None:
        return row
    return {name: row[name] for name in columns if name in row}


@dataclass(frozen=True)
class ChangeQuery:
    table: Table
    where: BoolExp | None
    """The subscriber's filter and the session's row rule together."""
    columns: tuple[str, ...] | None
    since: str | None
    root_key: str
    fields: tuple[tuple[str, str], ...]
    """(response key, TableChange field)"""
    shows_key: bool = True
    """Whether `id` is the row's key or null (graph.access.EventView.shows_key)."""

    def stream_key(self, protocol: str) -> StreamKey:
        # Sessions whose rules resolve alike (all anonymous, one user's tabs)
        # share a stream: the key holds the resolved rule, not the session.
        shape = (self.root_key, self.fields, self.columns)
        return StreamKey(protocol, self.table.name, canonical(self.where), shape)

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
                out[key] = event.key(self.table) if self.shows_key else None
            elif name == "record":
                out[key] = project(event.new, self.columns) if change != "delete" else None
            elif name == "old_record":
                out[key] = project(event.old, self.columns) if change != "create" else None
            else:
                out[key] = values[name]
        return orjson.dumps({"data": {self.root_key: out}}).decode()


def plan_change_query(
    schema: GraphQLSchema,
    model: DatabaseModel,
    document: DocumentNode,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    access: SessionAccess,
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
    view = access.event_view(table.name) if table is not None and table.primary_key else None
    if table is None or view is None:
        raise unknown_table(args["table"])
    # The subscriber may filter on what it may see, nothing else.
    visible = replace(table, columns=tuple(c for c in table.columns if c.name in view.columns))
    # Through relationships too, onto what the session may select of each table it walks into.
    where = parse_stream_where(
        visible, args.get("where"), remote=lambda rel: access.stream_table(rel.remote_table)
    )
    where = access.guard_related(table, where)
    since = args.get("since")
    selected = collect_fields(fragments, coerced, [n.selection_set for n in nodes if n.selection_set])
    fields = tuple((key, field_nodes[0].name.value) for key, field_nodes in selected.items())
    columns = None if view.columns == table.column_names else view.columns
    return ChangeQuery(
        table, combine(view, where), columns, since, root_key, fields, view.shows_key(table)
    )


__all__ = ["ChangeQuery", "GraphQLError", "plan_change_query", "unknown_table"]
