"""Build the GraphQL schema of SPEC section 4 from the table model, once, with no I/O.

This module knows only shapes, never SQL: the compiled path (graph.compile)
answers every generated field. graphql-core validates every document against
the schema, and executes only what completes a query's answer around the
compiled values (graph.compile._query_shell): every generated object field
resolves by response key in the values handed over (`Precomputed`), and
`changeCursor` calls what it is given at build time. Generated mutations are
never executed by graphql-core: their root fields have no resolver. (The
user's custom root fields, merged in by graph.extend, keep strawberry's.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import Any

from graphql import (
    FloatValueNode,
    GraphQLArgument,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLEnumValue,
    GraphQLError,
    GraphQLField,
    GraphQLFloat,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    IntValueNode,
    StringValueNode,
    ValueNode,
    print_ast,
    value_from_ast_untyped,
)

from graph import _graphql_int, inflection  # noqa: F401 - _graphql_int widens Int on import
from graph.grants import TableGrants, all_grants, visible_model
from graph.model import DatabaseModel, Kind, Table
from graph.root_field import RootKind, tagged
from graph.rules.bool_exp import Takes, operators_for
from graph.sql.order import DIRECTIONS
from graph.sql.values import parse_bigint

# The one value of a `t_update_column` enum when the role may update no column (Hasura's).
PLACEHOLDER = "_PLACEHOLDER"

ChangeCursor = Callable[[], Awaitable[str]]
"""The newest change cursor now, as `changeCursor` answers it (the event side reads it)."""


def _parse_json_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> Any:
    return value_from_ast_untyped(node, variables)


JSONScalar = GraphQLScalarType(
    "JSON",
    description="Any JSON value.",
    serialize=lambda value: value,
    parse_value=lambda value: value,
    parse_literal=_parse_json_literal,
)

# graphql-core's own Int, widened to 64 bits in graph._graphql_int (imported above):
# graphql-core 3.3 refuses a second type named Int.
Int = GraphQLInt


def _serialize_bigint(value: Any) -> int:
    try:
        return parse_bigint(value)
    except ValueError:
        raise GraphQLError(f"bigint cannot represent value: {value!r}") from None


def _parse_bigint(value: Any) -> int:
    if isinstance(value, bool | float):  # 1.5 or true for a bigint: refused, as Int refuses them
        raise GraphQLError(f"bigint cannot represent value: {value!r}")
    return _serialize_bigint(value)


def _parse_bigint_literal(node: ValueNode, _variables: dict[str, Any] | None = None) -> int:
    if isinstance(node, IntValueNode | StringValueNode):
        return _parse_bigint(int(node.value) if isinstance(node, IntValueNode) else node.value)
    raise GraphQLError(f"bigint cannot represent value: {print_ast(node)}", node)


BigInt = GraphQLScalarType(
    "bigint",
    description="A 64-bit integer: a JSON number in answers, a number or a string of digits in inputs.",
    serialize=_serialize_bigint,
    parse_value=_parse_bigint,
    parse_literal=_parse_bigint_literal,
)


def _parse_numeric(value: Any) -> int | float | str:
    """A finite number, or a string of one (kept as text, so that PostgreSQL gets every digit)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise GraphQLError(f"numeric cannot represent value: {value!r}")
    given = value.strip() if isinstance(value, str) else value
    try:
        finite = Decimal(given).is_finite()
    except InvalidOperation:
        finite = False
    if not finite:
        raise GraphQLError(f"numeric cannot represent value: {value!r}")
    return given


def _parse_numeric_literal(node: ValueNode, _variables: dict[str, Any] | None = None) -> int | float | str:
    if isinstance(node, IntValueNode):
        return int(node.value)
    if isinstance(node, FloatValueNode | StringValueNode):
        return _parse_numeric(node.value)
    raise GraphQLError(f"numeric cannot represent value: {print_ast(node)}", node)


