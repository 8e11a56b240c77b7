"""Aggregate functions as SQL on both databases: what `t_aggregate` answers and `order_by` orders by."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

NATIVE = ("sum", "min", "max")
"""Functions answered in the column's own type; the others are doubles."""


def aggregate(function: str, value: Any, dialect: str) -> Any:
    """`function` (Hasura's name) over `value`, as PostgreSQL computes it, on `dialect`."""
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
