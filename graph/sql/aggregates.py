"""Aggregate functions as SQL on both databases: what `t_aggregate` answers and `order_by` orders by."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from graph.rules.to_sql import by_instant, comparable

if TYPE_CHECKING:
    from graph.model import Kind

NATIVE = ("sum", "min", "max")
"""Functions answered in the column's own type; the others are doubles."""


def aggregate(function: str, value: Any, dialect: str, kind: Kind | None = None) -> Any:
    """`function` (Hasura's name) over `value`, as PostgreSQL computes it, on `dialect`.

    `kind`, the column's, when the value answered is the column's own (not
    an ordering by it): SQLite's dates and times are then taken by instant.
    """
    if function in ("min", "max") and kind is not None and by_instant(kind, dialect):
        return _by_instant(function, value, kind)
    if function in NATIVE:
        return getattr(sa.func, function)(value)
    if dialect == "postgresql":
        return sa.cast(getattr(sa.func, function)(value), postgresql.DOUBLE_PRECISION)
    if function == "avg":
        return sa.func.avg(value)
    # SQLite has none of the statistics: from the sums (the sample ones null under 2 rows, as PostgreSQL).
    one: Any = sa.literal_column("1")
    zero: Any = sa.literal_column("0.0")
    x = sa.cast(value, sa.Float)
    n = sa.func.count(value)
    total = sa.func.sum(x)
    deviations = sa.func.max(sa.func.sum(x * x) - total * total / n, zero)
    if function in ("var_pop", "stddev_pop"):
        variance = sa.case((n > one, deviations / n), (n == one, zero), else_=sa.null())
    else:
        variance = sa.case((n > one, deviations / (n - one)), else_=sa.null())
    # fg_sqrt: SQLite's own sqrt() exists only when it was built with its math functions.
    return sa.func.fg_sqrt(variance) if function.startswith("stddev") else variance


def _by_instant(function: str, value: Any, kind: Kind) -> Any:
    """SQLite's min/max of date/time text by the instant it names, answering the stored value.

    Each value travels paired with its instant, `["<instant>", <value>]`:
    the pairs' JSON texts sort by the instant first (fixed-width ISO text,
    which JSON writes unescaped), and the value is taken back out.
    """
    pair = sa.case((value.is_(None), sa.null()), else_=sa.func.json_array(comparable(value, kind, "sqlite"), value))
    return sa.func.json_extract(getattr(sa.func, function)(pair), sa.literal_column("'$[1]'"))
