"""What each generated root field is, tagged on it when the schema is built.

The schema builder knows which field it builds for which table; it says so in
the field's `extensions`, and whoever answers a document reads that tag
instead of guessing from the field's name, which can be ambiguous
(`delete_x_by_pk` is also `delete_<x_by_pk>`) and which a table's own name
can collide with.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graphql import GraphQLField, GraphQLObjectType, GraphQLSchema

EXTENSION = "forgegraph"
"""The key of the tag in a field's `extensions`."""


class RootKind(StrEnum):
    SELECT = "select"
    SELECT_BY_PK = "select_by_pk"
    AGGREGATE = "aggregate"
    INSERT = "insert"
    INSERT_ONE = "insert_one"
    UPDATE = "update"
    UPDATE_BY_PK = "update_by_pk"
    UPDATE_MANY = "update_many"
    DELETE = "delete"
    DELETE_BY_PK = "delete_by_pk"
    CHANGE_CURSOR = "change_cursor"
    CUSTOM = "custom"
    """A root field of the user's strawberry schema (graph.extend), answered by its resolver."""
    TABLE_CHANGED = "table_changed"
    STREAM = "stream"


@dataclass(frozen=True)
class RootField:
    kind: RootKind
    table: str | None = None
    """The table the field reads or writes (or streams), by its name in the model; None for changeCursor and tableChanged."""


def tagged(kind: RootKind, table: str | None = None) -> dict[str, Any]:
    """The `extensions` of a root field of this kind."""
    return {EXTENSION: RootField(kind, table)}


def root_field(field: GraphQLField) -> RootField | None:
    """The tag of a generated root field; None for any other field."""
    tag = (field.extensions or {}).get(EXTENSION)
    return tag if isinstance(tag, RootField) else None


def table_type(schema: GraphQLSchema, table: str) -> GraphQLObjectType | None:
    """The object type of `table` in `schema` (its name follows the inflection), read off its list field.

    None where the schema has no list of the table (the role may not select it).
    """
    from graphql import GraphQLObjectType, get_named_type

    query = schema.query_type
    for field in (query.fields if query is not None else {}).values():
        tag = root_field(field)
        if tag is not None and tag.kind is RootKind.SELECT and tag.table == table:
            named = get_named_type(field.type)
            return named if isinstance(named, GraphQLObjectType) else None
    return None
