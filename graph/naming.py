"""Names of everything the API exposes (PostGraphile calls this inflection).

By default (`hasura`) database names are kept as they are (no camel-casing);
`graphql-default` camel-cases fields and Pascal-cases types as Hasura's naming
convention of that name does. A name the GraphQL grammar cannot carry (a
space, a quote, non-ASCII letters) is served under a safe form of it
(`order items` -> `order_items`); what still cannot be served is reported
(`DatabaseModel.problems`). Relationship names follow SPEC section 4:
`posts.user_id` -> `posts.user`; `users.posts`, or `users.posts_by_editor_id`
when one table references another more than once. The metadata file
(graph.metadata) renames tables, root fields, columns and relationships.

The model carries both names: `Table.name`/`Column.name` are the GraphQL
names everything after this module reads; `sql_name` is the database's, which
graph.sql.tables binds to them and hand-written SQL quotes.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import replace
from collections.abc import Mapping
from typing import TYPE_CHECKING

from graph.model import DatabaseModel, Problem, Relationship, Table

if TYPE_CHECKING:
    from graph.metadata import Metadata, TableMetadata

_GRAPHQL_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")


def is_graphql_name(name: str) -> bool:
    return bool(_GRAPHQL_NAME.match(name)) and not name.startswith("__")


def bool_exp(table: str) -> str:
    return f"{table}_bool_exp"


def order_by(table: str) -> str:
    return f"{table}_order_by"


def select_column(table: str) -> str:
    return f"{table}_select_column"


def insert_input(table: str) -> str:
    return f"{table}_insert_input"


def obj_rel_insert_input(table: str) -> str:
    """The input of a nested insert through an object relationship to `table` (Hasura's name)."""
    return f"{table}_obj_rel_insert_input"


def arr_rel_insert_input(table: str) -> str:
    """The input of a nested insert through an array relationship to `table` (Hasura's name)."""
    return f"{table}_arr_rel_insert_input"


def set_input(table: str) -> str:
    return f"{table}_set_input"


def inc_input(table: str) -> str:
    return f"{table}_inc_input"


def json_operator_input(table: str, operator: str) -> str:
    """`t_append_input` for `_append`, and so on for each JSON update operator (Hasura's names)."""
    return f"{table}{operator}_input"


def on_conflict(table: str) -> str:
    return f"{table}_on_conflict"


def constraint(table: str) -> str:
    return f"{table}_constraint"


def update_column(table: str) -> str:
    return f"{table}_update_column"


def pk_columns_input(table: str) -> str:
    return f"{table}_pk_columns_input"


def mutation_response(table: str) -> str:
    return f"{table}_mutation_response"


def aggregate(table: str) -> str:
    return f"{table}_aggregate"


def aggregate_fields(table: str) -> str:
    return f"{table}_aggregate_fields"


def aggregate_function_fields(table: str, function: str) -> str:
    """`t_sum_fields`, `t_avg_fields`, ...: the columns one aggregate function answers."""
    return f"{table}_{function}_fields"


def aggregate_order_by(table: str) -> str:
    return f"{table}_aggregate_order_by"


def aggregate_function_order_by(table: str, function: str) -> str:
    return f"{table}_{function}_order_by"


def comparison_exp(scalar: str) -> str:
    return f"{scalar}_comparison_exp"


def by_pk(table: str) -> str:
    return f"{table}_by_pk"


def stream(table: str) -> str:
    """Hasura's streaming subscription field of a table."""
    return f"{table}_stream"


def stream_cursor_input(table: str) -> str:
    return f"{table}_stream_cursor_input"


def stream_cursor_value_input(table: str) -> str:
    return f"{table}_stream_cursor_value_input"


def insert(table: str) -> str:
    return f"insert_{table}"


def insert_one(table: str) -> str:
    return f"insert_{table}_one"


def update(table: str) -> str:
    return f"update_{table}"


def update_by_pk(table: str) -> str:
    return f"update_{table}_by_pk"


def update_many(table: str) -> str:
    return f"update_{table}_many"


def updates_input(table: str) -> str:
    """One entry of `update_t_many`'s `updates`: a `where` and the update operators."""
    return f"{table}_updates"


def delete(table: str) -> str:
    return f"delete_{table}"


def delete_by_pk(table: str) -> str:
    return f"delete_{table}_by_pk"



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
        return _object_name(columns, referred_table)

    def array_relationship(self, table: str, columns: tuple[str, ...], several: bool) -> str:
        return f"{table}_by_{'_'.join(columns)}" if several else table

    def argument(self, name: str) -> str:
        """A fixed argument or input field (`order_by`, `_is_null`, `update_columns`) as served."""
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
        words = [p for p in parts if p]
        return camel(words[0]) + "".join(pascal(w) for w in words[1:])

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


# -- the model's names -------------------------------------------------------------


def _object_name(columns: tuple[str, ...], referred_table: str) -> str:
    if len(columns) == 1 and columns[0].endswith("_id") and len(columns[0]) > 3:
        return columns[0][: -len("_id")]
    return referred_table


def name_model(model: DatabaseModel, metadata: Metadata | None = None) -> DatabaseModel:
    """Give every table, column and relationship its GraphQL name; leave out what cannot have one.

    Metadata that does not fit the database (an unknown table or column, a
    clash, a name taken twice) raises its `MetadataError`; generated names
    that cannot be served are `problems`, not fatal.
    """
    from graph.metadata import Metadata, TableMetadata  # graph.metadata reads is_graphql_name here

    meta = metadata if metadata is not None else Metadata()
    names = INFLECTIONS[meta.inflection]
    for sql_name in meta.tables:
        if sql_name not in model.tables:
            raise meta.fail(f"tables.{sql_name}", "no such table in the database")
    problems: list[Problem] = []
    chosen: dict[str, TableMetadata] = {}
    owners: dict[str, str] = {}  # GraphQL table name -> database name
    # Chosen names first, then names as the database has them, then safe forms of the others.
    ordered = sorted(
        model.tables.values(),
        key=lambda t: (meta.tables.get(t.name, TableMetadata()).custom_name is None, not is_graphql_name(t.name)),
    )
    for table in ordered:
        settings = meta.tables.get(table.name, TableMetadata())
        if settings.exclude:
            continue
        name = settings.custom_name or names.table(table.name)
        if name is None or name.startswith("__"):
            problems.append(Problem(table.name, "its name has nothing GraphQL can carry"))
            continue
        if name in owners:
            owner = owners[name]
            if settings.custom_name is not None or chosen[owner].custom_name is not None:
                entry, other = (table.name, owner) if settings.custom_name is not None else (owner, table.name)
                raise meta.fail(f"tables.{entry}.custom_name", f"{name!r} is the GraphQL name of table {other!r} too")
            problems.append(Problem(table.name, f"its GraphQL name {name!r} is taken by table {owner!r}"))
            continue
        owners[name] = table.name
        chosen[table.name] = settings
    for sql_name, settings in meta.tables.items():
        for column in settings.columns:
            if column not in model.tables[sql_name].column_names:
                raise meta.fail(f"tables.{sql_name}.column_config.{column}", "no such column in the table")

    table_names = {sql: gql for gql, sql in owners.items()}
    column_maps: dict[str, dict[str, str]] = {}
    tables: dict[str, Table] = {}
    for table in model.tables.values():
        if table.name not in chosen:
            continue
        settings = chosen[table.name]
        served = _column_names(table, settings, names, meta, problems)
        if not set(table.primary_key) <= set(served):
            problems.append(Problem(table.name, "a primary key column has no name GraphQL can carry"))
            del owners[table_names.pop(table.name)]
            continue
        column_maps[table.name] = served
        tables[table.name] = table
    renamed: dict[str, Table] = {}
    for sql_name, table in tables.items():
        served = column_maps[sql_name]
        # `on_conflict` names a constraint by an enum value; its columns must be served to be set.
        constraints = tuple(
            replace(c, columns=tuple(served[n] for n in c.columns))
            for c in table.constraints
            if is_graphql_name(c.name) and set(c.columns) <= set(served)
        )
        foreign_keys = []
        for fk in table.foreign_keys:
            target = column_maps.get(fk.referred_table)
            if target is None or not set(fk.columns) <= set(served) or not set(fk.referred_columns) <= set(target):
                problems.append(Problem(
                    table.name,
                    f"foreign key ({', '.join(fk.columns)}) -> {fk.referred_table}: its tables or columns are not served",
                ))
                continue
            foreign_keys.append(replace(
                fk,
                columns=tuple(served[c] for c in fk.columns),
                referred_table=table_names[fk.referred_table],
                referred_columns=tuple(target[c] for c in fk.referred_columns),
            ))
        gql = table_names[sql_name]
        renamed[gql] = replace(
            table,
            name=gql,
            sql_name=sql_name,
            columns=tuple(
                replace(c, name=served[c.name], sql_name=c.sql_name) for c in table.columns if c.name in served
            ),
            primary_key=tuple(served[c] for c in table.primary_key),
            constraints=constraints,
            foreign_keys=tuple(foreign_keys),
            root_fields=tuple(chosen[sql_name].root_fields.items()),
        )
    _check_root_fields(renamed, names, meta)
    named = _relationships(renamed, names, meta, problems)
    skipped = (*model.skipped, *(str(p) for p in problems))
    return replace(
        model, tables=named, skipped=skipped, inflection=names.name, problems=(*model.problems, *problems)
    )


def _column_names(
    table: Table, settings: TableMetadata, names: Inflection, meta: Metadata, problems: list[Problem]
) -> dict[str, str]:
    """Database column name -> GraphQL name, for the columns that can be served."""
    served: dict[str, str] = {}
    owners: dict[str, str] = {}
    ordered = sorted(table.columns, key=lambda c: (c.name not in settings.columns, not is_graphql_name(c.name)))
    for column in ordered:
        custom = settings.columns.get(column.name)
        name = custom or names.column(column.name)
        if name is None or name.startswith("__"):
            problems.append(Problem(table.name, "its name has nothing GraphQL can carry", column.name))
            continue
        if name in owners:
            owner = owners[name]
            if custom is not None or owner in settings.columns:
                entry, other = (column.name, owner) if custom is not None else (owner, column.name)
                raise meta.fail(
                    f"tables.{table.name}.column_config.{entry}", f"{name!r} is the GraphQL name of column {other!r} too"
                )
            problems.append(Problem(table.name, f"its GraphQL name {name!r} is taken by column {owners[name]!r}", column.name))
            continue
        owners[name] = column.name
        served[column.name] = name
    return served


def _check_root_fields(tables: dict[str, Table], names: Inflection, meta: Metadata) -> None:
    """A custom root field named like another root field would hide it: refused."""
    if not any(t.root_fields for t in tables.values()):
        return
    seen: dict[str, tuple[str, str]] = {}
    for table in tables.values():
        for kind in ROOT_FIELDS:
            name = names.root(table, kind)
            custom = any(k == kind for k, _ in table.root_fields)
            other = seen.get(name)
            if other is not None and (custom or other[1] == "custom"):
                entry = table.sql_name if custom else other[0]
                raise meta.fail(f"tables.{entry}.custom_root_fields", f"the root field {name!r} is named twice")
            seen[name] = (table.sql_name, "custom" if custom else "generated")


def _relationships(
    tables: dict[str, Table], names: Inflection, meta: Metadata, problems: list[Problem]
) -> dict[str, Table]:
    """Attach to every table the relationships its foreign keys and the ones to it give."""
    relationships: dict[str, list[Relationship]] = {name: [] for name in tables}
    for table in tables.values():
        per_target = Counter(fk.referred_table for fk in table.foreign_keys)
        for fk in table.foreign_keys:
            relationships[table.name].append(
                Relationship(
                    name=names.object_relationship(fk.columns, fk.referred_table),
                    is_array=False,
                    table=table.name,
                    remote_table=fk.referred_table,
                    local_columns=fk.columns,
                    remote_columns=fk.referred_columns,
                )
            )
            relationships[fk.referred_table].append(
                Relationship(
                    name=names.array_relationship(table.name, fk.columns, per_target[fk.referred_table] > 1),
                    is_array=True,
                    table=fk.referred_table,
                    remote_table=table.name,
                    local_columns=fk.referred_columns,
                    remote_columns=fk.columns,
                )
            )

    named: dict[str, Table] = {}
    for name, table in tables.items():
        taken = set(table.column_names)
        kept: list[Relationship] = []
        for rel in relationships[name]:
            rel_name = rel.name
            if rel_name in taken:
                rel_name = names.renamed_relationship(rel.name, rel.local_columns if not rel.is_array else rel.remote_columns)
            if rel_name in taken or not is_graphql_name(rel_name):
                problems.append(Problem(table.sql_name, f"relationship {rel.name}: its name is already taken"))
                continue
            taken.add(rel_name)
            kept.append(replace(rel, name=rel_name))
        custom = meta.tables.get(table.sql_name)
        if custom is not None and custom.relationships:
            kept = _rename_relationships(table, kept, custom.relationships, meta)
        named[name] = replace(table, relationships=tuple(kept))
    return named


def _rename_relationships(
    table: Table, relationships: list[Relationship], given: Mapping[str, str], meta: Metadata
) -> list[Relationship]:
    generated = {r.name for r in relationships}
    for old in given:
        if old not in generated:
            known = ", ".join(sorted(generated)) or "none"
            raise meta.fail(f"tables.{table.sql_name}.relationships.{old}", f"no such relationship (generated: {known})")
    out = [replace(r, name=given.get(r.name, r.name)) for r in relationships]
    taken: dict[str, str] = {c: "a column" for c in table.column_names}
    for rel in out:
        if rel.name in taken:
            entry = next((old for old, new in given.items() if new == rel.name), rel.name)
            raise meta.fail(
                f"tables.{table.sql_name}.relationships.{entry}", f"{rel.name!r} is the name of {taken[rel.name]} too"
            )
        taken[rel.name] = "another relationship"
    return out
