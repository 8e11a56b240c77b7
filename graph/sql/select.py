"""Reads: one statement for a root field, then one per relationship level.

Children are fetched for all parents of a level at once (`IN` on the join
keys); per-parent `limit`/`offset` on array relationships use ROW_NUMBER().
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from graph.errors import ValidationFailed
from graph.rules.to_sql import Condition, Filters, Visible
from graph.sql.order import Orderings
from graph.sql.plan import ListQuery, RowShape
from graph.sql.values import to_api_or_stored, to_db

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from graph.model import DatabaseModel, Relationship, Table

Row = Mapping[Any, Any]

Key = tuple[Any, ...]
# Bind parameters per statement stay well under SQLite's and asyncpg's limits.
MAX_PARAMETERS = 20_000
ROW_NUMBER = "_fg_row_number"


class Reader:
    def __init__(
        self, model: DatabaseModel, tables: Mapping[str, sa.Table], *, max_rows: int = 0
    ) -> None:
        self.model = model
        self.tables = tables
        self.max_rows = max_rows
        """--max-limit: rows per list (per parent row for relationships); 0 means no cap."""
        self.filters = Filters(model, tables)
        self.orderings = Orderings(model, tables)

    def where(
        self, table: str, exp: Mapping[str, Any] | None, visible: Visible | None = None
    ) -> Condition:
        return self.filters.compile(table, exp, visible=visible)

    def pk_condition(self, table: Table, values: Mapping[str, Any]) -> Condition:
        core = self.tables[table.name]
        return sa.and_(
            sa.true(),
            *(
                core.c[name] == to_db(table.column(name), values[name], self.model.dialect)
                for name in table.primary_key
            ),
        )

    async def select(
        self,
        conn: AsyncConnection,
        query: ListQuery,
        extra: Condition | None = None,
        visible: Visible | None = None,
    ) -> list[dict[str, Any]]:
        table = query.shape.table
        core = self.tables[table.name]
        limit = self._limit(query)
        stmt = (
            sa.select(*(core.c[n] for n in query.shape.needed_columns()))
            .where(self.where(table.name, query.where, visible))
            .order_by(*self.orderings.clauses(table.name, query.order_by, visible=visible))
        )
        if extra is not None:
            stmt = stmt.where(extra)
        allowed = visible(table.name, None) if visible else None
        if allowed is not None:
            stmt = stmt.where(allowed)
        if limit is not None:
            stmt = stmt.limit(limit)
        if query.offset:
            stmt = stmt.offset(query.offset)
        rows = (await conn.execute(stmt)).mappings().all()
        return await self.records(conn, query.shape, rows, visible)

    async def count(
        self,
        conn: AsyncConnection,
        table: Table,
        where: Mapping[str, Any] | None,
        visible: Visible | None = None,
    ) -> int:
        core = self.tables[table.name]
        stmt = sa.select(sa.func.count()).select_from(core).where(self.where(table.name, where, visible))
        allowed = visible(table.name, None) if visible else None
        if allowed is not None:
            stmt = stmt.where(allowed)
        return int((await conn.execute(stmt)).scalar_one())

    async def keys_where(
        self, conn: AsyncConnection, table: Table, condition: Condition, rows: Sequence[Row] | None = None
    ) -> set[Key]:
        """Primary keys of the rows (of `rows`, when given) for which `condition` holds."""
        core = self.tables[table.name]
        key_cols = [core.c[n] for n in table.primary_key]
        stmt = sa.select(*key_cols).where(sa.func.coalesce(condition, sa.false()))
        if rows is not None:
            keys = [_key(row, table.primary_key) for row in rows]
            if not keys:
                return set()
            stmt = stmt.where(
                key_cols[0].in_([k[0] for k in keys]) if len(key_cols) == 1 else sa.tuple_(*key_cols).in_(keys)
            )
        return {tuple(row) for row in (await conn.execute(stmt)).all()}

    async def records(
        self,
        conn: AsyncConnection,
        shape: RowShape,
        rows: Sequence[Row],
        visible: Visible | None = None,
    ) -> list[dict[str, Any]]:
        """Turn raw rows into response objects, fetching their relationships level by level."""
        table = shape.table
        kinds = {c.name: c.kind for c in table.columns}
        out = [{key: to_api_or_stored(kinds[name], row[name]) for key, name in shape.columns} for row in rows]
        for key, rel, child_shape in shape.objects:
            children = await self._related(conn, rel, child_shape, None, rows, visible)
            for record, row in zip(out, rows, strict=True):
                found = children.get(_key(row, rel.local_columns))
                record[key] = found[0] if found else None
        for key, rel, query in shape.arrays:
            children = await self._related(conn, rel, query.shape, query, rows, visible)
            for record, row in zip(out, rows, strict=True):
                record[key] = children.get(_key(row, rel.local_columns), [])
        return out

    async def _related(
        self,
        conn: AsyncConnection,
        rel: Relationship,
        shape: RowShape,
        query: ListQuery | None,
        parents: Sequence[Row],
        visible: Visible | None,
    ) -> dict[Key, list[dict[str, Any]]]:
        keys = list(dict.fromkeys(k for row in parents if None not in (k := _key(row, rel.local_columns))))
        if not keys:
            return {}
        core = self.tables[rel.remote_table]
        join_cols = [core.c[n] for n in rel.remote_columns]
        names = list(dict.fromkeys([*shape.needed_columns(), *rel.remote_columns]))
        per_statement = max(1, MAX_PARAMETERS // len(join_cols))
        rows: list[Row] = []
        for start in range(0, len(keys), per_statement):
            chunk = keys[start : start + per_statement]
            matches: Condition = (
                join_cols[0].in_([k[0] for k in chunk])
                if len(join_cols) == 1
                else sa.tuple_(*join_cols).in_(chunk)
            )
            allowed = visible(rel.remote_table, None) if visible else None
            if allowed is not None:
                matches = sa.and_(matches, allowed)
            rows.extend(
                await self._fetch_children(conn, core, names, join_cols, matches, query, visible)
            )
        records = await self.records(conn, shape, rows, visible)
        grouped: dict[Key, list[dict[str, Any]]] = defaultdict(list)
        for row, record in zip(rows, records, strict=True):
            grouped[_key(row, rel.remote_columns)].append(record)
        return grouped

    async def _fetch_children(
        self,
        conn: AsyncConnection,
        core: sa.Table,
        names: list[str],
        join_cols: list[Any],
        matches: Condition,
        query: ListQuery | None,
        visible: Visible | None,
    ) -> Sequence[Row]:
        columns = [core.c[n] for n in names]
        if query is None:
            return (await conn.execute(sa.select(*columns).where(matches))).mappings().all()
        limit = self._limit(query)
        condition = sa.and_(matches, self.where(core.name, query.where, visible))
        ordering = self.orderings.clauses(core.name, query.order_by, visible=visible)
        if limit is None and not query.offset:
            stmt = sa.select(*columns).where(condition).order_by(*ordering)
            return (await conn.execute(stmt)).mappings().all()
        number = sa.func.row_number().over(partition_by=join_cols, order_by=ordering or None)
        inner = sa.select(*columns, number.label(ROW_NUMBER)).where(condition).subquery()
        position = inner.c[ROW_NUMBER]
        low = query.offset or 0
        stmt = sa.select(*(inner.c[n] for n in names)).where(position > low)
        if limit is not None:
            stmt = stmt.where(position <= low + limit)
        stmt = stmt.order_by(position)
        return (await conn.execute(stmt)).mappings().all()


    def _limit(self, query: ListQuery) -> int | None:
        """The query's `limit`, clamped to --max-limit as Hasura clamps to a role's limit."""
        _check_window(query)
        if not self.max_rows:
            return query.limit
        return self.max_rows if query.limit is None else min(query.limit, self.max_rows)


def _key(row: Row, columns: Sequence[str]) -> Key:
    return tuple(row[c] for c in columns)


def _check_window(query: ListQuery) -> None:
    if query.limit is not None and query.limit < 0:
        raise ValidationFailed("expecting a non-negative integer for \"limit\"")
    if query.offset is not None and query.offset < 0:
        raise ValidationFailed("expecting a non-negative integer for \"offset\"")
