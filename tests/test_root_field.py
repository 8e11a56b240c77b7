"""Every generated root field is tagged at schema build with what it is (pure: no I/O).

The readers of documents (the query and mutation plans) take a field's kind
and table from its tag, never from its name: `items_by_pk` is both the by-pk
field of `items` and the list field of a table named `items_by_pk`.
"""

from __future__ import annotations

from graphql import GraphQLSchema, OperationDefinitionNode, parse, print_schema
from graphql.execution.values import VariableValues

from graph.compile._mutation_fields import read_mutation
from graph.compile._query_shape import root_fields
from graph.model import Column, DatabaseModel, Kind, Table
from graph.naming import name_model
from graph.root_field import RootField, RootKind, root_field
from graph.schema import build_schema


async def no_cursor() -> str:
    raise AssertionError("only shapes are checked here: nothing is answered")


def table(name: str, pk: tuple[str, ...] = ("id",)) -> Table:
    columns = (Column("id", Kind.INTEGER, nullable=False), Column("title", Kind.STRING, nullable=True))
    return Table(name, columns, pk)


MODEL = name_model(DatabaseModel("sqlite", {
    "items": table("items"),
    "items_by_pk": table("items_by_pk"),
    "log": table("log", pk=()),
}))


def schema() -> GraphQLSchema:
    return build_schema(MODEL, no_cursor)


def tags(schema: GraphQLSchema) -> dict[str, RootField | None]:
    out: dict[str, RootField | None] = {}
    for root in (schema.query_type, schema.mutation_type, schema.subscription_type):
        assert root is not None
        out.update({name: root_field(field) for name, field in root.fields.items()})
    return out


def test_every_root_field_is_tagged_with_its_kind_and_table() -> None:
    found = tags(schema())
    assert found == {
        "items": RootField(RootKind.SELECT, "items"),
        "items_aggregate": RootField(RootKind.AGGREGATE, "items"),
        # Built for both tables; the second one built is what the schema serves, and its tag says so.
        "items_by_pk": RootField(RootKind.SELECT, "items_by_pk"),
        "items_by_pk_aggregate": RootField(RootKind.AGGREGATE, "items_by_pk"),
        "items_by_pk_by_pk": RootField(RootKind.SELECT_BY_PK, "items_by_pk"),
        "log": RootField(RootKind.SELECT, "log"),
        "log_aggregate": RootField(RootKind.AGGREGATE, "log"),
        "changeCursor": RootField(RootKind.CHANGE_CURSOR),
        "insert_items": RootField(RootKind.INSERT, "items"),
        "insert_items_one": RootField(RootKind.INSERT_ONE, "items"),
        "update_items": RootField(RootKind.UPDATE, "items"),
        "update_items_by_pk": RootField(RootKind.UPDATE, "items_by_pk"),
        "delete_items": RootField(RootKind.DELETE, "items"),
        "delete_items_by_pk": RootField(RootKind.DELETE, "items_by_pk"),
        "insert_items_by_pk": RootField(RootKind.INSERT, "items_by_pk"),
        "insert_items_by_pk_one": RootField(RootKind.INSERT_ONE, "items_by_pk"),
        "update_items_by_pk_by_pk": RootField(RootKind.UPDATE_BY_PK, "items_by_pk"),
        "delete_items_by_pk_by_pk": RootField(RootKind.DELETE_BY_PK, "items_by_pk"),
        "update_items_many": RootField(RootKind.UPDATE_MANY, "items"),
        "update_items_by_pk_many": RootField(RootKind.UPDATE_MANY, "items_by_pk"),
        "tableChanged": RootField(RootKind.TABLE_CHANGED),
        # Streams of tables with a primary key only (their new rows are read back by it).
        "items_stream": RootField(RootKind.STREAM, "items"),
        "items_by_pk_stream": RootField(RootKind.STREAM, "items_by_pk"),
    }


def test_the_query_plans_take_root_fields_from_their_tags() -> None:
    roots = {name: (kind, found.name) for name, (kind, found) in root_fields(schema(), MODEL).items()}
    assert roots["items_by_pk"] == (RootKind.SELECT, "items_by_pk")
    assert roots["items_by_pk_by_pk"] == (RootKind.SELECT_BY_PK, "items_by_pk")
    assert "changeCursor" not in roots


def test_the_mutation_plans_take_root_fields_from_their_tags() -> None:
    document = parse(
        "mutation { delete_items_by_pk(where: {}) { affected_rows } "
        "update_items_by_pk_by_pk(pk_columns: {id: 1}, _set: {title: null}) { id } }"
    )
    operation = document.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    fields = read_mutation(schema(), MODEL, document, operation, VariableValues({}, {})).fields
    assert [(f.key, f.kind, f.table.name if f.table else None) for f in fields] == [
        ("delete_items_by_pk", RootKind.DELETE, "items_by_pk"),
        ("update_items_by_pk_by_pk", RootKind.UPDATE_BY_PK, "items_by_pk"),
    ]


def test_tags_are_not_part_of_the_printed_schema() -> None:
    assert "forgegraph" not in print_schema(schema())
