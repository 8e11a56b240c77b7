"""Root-field resolvers, made by a factory that closes over the model.

Each resolver reads its field's arguments and sub-selection into a plan and
hands it to the statement builders: one statement for the root field, one
per relationship level below it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graph.errors import ValidationFailed
from graph.selection import list_query, row_shape, subfields

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from graphql import GraphQLResolveInfo
    from sqlalchemy.ext.asyncio import AsyncConnection

    from graph.context import RequestContext
    from graph.model import DatabaseModel, Table
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

    def select(self, table: Table) -> Resolver:
        async def resolve(_root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
            query = list_query(info, self.model, table, list(info.field_nodes), args)
            async with _context(info).reading() as conn:
                return await self.reader.select(conn, query)

        return resolve

    def select_by_pk(self, table: Table) -> Resolver:
        async def resolve(_root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
            query = list_query(info, self.model, table, list(info.field_nodes), {})
            async with _context(info).reading() as conn:
                rows = await self.reader.select(conn, query, self.reader.pk_condition(table, args))
            return rows[0] if rows else None

        return resolve

    def aggregate(self, table: Table) -> Resolver:
        async def resolve(_root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
            async with _context(info).reading() as conn:
                count = await self.reader.count(conn, table, args.get("where"))
            out: dict[str, Any] = {}
            for key, nodes in subfields(info, info.field_nodes).items():
                if nodes[0].name.value == "aggregate":
                    out[key] = {k: count for k in subfields(info, nodes)}
            return out

        return resolve

    # -- mutations -------------------------------------------------------

    async def _response(
        self, info: GraphQLResolveInfo, conn: AsyncConnection, table: Table, rows: Sequence[Row]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, nodes in subfields(info, info.field_nodes).items():
            name = nodes[0].name.value
            if name == "affected_rows":
                out[key] = len(rows)
            elif name == "returning":
                shape = row_shape(info, self.model, table, nodes)
                out[key] = await self.reader.records(conn, shape, rows)
        return out

    async def _one(
        self, info: GraphQLResolveInfo, conn: AsyncConnection, table: Table, rows: Sequence[Row]
    ) -> dict[str, Any] | None:
        if not rows:
            return None
        shape = row_shape(info, self.model, table, list(info.field_nodes))
        return (await self.reader.records(conn, shape, rows[:1]))[0]

    def insert(self, table: Table) -> Resolver:
        async def resolve(_root: Any, info: GraphQLResolveInfo, objects: list[Any]) -> Any:
            conn = await _context(info).writing()
            rows = await self.writer.insert(conn, table, objects)
            return await self._response(info, conn, table, rows)

        return resolve

    def insert_one(self, table: Table) -> Resolver:
        async def resolve(_root: Any, info: GraphQLResolveInfo, object: Any) -> Any:  # noqa: A002
            conn = await _context(info).writing()
            rows = await self.writer.insert(conn, table, [object])
            return await self._one(info, conn, table, rows)

        return resolve

    def update(self, table: Table) -> Resolver:
        async def resolve(_root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
            changes = _required_set(table, args)
            conn = await _context(info).writing()
            where = self.reader.where(table.name, args["where"])
            rows = await self.writer.update(conn, table, where, changes)
            return await self._response(info, conn, table, rows)

        return resolve

    def update_by_pk(self, table: Table) -> Resolver:
        async def resolve(_root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
            changes = _required_set(table, args)
            conn = await _context(info).writing()
            where = self.reader.pk_condition(table, args["pk_columns"])
            rows = await self.writer.update(conn, table, where, changes)
            return await self._one(info, conn, table, rows)

        return resolve

    def delete(self, table: Table) -> Resolver:
        async def resolve(_root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
            conn = await _context(info).writing()
            rows = await self.writer.delete(conn, table, self.reader.where(table.name, args["where"]))
            return await self._response(info, conn, table, rows)

        return resolve

    def delete_by_pk(self, table: Table) -> Resolver:
        async def resolve(_root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
            conn = await _context(info).writing()
            rows = await self.writer.delete(conn, table, self.reader.pk_condition(table, args))
            return await self._one(info, conn, table, rows)

        return resolve


def _required_set(table: Table, args: dict[str, Any]) -> dict[str, Any]:
    changes = args.get("_set")
    if changes is None:
        raise ValidationFailed(
            f"at least one of the update operators (_set) is expected for {table.name!r}"
        )
    return dict(changes)
