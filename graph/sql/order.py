"""`[t_order_by!]` to ORDER BY, with PostgreSQL's NULL placement on every database.

An object relationship in `order_by` ({author: {name: asc}}) orders by the
related row's column, and an array relationship's aggregate
({posts_aggregate: {count: desc}}, {posts_aggregate: {max: {id: asc}}}) by
that aggregate of the related rows, each read with a correlated scalar subquery.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from graph import inflection
from graph.errors import ValidationFailed
from graph.rules.to_sql import comparable, related_rows
from graph.sql.aggregates import aggregate

if TYPE_CHECKING:
    from sqlalchemy.sql import FromClause

    from graph.model import DatabaseModel, Relationship
    from graph.rules.to_sql import Visible

DIRECTIONS = (
    "asc",
    "asc_nulls_first",
    "asc_nulls_last",
    "desc",
    "desc_nulls_first",
    "desc_nulls_last",
)


class Orderings:
    def __init__(self, model: DatabaseModel, tables: Mapping[str, sa.Table]) -> None:
        self.model = model
        self.tables = tables

    def clauses(
        self,
        table: str,
        order_by: Iterable[Mapping[str, Any]],
        target: FromClause | None = None,
        visible: Visible | None = None,
    ) -> list[Any]:
        return [order_clause(value, direction) for value, direction in self.terms(table, order_by, target, visible)]

    def terms(
        self,
        table: str,
        order_by: Iterable[Mapping[str, Any]],
        target: FromClause | None = None,
        visible: Visible | None = None,
    ) -> list[tuple[Any, str]]:
        """(value ordered by, direction) of every column `order_by` names, in order."""
        target = self.tables[table] if target is None else target
        out: list[tuple[Any, str]] = []
        for item in order_by:
            out.extend(self._terms(table, item, target, lambda v: v, visible))
        return out

    def _terms(
        self,
        table: str,
        item: Mapping[str, Any],
        target: FromClause,
        wrap: Any,
        visible: Visible | None,
    ) -> list[tuple[Any, str]]:
        model = self.model.table(table)
        relationships = {r.name: r for r in model.relationships if not r.is_array}
        aggregates = {inflection.inflection_of(self.model).aggregate_field(r.name): r for r in model.relationships if r.is_array}
        terms: list[tuple[Any, str]] = []
        for name, direction in item.items():
            if direction is None:
                continue
            if name in aggregates:
                if not isinstance(direction, Mapping):
                    raise ValidationFailed(f"expected an object of {name}'s aggregate order_by for {name!r}")
                terms.extend(self._aggregated(aggregates[name], direction, target, wrap, visible))
            elif name in relationships:
                if not isinstance(direction, Mapping):
                    raise ValidationFailed(f"expected an object of {name}'s order_by for {name!r}")
                terms.extend(self._related(relationships[name], direction, target, wrap, visible))
            elif name in model.column_names:
                column = comparable(target.c[name], model.column(name).kind, self.model.dialect)
                terms.append((wrap(column), direction))
            else:
                raise ValidationFailed(f"field {name!r} not found in type: '{table}_order_by'")
        return terms

    def _aggregated(
        self,
        rel: Relationship,
        item: Mapping[str, Any],
        target: FromClause,
        wrap: Any,
        visible: Visible | None,
    ) -> list[tuple[Any, str]]:
        """Terms ordering by aggregates of the rows of array relationship `rel` the session may select."""
        remote, joined = related_rows(self.tables, rel, target, visible)
        model = self.model.table(rel.remote_table)
        of = _over_related(remote, joined, wrap)

        terms: list[tuple[Any, str]] = []
        for function, direction in item.items():
            if direction is None:
                continue
            if function == "count":
                terms.append((of(sa.func.count()), direction))
                continue
            if not isinstance(direction, Mapping):
                raise ValidationFailed(f"expected an object of columns for {function!r}")
            for name, column_direction in direction.items():
                if column_direction is None:
                    continue
                if name not in model.column_names:
                    raise ValidationFailed(
                        f"field {name!r} not found in type: '{inflection.inflection_of(self.model).aggregate_function_order_by(model.name, function)}'"
                    )
                value = comparable(remote.c[name], model.column(name).kind, self.model.dialect)
                terms.append((of(aggregate(function, value, self.model.dialect)), column_direction))
        return terms

    def _related(
        self,
        rel: Relationship,
        item: Mapping[str, Any],
        target: FromClause,
        wrap: Any,
        visible: Visible | None,
    ) -> list[tuple[Any, str]]:
        # A related row the session may not select orders as if absent (NULL).
        remote, joined = related_rows(self.tables, rel, target, visible)
        return self._terms(rel.remote_table, item, remote, _over_related(remote, joined, wrap), visible)


DISTINCT_ON_NOT_LEADING = '"distinct_on" columns must match initial "order_by" columns'


def check_distinct_on(distinct_on: Sequence[str], order_by: Iterable[Mapping[str, Any]]) -> None:
    """Hasura's rule: with an `order_by`, its first terms are the `distinct_on` columns, in any order.

    The terms are counted as `Orderings.terms` lists them (an object of several
    columns is several terms); an object relationship among them never matches.
    """
    terms = [(name, direction) for item in order_by for name, direction in item.items() if direction is not None]
    if not distinct_on or not terms:
        return
    leading = terms[: len(distinct_on)]
    columns = [name for name, direction in leading if not isinstance(direction, Mapping)]
    if len(columns) != len(distinct_on) or not set(distinct_on) <= set(columns):
        raise ValidationFailed(DISTINCT_ON_NOT_LEADING)


def order_clause(value: Any, direction: str) -> Any:
    if direction not in DIRECTIONS:
        raise ValidationFailed(f"unexpected order_by value {direction!r}")
    descending = direction.startswith("desc")
    nulls_first = direction.endswith("nulls_first") or direction == "desc"
    ordered = value.desc() if descending else value.asc()
    return ordered.nulls_first() if nulls_first else ordered.nulls_last()


def _over_related(remote: FromClause, joined: list[Any], wrap: Any) -> Any:
    """A value of the related rows as a scalar subquery of the ordered row (`wrap`ped)."""

    def over(value: Any) -> Any:
        return wrap(sa.select(value).select_from(remote).where(*joined).scalar_subquery())

    return over
