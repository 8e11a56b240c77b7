"""Root-field resolvers, made by a factory that closes over the model.

Each resolver reads its field's arguments and sub-selection into a plan and
hands it to the statement builders: one statement for the root field, one
per relationship level below it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from graph.errors import PermissionDenied, ValidationFailed
from graph.events.changelog import latest_cursor
from graph.selection import list_query, row_shape, subfields

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from graphql import GraphQLResolveInfo
    from sqlalchemy.ext.asyncio import AsyncConnection

    from graph.context import RequestContext
    from graph.model import DatabaseModel, Table
    from graph.rules.to_sql import Condition
    from graph.sql.mutate import Row, Writer
    from graph.sql.select import Reader

    Resolver = Callable[..., Awaitable[Any]]


def _context(info: GraphQLResolveInfo) -> RequestContext:
    context: RequestContext = info.context
    return context


class Resolvers:
    def __init__(self, model: DatabaseModel, reader: Reader, writer: Writer) -> None:
        self.model = model
        self.reader = reader
        self.writer = writer

    # -- queries -------------------------------------------------------

    def change_cursor(self) -> Resolver:
        async def resolve(_root: Any, info: GraphQLResolveInfo) -> str:
            async with _context(info).reading() as conn:
                return str(await latest_cursor(conn))

        return resolve

    def select(self, table: Table) -> Resolver:
        async def resolve(_root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
            context = _context(info)
            query = list_query(
                info, self.model, self.model.table(table.name), list(info.field_nodes), args
            )
            async with context.reading() as conn:
                return await self.reader.select(conn, query, visible=context.access.select_filter)

        return resolve

    def select_by_pk(self, table: Table) -> Resolver:
        async def resolve(_root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
            context = _context(info)
            full = self.model.table(table.name)
            query = list_query(info, self.model, full, list(info.field_nodes), {})
            where = self.reader.pk_condition(full, args)
            async with context.reading() as conn:
                rows = await self.reader.select(conn, query, where, context.access.select_filter)
            return rows[0] if rows else None

        return resolve

    def aggregate(self, table: Table) -> Resolver:
        async def resolve(_root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
            context = _context(info)
            async with context.reading() as conn:
                count = await self.reader.count(
                    conn,
                    self.model.table(table.name),
                    args.get("where"),
                    context.access.select_filter,
                )
            out: dict[str, Any] = {}
            for key, nodes in subfields(info, info.field_nodes).items():
                if nodes[0].name.value == "aggregate":
                    out[key] = {k: count for k in subfields(info, nodes)}
            return out

        return resolve

    # -- mutations -------------------------------------------------------

    async def _visible(
        self, context: RequestContext, conn: AsyncConnection, table: Table, rows: Sequence[Row]
    ) -> Sequence[Row]:
        """The changed rows the session may select (`returning` shows no others)."""
        allowed = context.access.select_filter(table.name)
        if allowed is None or not rows:
            return rows
        keys = await self.reader.keys_where(conn, table, allowed, rows)
        return [row for row in rows if tuple(row[c] for c in table.primary_key) in keys]

    async def _check(
        self,
        conn: AsyncConnection,
        table: Table,
        check: Condition | None,
        rows: Sequence[Row],
        what: str,
    ) -> None:
        if check is None or not rows:
            return
        passing = await self.reader.keys_where(conn, table, check, rows)
        if len(passing) < len({tuple(row[c] for c in table.primary_key) for row in rows}):
            raise PermissionDenied(f"check constraint of an {what} permission has failed")

    async def _response(
        self,
        info: GraphQLResolveInfo,
        conn: AsyncConnection,
        table: Table,
        rows: Sequence[Row],
        shown: Sequence[Row] | None = None,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        context = _context(info)
        for key, nodes in subfields(info, info.field_nodes).items():
            name = nodes[0].name.value
            if name == "affected_rows":
                out[key] = len(rows)
            elif name == "returning":
                shape = row_shape(info, self.model, table, nodes)
                if shown is None:
                    shown = await self._visible(context, conn, table, rows)
                out[key] = await self.reader.records(
                    conn, shape, shown, context.access.select_filter
                )
        return out

    async def _one(
        self,
        info: GraphQLResolveInfo,
        conn: AsyncConnection,
        table: Table,
        rows: Sequence[Row],
        shown: Sequence[Row] | None = None,
    ) -> dict[str, Any] | None:
        context = _context(info)
        if shown is None:
            shown = await self._visible(context, conn, table, rows[:1])
        if not shown:
            return None
        shape = row_shape(info, self.model, table, list(info.field_nodes))
        return (await self.reader.records(conn, shape, shown, context.access.select_filter))[0]

    async def _insert(
        self, info: GraphQLResolveInfo, table: Table, objects: list[Any]
    ) -> tuple[AsyncConnection, list[Row]]:
        context = _context(info)
        access = context.access
        presets = access.insert_presets(table)
        conn = await context.writing()
        rows = await self.writer.insert(conn, table, [{**obj, **presets} for obj in objects])
        await self._check(conn, table, access.insert_check(table), rows, "insert")
        return conn, rows

    def insert(self, table: Table) -> Resolver:
        full = self.model.table(table.name)

        async def resolve(_root: Any, info: GraphQLResolveInfo, objects: list[Any]) -> Any:
            conn, rows = await self._insert(info, full, objects)
            return await self._response(info, conn, full, rows)

        return resolve

    def insert_one(self, table: Table) -> Resolver:
        full = self.model.table(table.name)

        async def resolve(_root: Any, info: GraphQLResolveInfo, object: Any) -> Any:  # noqa: A002
            conn, rows = await self._insert(info, full, [object])
            return await self._one(info, conn, full, rows)

        return resolve

    async def _update(
        self, info: GraphQLResolveInfo, table: Table, where: Condition, args: dict[str, Any]
    ) -> tuple[AsyncConnection, list[Row]]:
        context = _context(info)
        access = context.access
        changes = {**_required_set(table, args), **access.update_presets(table)}
        allowed = access.update_filter(table)
        if allowed is not None:
            where = sa.and_(where, allowed)
        conn = await context.writing()
        rows = await self.writer.update(conn, table, where, changes)
        await self._check(conn, table, access.update_check(table), rows, "update")
        return conn, rows

    def update(self, table: Table) -> Resolver:
        full = self.model.table(table.name)

        async def resolve(_root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
            visible = _context(info).access.select_filter
            where = self.reader.where(full.name, args["where"], visible)
            conn, rows = await self._update(info, full, where, args)
            return await self._response(info, conn, full, rows)

        return resolve

    def update_by_pk(self, table: Table) -> Resolver:
        full = self.model.table(table.name)

        async def resolve(_root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
            where = self.reader.pk_condition(full, args["pk_columns"])
            conn, rows = await self._update(info, full, where, args)
            return await self._one(info, conn, full, rows)

        return resolve

    async def _delete(
        self, info: GraphQLResolveInfo, table: Table, where: Condition
    ) -> tuple[AsyncConnection, list[Row], list[Row]]:
        """Delete; return the deleted rows and those of them the session may see."""
        context = _context(info)
        allowed = context.access.delete_filter(table)
        if allowed is not None:
            where = sa.and_(where, allowed)
        conn = await context.writing()
        # Deleted rows cannot be filtered afterwards: find the visible ones first.
        select_filter = context.access.select_filter(table.name)
        shown = None
        if select_filter is not None:
            shown = await self.reader.keys_where(conn, table, sa.and_(where, select_filter))
        rows = await self.writer.delete(conn, table, where)
        if shown is None:
            return conn, rows, rows
        return (
            conn,
            rows,
            [row for row in rows if tuple(row[c] for c in table.primary_key) in shown],
        )

    def delete(self, table: Table) -> Resolver:
        full = self.model.table(table.name)

        async def resolve(_root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
            visible = _context(info).access.select_filter
            conn, rows, shown = await self._delete(
                info, full, self.reader.where(full.name, args["where"], visible)
            )
            return await self._response(info, conn, full, rows, shown)

        return resolve

    def delete_by_pk(self, table: Table) -> Resolver:
        full = self.model.table(table.name)

        async def resolve(_root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
            conn, rows, shown = await self._delete(info, full, self.reader.pk_condition(full, args))
            return await self._one(info, conn, full, rows, shown)

        return resolve


def _required_set(table: Table, args: dict[str, Any]) -> dict[str, Any]:
    changes = args.get("_set")
    if changes is None:
        raise ValidationFailed(
            f"at least one of the update operators (_set) is expected for {table.name!r}"
        )
    return dict(changes)
