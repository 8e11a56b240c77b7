"""How names are spelled: Hasura's default (database names as they are) and `graphql-default`.

One `Inflection` per naming convention names every type, root field and
argument of a table from the table's GraphQL name (graph.naming gives the
model those); `inflection_of(model)` is the model's. `graphql_safe` turns a
database name GraphQL cannot carry into one it can.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from graph.model import DatabaseModel, Table

_GRAPHQL_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")


def is_graphql_name(name: str) -> bool:
    return bool(_GRAPHQL_NAME.match(name)) and not name.startswith("__")


# -- inflections -----------------------------------------------------------------

ROOT_FIELDS: dict[str, tuple[str, str]] = {
    "select": ("", ""),
    "select_by_pk": ("", "by_pk"),
    "select_aggregate": ("", "aggregate"),
    "select_stream": ("", "stream"),
    "insert": ("insert", ""),
    "insert_one": ("insert", "one"),
    "update": ("update", ""),
    "update_by_pk": ("update", "by_pk"),
    "update_many": ("update", "many"),
    "delete": ("delete", ""),
    "delete_by_pk": ("delete", "by_pk"),
}
"""Each kind of root field of a table, as (prefix, suffix) around the table's name (metadata's keys)."""


def camel(name: str) -> str:
    """`chinook_artist` -> `chinookArtist`, `ArtistId` -> `artistId` (leading underscores kept)."""
    stripped = name.lstrip("_")
    lead = name[: len(name) - len(stripped)]
    words = [w for w in stripped.split("_") if w]
    if not words:
        return name
    first = words[0][0].lower() + words[0][1:]
    return lead + first + "".join(w[0].upper() + w[1:] for w in words[1:])


def pascal(name: str) -> str:
    text = camel(name)
    stripped = text.lstrip("_")
    return text[: len(text) - len(stripped)] + stripped[:1].upper() + stripped[1:]


def plural(name: str) -> str:
    """A list's field name (`chinookAlbum` -> `chinookAlbums`), by English's plain rules."""
    lower = name.lower()
    if lower.endswith(("ss", "x", "z", "ch", "sh")):
        return name + "es"
    if lower.endswith("s"):
        return name  # taken as plural already
    if lower.endswith("y") and len(name) > 1 and lower[-2] not in "aeiou":
        return name[:-1] + "ies"
    return name + "s"


# Letters NFKD does not take apart into ASCII ones.
_LETTERS = str.maketrans({"ß": "ss", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "œ": "oe", "Œ": "OE", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D"})


def graphql_safe(name: str) -> str | None:
    """`name`, or a form of it GraphQL can carry (`order items` -> `order_items`), or None."""
    if is_graphql_name(name):
        return name
    text = unicodedata.normalize("NFKD", name.translate(_LETTERS)).encode("ascii", "ignore").decode()
    text = re.sub(r"[^_0-9A-Za-z]+", "_", text).strip("_")
    if text[:1].isdigit():
        text = "_" + text
    return text if is_graphql_name(text) else None


class Inflection:
    """Hasura's default naming: database names as they are, snake_case around them."""

    name = "hasura"

    def table(self, sql_name: str) -> str | None:
        return graphql_safe(sql_name)

    def column(self, sql_name: str) -> str | None:
        return graphql_safe(sql_name)

    def type(self, table: str, suffix: str = "") -> str:
        return f"{table}_{suffix}" if suffix else table

    def field(self, *parts: str) -> str:
        return "_".join(p for p in parts if p)

    def root(self, table: Table, kind: str) -> str:
        for custom_kind, name in table.root_fields:
            if custom_kind == kind:
                return name
        prefix, suffix = ROOT_FIELDS[kind]
        return self.field(prefix, table.name, suffix)

    def object_relationship(self, columns: tuple[str, ...], referred_table: str) -> str:
        # SPEC section 4: `posts.user_id` -> `posts.user`, else the referenced table's name.
        if len(columns) == 1 and columns[0].endswith("_id") and len(columns[0]) > 3:
            return columns[0][: -len("_id")]
        return referred_table

    def array_relationship(self, table: str, columns: tuple[str, ...], several: bool) -> str:
        return f"{table}_by_{'_'.join(columns)}" if several else table

    def argument(self, name: str) -> str:
        """A fixed argument, input or output field (`order_by`, `_is_null`, `affected_rows`, `stddev_pop`) as served."""
        return name

    def order_direction(self, direction: str) -> str:
        """An `order_by` enum value (`asc`, `desc_nulls_first`, ...) as served."""
        return direction

    def function(self, field: str) -> str:
        """The aggregate function (`stddev_pop`) an aggregate field names as served (`stddevPop`)."""
        return field

    def renamed_relationship(self, name: str, columns: tuple[str, ...]) -> str:
        """The relationship's name when a column has `name` already."""
        return f"{name}_by_{'_'.join(columns)}"

    # The types of a table (SPEC section 4), each from the table's GraphQL name.
    def object(self, table: str) -> str:
        return self.type(table)

    def bool_exp(self, table: str) -> str:
        return self.type(table, "bool_exp")

    def order_by(self, table: str) -> str:
        return self.type(table, "order_by")

    def select_column(self, table: str) -> str:
        return self.type(table, "select_column")

    def insert_input(self, table: str) -> str:
        return self.type(table, "insert_input")

    def obj_rel_insert_input(self, table: str) -> str:
        return self.type(table, "obj_rel_insert_input")

    def arr_rel_insert_input(self, table: str) -> str:
        return self.type(table, "arr_rel_insert_input")

    def set_input(self, table: str) -> str:
        return self.type(table, "set_input")

    def inc_input(self, table: str) -> str:
        return self.type(table, "inc_input")

    def json_operator_input(self, table: str, operator: str) -> str:
        return self.type(table, f"{operator.lstrip('_')}_input")

    def on_conflict(self, table: str) -> str:
        return self.type(table, "on_conflict")

    def constraint(self, table: str) -> str:
        return self.type(table, "constraint")

    def update_column(self, table: str) -> str:
        return self.type(table, "update_column")

    def pk_columns_input(self, table: str) -> str:
        return self.type(table, "pk_columns_input")

    def mutation_response(self, table: str) -> str:
        return self.type(table, "mutation_response")

    def aggregate(self, table: str) -> str:
        return self.type(table, "aggregate")

    def aggregate_fields(self, table: str) -> str:
        return self.type(table, "aggregate_fields")

    def aggregate_function_fields(self, table: str, function: str) -> str:
        return self.type(table, f"{function}_fields")

    def aggregate_order_by(self, table: str) -> str:
        return self.type(table, "aggregate_order_by")

    def aggregate_function_order_by(self, table: str, function: str) -> str:
        return self.type(table, f"{function}_order_by")

    def comparison_exp(self, scalar: str) -> str:
        return self.type(scalar, "comparison_exp")

    def stream_cursor_input(self, table: str) -> str:
        return self.type(table, "stream_cursor_input")

    def stream_cursor_value_input(self, table: str) -> str:
        return self.type(table, "stream_cursor_value_input")

    def updates_input(self, table: str) -> str:
        return self.type(table, "updates")

    def aggregate_field(self, relationship: str) -> str:
        """The aggregate field of an array relationship (`posts_aggregate`)."""
        return self.field(relationship, "aggregate")


