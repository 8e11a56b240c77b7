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

from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from graph.rules.bool_exp import And, BoolExp, ColumnExp, Not, Or, Related
from graph.rules.related import (
    Answers,
    Decided,
    Operands,
    RelatedPart,
    RowKey,
    Slot,
    operand_keys,
    row_keys,
    value_key,
)
from graph.sql.compiled import Compiled
from graph.sql.values import to_db

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect

    from graph.compile._query_backend import Backend
    from graph.events.change import ChangeEvent
    from graph.model import Column, DatabaseModel, Relationship, Table
    from graph.rules.to_sql import Filters

CACHE_SIZE = 256
"""Compiled statements kept (`Decider._compiled`): a few per live shape."""
MAX_PARAMETERS = 30_000
"""Bind parameters per statement, under PostgreSQL's 32,767 and SQLite's 32,766: a bigger batch
(row images) or more subscribers' values than fit are split over several statements."""

ROW = "_fg_row"
SET = "_fg_set"


@dataclass
class Shape:
    """The live streams' parts of one shape: its template, and each set of operands with its users."""

    part: RelatedPart
    operands: dict[tuple[Hashable, ...], tuple[tuple[Any, ...], int]] = field(default_factory=dict)
    """value keys -> (the operands, how many streams' parts use them)"""
    prepared: Prepared | None = None
    """The operands as the statements bind them, kept while the set of operands stays the same."""


@dataclass
class Prepared:
    """A shape's operands converted for SQL once, not per batch (most batches meet the same streams)."""

    wanted: list[Operands]
    sets: list[tuple[Any, ...]]
    """(index, *operands as bound), in `wanted`'s order."""
    slots: list[Column]
    params: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    """(first set, bucket) -> the bind parameters of that chunk of sets."""

    def set_params(self, start: int, room: int) -> dict[str, Any]:
        key = (start, room)
        params = self.params.get(key)
        if params is None:
            chunk = self.sets[start : start + room]
            params = self.params[key] = {}
            _fill(params, "s", chunk, _bucket(len(chunk)))
        return params


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
            key = operand_keys(part)
            _values, count = shape.operands.get(key, (part.values, 0))
            shape.operands[key] = (part.values, count + 1)
            if not count:
                shape.prepared = None

    def remove(self, parts: Iterable[RelatedPart]) -> None:
        for part in parts:
            shapes = self.by_table[part.table]
            shape = shapes[part.shape]
            key = operand_keys(part)
            values, count = shape.operands[key]
            if count > 1:
                shape.operands[key] = (values, count - 1)
                continue
            del shape.operands[key]
            shape.prepared = None
            if not shape.operands:
                del shapes[part.shape]
                if not shapes:
                    del self.by_table[part.table]

    def __bool__(self) -> bool:
        return bool(self.by_table)

    def undecided(self, decided: Decided, tables: Iterable[str]) -> Shapes:
        """The operands of `tables`' shapes that `decided` has no answers for (their streams joined meanwhile)."""
        left = Shapes()
        for table in tables:
            for key, shape in self.by_table.get(table, {}).items():
                answers = decided.get(key)
                asked = answers.asked if answers is not None else frozenset()
                operands = {k: v for k, v in shape.operands.items() if k not in asked}
                if operands:
                    left.by_table.setdefault(table, {})[key] = Shape(shape.part, operands)
        return left


