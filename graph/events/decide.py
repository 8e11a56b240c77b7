"""Relationship parts of stream filters decided with SQL, once per batch and shape.

A stream whose filter goes through a relationship (a customer's rule
`{invoice: {customer_id: {_eq: X-User-Id}}}` on invoice lines) cannot be
matched on a row image alone. Before a batch is dispatched, `Decider.decide`
runs one statement per shape of such parts among the live streams
(graph.rules.related): the batch's row images (old and new, their join
columns) are one list of rows, the operands of every stream of the shape
(each customer's id) another, and the statement answers which pairs the
part holds for, as `EXISTS (SELECT 1 FROM invoices WHERE invoices.id =
rows.invoice_id AND invoices.customer_id = operands.p0)`, compiled by the one
SQL walker (graph.rules.to_sql). Never a query per subscriber or per event.

The statements run on the query plans' reads, so PostgreSQL stays within
`--pool-size`. The related rows are read as they are when the batch is
decided, just after its commit.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from graph.rules.bool_exp import And, BoolExp, ColumnExp, Not, Or, Related
from graph.rules.related import Decided, RelatedPart, Slot, row_keys, value_key
from graph.sql.compiled import Compiled, Statement
from graph.sql.values import to_db

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect

    from graph.compile._query_backend import Backend
    from graph.events.change import ChangeEvent
    from graph.model import Column, DatabaseModel, Table
    from graph.rules.to_sql import Filters

log = logging.getLogger("forgegraph.realtime")

MAX_PARAMETERS = 30_000
"""Bind parameters per statement, under PostgreSQL's 32,767 and SQLite's 32,766: a bigger batch is split."""

ROW = "_fg_row"
SET = "_fg_set"


@dataclass
class Shape:
    """The live streams' parts of one shape: its template, and each set of operands with its users."""

    part: RelatedPart
    operands: dict[tuple[Hashable, ...], tuple[tuple[Any, ...], int]] = field(default_factory=dict)
    """value keys -> (the operands, how many streams' parts use them)"""


class Shapes:
    """The relationship parts of every live stream, by table and shape (the hub keeps it)."""

    def __init__(self) -> None:
        self.by_table: dict[str, dict[Hashable, Shape]] = {}

    def add(self, parts: Iterable[RelatedPart]) -> None:
        for part in parts:
            shapes = self.by_table.setdefault(part.table, {})
            shape = shapes.get(part.shape)
            if shape is None:
                shape = shapes[part.shape] = Shape(part)
            key = tuple(value_key(v) for v in part.values)
            _values, count = shape.operands.get(key, (part.values, 0))
            shape.operands[key] = (part.values, count + 1)

    def remove(self, parts: Iterable[RelatedPart]) -> None:
        for part in parts:
            shapes = self.by_table[part.table]
            shape = shapes[part.shape]
            key = tuple(value_key(v) for v in part.values)
            values, count = shape.operands[key]
            if count > 1:
                shape.operands[key] = (values, count - 1)
                continue
            del shape.operands[key]
            if not shape.operands:
                del shapes[part.shape]
                if not shapes:
                    del self.by_table[part.table]

    def __bool__(self) -> bool:
        return bool(self.by_table)


def shapes_of(parts: Iterable[RelatedPart]) -> Shapes:
    shapes = Shapes()
    shapes.add(parts)
    return shapes


