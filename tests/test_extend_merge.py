"""Merging a strawberry schema into the generated one (graph.extend): pure, no I/O."""

from __future__ import annotations

import pytest
import strawberry
from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType, GraphQLSchema, get_named_type
from strawberry.schema.config import StrawberryConfig

from graph.errors import StartupError
from graph.extend import extension_of, is_custom, load_extension, merge, table
from graph.model import Column, DatabaseModel, Kind, Table
from graph.naming import name_model
from graph.root_field import RootKind, root_field
from graph.schema import build_schema

AS_WRITTEN = StrawberryConfig(auto_camel_case=False)
Item = table("items")


async def no_cursor() -> str:
    raise AssertionError("only shapes are checked here")


MODEL = name_model(DatabaseModel("sqlite", {
    "items": Table("items", (Column("id", Kind.INTEGER, nullable=False), Column("title", Kind.STRING, nullable=True)), ("id",)),
}))


@strawberry.type
class Query:
    @strawberry.field
    def total_price(self, cart_id: int) -> float:
        return 0.0

    @strawberry.field
    def items_of(self, cart_id: int) -> list[Item]:
        return []


@strawberry.type
class Mutation:
    @strawberry.mutation
    def check_out(self, cart_id: int) -> Item | None:
        return None


EXTENSION = extension_of(strawberry.Schema(query=Query, mutation=Mutation, config=AS_WRITTEN), "test")


def generated() -> GraphQLSchema:
    return build_schema(MODEL, no_cursor)


def test_root_fields_join_the_generated_roots_tagged_custom() -> None:
    merged = merge(generated(), EXTENSION, lambda _name: True)
    assert merged.query_type is not None and merged.mutation_type is not None
    assert {"items", "total_price", "items_of"} <= set(merged.query_type.fields)
    assert {"insert_items", "check_out"} <= set(merged.mutation_type.fields)
    assert is_custom(merged.query_type.fields["total_price"])
    assert not is_custom(merged.query_type.fields["items"])
    tag = root_field(merged.mutation_type.fields["check_out"])
    assert tag is not None and tag.kind is RootKind.CUSTOM
    # Custom query fields are not live queries.
    assert merged.subscription_type is not None and "total_price" not in merged.subscription_type.fields


def test_a_table_type_is_the_generated_type() -> None:
    schema = generated()
    merged = merge(schema, EXTENSION, lambda _name: True)
    assert merged.query_type is not None and merged.mutation_type is not None
    items_of = merged.query_type.fields["items_of"].type
    assert isinstance(items_of, GraphQLNonNull) and isinstance(items_of.of_type, GraphQLList)
    assert get_named_type(items_of) is schema.type_map["items"]
    check_out = merged.mutation_type.fields["check_out"].type
    assert isinstance(check_out, GraphQLObjectType) and check_out is schema.type_map["items"]


def test_fields_not_granted_are_left_out() -> None:
    merged = merge(generated(), EXTENSION, lambda name: name == "total_price")
    assert merged.query_type is not None and merged.mutation_type is not None
    assert "total_price" in merged.query_type.fields
    assert "items_of" not in merged.query_type.fields
    assert "check_out" not in merged.mutation_type.fields


def test_a_role_that_cannot_see_the_table_has_no_field_returning_it() -> None:
    from graph.grants import TableGrants

    nothing = build_schema(MODEL, no_cursor, {"items": TableGrants()})
    merged = merge(nothing, EXTENSION, lambda _name: True)
    assert merged.query_type is not None
    assert "total_price" in merged.query_type.fields and "items_of" not in merged.query_type.fields


def test_camel_case_names_are_taken_as_strawberry_has_them(caplog: pytest.LogCaptureFixture) -> None:
    extension = extension_of(strawberry.Schema(query=Query), "camel")
    assert "totalPrice" in extension.fields["query"]
    assert "auto_camel_case" in caplog.text


def test_a_clash_names_both() -> None:
    @strawberry.type
    class Clash:
        @strawberry.field
        def items_aggregate(self) -> int:
            return 0

    with pytest.raises(StartupError, match=r"query field 'items_aggregate' clashes with the generated field "
                                           r"query_root.items_aggregate \(aggregate of table 'items'\)"):
        merge(generated(), extension_of(strawberry.Schema(query=Clash, config=AS_WRITTEN), "app:schema"), lambda _: True)


def test_only_a_strawberry_schema_is_taken() -> None:
    with pytest.raises(StartupError, match=r"expected a strawberry\.Schema, got dict"):
        load_extension({})
    assert load_extension(None) is None


@strawberry.type
class Cart:
    item: Item  # type: ignore[valid-type]


@strawberry.type
class Nested:
    @strawberry.field
    def cart(self) -> Cart:
        return Cart(item=None)


def test_only_root_fields_return_table_types() -> None:
    with pytest.raises(StartupError, match=r"Cart\.item returns table\('items'\): only root fields"):
        extension_of(strawberry.Schema(query=Nested, config=AS_WRITTEN), "app:schema")
