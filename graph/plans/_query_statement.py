"""One SELECT that builds a whole query answer as JSON, from the tree of `graph.plans._query_shape`.

Every root field is a scalar subquery of one `json_object`; a list reads its
rows in a subquery with the same WHERE, ORDER BY, LIMIT and OFFSET the normal
path sends (`graph.sql.select`), and aggregates them into a JSON array in
that order; relationships are correlated subqueries of their parent row
(per-parent `limit`/`offset` included). Row rules come from the session's
`Visible`, as in the normal path: on every table read, and inside filters
and orderings that walk relationships. Conditions and orderings are built by
the very same `Filters` and `Orderings`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from graph.plans._query_backend import literal, quoted
from graph.plans._query_shape import (
    AggregateField,
    AggregateRoot,
    ArrayField,
    ByPkRoot,
    ColumnField,
    CountField,
    ListRoot,
    ListSelection,
    ObjectField,
    Root,
    RowSelection,
    Typename,
    Unsupported,
)
from graph.sql.values import to_db

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.sql import FromClause
    from sqlalchemy.sql.elements import ColumnElement

    from graph.model import Relationship
    from graph.plans._query_backend import Backend, Fix
    from graph.rules.to_sql import Visible
    from graph.sql.select import Reader

ONE = literal("1")
MAX_KEYS = 50
"""Keys per JSON object: json_build_object takes at most 100 arguments."""


class Fixes:
    """Where the database's JSON needs a value finished in Python, mirroring the answer's shape."""

    __slots__ = ("arrays", "objects", "values")

    def __init__(self) -> None:
        self.values: list[tuple[str, Fix]] = []
        self.objects: list[tuple[str, Fixes]] = []
        self.arrays: list[tuple[str, Fixes]] = []

    def __bool__(self) -> bool:
        return bool(self.values or self.objects or self.arrays)

    def apply(self, obj: dict[str, Any]) -> None:
        for key, fix in self.values:
            obj[key] = fix(obj[key])
        for key, child in self.objects:
            found = obj[key]
            if found is not None:
                child.apply(found)
        for key, child in self.arrays:
            for item in obj[key]:
                child.apply(item)


class StatementBuilder:
    def __init__(self, backend: Backend, reader: Reader, visible: Visible | None) -> None:
        self.backend = backend
        self.tables = reader.tables
        self.filters = reader.filters
        self.orderings = reader.orderings
        self.max_rows = reader.max_rows
        self.dialect = reader.model.dialect
        self.visible = visible

    def build(self, roots: Sequence[Root]) -> tuple[sa.Select[Any], Fixes]:
        fixes = Fixes()
        pairs: list[tuple[str, ColumnElement[Any]]] = []
        for root in roots:
            if isinstance(root, Typename):
                pairs.append((root.key, quoted(root.name)))
            elif isinstance(root, ListRoot):
                expr, child = self._list(root.rows, None)
                pairs.append((root.key, expr))
                if child:
                    fixes.arrays.append((root.key, child))
            elif isinstance(root, ByPkRoot):
                expr, child = self._by_pk(root)
                pairs.append((root.key, expr))
                if child:
                    fixes.objects.append((root.key, child))
            else:
                pairs.append((root.key, self._aggregate(root)))
        return sa.select(self.backend.answer(self._json_object(pairs))), fixes

    # -- rows -----------------------------------------------------------------

    def _alias(self, table: str) -> FromClause:
        # Anonymous: SQLAlchemy names each apart (a table may be read at several levels).
        return self.tables[table].alias()

    def _rule(self, table: str, target: FromClause) -> ColumnElement[bool] | None:
        return self.visible(table, target) if self.visible else None

    def _json_object(self, pairs: list[tuple[str, ColumnElement[Any]]]) -> ColumnElement[Any]:
        if len(pairs) > MAX_KEYS:
            raise Unsupported(f"more than {MAX_KEYS} fields in one object")
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
            elif isinstance(field, ObjectField):
                expr, child = self._related_row(field.relationship, field.row, source)
                pairs.append((field.key, expr))
                if child:
                    fixes.objects.append((field.key, child))
            else:
                assert isinstance(field, ArrayField)
                expr, child = self._list(field.rows, (field.relationship, source))
                pairs.append((field.key, expr))
                if child:
                    fixes.arrays.append((field.key, child))
        return self._json_object(pairs), fixes

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
        table = rows.row.table
        alias = self._alias(table.name)
        limit = self._limit(rows)
        inner = sa.select(*(alias.c[n] for n in _needed_columns(rows.row))).where(
            self.filters.compile(table.name, rows.where, alias, self.visible)
        )
        rule = self._rule(table.name, alias)
        if rule is not None:
            inner = inner.where(rule)
        if parent is not None:
            rel, source = parent
            inner = inner.where(*_joined(rel, alias, source)).correlate(source)
        inner = inner.order_by(
            *self.orderings.clauses(table.name, rows.order_by, alias, self.visible)
        )
        # Written into the SQL (they are integers): PostgreSQL plans a prepared
        # statement better with its LIMIT known.
        if limit is not None:
            inner = inner.limit(literal(str(int(limit))))
        if rows.offset:
            inner = inner.offset(literal(str(int(rows.offset))))
        listed = inner.subquery()
        obj, fixes = self._object(rows.row, listed)
        stmt = sa.select(self.backend.json_array(obj)).select_from(listed)
        return self.backend.embed(stmt.scalar_subquery()), fixes

    def _limit(self, rows: ListSelection) -> int | None:
        """As `Reader._limit`: a negative window is the normal path's error to report."""
        if (rows.limit is not None and rows.limit < 0) or (rows.offset is not None and rows.offset < 0):
            raise Unsupported("a negative limit or offset")
        if not self.max_rows:
            return rows.limit
        return self.max_rows if rows.limit is None else min(rows.limit, self.max_rows)

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

    def _aggregate(self, root: AggregateRoot) -> ColumnElement[Any]:
        if not any(
            isinstance(f, AggregateField) and any(isinstance(c, CountField) for c in f.fields)
            for f in root.fields
        ):
            # The normal path counts (and may fail) whatever is selected; keep it simple.
            raise Unsupported("an aggregate without a count")
        alias = self._alias(root.table.name)
        stmt = (
            sa.select(sa.func.count())
            .select_from(alias)
            .where(self.filters.compile(root.table.name, root.where, alias, self.visible))
        )
        rule = self._rule(root.table.name, alias)
        if rule is not None:
            stmt = stmt.where(rule)
        count = stmt.scalar_subquery()
        pairs: list[tuple[str, ColumnElement[Any]]] = []
        for field in root.fields:
            if isinstance(field, Typename):
                pairs.append((field.key, quoted(field.name)))
                continue
            inner = [
                (f.key, quoted(f.name) if isinstance(f, Typename) else count) for f in field.fields
            ]
            pairs.append((field.key, self._json_object(inner)))
        return self._json_object(pairs)


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
        elif isinstance(field, ObjectField | ArrayField):
            wanted.update(field.relationship.local_columns)
    names = [c for c in row.table.column_names if c in wanted]
    return names or list(row.table.column_names[:1])