class GraphQLDefault(Inflection):
    """Hasura's `graphql-default`: camelCase fields and root fields, PascalCase types, plural lists."""

    name = "graphql-default"

    def table(self, sql_name: str) -> str | None:
        safe = graphql_safe(sql_name)
        return None if safe is None else camel(safe)

    def column(self, sql_name: str) -> str | None:
        return self.table(sql_name)

    def type(self, table: str, suffix: str = "") -> str:
        return pascal(table) + (pascal(suffix) if suffix else "")

    def field(self, *parts: str) -> str:
        # The first part is a served name or a prefix (`insert`), kept as it is: a name
        # chosen in the metadata stays as written (`my_albums` -> `my_albumsAggregate`).
        words = [p for p in parts if p]
        return words[0] + "".join(pascal(w) for w in words[1:])

    def object_relationship(self, columns: tuple[str, ...], referred_table: str) -> str:
        if len(columns) == 1:
            column = camel(columns[0])
            for suffix in ("_id", "Id"):
                if column.endswith(suffix) and len(column) > len(suffix):
                    return camel(column[: -len(suffix)])
        return referred_table

    def array_relationship(self, table: str, columns: tuple[str, ...], several: bool) -> str:
        name = plural(table)
        return name + "By" + "".join(pascal(c) for c in columns) if several else name

    def renamed_relationship(self, name: str, columns: tuple[str, ...]) -> str:
        return name + "By" + "".join(pascal(c) for c in columns)

    def argument(self, name: str) -> str:
        return camel(name)

    def order_direction(self, direction: str) -> str:
        return direction.upper()

    def function(self, field: str) -> str:
        return re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), field)


HASURA = Inflection()
INFLECTIONS: dict[str, Inflection] = {HASURA.name: HASURA, GraphQLDefault.name: GraphQLDefault()}


def inflection_of(model: DatabaseModel) -> Inflection:
    return INFLECTIONS[model.inflection]
