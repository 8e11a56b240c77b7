"""The relationships a mutation's answer selects, read by the query compiler in the write's transaction.

`insert_posts_one { id user { name } }`: the written rows' own columns come
from RETURNING (`_mutation_fields.Picker`); their relationships are read by
one SELECT per root field, built by the query plans' `StatementBuilder`
(the same SQL, row rules and JSON as a query), run as a statement of the
mutation's job. Its rows are the written rows as RETURNING gave them, in a
VALUES list, so that a deleted row's relationships are found from its
values after the DELETE (rows removed by a cascade are gone by then). Its arguments (`posts(limit: $n)`) are read with
each request's variables.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from graph.compile._query_shape import (
    ArrayAggregateField,
    ArrayField,
    ListSelection,
    ObjectField,
    Reading,
    RowSelection,
)
from graph.compile._query_statement import StatementBuilder
from graph.errors import ValidationFailed

if TYPE_CHECKING:
    from graphql import FieldNode, FragmentDefinitionNode, GraphQLSchema
    from graphql.execution.values import VariableValues
    from sqlalchemy.sql import FromClause
    from sqlalchemy.sql.elements import ColumnElement

    from graph.compile._query_backend import Backend
    from graph.compile._query_statement import Fixes
    from graph.dialect import Rows
    from graph.model import DatabaseModel, Table
    from graph.rules.to_sql import Visible
    from graph.sql.compiled import Statement, Statements
    from graph.sql.select import Reader

Steps = Generator["Statement", "Rows", Any]
POSITION = "fg_position"
MAX_PARAMETERS = 10_000
"""Bound values per statement (SQLite and PostgreSQL take ~32,000); more rows take several."""


class _RowReading(Reading):
    """The query reader of one object selection, outside any query operation."""

    def __init__(
        self,
        schema: GraphQLSchema,
        model: DatabaseModel,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: VariableValues,
    ) -> None:
        self.schema = schema
        self.model = model
        self.roots = {}
        self.fragments = fragments
        self.variables = variables

    def row(self, table: Table, nodes: list[FieldNode]) -> RowSelection:
        return self._row(table, nodes)


class _Builder(StatementBuilder):
    def object_of(self, row: RowSelection, source: FromClause) -> tuple[ColumnElement[Any], Fixes]:
        return self._object(row, source)


class RelatedReader:
    def __init__(
        self,
        backend: Backend | None,
        reader: Reader,
        tables: Mapping[str, sa.Table],
        statements: Statements,
    ) -> None:
        self.backend = backend
        self.reader = reader
        self.tables = tables
        self.statements = statements

    def read(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: VariableValues,
        table: Table,
        nodes: list[FieldNode],
        rows: Sequence[Sequence[Any]],
        visible: Visible | None,
        session: Mapping[str, Any],
    ) -> Steps:
        """Per row, its relationship fields' answers by response key (the rows in table column order).

        `visible` is the role's row rules, their session parameters bound with `session`'s values.
        """
        if self.backend is None:
            raise RuntimeError("no query backend to read relationships with")
        selection = _RowReading(schema, self.reader.model, fragments, variables).row(table, nodes)
        related = RowSelection(
            table,
            tuple(f for f in selection.fields if isinstance(f, ObjectField | ArrayField | ArrayAggregateField)),
        )
        _check_windows(related)
        if not rows:
            return []
        local = _local_columns(related)
        core = self.tables[table.name]
        positions = [table.column_names.index(name) for name in local]
        builder = _Builder(self.backend, self.reader, visible)
        per_statement = max(1, MAX_PARAMETERS // (len(local) + 1))
        # No session settings to set for the rendering (`_query_postgres`): every
        # connection of the database has them (graph.dialect.postgres).
        out: list[dict[str, Any]] = []
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            source = sa.values(
                sa.column(POSITION, sa.Integer),
                *(sa.column(name, core.c[name].type) for name in local),
                name="fg_rows",
            ).data([(n, *(row[i] for i in positions)) for n, row in enumerate(chunk)]).cte("fg_rows")
            obj, fixes = builder.object_of(related, source)
            statement = sa.select(source.c[POSITION], obj).order_by(source.c[POSITION])
            found: Rows = yield self.statements.bind(statement, session)
            for _position, text in found:
                value = orjson.loads(text) if isinstance(text, str | bytes) else text
                fixes.apply(value)
                out.append(value)
        return out


def _local_columns(row: RowSelection) -> list[str]:
    names: set[str] = set()
    for field in row.fields:
        if isinstance(field, ObjectField | ArrayField | ArrayAggregateField):
            names.update(field.relationship.local_columns)
    return [c for c in row.table.column_names if c in names]


def _check_windows(row: RowSelection) -> None:
    """A negative `limit` or `offset` anywhere is the request's error, in a query's words."""
    for field in row.fields:
        if isinstance(field, ArrayField):
            _check_window(field.rows)
            _check_windows(field.rows.row)
        elif isinstance(field, ObjectField):
            _check_windows(field.row)


def _check_window(rows: ListSelection) -> None:
    if rows.limit is not None and rows.limit < 0:
        raise ValidationFailed('expecting a non-negative integer for "limit"')
    if rows.offset is not None and rows.offset < 0:
        raise ValidationFailed('expecting a non-negative integer for "offset"')
