"""One SELECT that builds a whole query answer as JSON, from the tree of `graph.compile._query_shape`.

Every root field is a scalar subquery of one `json_object`; a list reads its
rows in a subquery with its WHERE, ORDER BY, LIMIT and OFFSET, and aggregates
them into a JSON array in that order; relationships are correlated subqueries
of their parent row (per-parent `limit`/`offset` included). Row rules come
from the session's `Visible`: on every table read, and inside filters and
orderings that walk relationships. Conditions and orderings are built by the
`Filters` and `Orderings` of `graph.sql.select.Reader`, which mutations'
answers read with too.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from graph.compile._query_backend import Raw, literal, quoted
from graph.compile._query_shape import (
    AggregateField,
    AggregateRoot,
    ArrayAggregateField,
    ArrayField,
    ByPkRoot,
    ColumnField,
    CountField,
    Foreign,
    FunctionField,
    ListRoot,
    ListSelection,
    NodesField,
    ObjectField,
    Owned,
    Refused,
    Root,
    RowSelection,
    Typename,
)
from graph.errors import ValidationFailed
from graph.model import Column, Kind
from graph.rules.to_sql import comparable
from graph.sql.aggregates import NATIVE, aggregate
from graph.sql.order import order_clause
from graph.sql.values import to_db

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.sql import FromClause
    from sqlalchemy.sql.elements import ColumnElement

    from graph.compile._query_backend import Backend, Fix
    from graph.model import Relationship, Table
    from graph.rules.to_sql import Visible
    from graph.sql.select import Reader

ONE = literal("1")
MAX_KEYS = 50
"""Keys per JSON object: json_build_object takes at most 100 arguments (more come in parts)."""


class Fixes:
    """Where the database's JSON needs finishing in Python, mirroring the answer's shape.

    `split` objects came as parts (`MAX_KEYS`), merged here in key order;
    `values` are finished by their `Fix`. `apply` returns the finished object
    and counts the values GraphQL must refuse itself (`Raw`) in `raw`.
    """

    __slots__ = ("arrays", "objects", "raw", "split", "values")

    def __init__(self) -> None:
        self.values: list[tuple[str, Fix]] = []
        self.objects: list[tuple[str, Fixes]] = []
        self.arrays: list[tuple[str, Fixes]] = []
        self.split = 0
        """How many levels of parts the object came in (0: one JSON object)."""
        self.raw = 0

    def __bool__(self) -> bool:
        return bool(self.values or self.objects or self.arrays or self.split)

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        for _ in range(self.split):
            obj = {k: v for part in obj.values() for k, v in part.items()}
        for key, fix in self.values:
            value = fix(obj[key])
            if isinstance(value, Raw):
                self.raw += 1
                value = value.value
            obj[key] = value
        for key, child in self.objects:
            found = obj[key]
            if found is not None:
                obj[key] = child.apply(found)
                self.raw += child.take_raw()
        for key, child in self.arrays:
            obj[key] = [child.apply(item) for item in obj[key]]
            self.raw += child.take_raw()
        return obj

    def take_raw(self) -> int:
        raw, self.raw = self.raw, 0
        return raw


class StatementBuilder:
    def __init__(self, backend: Backend, reader: Reader, visible: Visible | None) -> None:
        self.backend = backend
        self.tables = reader.tables
        self.filters = reader.filters
        self.orderings = reader.orderings
        self.max_rows = reader.max_rows
        self.model = reader.model
        self.dialect = reader.model.dialect
        self.visible = visible
        self.cuts: list[ObjectField | ArrayField | ArrayAggregateField] = []
        """Relationships too deep for this statement (`Backend.max_nesting`), by cut number."""
        self._depth = 0

    def cut(
        self, field: ObjectField | ArrayField | ArrayAggregateField, table: str, keys: Sequence[tuple[Any, ...]]
    ) -> tuple[sa.Select[Any], Fixes]:
        """The statement reading a cut relationship for the parent rows of `table` with `keys`.

        It answers one JSON array of `[key..., value]`, a value as the
        relationship would have had it in its parent's object.
        """
        rel = field.relationship
        core = self.tables[table]
        columns = [core.c[c] for c in rel.local_columns]
        wanted = (
            columns[0].in_([k[0] for k in keys]) if len(columns) == 1 else sa.tuple_(*columns).in_(keys)
        )
        parents = sa.select(*columns).where(wanted).distinct().subquery()
        if isinstance(field, ObjectField):
            expr, fixes = self._related_row(rel, field.row, parents)
        elif isinstance(field, ArrayAggregateField):
            expr, fixes = self._aggregate(field.rows, (rel, parents))
        else:
            expr, fixes = self._list(field.rows, (rel, parents))
        pair = self.backend.json_list([*(parents.c[c] for c in rel.local_columns), expr])
        return sa.select(self.backend.answer(self.backend.json_array(pair))).select_from(parents), fixes

    def build(
        self, roots: Sequence[Root]
    ) -> tuple[sa.Select[Any] | None, Fixes, dict[str, Exception]]:
        """One SELECT of every root field it can build, their fixes, and the errors of the others.

        A root field whose arguments are refused while its SQL is built (a
        negative limit, a filter nested too deep) fails alone, at its path; None
        when no root field is left to read.
        """
        fixes = Fixes()
        pairs: list[tuple[str, ColumnElement[Any]]] = []
        errors: dict[str, Exception] = {}
        for root in roots:
            if isinstance(root, Refused):
                errors[root.key] = root.error
            elif isinstance(root, Typename):
                pairs.append((root.key, quoted(root.name)))
            elif isinstance(root, Foreign):
                continue  # graphql-core's
            else:
                try:
                    expr, child = self.root(root)
                except Exception as error:  # noqa: BLE001 - this field's answer: its error, at its path
                    errors[root.key] = error
                    continue
                pairs.append((root.key, expr))
                if child and isinstance(root, ListRoot):
                    fixes.arrays.append((root.key, child))
                elif child:
                    fixes.objects.append((root.key, child))
        if len(pairs) == sum(isinstance(r, Typename) for r in roots):
            return None, fixes, errors  # nothing to read: graphql-core answers the rest
        return sa.select(self.backend.answer(self._json_object(pairs, fixes))), fixes, errors

    def root(self, root: Owned) -> tuple[ColumnElement[Any], Fixes]:
        if isinstance(root, ListRoot):
            return self._list(root.rows, None)
        if isinstance(root, ByPkRoot):
            return self._by_pk(root)
        return self._aggregate(root)

    # -- rows -----------------------------------------------------------------

    def _alias(self, table: str) -> FromClause:
        # Anonymous: SQLAlchemy names each apart (a table may be read at several levels).
        return self.tables[table].alias()

    def _rule(self, table: str, target: FromClause) -> ColumnElement[bool] | None:
        return self.visible(table, target) if self.visible else None

    def _json_object(self, pairs: list[tuple[str, ColumnElement[Any]]], fixes: Fixes) -> ColumnElement[Any]:
        """The object of `pairs`; past MAX_KEYS, an object of parts that `fixes` merges again."""
        while len(pairs) > MAX_KEYS:
            pairs = [
                (f"p{n}", self.backend.json_object(pairs[start : start + MAX_KEYS]))
                for n, start in enumerate(range(0, len(pairs), MAX_KEYS))
            ]
            fixes.split += 1
        return self.backend.json_object(pairs)

    def _object(self, row: RowSelection, source: FromClause) -> tuple[ColumnElement[Any], Fixes]:
        fixes = Fixes()
        pairs: list[tuple[str, ColumnElement[Any]]] = []
        for field in row.fields:
            if isinstance(field, Typename):
                pairs.append((field.key, quoted(field.name)))
            elif isinstance(field, ColumnField):
                expr, fix = self.backend.value(field.column, source.c[field.column.name])
                pairs.append((field.key, expr))
                if fix is not None:
                    fixes.values.append((field.key, fix))
            elif self.backend.max_nesting is not None and self._depth + _levels(field) > self.backend.max_nesting:
                # Too deep for one statement: read by a later one, for every parent row at once.
                self.cuts.append(field)
                keys = [source.c[c] for c in field.relationship.local_columns]
                pairs.append((field.key, self.backend.cut(len(self.cuts) - 1, keys)))
            else:
                self._depth += _levels(field)
                if isinstance(field, ObjectField):
                    expr, child = self._related_row(field.relationship, field.row, source)
                    if child:
                        fixes.objects.append((field.key, child))
                elif isinstance(field, ArrayAggregateField):
                    expr, child = self._aggregate(field.rows, (field.relationship, source))
                    if child:
                        fixes.objects.append((field.key, child))
                else:
                    expr, child = self._list(field.rows, (field.relationship, source))
                    if child:
                        fixes.arrays.append((field.key, child))
                self._depth -= _levels(field)
                pairs.append((field.key, expr))
        return self._json_object(pairs, fixes), fixes

    def _related_row(
        self, rel: Relationship, row: RowSelection, parent: FromClause
    ) -> tuple[ColumnElement[Any], Fixes]:
        alias = self._alias(rel.remote_table)
        obj, fixes = self._object(row, alias)
        stmt = sa.select(obj).select_from(alias).where(*_joined(rel, alias, parent))
        rule = self._rule(rel.remote_table, alias)
        if rule is not None:
            stmt = stmt.where(rule)
        return self.backend.embed(stmt.limit(ONE).scalar_subquery()), fixes

    def _list(
        self, rows: ListSelection, parent: tuple[Relationship, FromClause] | None
    ) -> tuple[ColumnElement[Any], Fixes]:
        listed = self._rows(
            rows.row.table.name,
            rows.where,
            rows.order_by,
            rows.distinct_on,
            self._limit(rows.limit, rows.offset),
            rows.offset,
            _needed_columns(rows.row),
            parent,
        )
        obj, fixes = self._object(rows.row, listed)
        stmt = sa.select(self.backend.json_array(obj)).select_from(listed)
        return self.backend.embed(stmt.scalar_subquery()), fixes

    def _rows(
        self,
        table: str,
        where: Any,
        order_by: Sequence[Any],
        distinct_on: Sequence[str],
        limit: int | None,
        offset: int | None,
        columns: Sequence[str],
        parent: tuple[Relationship, FromClause] | None,
    ) -> FromClause:
        """The subquery of a list's rows (its `columns`), picked and ordered as its arguments say."""
        alias = self._alias(table)
        inner = sa.select(*(alias.c[n] for n in columns)).where(
            self.filters.compile(table, where, alias, self.visible)
        )
        rule = self._rule(table, alias)
        if rule is not None:
            inner = inner.where(rule)
        if parent is not None:
            rel, source = parent
            inner = inner.where(*_joined(rel, alias, source)).correlate(source)
        terms = self.orderings.terms(table, order_by, alias, self.visible)
        if distinct_on:
            inner = self._distinct(table, inner, alias, terms, distinct_on, columns)
        else:
            inner = inner.order_by(*(order_clause(value, direction) for value, direction in terms))
        # Written into the SQL (they are integers): PostgreSQL plans a prepared
        # statement better with its LIMIT known.
        if limit is not None:
            inner = inner.limit(literal(str(int(limit))))
        if offset:
            inner = inner.offset(literal(str(int(offset))))
        return inner.subquery()

    def _distinct(
        self,
        table: str,
        inner: sa.Select[Any],
        alias: FromClause,
        terms: list[tuple[Any, str]],
        distinct_on: Sequence[str],
        columns: Sequence[str],
    ) -> sa.Select[Any]:
        """`inner` keeping the first row, in the ordering, of each group of equal `distinct_on` values.

        The shape checked that the ordering, if any, leads with these columns
        (Hasura's rule); without one, the groups are ordered by them, ascending.
        The primary key breaks ties within a group, so that both databases keep
        the same row. NULLs are one group, as PostgreSQL's DISTINCT ON has them.
        """
        model = self.model.table(table)
        if terms:
            leading = terms[: len(distinct_on)]
        else:
            leading = [(comparable(alias.c[n], model.column(n).kind, self.dialect), "asc") for n in distinct_on]
            terms = leading
        ties = [(alias.c[n], "asc") for n in model.primary_key]
        ordering = [order_clause(value, direction) for value, direction in [*terms, *ties]]
        values = [value for value, _direction in leading]
        if self.dialect == "postgresql":
            return inner.ext(postgresql.distinct_on(*values)).order_by(*ordering)
        # SQLite has no DISTINCT ON: the first row of each partition, in the same order.
        ranked = inner.add_columns(
            *(value.label(f"__distinct_{n}") for n, value in enumerate(values)),
            sa.func.row_number().over(partition_by=values, order_by=ordering).label("__distinct_row"),
        ).subquery()
        kept = [order_clause(ranked.c[f"__distinct_{n}"], direction) for n, (_v, direction) in enumerate(leading)]
        return sa.select(*(ranked.c[n] for n in columns)).where(ranked.c["__distinct_row"] == ONE).order_by(*kept)

    def _limit(self, limit: int | None, offset: int | None, *, clamped: bool = True) -> int | None:
        """A list's `limit`, clamped to --max-limit as Hasura clamps to a role's limit."""
        if limit is not None and limit < 0:
            raise ValidationFailed('expecting a non-negative integer for "limit"')
        if offset is not None and offset < 0:
            raise ValidationFailed('expecting a non-negative integer for "offset"')
        if not self.max_rows or not clamped:
            return limit
        return self.max_rows if limit is None else min(limit, self.max_rows)

    # -- root fields -------------------------------------------------------------

    def _by_pk(self, root: ByPkRoot) -> tuple[ColumnElement[Any], Fixes]:
        table = root.row.table
        alias = self._alias(table.name)
        obj, fixes = self._object(root.row, alias)
        keys = [
            alias.c[name] == sa.literal(to_db(table.column(name), root.pk[name], self.dialect))
            for name in table.primary_key
        ]
        stmt = sa.select(obj).select_from(alias).where(*keys)
        rule = self._rule(table.name, alias)
        if rule is not None:
            stmt = stmt.where(rule)
        return self.backend.embed(stmt.limit(ONE).scalar_subquery()), fixes

    def _aggregate(
        self, root: AggregateRoot, parent: tuple[Relationship, FromClause] | None = None
    ) -> tuple[ColumnElement[Any], Fixes]:
        """`t_aggregate`: one aggregating SELECT over the rows a list with the same arguments reads."""
        table = root.table
        limit = self._limit(root.limit, root.offset, clamped=False)  # aggregates count every row (README)
        rows = self._rows(
            table.name,
            root.where,
            root.order_by,
            root.distinct_on,
            limit,
            root.offset,
            _aggregated_columns(root),
            parent,
        )
        fixes = Fixes()
        pairs: list[tuple[str, ColumnElement[Any]]] = []
        for field in root.fields:
            if isinstance(field, Typename):
                pairs.append((field.key, quoted(field.name)))
            elif isinstance(field, NodesField):
                obj, child = self._object(field.row, rows)
                pairs.append((field.key, self.backend.json_array(obj)))
                if child:
                    fixes.arrays.append((field.key, child))
            else:
                expr, child = self._aggregate_fields(field, table, rows)
                pairs.append((field.key, expr))
                if child:
                    fixes.objects.append((field.key, child))
        answer = self._json_object(pairs, fixes)
        if not _aggregating(root):
            # Only __typename: still one row however many are read (an aggregate makes it so).
            answer = sa.case((sa.func.count() >= literal("0"), answer))
        stmt = sa.select(answer).select_from(rows)
        return self.backend.embed(stmt.scalar_subquery()), fixes

    def _aggregate_fields(
        self, field: AggregateField, table: Table, rows: FromClause
    ) -> tuple[ColumnElement[Any], Fixes]:
        fixes = Fixes()
        pairs: list[tuple[str, ColumnElement[Any]]] = []
        for f in field.fields:
            if isinstance(f, Typename):
                pairs.append((f.key, quoted(f.name)))
            elif isinstance(f, CountField):
                pairs.append((f.key, self._count(f, table.name, rows)))
            else:
                expr, child = self._function(f, rows)
                pairs.append((f.key, expr))
                if child:
                    fixes.objects.append((f.key, child))
        return self._json_object(pairs, fixes), fixes

    def _count(self, field: CountField, table: str, rows: FromClause) -> ColumnElement[Any]:
        """Hasura's count: rows; with `columns`, rows where none of them is null; `distinct`: their distinct values."""
        if not field.columns:
            return sa.func.count()
        model = self.model.table(table)
        # PostgreSQL's json has no equality for DISTINCT: compared as text, as everywhere else.
        values = [comparable(rows.c[n], model.column(n).kind, self.dialect) for n in field.columns]
        if len(values) == 1:
            value: ColumnElement[Any] = values[0]
        elif self.dialect == "postgresql":
            value = sa.tuple_(*values)
        else:
            value = sa.func.json_array(*values)
        if len(values) > 1:
            value = sa.case((sa.and_(*(v.is_not(None) for v in values)), value), else_=sa.null())
        return sa.func.count(sa.distinct(value)) if field.distinct else sa.func.count(value)

    def _function(self, field: FunctionField, rows: FromClause) -> tuple[ColumnElement[Any], Fixes]:
        fixes = Fixes()
        pairs: list[tuple[str, ColumnElement[Any]]] = []
        for f in field.fields:
            if isinstance(f, Typename):
                pairs.append((f.key, quoted(f.name)))
                continue
            # Over no rows every function is null, whatever the column's nullability.
            column = dataclasses.replace(f.column, nullable=True)
            value = rows.c[f.column.name]
            if field.function not in NATIVE:
                column = Column(column.name, Kind.FLOAT, True, db_type="double precision")
            expr, fix = self.backend.value(column, aggregate(field.function, value, self.dialect, f.column.kind))
            pairs.append((f.key, expr))
            if fix is not None:
                fixes.values.append((f.key, fix))
        return self._json_object(pairs, fixes), fixes


