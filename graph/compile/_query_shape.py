"""A validated query operation read into a tree of what it selects, with GraphQL gone.

Pure: no SQL and no I/O. Fields are collected as every reader collects them
(`graph.compile.selection`: fragments spread, @skip/@include applied, fields
merged by response key), arguments coerced by graphql-core, and the selection
order of every field kept: it is the key order of the answer. A root field
the compiler does not own (introspection, `changeCursor`) is read as
`Foreign`, for graphql-core to answer; one whose reading raised (an argument
refused) as `Refused`, carrying its error, which graphql-core tells at the
field's path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphql import GraphQLObjectType, OperationType
from graphql.execution.values import get_argument_values

from graph import inflection
from graph.compile.selection import collect_fields
from graph.root_field import RootKind, root_field
from graph.sql.order import check_distinct_on

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from graphql import (
        FieldNode,
        FragmentDefinitionNode,
        GraphQLSchema,
        OperationDefinitionNode,
        SelectionSetNode,
    )
    from graphql.execution.values import VariableValues

    from graph.model import Column, DatabaseModel, Relationship, Table

TYPENAME = "__typename"


class Unsupported(Exception):
    """A selection the generated schema cannot hold (the document did not validate against it)."""


@dataclass(frozen=True)
class Typename:
    key: str
    name: str


@dataclass(frozen=True)
class ColumnField:
    key: str
    column: Column


@dataclass(frozen=True)
class ObjectField:
    key: str
    relationship: Relationship
    row: RowSelection


@dataclass(frozen=True)
class ArrayField:
    key: str
    relationship: Relationship
    rows: ListSelection


@dataclass(frozen=True)
class ArrayAggregateField:
    """`<array relationship>_aggregate`: the related rows' aggregate, per parent row."""

    key: str
    relationship: Relationship
    rows: AggregateRoot


@dataclass(frozen=True)
class CountField:
    """`count(columns:, distinct:)`: rows, or rows where every one of `columns` is not null."""

    key: str
    columns: tuple[str, ...] = ()
    distinct: bool = False


@dataclass(frozen=True)
class FunctionField:
    """`sum { col }`, `avg`, `min`, `max` and the statistics: one function over several columns."""

    key: str
    function: str
    fields: tuple[ColumnField | Typename, ...]


@dataclass(frozen=True)
class AggregateField:
    """`aggregate { count sum { ... } ... }`."""

    key: str
    fields: tuple[CountField | FunctionField | Typename, ...]


@dataclass(frozen=True)
class NodesField:
    """`nodes`: the rows aggregated, as a list field would answer them."""

    key: str
    row: RowSelection


Field = Typename | ColumnField | ObjectField | ArrayField | ArrayAggregateField

FUNCTIONS = (
    "sum", "avg", "min", "max", "stddev", "stddev_pop", "stddev_samp", "var_pop", "var_samp", "variance",
)
"""The aggregate functions of `t_aggregate_fields` beside `count`, as Hasura names them."""


@dataclass(frozen=True)
class RowSelection:
    table: Table
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class ListSelection:
    """`t(distinct_on:, where:, order_by:, limit:, offset:)` at the root, or an array relationship."""

    row: RowSelection
    where: Mapping[str, Any] | None
    order_by: tuple[Mapping[str, Any], ...]
    limit: int | None
    offset: int | None
    distinct_on: tuple[str, ...] = ()
    """Columns of which the first row of each group of equal values is kept, before limit and offset."""


@dataclass(frozen=True)
class ListRoot:
    key: str
    rows: ListSelection


@dataclass(frozen=True)
class ByPkRoot:
    key: str
    row: RowSelection
    pk: Mapping[str, Any]


@dataclass(frozen=True)
class AggregateRoot:
    key: str
    table: Table
    where: Mapping[str, Any] | None
    fields: tuple[AggregateField | NodesField | Typename, ...]
    order_by: tuple[Mapping[str, Any], ...] = ()
    limit: int | None = None
    offset: int | None = None
    distinct_on: tuple[str, ...] = ()
    """The rows aggregated, as a list field's `distinct_on`, `order_by`, `limit` and `offset` pick them."""


@dataclass(frozen=True)
class Foreign:
    """A root field graphql-core answers (introspection, `changeCursor`)."""

    key: str


