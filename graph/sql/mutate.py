"""Writes: INSERT/UPDATE/DELETE ... RETURNING every column.

The returned rows are the changed rows as committed (they feed the
`returning` selection, and change events later); no statement reads a row
back by key.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import exc

from graph.errors import database_refusal
from graph.sql.values import to_stored

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from graph.model import DatabaseModel, Table
    from graph.rules.to_sql import Condition

Row = Mapping[Any, Any]


@contextmanager
def database_errors() -> Iterator[None]:
    """Turn the driver's complaints about the data into the errors of SPEC section 8."""
    try:
        yield
    except exc.DBAPIError as error:
        refusal = database_refusal(error)
        if refusal is None:
            raise  # not the data: the server's fault, or an outage
        raise refusal from error


class Writer:
    def __init__(self, model: DatabaseModel, tables: Mapping[str, sa.Table]) -> None:
        self.model = model
        self.tables = tables

    def _values(self, table: Table, values: Mapping[str, Any]) -> dict[str, Any]:
        return {
            name: to_stored(table.column(name), value, self.model.dialect)
            for name, value in values.items()
        }

    async def insert(
        self, conn: AsyncConnection, table: Table, objects: Sequence[Mapping[str, Any]]
    ) -> list[Row]:
        core = self.tables[table.name]
        rows: list[Row] = []
        # Objects naming the same columns share one multi-row INSERT; the
        # order of `objects` is kept within each group.
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for obj in objects:
            values = self._values(table, obj)
            groups.setdefault(tuple(values), []).append(values)
        stmt = sa.insert(core).returning(*core.c, sort_by_parameter_order=True)
        # Key columns the database cannot fill in. Rows without one of them fail
        # (NOT NULL), but SQLAlchemy's batched INSERT on PostgreSQL fails first,
        # with a ZeroDivisionError: such rows go one at a time, for the database's error.
        required = {c for c in table.primary_key if not table.column(c).has_default}
        with database_errors():
            for names, group in groups.items():
                if names and (len(group) == 1 or required <= set(names)):
                    # Parameters, not literal VALUES: the compiled statement is
                    # cached, and SQLAlchemy batches many rows into one INSERT.
                    result = await conn.execute(stmt, group[0] if len(group) == 1 else group)
                    rows.extend(result.mappings().all())
                else:
                    for values in group:
                        result = await conn.execute(stmt, values) if values else await conn.execute(stmt)
                        rows.extend(result.mappings().all())
        return rows

    async def update(
        self, conn: AsyncConnection, table: Table, where: Condition, changes: Mapping[str, Any]
    ) -> list[Row]:
        if not changes:
            return []
        core = self.tables[table.name]
        stmt = sa.update(core).where(where).values(self._values(table, changes)).returning(*core.c)
        with database_errors():
            return list((await conn.execute(stmt)).mappings().all())

    async def delete(self, conn: AsyncConnection, table: Table, where: Condition) -> list[Row]:
        core = self.tables[table.name]
        stmt = sa.delete(core).where(where).returning(*core.c)
        with database_errors():
            return list((await conn.execute(stmt)).mappings().all())
