"""What a `t_stream` subscription asks for, read once from its document.

A stream reads its rows through the query compiler, as a query of `t` would:
its selection is kept as written (aliases, fragments, relationships) under
a generated query, `rows: t(where: $forgegraph_where, order_by: ...,
limit: $forgegraph_limit)`, which also selects the cursor column and the
primary key under names of ours. The same document reads both the rows
after the cursor (the catch-up pages) and the rows just inserted (by their
keys), so both go through the role's row and column rules alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphql import (
    FragmentDefinitionNode,
    FragmentSpreadNode,
    OperationType,
    VariableNode,
    get_operation_ast,
    print_ast,
    visit,
)
from graphql.execution.values import get_argument_values, get_variable_values
from graphql.language import Visitor

from graph import inflection
from graph.compile.selection import collect_fields
from graph.errors import ValidationFailed
from graph.root_field import RootKind, root_field

if TYPE_CHECKING:
    from graphql import DocumentNode, FieldNode, GraphQLSchema, Node

    from graph.model import DatabaseModel, Table

ROWS = "rows"
"""The response key of the generated query's one root field."""
CURSOR_KEY = "forgegraph_stream_cursor"
"""The cursor column's value in each row read (dropped before sending)."""
KEY_PREFIX = "forgegraph_stream_key_"
"""`KEY_PREFIX + i`: the i-th primary key column's value in each row read (dropped before sending)."""


@dataclass(frozen=True)
class StreamQuery:
    table: Table
    root_key: str
    """The subscription's response key: each message is `{"data": {root_key: [rows]}}`."""
    batch_size: int
    column: str
    """The cursor column."""
    descending: bool
    initial: Any
    """The cursor's initial value: rows after it (before it when descending) are streamed."""
    where: dict[str, Any] | None
    """The subscriber's `where`, as its coerced input value."""
    document: str
    """The query reading the rows (module docstring)."""
    variables: dict[str, Any]
    """The subscription's variables the selection uses."""

    @property
    def key_columns(self) -> tuple[str, ...]:
        return self.table.primary_key

    def after(self, value: Any, key: tuple[Any, ...] | None = None) -> dict[str, Any]:
        """Rows after (`value`, `key`) in cursor order; with no key, after `value` alone.

        Ties on the cursor column are broken by the primary key, so rows with
        equal cursor values are neither skipped nor repeated across pages.
        """
        beyond = "_lt" if self.descending else "_gt"
        after: dict[str, Any] = {self.column: {beyond: value}}
        if key is None or self.key_columns == (self.column,):
            return after
        tie: list[dict[str, Any]] = []
        for i in reversed(range(len(key))):
            # key[:i] equal and key[i] beyond it: lexicographic order, built from the end.
            step: dict[str, Any] = {self.key_columns[i]: {beyond: key[i]}}
            tie = [{"_or": [step, {"_and": [{self.key_columns[i]: {"_eq": key[i]}}, *tie]}]}] if tie else [step]
        return {"_or": [after, {"_and": [{self.column: {"_eq": value}}, *tie]}]}

    def filter(self, *more: dict[str, Any]) -> dict[str, Any]:
        """The subscriber's `where` and `more`, all of them."""
        parts = [self.where] if self.where else []
        return {"_and": [*parts, *more]}

    def with_keys(self, keys: list[tuple[Any, ...]]) -> dict[str, Any]:
        """Rows with one of these primary keys (and past the initial cursor, and matching `where`)."""
        if len(self.key_columns) == 1:
            chosen: dict[str, Any] = {self.key_columns[0]: {"_in": [k[0] for k in keys]}}
        else:
            chosen = {"_or": [{"_and": [{c: {"_eq": v}} for c, v in zip(self.key_columns, k, strict=True)]}
                              for k in keys]}
        return self.filter(self.after(self.initial), chosen)

    def variables_for(self, where: dict[str, Any], limit: int | None) -> dict[str, Any]:
        return {**self.variables, "forgegraph_where": where, "forgegraph_limit": limit}