def merged(decided: Decided, more: Decided) -> Decided:
    """The answers of both (for disjoint operands of a shape: a stream's values are decided once)."""
    out = dict(decided)
    for key, answers in more.items():
        known = out.get(key)
        if known is None:
            out[key] = answers
            continue
        by_row = dict(known.by_row)
        for row, found in answers.by_row.items():
            by_row[row] = by_row.get(row, frozenset()) | found
        out[key] = Answers(known.asked | answers.asked, by_row)
    return out


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
        self._cache: OrderedDict[Hashable, Compiled] = OrderedDict()

    async def decide(self, events: Sequence[ChangeEvent], shapes: Shapes) -> Decided:
        """For each shape of `shapes` whose table the batch changes, the pairs its part holds for.

        Raises what the database raised; the caller reports it (the parts are then UNKNOWN).
        """
        decided: Decided = {}
        if not shapes:
            return decided
        images: dict[str, list[Mapping[str, Any]]] = {}
        deleted: dict[str, list[Mapping[str, Any]]] = {}
        for event in events:
            if event.table in shapes.by_table:
                rows = images.setdefault(event.table, [])
                rows.extend(row for row in (event.old, event.new) if row is not None)
            if event.type == "delete" and event.old is not None:
                deleted.setdefault(event.table, []).append(event.old)
        for table_name, rows in images.items():
            table = self.model.table(table_name)
            # .get: the hub's own shapes change while a statement runs (a table's last stream may leave).
            for key, shape in list(shapes.by_table.get(table_name, {}).items()):
                remote = _relationship(table, shape.part).remote_table
                decided[key] = await self._decide_shape(table, shape, rows, deleted.get(remote, []))
        return decided

    async def _decide_shape(
        self, table: Table, shape: Shape, images: list[Mapping[str, Any]], gone: list[Mapping[str, Any]]
    ) -> Answers:
        """`gone`: the old images of the related table's rows the batch deletes (see `_compiled`)."""
        part = shape.part
        keyed: dict[tuple[Hashable, ...], Mapping[str, Any]] = {}
        for row in images:
            keys = row_keys(row, part.local_columns)
            if keys is not None and keys not in keyed:
                keyed[keys] = row
        prepared = shape.prepared
        if prepared is None:
            prepared = shape.prepared = self._prepare(table, shape)
        wanted, sets, slots = prepared.wanted, prepared.sets, prepared.slots
        asked = frozenset(wanted)
        by_row: dict[RowKey, set[Operands]] = {}
        if not keyed or not wanted:
            return Answers(asked, {})
        local = [table.column(name) for name in part.local_columns]
        dialect = self.dialect.name
        row_list = list(keyed)
        rows = [
            (i, *(to_db(c, keyed[k].get(c.name), dialect) for c in local)) for i, k in enumerate(row_list)
        ]
        rel = _relationship(table, part)
        gone_columns = gone_columns_of(part, table, self.model)
        gone_rows: dict[tuple[Hashable, ...], tuple[Any, ...]] = {}
        for image in gone:
            if row_keys(image, rel.remote_columns) is not None:
                values = tuple(image.get(c.name) for c in gone_columns)
                gone_rows.setdefault(tuple(value_key(v) for v in values), tuple(
                    to_db(c, v, dialect) for c, v in zip(gone_columns, values, strict=True)))
        gone_list = list(gone_rows.values())
        # The lists are split to stay under the parameter limit: the sets take at
        # most half of it (over ~7,500 subscribers' values with one slot; a quarter
        # when there are deleted related rows, which take another quarter), the rows
        # the rest. Each row and set carries its index in the whole list, so the
        # answers of every statement read alike, and a pair found by any statement
        # holds (the deleted rows are an OR). Sizes are buckets (powers of two).
        set_width, row_width, gone_width = 1 + len(slots), 1 + len(local), len(gone_columns)
        share = MAX_PARAMETERS // (4 if gone_list else 2)
        set_room = _floor_bucket(share // set_width)
        gone_room = _floor_bucket(share // gone_width) if gone_list else 1
        gone_chunks = [gone_list[i : i + gone_room] for i in range(0, len(gone_list), gone_room)] or [[]]
        for set_start in range(0, len(sets), set_room):
            set_count = _bucket(len(sets[set_start : set_start + set_room]))
            set_params = prepared.set_params(set_start, set_room)
            for gone_chunk in gone_chunks:
                gone_count = _bucket(len(gone_chunk)) if gone_chunk else 0
                used = set_count * set_width + gone_count * gone_width
                room = _floor_bucket((MAX_PARAMETERS - used) // row_width)
                for start in range(0, len(rows), room):
                    chunk = rows[start : start + room]
                    sizes = (_bucket(len(chunk)), set_count, gone_count)
                    compiled = self._compiled(table, part, local, slots, gone_columns, sizes)
                    params = dict(set_params)
                    _fill(params, "r", chunk, sizes[0])
                    if gone_chunk:
                        _fill(params, "g", gone_chunk, gone_count)
                    statement = compiled.bind_given(params)
                    text = await self.backend.fetch(statement.sql, statement.args)
                    for row_index, set_index in orjson.loads(text or "[]"):
                        by_row.setdefault(row_list[row_index], set()).add(wanted[set_index])
        return Answers(asked, {key: frozenset(found) for key, found in by_row.items()})

    def _prepare(self, table: Table, shape: Shape) -> Prepared:
        slots = slot_columns(shape.part.template, table, self.model)
        wanted = list(shape.operands)
        operand = self.filters.operand
        sets = [
            (j, *(operand(c, v) for c, v in zip(slots, shape.operands[key][0], strict=True)))
            for j, key in enumerate(wanted)
        ]
        return Prepared(wanted, sets, slots)

    def _compiled(
        self,
        table: Table,
        part: RelatedPart,
        local: list[Column],
        slots: list[Column],
        gone_columns: list[Column],
        sizes: tuple[int, int, int],
    ) -> Compiled:
        """The statement of a shape for `rows` row images, `sets` sets of operands and `gone` deleted rows.

        The counts are powers of two (a batch's lists are padded by repeating
        their last item, which adds no pair), so a shape has a few statements
        whatever the batch, each compiled once: compiling costs more than the
        statement.

        `gone`: old images of related rows deleted in the same batch. A line
        deleted with its invoice (`ON DELETE CASCADE`) finds no invoice after
        the commit; the part also holds when it holds against the invoice's
        old image, so the line's `delete` reaches the invoice's owner. One
        relationship deep: a relationship nested in the part reads its rows as
        they are after the commit.
        """
        rows, sets, gone = sizes
        key = (part.shape, rows, sets, gone)
        compiled = self._cache.get(key)
        if compiled is not None:
            self._cache.move_to_end(key)
            return compiled
        filters = self.filters
        row_types = [sa.Integer(), *(filters.operand_type(c) for c in local)]
        row_values = sa.values(
            *(sa.column(name, t) for name, t in zip([ROW, *(c.name for c in local)], row_types, strict=True)),
            name="_fg_rows",
        ).data([_binds("r", i, row_types) for i in range(rows)]).cte("_fg_rows")
        set_types = [sa.Integer(), *(filters.operand_type(c) for c in slots)]
        set_values = sa.values(
            *(sa.column(name, t) for name, t in zip([SET, *(f"_fg_p{i}" for i in range(len(slots)))], set_types,
                                                     strict=True)),
            name="_fg_operands",
        ).data([_binds("s", j, set_types) for j in range(sets)]).cte("_fg_operands")
        condition = filters.compile(
            table.name,
            BoolExp((part.template,)),
            target=row_values,
            slots=[set_values.c[f"_fg_p{i}"] for i in range(len(slots))],
        )
        if gone:
            condition = sa.or_(condition, self._gone(table, part, gone_columns, gone, row_values, set_values, slots))
        backend = self.backend
        pairs = backend.answer(backend.json_array(backend.json_list([row_values.c[ROW], set_values.c[SET]])))
        select = sa.select(pairs).select_from(row_values.join(set_values, sa.true())).where(condition)
        compiled = self._cache[key] = Compiled(select.compile(dialect=self.dialect))
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return compiled


    def _gone(
        self,
        table: Table,
        part: RelatedPart,
        columns: list[Column],
        count: int,
        row_values: Any,
        set_values: Any,
        slots: list[Column],
    ) -> Any:
        """EXISTS a deleted related row (an old image of the batch) that joins the row and meets the part."""
        filters = self.filters
        rel = _relationship(table, part)
        types = [filters.operand_type(c) for c in columns]
        gone_values = sa.values(
            *(sa.column(c.name, t) for c, t in zip(columns, types, strict=True)), name="_fg_gone"
        ).data([_binds("g", k, types) for k in range(count)]).cte("_fg_gone")
        joined = [
            gone_values.c[remote] == row_values.c[local]
            for local, remote in zip(rel.local_columns, rel.remote_columns, strict=True)
        ]
        inner = filters.compile(
            rel.remote_table,
            part.template.exp,
            target=gone_values,
            slots=[set_values.c[f"_fg_p{i}"] for i in range(len(slots))],
        )
        exists = sa.select(sa.literal(1)).select_from(gone_values).where(*joined, inner)
        return exists.correlate_except(gone_values).exists()


def _relationship(table: Table, part: RelatedPart) -> Relationship:
    return next(r for r in table.relationships if r.name == part.relationship)


def gone_columns_of(part: RelatedPart, table: Table, model: DatabaseModel) -> list[Column]:
    """The related table's columns the part reads of a related row: its join columns and those it compares."""
    rel = _relationship(table, part)
    remote = model.table(rel.remote_table)
    names = set(rel.remote_columns)

    def walk(exp: BoolExp, table: Table) -> None:
        for f in exp.fields:
            if isinstance(f, And | Or):
                for e in f.exps:
                    walk(e, table)
            elif isinstance(f, Not):
                walk(f.exp, table)
            elif isinstance(f, Related):
                inner = next(r for r in table.relationships if r.name == f.relationship)
                names.update(inner.local_columns)
            elif isinstance(f, ColumnExp):
                names.add(f.column)

    walk(part.template.exp, remote)
    return [c for c in remote.columns if c.name in names]


def _bucket(count: int) -> int:
    return 1 << max(0, count - 1).bit_length()


def _floor_bucket(count: int) -> int:
    """The largest power of two not over `count` (at least 1)."""
    return 1 << (max(1, count).bit_length() - 1)


def _binds(prefix: str, index: int, types: list[Any]) -> tuple[Any, ...]:
    return tuple(sa.bindparam(f"{prefix}{index}_{k}", type_=t) for k, t in enumerate(types))


def _fill(params: dict[str, Any], prefix: str, items: list[tuple[Any, ...]], size: int) -> None:
    """`items` as the values of their bind parameters, padded to `size` with the last one."""
    last = items[-1]
    for index in range(size):
        item = items[index] if index < len(items) else last
        for k, value in enumerate(item):
            params[f"{prefix}{index}_{k}"] = value


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