@dataclass(frozen=True)
class Refused:
    """A root field whose reading or building raised: its answer is that error."""

    key: str
    error: Exception


Owned = ListRoot | ByPkRoot | AggregateRoot
Root = Typename | Owned | Foreign | Refused


QUERIES = frozenset({RootKind.SELECT, RootKind.SELECT_BY_PK, RootKind.AGGREGATE})


def root_fields(schema: GraphQLSchema, model: DatabaseModel) -> dict[str, tuple[RootKind, Table]]:
    """Query root field name -> (which generated field, table), as the schema builder tagged them."""
    query = schema.query_type
    if query is None:
        return {}
    out: dict[str, tuple[RootKind, Table]] = {}
    for name, field in query.fields.items():
        tag = root_field(field)
        if tag is not None and tag.kind in QUERIES and tag.table is not None:
            out[name] = (tag.kind, model.table(tag.table))
    return out


class Reading:
    """One operation of a validated document, read with one request's coerced variables."""

    def __init__(
        self,
        schema: GraphQLSchema,
        model: DatabaseModel,
        roots: Mapping[str, tuple[RootKind, Table]],
        fragments: Mapping[str, FragmentDefinitionNode],
        operation: OperationDefinitionNode,
        variables: VariableValues,
    ) -> None:
        if operation.operation is not OperationType.QUERY:
            raise Unsupported("not a query")
        self.schema = schema
        self.model = model
        self.roots = roots
        self.fragments = fragments
        self.variables = variables
        self.operation = operation

    @property
    def names(self) -> inflection.Inflection:
        return inflection.inflection_of(self.model)

    def read(self) -> tuple[Root, ...]:
        out: list[Root] = []
        query = self.schema.query_type
        assert query is not None
        for key, nodes in self._collect([self.operation.selection_set]).items():
            name = nodes[0].name.value
            if name == TYPENAME:
                out.append(Typename(key, query.name))
            elif name not in self.roots:
                out.append(Foreign(key))
            else:
                try:
                    out.append(self._root(key, name, nodes))
                except Exception as error:  # noqa: BLE001 - this field's answer: its error, at its path
                    out.append(Refused(key, error))
        return tuple(out)

    def _root(self, key: str, name: str, nodes: list[FieldNode]) -> Owned:
        query = self.schema.query_type
        assert query is not None
        kind, table = self.roots[name]
        args = get_argument_values(query.fields[name], nodes[0], self.variables)
        full = self.model.table(table.name)
        if kind is RootKind.SELECT:
            return ListRoot(key, self._list(full, nodes, args))
        if kind is RootKind.SELECT_BY_PK:
            return ByPkRoot(key, self._row(full, nodes), args)
        return self._aggregate_of(key, full, nodes, args)

    def _aggregate_of(
        self, key: str, table: Table, nodes: list[FieldNode], args: Mapping[str, Any]
    ) -> AggregateRoot:
        order_by, distinct_on = _ordering(args)
        return AggregateRoot(
            key,
            table,
            args.get("where"),
            self._aggregate(table, nodes),
            order_by=order_by,
            limit=args.get("limit"),
            offset=args.get("offset"),
            distinct_on=distinct_on,
        )

    def _collect(self, selection_sets: Iterable[SelectionSetNode | None]) -> dict[str, list[FieldNode]]:
        sets = [s for s in selection_sets if s is not None]
        return collect_fields(self.fragments, self.variables, sets)

    def _row(self, table: Table, nodes: list[FieldNode]) -> RowSelection:
        object_type = self.schema.get_type(self.names.object(table.name))
        if not isinstance(object_type, GraphQLObjectType):
            raise Unsupported(f"no object type {table.name!r}")
        relationships = {r.name: r for r in table.relationships}
        aggregates = {self.names.aggregate_field(r.name): r for r in table.relationships if r.is_array}
        columns = {c.name: c for c in table.columns}
        fields: list[Field] = []
        for key, field_nodes in self._collect(n.selection_set for n in nodes).items():
            name = field_nodes[0].name.value
            if name == TYPENAME:
                fields.append(Typename(key, object_type.name))
            elif name in columns and name in object_type.fields:
                fields.append(ColumnField(key, columns[name]))
            elif name in relationships and name in object_type.fields:
                rel = relationships[name]
                remote = self.model.table(rel.remote_table)
                if rel.is_array:
                    args = get_argument_values(
                        object_type.fields[name], field_nodes[0], self.variables
                    )
                    fields.append(ArrayField(key, rel, self._list(remote, field_nodes, args)))
                else:
                    fields.append(ObjectField(key, rel, self._row(remote, field_nodes)))
            elif name in aggregates and name in object_type.fields:
                rel = aggregates[name]
                remote = self.model.table(rel.remote_table)
                args = get_argument_values(object_type.fields[name], field_nodes[0], self.variables)
                fields.append(
                    ArrayAggregateField(key, rel, self._aggregate_of(key, remote, field_nodes, args))
                )
            else:
                raise Unsupported(f"field {name!r} of {table.name!r}")
        return RowSelection(table, tuple(fields))

    def _list(self, table: Table, nodes: list[FieldNode], args: Mapping[str, Any]) -> ListSelection:
        order_by, distinct_on = _ordering(args)
        return ListSelection(
            row=self._row(table, nodes),
            where=args.get("where"),
            order_by=order_by,
            limit=args.get("limit"),
            offset=args.get("offset"),
            distinct_on=distinct_on,
        )

    def _aggregate(
        self, table: Table, nodes: list[FieldNode]
    ) -> tuple[AggregateField | NodesField | Typename, ...]:
        out: list[AggregateField | NodesField | Typename] = []
        columns = {c.name: c for c in table.columns}
        for key, field_nodes in self._collect(n.selection_set for n in nodes).items():
            name = field_nodes[0].name.value
            if name == TYPENAME:
                out.append(Typename(key, self.names.aggregate(table.name)))
            elif name == "aggregate":
                fields_type = self.schema.get_type(self.names.aggregate_fields(table.name))
                assert isinstance(fields_type, GraphQLObjectType)
                inner: list[CountField | FunctionField | Typename] = []
                for inner_key, inner_nodes in self._collect(n.selection_set for n in field_nodes).items():
                    inner_name = inner_nodes[0].name.value
                    if inner_name == TYPENAME:
                        inner.append(Typename(inner_key, fields_type.name))
                    elif inner_name == "count":
                        args = get_argument_values(fields_type.fields["count"], inner_nodes[0], self.variables)
                        inner.append(
                            CountField(inner_key, tuple(args.get("columns") or ()), bool(args.get("distinct")))
                        )
                    elif inner_name in fields_type.fields and self.names.function(inner_name) in FUNCTIONS:
                        function = self.names.function(inner_name)
                        inner.append(self._function(table, inner_key, function, inner_nodes, columns))
                    else:
                        raise Unsupported(f"aggregate field {inner_name!r}")
                out.append(AggregateField(key, tuple(inner)))
            elif name == "nodes":
                out.append(NodesField(key, self._row(table, field_nodes)))
            else:
                raise Unsupported(f"field {name!r} of {self.names.aggregate(table.name)!r}")
        return tuple(out)

    def _function(
        self,
        table: Table,
        key: str,
        function: str,
        nodes: list[FieldNode],
        columns: Mapping[str, Column],
    ) -> FunctionField:
        type_name = self.names.aggregate_function_fields(table.name, function)
        fields: list[ColumnField | Typename] = []
        for column_key, column_nodes in self._collect(n.selection_set for n in nodes).items():
            name = column_nodes[0].name.value
            if name == TYPENAME:
                fields.append(Typename(column_key, type_name))
            elif name in columns:
                fields.append(ColumnField(column_key, columns[name]))
            else:
                raise Unsupported(f"field {name!r} of {type_name!r}")
        return FunctionField(key, function, tuple(fields))


def _ordering(args: Mapping[str, Any]) -> tuple[tuple[Mapping[str, Any], ...], tuple[str, ...]]:
    """A list's `order_by` and `distinct_on`, refused when the one does not lead the other (Hasura's rule)."""
    order_by = args.get("order_by")
    if order_by is None:
        order_by = []
    elif not isinstance(order_by, list | tuple):
        order_by = [order_by]
    distinct_on = args.get("distinct_on")
    if distinct_on is None:
        distinct_on = []
    elif not isinstance(distinct_on, list | tuple):
        distinct_on = [distinct_on]
    check_distinct_on(distinct_on, order_by)
    return tuple(order_by), tuple(distinct_on)
