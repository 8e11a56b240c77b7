"""What one role may see and do, table by table: the shape of its schema.

Each role gets its own schema built from these grants (as Hasura does), so a
table or column the role may not see does not exist for it: denied and
unknown names answer the same validation error.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from graph.model import DatabaseModel, Table
    from graph.rules.permissions import Permissions


@dataclass(frozen=True)
class TableGrants:
    select: tuple[str, ...] | None = None
    """Visible columns; None when the role may not select from the table."""
    insert: tuple[str, ...] | None = None
    update: tuple[str, ...] | None = None
    delete: bool = False

    @classmethod
    def everything(cls, table: Table) -> TableGrants:
        columns = table.column_names
        writable = table.is_writable
        return cls(
            select=columns,
            insert=columns if writable else None,
            update=columns if writable else None,
            delete=writable,
        )


def grants_for(role: str, model: DatabaseModel, permissions: Permissions) -> dict[str, TableGrants]:
    out: dict[str, TableGrants] = {}
    for table in model.tables.values():
        select = permissions.select(role, table)
        insert = permissions.insert(role, table) if table.is_writable else None
        update = permissions.update(role, table) if table.is_writable else None
        delete = permissions.delete(role, table) if table.is_writable else None
        out[table.name] = TableGrants(
            select=select.columns if select else None,
            insert=insert.columns if insert else None,
            update=update.columns if update else None,
            delete=delete is not None,
        )
    return out


def all_grants(model: DatabaseModel) -> dict[str, TableGrants]:
    return {name: TableGrants.everything(table) for name, table in model.tables.items()}


def visible_model(model: DatabaseModel, grants: dict[str, TableGrants]) -> DatabaseModel:
    """The tables the role may select, with only its columns and relationships among them."""
    tables = {}
    for name, table in model.tables.items():
        columns = grants[name].select
        if columns is None:
            continue
        tables[name] = replace(
            table,
            columns=tuple(c for c in table.columns if c.name in columns),
            relationships=tuple(
                r for r in table.relationships if grants[r.remote_table].select is not None
            ),
        )
    return replace(model, tables=tables)