# Hasura's `numeric`, the type of numeric/decimal columns: strings in answers (SPEC section 4).
Numeric = GraphQLScalarType(
    "numeric",
    description="An exact decimal number: a JSON number or a string of one in inputs, a string in answers.",
    serialize=str,
    parse_value=_parse_numeric,
    parse_literal=_parse_numeric_literal,
)

# What `_inc` may add to, and as which type (Hasura: int, bigint, float and numeric columns).
INCREMENTS: dict[Kind, GraphQLScalarType] = {
    Kind.INTEGER: Int,
    Kind.BIGINT: BigInt,
    Kind.FLOAT: GraphQLFloat,
    Kind.NUMERIC: Numeric,
}

# Hasura's update operators of JSON columns (its jsonb operators `||`, `-` and `#-`), with
# the type each takes per column.
JSON_OPERATORS: dict[str, GraphQLInputType] = {
    "_append": JSONScalar,
    "_prepend": JSONScalar,
    "_delete_key": GraphQLString,
    "_delete_elem": Int,
    "_delete_at_path": GraphQLList(GraphQLNonNull(GraphQLString)),
}

SCALARS: dict[Kind, GraphQLScalarType] = {
    Kind.INTEGER: Int,
    Kind.BIGINT: BigInt,
    Kind.FLOAT: GraphQLFloat,
    Kind.NUMERIC: Numeric,
    Kind.BOOLEAN: GraphQLBoolean,
    Kind.JSON: JSONScalar,
}

OrderBy = GraphQLEnumType(
    "order_by",
    {name: GraphQLEnumValue(name) for name in DIRECTIONS},
    description="Column ordering; plain asc puts NULLs last and desc puts them first.",
)

# Hasura's enum of a streaming subscription's cursor (graph.delivery.streams).
CursorOrdering = GraphQLEnumType(
    "cursor_ordering",
    {
        "ASC": GraphQLEnumValue("ASC", description="ascending ordering of the cursor"),
        "DESC": GraphQLEnumValue("DESC", description="descending ordering of the cursor"),
    },
    description="ordering argument of a cursor",
)


# graphql-default's (Hasura's): the type Pascal-cased and its values upper-cased, meaning the same.
OrderByUpper = GraphQLEnumType(
    "OrderBy",
    {name.upper(): GraphQLEnumValue(name) for name in DIRECTIONS},
    description=OrderBy.description,
)
CursorOrderingPascal = GraphQLEnumType("CursorOrdering", CursorOrdering.values, description=CursorOrdering.description)
ENUMS: dict[str, tuple[GraphQLEnumType, GraphQLEnumType]] = {
    "hasura": (OrderBy, CursorOrdering),
    "graphql-default": (OrderByUpper, CursorOrderingPascal),
}


ChangeTypeEnum = GraphQLEnumType(
    "ChangeType",
    {name: GraphQLEnumValue(name) for name in ("create", "update", "delete")},
    description="What happened to the row (lower case, as ForgeBase sends it).",
)

TableChange = GraphQLObjectType(
    "TableChange",
    {
        "type": GraphQLField(GraphQLNonNull(ChangeTypeEnum)),
        "table": GraphQLField(GraphQLNonNull(GraphQLString)),
        "id": GraphQLField(
            JSONScalar,
            description="The primary key; an object for composite keys; null when the role may not select every key column.",
        ),
        "record": GraphQLField(JSONScalar, description="The row after the change; null on delete."),
        "old_record": GraphQLField(JSONScalar, description="The row before the change; null on create."),
        "cursor": GraphQLField(GraphQLNonNull(GraphQLString), description="Resume after this event with `since`."),
    },
    description="One committed change to one row.",
)

# Served by graph.delivery, which reads the document itself (no resolver runs).
TABLE_CHANGED = GraphQLField(
    GraphQLNonNull(TableChange),
    args={
        "table": GraphQLArgument(GraphQLNonNull(GraphQLString)),
        "where": GraphQLArgument(JSONScalar, description="The table's bool_exp, as JSON."),
        "since": GraphQLArgument(GraphQLString, description="Replay retained events after this cursor first."),
    },
    description="Every committed create, update and delete of a table's rows, in commit order.",
    extensions=tagged(RootKind.TABLE_CHANGED),
)