class Decider:
    """Runs the statements of `decide` on the query plans' connections (`backend`)."""

    def __init__(self, model: DatabaseModel, filters: Filters, backend: Backend) -> None:
        self.model = model
        self.filters = filters
        self.backend = backend
        self.dialect: Dialect = backend.dialect

    async def decide(self, events: Sequence[ChangeEvent], shapes: Shapes) -> Decided:
        """For each shape of `shapes` whose table the batch changes, the pairs its part holds for.

        Raises what the database raised; the caller reports it (the parts are then UNKNOWN).
        """
        decided: Decided = {}
        if not shapes:
            return decided
        images: dict[str, list[Mapping[str, Any]]] = {}
        for event in events:
            if event.table in shapes.by_table:
                rows = images.setdefault(event.table, [])
                rows.extend(row for row in (event.old, event.new) if row is not None)
        for table_name, rows in images.items():
            table = self.model.table(table_name)
            for key, shape in list(shapes.by_table[table_name].items()):
                decided[key] = await self._decide_shape(table, shape, rows)
        return decided

    async def _decide_shape(
        self, table: Table, shape: Shape, images: list[Mapping[str, Any]]
    ) -> dict[tuple[Hashable, ...], frozenset[tuple[Hashable, ...]]]:
        part = shape.part
        keyed: dict[tuple[Hashable, ...], Mapping[str, Any]] = {}
        for row in images:
            keys = row_keys(row, part.local_columns)
            if keys is not None and keys not in keyed:
                keyed[keys] = row
        operand_keys = list(shape.operands)
        holds: dict[tuple[Hashable, ...], set[tuple[Hashable, ...]]] = {key: set() for key in operand_keys}
        if not keyed:
            return {key: frozenset() for key in operand_keys}
        row_keys_list = list(keyed)
        operand_rows = [shape.operands[key][0] for key in operand_keys]
        per_row = 1 + len(part.local_columns)
        per_set = 1 + len(part.values)
        room = max(1, (MAX_PARAMETERS - per_set * len(operand_rows)) // per_row)
        for start in range(0, len(row_keys_list), room):
            chunk = row_keys_list[start : start + room]
            statement = self._statement(table, part, [keyed[k] for k in chunk], operand_rows, start)
            text = await self.backend.fetch(statement.sql, statement.args)
            for row_index, set_index in orjson.loads(text or "[]"):
                holds[operand_keys[set_index]].add(row_keys_list[row_index])
        return {key: frozenset(rows) for key, rows in holds.items()}

    def _statement(
        self,
        table: Table,
        part: RelatedPart,
        images: list[Mapping[str, Any]],
        operand_rows: list[tuple[Any, ...]],
        first: int,
    ) -> Statement:
        filters, dialect = self.filters, self.dialect.name
        local = [table.column(name) for name in part.local_columns]
        rows = sa.values(
            sa.column(ROW, sa.Integer()),
            *(sa.column(c.name, filters.operand_type(c)) for c in local),
            name="_fg_rows",
        ).data([
            (first + i, *(to_db(c, row.get(c.name), dialect) for c in local)) for i, row in enumerate(images)
        ]).cte("_fg_rows")
        slots = slot_columns(part.template, table, self.model)
        operands = sa.values(
            sa.column(SET, sa.Integer()),
            *(sa.column(f"_fg_p{i}", filters.operand_type(c)) for i, c in enumerate(slots)),
            name="_fg_operands",
        ).data([
            (j, *(filters.operand(c, v) for c, v in zip(slots, values, strict=True)))
            for j, values in enumerate(operand_rows)
        ]).cte("_fg_operands")
        condition = filters.compile(
            table.name,
            BoolExp((part.template,)),
            target=rows,
            slots=[operands.c[f"_fg_p{i}"] for i in range(len(slots))],
        )
        backend = self.backend
        pairs = backend.answer(backend.json_array(backend.json_list([rows.c[ROW], operands.c[SET]])))
        select = sa.select(pairs).select_from(rows.join(operands, sa.true())).where(condition)
        return Compiled(select.compile(dialect=self.dialect)).bind()


def slot_columns(exp: Related, table: Table, model: DatabaseModel) -> list[Column]:
    """The column each `Slot` of a template is compared with, in slot order."""
    found: dict[int, Column] = {}

    def walk(exp: BoolExp, table: Table) -> None:
        for f in exp.fields:
            if isinstance(f, And | Or):
                for e in f.exps:
                    walk(e, table)
            elif isinstance(f, Not):
                walk(f.exp, table)
            elif isinstance(f, Related):
                rel = next(r for r in table.relationships if r.name == f.relationship)
                walk(f.exp, model.table(rel.remote_table))
            elif isinstance(f, ColumnExp):
                for compare in f.comparisons:
                    if isinstance(compare.operand, Slot):
                        found[compare.operand.index] = table.column(f.column)

    walk(BoolExp((exp,)), table)
    return [found[i] for i in range(len(found))]