def _levels(field: ObjectField | ArrayField | ArrayAggregateField) -> int:
    """Nesting levels of `Backend.max_nesting` a relationship takes: an aggregate's SELECT over its rows is one more."""
    return 2 if isinstance(field, ArrayAggregateField) else 1


def _joined(rel: Relationship, remote: FromClause, parent: FromClause) -> list[ColumnElement[bool]]:
    return [
        remote.c[r] == parent.c[local]
        for local, r in zip(rel.local_columns, rel.remote_columns, strict=True)
    ]


def _needed_columns(row: RowSelection) -> list[str]:
    """Selected columns and those relationships join on, in table order (at least one)."""
    wanted: set[str] = set()
    for field in row.fields:
        if isinstance(field, ColumnField):
            wanted.add(field.column.name)
        elif isinstance(field, ObjectField | ArrayField | ArrayAggregateField):
            wanted.update(field.relationship.local_columns)
    names = [c for c in row.table.column_names if c in wanted]
    return names or list(row.table.column_names[:1])


def _aggregated_columns(root: AggregateRoot) -> list[str]:
    """The columns an aggregate's functions, counts and nodes read, in table order (at least one)."""
    wanted: set[str] = set()
    for field in root.fields:
        if isinstance(field, NodesField):
            wanted.update(_needed_columns(field.row))
        elif isinstance(field, AggregateField):
            for f in field.fields:
                if isinstance(f, CountField):
                    wanted.update(f.columns)
                elif isinstance(f, FunctionField):
                    wanted.update(c.column.name for c in f.fields if isinstance(c, ColumnField))
    names = [c for c in root.table.column_names if c in wanted]
    return names or list(root.table.column_names[:1])


def _aggregating(root: AggregateRoot) -> bool:
    """Whether an aggregate's SELECT calls an aggregate function (else it would answer a row per row)."""
    return any(
        isinstance(f, NodesField)
        or (isinstance(f, AggregateField) and any(not isinstance(c, Typename) for c in f.fields))
        for f in root.fields
    )