def scalar_of(kind: Kind) -> GraphQLScalarType:
    return SCALARS.get(kind, GraphQLString)


NUMBERS = frozenset(INCREMENTS)
ORDERED = NUMBERS | {Kind.STRING, Kind.DATETIME, Kind.DATE, Kind.TIME}
FUNCTIONS = (
    "sum", "avg", "min", "max", "stddev", "stddev_pop", "stddev_samp", "var_pop", "var_samp", "variance",
)
# As Hasura types them: sum, min and max in the column's type, the others Float.
AGGREGATE_TYPES: dict[str, Callable[[Kind], GraphQLScalarType]] = {
    f: (scalar_of if f in ("sum", "min", "max") else (lambda _kind: GraphQLFloat)) for f in FUNCTIONS
}


def aggregated(function: str, kind: Kind) -> bool:
    """Whether `function` applies to a column of `kind` (min and max also to text and dates, as Hasura)."""
    return kind in (ORDERED if function in ("min", "max") else NUMBERS)


def by_response_key(source: Any, info: Any, **_: Any) -> Any:
    """The field's value in its parent's answer, keyed by alias; an exception there is its error."""
    if not isinstance(source, dict):
        return None
    value = source.get(info.path.key)
    if isinstance(value, Exception):
        raise value
    return value


class Precomputed(dict[str, Any]):
    """The root value of a query whose generated root fields the compiled path answered.

    Response key -> the field's value, or the exception that is its error
    (`graph.compile._query_shell`); graphql-core answers the other root fields.
    A generated query root field's resolver only hands its value over
    (`by_response_key`).
    """


def _nn(type_: Any) -> GraphQLNonNull[Any]:
    return GraphQLNonNull(type_)


def _list_nn(type_: Any) -> GraphQLNonNull[Any]:
    return GraphQLNonNull(GraphQLList(GraphQLNonNull(type_)))


