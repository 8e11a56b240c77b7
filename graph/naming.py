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

from collections import Counter
from collections.abc import Mapping
from dataclasses import replace

from graph.inflection import INFLECTIONS, ROOT_FIELDS, Inflection, graphql_safe, is_graphql_name
from graph.metadata import Metadata, TableMetadata
from graph.model import DatabaseModel, Problem, Relationship, Table, UniqueConstraint

# -- the model's names -------------------------------------------------------------


def name_model(model: DatabaseModel, metadata: Metadata | None = None) -> DatabaseModel:
    """Give every table, column and relationship its GraphQL name; leave out what cannot have one.

    Metadata that does not fit the database (an unknown table or column, a
    clash, a name taken twice) raises its `MetadataError`; generated names
    that cannot be served are `problems`, not fatal.
    """
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
        constraints = _constraints(table, served)
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


def _constraints(table: Table, served: dict[str, str]) -> tuple[UniqueConstraint, ...]:
    """The constraints `on_conflict` may name, by an enum value: a safe form of the database's name.

    Only the name's columns reach SQL (`ON CONFLICT (columns)`), so a safe form
    loses nothing; a constraint whose columns are not all served is left out.
    """
    out: dict[str, UniqueConstraint] = {}
    for constraint in table.constraints:
        name = graphql_safe(constraint.name)
        if name is None or name in out or not set(constraint.columns) <= set(served):
            continue
        out[name] = replace(constraint, name=name, columns=tuple(served[n] for n in constraint.columns))
    return tuple(out.values())


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