def plan_stream(
    schema: GraphQLSchema,
    model: DatabaseModel,
    document: DocumentNode,
    variables: dict[str, Any] | None,
    operation_name: str | None,
) -> StreamQuery | None:
    """Read a validated subscription document; None when its root field is not a `t_stream`.

    ValidationFailed (or graphql-core's GraphQLError) when it cannot run.
    """
    operation = get_operation_ast(document, operation_name)
    subscription_type = schema.subscription_type
    if operation is None or operation.operation is not OperationType.SUBSCRIPTION or subscription_type is None:
        return None
    coerced = get_variable_values(schema, operation.variable_definitions or (), variables or {})
    if isinstance(coerced, list):
        raise coerced[0]
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    roots = collect_fields(fragments, coerced, [operation.selection_set])
    if len(roots) != 1:
        return None  # graph.delivery.changes says why
    (root_key, nodes), = roots.items()
    field = subscription_type.fields.get(nodes[0].name.value)
    tag = root_field(field) if field is not None else None
    if field is None or tag is None or tag.kind is not RootKind.STREAM or tag.table is None:
        return None
    table = model.tables[tag.table]
    args = get_argument_values(field, nodes[0], coerced)
    batch_size = args["batch_size"]
    if batch_size < 1:
        raise ValidationFailed(f"batch_size must be at least 1, not {batch_size}")
    cursors = [c for c in args["cursor"] if c is not None]
    if len(cursors) != 1:
        raise ValidationFailed(f"{inflection.inflection_of(model).root(table, 'select_stream')} takes exactly one cursor, not {len(cursors)}")
    initial_value = cursors[0]["initial_value"]
    if len(initial_value) != 1:
        raise ValidationFailed(
            f"a cursor's initial_value names exactly one column, not {len(initial_value)}"
        )
    (column, initial), = initial_value.items()
    if initial is None:
        raise ValidationFailed(f"the cursor's initial value of column {column!r} must not be null")
    used_variables, used_fragments = _used(nodes, fragments)
    definitions = [d for d in operation.variable_definitions or () if d.variable.name.value in used_variables]
    text = _document(inflection.inflection_of(model), table, column, cursors[0].get("ordering") == "DESC", nodes, definitions,
                     [fragments[name] for name in used_fragments if name in fragments])
    given = variables or {}
    return StreamQuery(
        table=table,
        root_key=root_key,
        batch_size=batch_size,
        column=column,
        descending=cursors[0].get("ordering") == "DESC",
        initial=initial,
        where=args.get("where"),
        document=text,
        variables={name: given[name] for name in used_variables if name in given},
    )


def _used(nodes: list[FieldNode], fragments: dict[str, FragmentDefinitionNode]) -> tuple[set[str], list[str]]:
    """The variables and fragments the fields' selections use, fragments' own uses included."""
    variables: set[str] = set()
    spread: list[str] = []

    class Uses(Visitor):
        def enter_variable(self, node: VariableNode, *_: Any) -> None:
            variables.add(node.name.value)

        def enter_fragment_spread(self, node: FragmentSpreadNode, *_: Any) -> None:
            if node.name.value not in spread:
                spread.append(node.name.value)

    def walk(node: Node) -> None:
        visit(node, Uses())

    for node in nodes:
        if node.selection_set is not None:
            walk(node.selection_set)
    done = 0
    while done < len(spread):  # fragments spread inside fragments
        fragment = fragments.get(spread[done])
        done += 1
        if fragment is not None:
            walk(fragment)
    return variables, spread


def _document(
    names: inflection.Inflection,
    table: Table,
    column: str,
    descending: bool,
    nodes: list[FieldNode],
    definitions: list[Any],
    fragments: list[FragmentDefinitionNode],
) -> str:
    direction = names.order_direction("desc" if descending else "asc")
    order = [column, *(c for c in table.primary_key if c != column)]
    order_by = ", ".join(f"{{{name}: {direction}}}" for name in order)
    extra = " ".join(
        [f"{CURSOR_KEY}: {column}", *(f"{KEY_PREFIX}{i}: {c}" for i, c in enumerate(table.primary_key))]
    )
    selections = " ".join(print_ast(n.selection_set)[1:-1] for n in nodes if n.selection_set is not None)
    declared = ", ".join(
        [f"$forgegraph_where: {names.bool_exp(table.name)}", "$forgegraph_limit: Int",
         *(print_ast(d) for d in definitions)]
    )
    query = (
        f"query ForgegraphStream({declared}) {{ {ROWS}: {names.root(table, 'select')}(where: $forgegraph_where, "
        f"{names.argument('order_by')}: [{order_by}], limit: $forgegraph_limit) {{ {selections} {extra} }} }}"
    )
    return "\n".join([query, *(print_ast(f) for f in fragments)])