class SchemaBuilder:
    def __init__(
        self,
        model: DatabaseModel,
        change_cursor: ChangeCursor,
        grants: Mapping[str, TableGrants] | None = None,
    ) -> None:
        self.full = model
        self.grants = grants if grants is not None else all_grants(model)
        # Object types, filters and orderings show only what the role may select.
        self.model = visible_model(model, dict(self.grants))
        self.change_cursor = change_cursor
        self.names = inflection.inflection_of(model)
        self.order_by, self.cursor_ordering = ENUMS[self.names.name]
        self.comparisons: dict[str, GraphQLInputObjectType] = {}
        self.objects: dict[str, GraphQLObjectType] = {}
        self.bool_exps: dict[str, GraphQLInputObjectType] = {}
        self.order_bys: dict[str, GraphQLInputObjectType] = {}
        self.select_columns: dict[str, GraphQLEnumType] = {}
        self.aggregates: dict[str, GraphQLObjectType] = {}
        self.aggregate_order_bys: dict[str, GraphQLInputObjectType] = {}
        # Built once per table: nested inserts refer to other tables' inputs (and back).
        self.insert_inputs: dict[str, GraphQLInputObjectType] = {}
        self.on_conflicts: dict[str, GraphQLInputObjectType | None] = {}
        self.rel_inserts: dict[tuple[str, bool], GraphQLInputObjectType] = {}

    def build(self) -> GraphQLSchema:
        tables = sorted(self.model.tables.values(), key=lambda t: t.name)
        for table in tables:
            self.objects[table.name] = self._object(table)
            self.bool_exps[table.name] = self._bool_exp(table)
            self.order_bys[table.name] = self._order_by(table)
            select_column = self._select_column(table)
            if select_column is not None:
                self.select_columns[table.name] = select_column
        for table in tables:
            self.aggregates[table.name] = self._aggregate(table)
            self.aggregate_order_bys[table.name] = self._aggregate_order_by(table)
        query: dict[str, GraphQLField] = {}
        mutation: dict[str, GraphQLField] = {}
        for table in tables:
            query.update(self._query_fields(table))
        subscription: dict[str, GraphQLField] = {"tableChanged": TABLE_CHANGED}
        for table in tables:
            subscription.update(self._stream_fields(table))
        for table in sorted(self.full.tables.values(), key=lambda t: t.name):
            if table.is_writable:
                mutation.update(self._mutation_fields(table, self.grants[table.name]))
        if not query:
            query["no_queries_available"] = GraphQLField(
                _nn(GraphQLString), resolve=lambda *_: "no tables are served"
            )
        # Every role's: it names a position in the log, never a row.
        query["changeCursor"] = GraphQLField(
            _nn(GraphQLString),
            description="The newest change cursor now: subscribe with `since` set to it to miss nothing after.",
            resolve=lambda *_: self.change_cursor(),
            extensions=tagged(RootKind.CHANGE_CURSOR),
        )
        # Live queries: every generated query field, as Hasura's subscription_root has them.
        for name, query_field in query.items():
            if name not in subscription and name not in ("changeCursor", "no_queries_available"):
                subscription[name] = query_field
        return GraphQLSchema(
            query=GraphQLObjectType("query_root", query),
            mutation=GraphQLObjectType("mutation_root", mutation) if mutation else None,
            subscription=GraphQLObjectType("subscription_root", subscription),
        )

    # -- names of arguments and input fields ----------------------------------

    def _args(self, args: dict[str, GraphQLArgument]) -> dict[str, GraphQLArgument]:
        """Fixed argument names as the inflection spells them; the compiled path reads Hasura's (`out_name`)."""
        if self.names is inflection.HASURA:
            return args
        out = {}
        for name, arg in args.items():
            shown = self.names.argument(name)
            if shown != name:
                arg = GraphQLArgument(arg.type, arg.default_value, arg.description, out_name=name)
            out[shown] = arg
        return out

    def _inputs(self, fields: dict[str, GraphQLInputField]) -> dict[str, GraphQLInputField]:
        """`_args` for input fields (operators, `update_columns`, `on_conflict`, ...), never columns."""
        if self.names is inflection.HASURA:
            return fields
        out = {}
        for name, field in fields.items():
            shown = self.names.argument(name)
            if shown != name:
                field = GraphQLInputField(field.type, field.default_value, field.description, out_name=name)
            out[shown] = field
        return out

    # -- per-table types -------------------------------------------------

    def _comparison(self, kind: Kind) -> GraphQLInputObjectType:
        scalar = scalar_of(kind)
        if scalar.name not in self.comparisons:
            types: dict[Takes, GraphQLInputType] = {
                Takes.VALUE: scalar,
                Takes.LIST: GraphQLList(_nn(scalar)),
                Takes.BOOLEAN: GraphQLBoolean,
                Takes.PATTERN: GraphQLString,
            }
            fields = self._inputs({op: GraphQLInputField(types[takes]) for op, takes in operators_for(kind).items()})
            self.comparisons[scalar.name] = GraphQLInputObjectType(
                self.names.comparison_exp(scalar.name), fields
            )
        return self.comparisons[scalar.name]

    def _object(self, table: Table) -> GraphQLObjectType:
        def fields() -> dict[str, GraphQLField]:
            out = {
                c.name: GraphQLField(
                    scalar_of(c.kind) if c.nullable else _nn(scalar_of(c.kind)),
                    resolve=by_response_key,
                )
                for c in table.columns
            }
            for rel in table.relationships:
                remote = self.objects[rel.remote_table]
                if rel.is_array:
                    out[rel.name] = GraphQLField(
                        _list_nn(remote),
                        args=self._list_args(rel.remote_table),
                        resolve=by_response_key,
                    )
                    out[self.names.aggregate_field(rel.name)] = GraphQLField(
                        _nn(self.aggregates[rel.remote_table]),
                        args=self._list_args(rel.remote_table),
                        resolve=by_response_key,
                    )
                else:
                    out[rel.name] = GraphQLField(remote, resolve=by_response_key)
            return out

        return GraphQLObjectType(self.names.object(table.name), fields)

    def _bool_exp(self, table: Table) -> GraphQLInputObjectType:
        def fields() -> dict[str, GraphQLInputField]:
            me = self.bool_exps[table.name]
            out = {
                "_and": GraphQLInputField(GraphQLList(_nn(me))),
                "_not": GraphQLInputField(me),
                "_or": GraphQLInputField(GraphQLList(_nn(me))),
            }
            out.update({c.name: GraphQLInputField(self._comparison(c.kind)) for c in table.columns})
            out.update(
                {rel.name: GraphQLInputField(self.bool_exps[rel.remote_table]) for rel in table.relationships}
            )
            return out

        return GraphQLInputObjectType(
            self.names.bool_exp(table.name),
            fields,
            description=f"Boolean expression to filter rows from the table {table.name!r}.",
        )

    def _order_by(self, table: Table) -> GraphQLInputObjectType:
        def fields() -> dict[str, GraphQLInputField]:
            out = {c.name: GraphQLInputField(self.order_by) for c in table.columns}
            for rel in table.relationships:
                if rel.is_array:
                    out[self.names.aggregate_field(rel.name)] = GraphQLInputField(self.aggregate_order_bys[rel.remote_table])
                else:
                    out[rel.name] = GraphQLInputField(self.order_bys[rel.remote_table])
            return out

        return GraphQLInputObjectType(self.names.order_by(table.name), fields)

    def _aggregate(self, table: Table) -> GraphQLObjectType:
        """`t_aggregate { aggregate { count sum {..} avg {..} ... } nodes }`, typed per column as Hasura types them."""
        fields: dict[str, GraphQLField] = {"count": GraphQLField(_nn(Int), resolve=by_response_key)}
        if table.name in self.select_columns:
            fields["count"].args = {
                "columns": GraphQLArgument(GraphQLList(_nn(self.select_columns[table.name]))),
                "distinct": GraphQLArgument(GraphQLBoolean),
            }
        for function in FUNCTIONS:
            columns = {
                c.name: GraphQLField(AGGREGATE_TYPES[function](c.kind), resolve=by_response_key)
                for c in table.columns
                if aggregated(function, c.kind)
            }
            if columns:
                fields[self.names.argument(function)] = GraphQLField(
                    GraphQLObjectType(self.names.aggregate_function_fields(table.name, function), columns),
                    resolve=by_response_key,
                )
        aggregate_fields = GraphQLObjectType(self.names.aggregate_fields(table.name), fields)
        return GraphQLObjectType(
            self.names.aggregate(table.name),
            {
                "aggregate": GraphQLField(aggregate_fields, resolve=by_response_key),
                "nodes": GraphQLField(_list_nn(self.objects[table.name]), resolve=by_response_key),
            },
        )

    def _aggregate_order_by(self, table: Table) -> GraphQLInputObjectType:
        """`t_aggregate_order_by`: ordering parents by an aggregate of their related rows of `table`."""
        fields: dict[str, GraphQLInputField] = {"count": GraphQLInputField(self.order_by)}
        for function in FUNCTIONS:
            columns = {c.name: GraphQLInputField(self.order_by) for c in table.columns if aggregated(function, c.kind)}
            if columns:
                fields[function] = GraphQLInputField(
                    GraphQLInputObjectType(self.names.aggregate_function_order_by(table.name, function), columns)
                )
        return GraphQLInputObjectType(self.names.aggregate_order_by(table.name), self._inputs(fields))

    def _select_column(self, table: Table) -> GraphQLEnumType | None:
        """`t_select_column`: the columns the role may select, as `distinct_on` names them."""
        # GraphQL forbids these three as enum values: such a column is left out of the enum.
        names = [c.name for c in table.columns if c.name not in ("true", "false", "null")]
        if not names:
            return None
        return GraphQLEnumType(
            self.names.select_column(table.name),
            {name: GraphQLEnumValue(name) for name in names},
            description=f"Select columns of the table {table.name!r}.",
        )

    def _list_args(self, table_name: str) -> dict[str, GraphQLArgument]:
        args = {
            "where": GraphQLArgument(self.bool_exps[table_name]),
            "order_by": GraphQLArgument(GraphQLList(_nn(self.order_bys[table_name]))),
            "limit": GraphQLArgument(Int),
            "offset": GraphQLArgument(Int),
        }
        if table_name in self.select_columns:
            # Its columns must lead order_by (Hasura's rule, graph.sql.order.check_distinct_on).
            args["distinct_on"] = GraphQLArgument(GraphQLList(_nn(self.select_columns[table_name])))
        return self._args(args)

    def _pk_args(self, table: Table) -> dict[str, GraphQLArgument]:
        return {
            name: GraphQLArgument(_nn(scalar_of(table.column(name).kind)))
            for name in table.primary_key
        }

    def _columns_input(self, name: str, table: Table) -> GraphQLInputObjectType:
        return GraphQLInputObjectType(
            name, {c.name: GraphQLInputField(scalar_of(c.kind)) for c in table.columns}
        )

    # -- root fields -------------------------------------------------------

    def _query_fields(self, table: Table) -> dict[str, GraphQLField]:
        obj = self.objects[table.name]
        aggregate = self.aggregates[table.name]
        fields = {
            self.names.root(table, "select"): GraphQLField(
                _list_nn(obj),
                args=self._list_args(table.name),
                resolve=by_response_key,
                extensions=tagged(RootKind.SELECT, table.name),
                description=f"Rows of the table {table.name!r}.",
            ),
            self.names.root(table, "select_aggregate"): GraphQLField(
                _nn(aggregate),
                args=self._list_args(table.name),
                resolve=by_response_key,
                extensions=tagged(RootKind.AGGREGATE, table.name),
            ),
        }
        if table.primary_key and set(table.primary_key) <= set(table.column_names):
            fields[self.names.root(table, "select_by_pk")] = GraphQLField(
                obj,
                args=self._pk_args(table),
                resolve=by_response_key,
                extensions=tagged(RootKind.SELECT_BY_PK, table.name),
                description=f"One row of {table.name!r} by its primary key.",
            )
        return fields

    def _stream_fields(self, table: Table) -> dict[str, GraphQLField]:
        """Hasura's `t_stream`, answered by graph.delivery.streams (no resolver runs).

        Only where the table's changes are captured (it has a primary key and
        is not a view) and the role sees its key: new rows are read back by it.
        """
        if table.is_view or not table.primary_key or not set(table.primary_key) <= set(table.column_names):
            return {}
        value = self._columns_input(self.names.stream_cursor_value_input(table.name), table)
        value.description = "Initial value of the column from where the streaming should start"
        cursor = GraphQLInputObjectType(
            self.names.stream_cursor_input(table.name),
            self._inputs({
                "initial_value": GraphQLInputField(_nn(value), description="Stream column input with initial value"),
                "ordering": GraphQLInputField(self.cursor_ordering, description="cursor ordering"),
            }),
            description=f'Streaming cursor of the table "{table.name}"',
        )
        return {
            self.names.root(table, "select_stream"): GraphQLField(
                _list_nn(self.objects[table.name]),
                args=self._args({
                    "batch_size": GraphQLArgument(_nn(Int), description="maximum number of rows returned in a single batch"),
                    "cursor": GraphQLArgument(_nn(GraphQLList(cursor)), description="cursor to stream the results returned by the query"),
                    "where": GraphQLArgument(self.bool_exps[table.name], description="filter the rows returned"),
                }),
                extensions=tagged(RootKind.STREAM, table.name),
                # Hasura's words; what is sent, and in which order: graph.delivery.streams.
                description=f'fetch data from the table in a streaming manner: "{table.name}"',
            )
        }

    def _mutation_fields(self, table: Table, grants: TableGrants) -> dict[str, GraphQLField]:
        visible = table.name in self.objects
        # Updating and deleting pick rows with a filter, which needs the select grant.
        may_update = grants.update is not None and visible
        may_delete = grants.delete and visible
        if grants.insert is None and not may_update and not may_delete:
            return {}
        # Shapes only: graphql-core validates mutations, graph.compile.mutation answers them.
        response_fields = {self.names.argument("affected_rows"): GraphQLField(_nn(Int))}
        if visible:
            response_fields["returning"] = GraphQLField(_list_nn(self.objects[table.name]))
        response = GraphQLObjectType(self.names.mutation_response(table.name), response_fields)
        fields: dict[str, GraphQLField] = {}
        if grants.insert is not None:
            insert_input = self._insert_input(table)
            on_conflict = self._on_conflict(table)
            upsert = {} if on_conflict is None else self._args({"on_conflict": GraphQLArgument(on_conflict)})
            fields[self.names.root(table, "insert")] = GraphQLField(
                response,
                args={"objects": GraphQLArgument(_list_nn(insert_input)), **upsert},
                extensions=tagged(RootKind.INSERT, table.name),
            )
            if visible:
                fields[self.names.root(table, "insert_one")] = GraphQLField(
                    self.objects[table.name],
                    args={"object": GraphQLArgument(_nn(insert_input)), **upsert},
                    extensions=tagged(RootKind.INSERT_ONE, table.name),
                )
        if may_update:
            fields.update(self._update_fields(table, _only(table, grants.update or ()), response))
        if may_delete:
            obj = self.objects[table.name]
            fields[self.names.root(table, "delete")] = GraphQLField(
                response,
                args={"where": GraphQLArgument(_nn(self.bool_exps[table.name]))},
                extensions=tagged(RootKind.DELETE, table.name),
            )
            fields[self.names.root(table, "delete_by_pk")] = GraphQLField(
                obj,
                args=self._pk_args(table),
                extensions=tagged(RootKind.DELETE_BY_PK, table.name),
            )
        return fields

    def _insert_input(self, table: Table) -> GraphQLInputObjectType:
        """`t_insert_input`: the role's insert columns, and its relationships to tables it may insert into.

        As Hasura: `rel: {data: ..., on_conflict: ...}` inserts the related
        rows with the one given (graph.compile._mutation_writes); the types
        refer to each other, so their fields are built when first read.
        """
        name = table.name
        if name not in self.insert_inputs:
            columns = _only(table, self.grants[name].insert or ()).columns

            def fields() -> dict[str, GraphQLInputField]:
                out = {c.name: GraphQLInputField(scalar_of(c.kind)) for c in columns}
                for relationship in table.relationships:
                    if relationship.name in table.column_names:
                        continue  # the column's field (graph.compile._mutation_nested reads it so)
                    remote = self.full.tables.get(relationship.remote_table)
                    grants = self.grants.get(relationship.remote_table)
                    if remote is None or not remote.is_writable or grants is None or grants.insert is None:
                        continue
                    out[relationship.name] = GraphQLInputField(self._rel_insert(remote, relationship.is_array))
                return out

            self.insert_inputs[name] = GraphQLInputObjectType(self.names.insert_input(name), fields)
        return self.insert_inputs[name]

    def _rel_insert(self, table: Table, is_array: bool) -> GraphQLInputObjectType:
        """`t_obj_rel_insert_input {data: t_insert_input!, on_conflict}` or `t_arr_rel_insert_input`."""
        key = (table.name, is_array)
        if key not in self.rel_inserts:
            data = self._insert_input(table)
            fields = {"data": GraphQLInputField(_list_nn(data) if is_array else _nn(data))}
            on_conflict = self._on_conflict(table)
            if on_conflict is not None:
                fields["on_conflict"] = GraphQLInputField(on_conflict)
            name = self.names.arr_rel_insert_input(table.name) if is_array else self.names.obj_rel_insert_input(table.name)
            self.rel_inserts[key] = GraphQLInputObjectType(name, self._inputs(fields))
        return self.rel_inserts[key]

    def _on_conflict(self, table: Table) -> GraphQLInputObjectType | None:
        """Hasura's `on_conflict` input of the insert fields (none on a table without constraints).

        As Hasura: `update_columns` lists the role's update columns (one
        `_PLACEHOLDER` value where it has none, since an enum needs a value,
        so that only `update_columns: []`, do nothing, is of use), and
        defaults to `[]`; `where` filters the existing row, so it needs the
        select grant.
        """
        if table.name in self.on_conflicts:
            return self.on_conflicts[table.name]
        if not table.constraints:
            self.on_conflicts[table.name] = None
            return None
        grants = self.grants[table.name]
        constraint = GraphQLEnumType(
            self.names.constraint(table.name),
            {c.name: GraphQLEnumValue(c.name) for c in sorted(table.constraints, key=lambda c: c.name)},
            description=f"Unique or primary key constraints on the table {table.name!r}.",
        )
        columns = sorted(grants.update or ())
        update_column = GraphQLEnumType(
            self.names.update_column(table.name),
            {name: GraphQLEnumValue(name) for name in columns} or {PLACEHOLDER: GraphQLEnumValue(PLACEHOLDER)},
        )
        fields = {
            "constraint": GraphQLInputField(_nn(constraint)),
            "update_columns": GraphQLInputField(_list_nn(update_column), default_value=[]),
        }
        if table.name in self.bool_exps:
            fields["where"] = GraphQLInputField(self.bool_exps[table.name])
        built = GraphQLInputObjectType(self.names.on_conflict(table.name), self._inputs(fields))
        self.on_conflicts[table.name] = built
        return built

    def _update_fields(
        self, table: Table, columns: Table, response: GraphQLObjectType
    ) -> dict[str, GraphQLField]:
        obj = self.objects[table.name]
        bool_exp = self.bool_exps[table.name]
        set_input = self._columns_input(self.names.set_input(table.name), columns)
        operators = {"_set": GraphQLArgument(set_input)}
        numeric = {c.name: GraphQLInputField(INCREMENTS[c.kind]) for c in columns.columns if c.kind in INCREMENTS}
        if numeric:  # an input type needs a field: no `_inc` on a table without numeric columns
            operators["_inc"] = GraphQLArgument(GraphQLInputObjectType(self.names.inc_input(table.name), numeric))
        json_columns = [c.name for c in columns.columns if c.kind is Kind.JSON]
        if json_columns:  # likewise: no JSON operator on a table without JSON columns
            for operator, value_type in JSON_OPERATORS.items():
                operators[operator] = GraphQLArgument(
                    GraphQLInputObjectType(
                        self.names.json_operator_input(table.name, operator),
                        {name: GraphQLInputField(value_type) for name in json_columns},
                    )
                )
        updates = GraphQLInputObjectType(
            self.names.updates_input(table.name),
            {
                "where": GraphQLInputField(_nn(bool_exp)),
                **self._inputs({name: GraphQLInputField(argument.type) for name, argument in operators.items()}),
            },
        )
        pk_input = GraphQLInputObjectType(
            self.names.pk_columns_input(table.name),
            {
                name: GraphQLInputField(_nn(scalar_of(table.column(name).kind)))
                for name in table.primary_key
            },
        )
        return {
            self.names.root(table, "update"): GraphQLField(
                response,
                args={"where": GraphQLArgument(_nn(bool_exp)), **self._args(operators)},
                extensions=tagged(RootKind.UPDATE, table.name),
            ),
            self.names.root(table, "update_by_pk"): GraphQLField(
                obj,
                args=self._args({"pk_columns": GraphQLArgument(_nn(pk_input)), **operators}),
                extensions=tagged(RootKind.UPDATE_BY_PK, table.name),
            ),
            self.names.root(table, "update_many"): GraphQLField(
                GraphQLList(response),
                args={"updates": GraphQLArgument(_list_nn(updates))},
                extensions=tagged(RootKind.UPDATE_MANY, table.name),
            ),
        }


def _only(table: Table, columns: tuple[str, ...]) -> Table:
    return replace(table, columns=tuple(c for c in table.columns if c.name in columns))


def build_schema(
    model: DatabaseModel,
    change_cursor: ChangeCursor,
    grants: Mapping[str, TableGrants] | None = None,
) -> GraphQLSchema:
    return SchemaBuilder(model, change_cursor, grants).build()
