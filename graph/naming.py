"""Names of everything the API exposes (PostGraphile calls this inflection).

Database names are kept as they are (no camel-casing); names the GraphQL
grammar cannot carry are reported and left out. Relationship names follow
SPEC section 4: `posts.user_id` -> `posts.user`; `users.posts`, or
`users.posts_by_editor_id` when one table references another more than once.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace

from graph.model import DatabaseModel, Relationship, Table

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


def _object_name(columns: tuple[str, ...], referred_table: str) -> str:
    if len(columns) == 1 and columns[0].endswith("_id") and len(columns[0]) > 3:
        return columns[0][: -len("_id")]
    return referred_table


def name_model(model: DatabaseModel) -> DatabaseModel:
    """Drop what GraphQL cannot name and attach relationships to every table."""
    skipped = list(model.skipped)
    tables: dict[str, Table] = {}
    for table in model.tables.values():
        if not is_graphql_name(table.name):
            skipped.append(f"table {table.name!r}: not a valid GraphQL name")
            continue
        bad = [c.name for c in table.columns if not is_graphql_name(c.name)]
        if any(name in table.primary_key for name in bad):
            skipped.append(f"table {table.name!r}: a primary key column is not a valid GraphQL name")
            continue
        for name in bad:
            skipped.append(f"column {table.name}.{name}: not a valid GraphQL name")
        # `on_conflict` names a constraint by an enum value; its columns must be served to be set.
        constraints = tuple(
            c for c in table.constraints if is_graphql_name(c.name) and not set(c.columns) & set(bad)
        )
        tables[table.name] = replace(
            table, columns=tuple(c for c in table.columns if c.name not in bad), constraints=constraints
        )

    relationships: dict[str, list[Relationship]] = {name: [] for name in tables}
    for table in tables.values():
        column_names = set(table.column_names)
        per_target = Counter(fk.referred_table for fk in table.foreign_keys)
        for fk in table.foreign_keys:
            target = tables.get(fk.referred_table)
            usable = target is not None and set(fk.columns) <= column_names
            if not usable or not set(fk.referred_columns) <= set(target.column_names):  # type: ignore[union-attr]
                skipped.append(
                    f"foreign key {table.name}({', '.join(fk.columns)}) -> {fk.referred_table}: "
                    "its tables or columns are not served"
                )
                continue
            relationships[table.name].append(
                Relationship(
                    name=_object_name(fk.columns, fk.referred_table),
                    is_array=False,
                    table=table.name,
                    remote_table=fk.referred_table,
                    local_columns=fk.columns,
                    remote_columns=fk.referred_columns,
                )
            )
            array_name = table.name
            if per_target[fk.referred_table] > 1:
                array_name = f"{table.name}_by_{'_'.join(fk.columns)}"
            relationships[fk.referred_table].append(
                Relationship(
                    name=array_name,
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
                rel_name = f"{rel.name}_by_{'_'.join(rel.local_columns if not rel.is_array else rel.remote_columns)}"
            if rel_name in taken or not is_graphql_name(rel_name):
                skipped.append(f"relationship {name}.{rel.name}: its name is already taken")
                continue
            taken.add(rel_name)
            kept.append(replace(rel, name=rel_name))
        named[name] = replace(table, relationships=tuple(kept))
    return replace(model, tables=named, skipped=tuple(skipped))
