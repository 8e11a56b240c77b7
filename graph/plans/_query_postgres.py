"""PostgreSQL: JSON built with json_build_object/json_agg, run on the database's pooled connections.

PostgreSQL's types are strict, so most values are rendered as they are. Those
the normal path sends through a Python object first (numerics, dates and
times, JSON, bytea) come as text and are finished by a `Fix` that makes the
same object and applies the same conversion. Floats are written with the
shortest digits that read back exactly (extra_float_digits >= 1, PostgreSQL
12+, the session graph.dialect.postgres sets), with a `.0` where PostgreSQL
leaves it out, so that they parse as floats. The answer comes back as text:
the pool's connections decode json values into Python objects (SQLAlchemy's codec).
Only the column types listed here are rendered; any other makes the request
take the normal path.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from graph.model import Kind
from graph.plans._query_backend import QueryFailed, Unrenderable, literal, quoted
from graph.schema import scalar_of
from graph.sql.values import to_api

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect
    from sqlalchemy.sql.elements import ColumnElement

    from graph.dialect import Reads
    from graph.model import Column
    from graph.plans._query_backend import Fix

SMALL_INTEGERS = frozenset({"SMALLINT", "INTEGER", "INT", "INT2", "INT4", "SERIAL", "SMALLSERIAL"})
BIG_INTEGERS = frozenset({"BIGINT", "INT8", "BIGSERIAL"})
FLOATS = frozenset({"REAL", "FLOAT", "FLOAT4", "FLOAT8", "DOUBLE PRECISION", "DOUBLE_PRECISION"})
TEXTS = frozenset({"TEXT", "VARCHAR", "CHARACTER VARYING", "UUID"})
PARSED: dict[Kind, dict[str, Callable[[str], Any]]] = {
    Kind.NUMERIC: {"NUMERIC": decimal.Decimal, "DECIMAL": decimal.Decimal},
    Kind.DATETIME: {"TIMESTAMP": dt.datetime.fromisoformat},
    Kind.DATE: {"DATE": dt.date.fromisoformat},
    Kind.TIME: {"TIME": dt.time.fromisoformat},
    # The normal path's driver decodes JSON with the standard library (SQLAlchemy's codec).
    Kind.JSON: {"JSON": json.loads, "JSONB": json.loads},
    Kind.BLOB: {"BYTEA": bytes.fromhex},
}


def base_type(db_type: str) -> str:
    """`NUMERIC(10, 2)` -> NUMERIC, `TIMESTAMP WITH TIME ZONE` -> TIMESTAMP."""
    name = db_type.upper().split("(")[0].strip()
    for suffix in (" WITH TIME ZONE", " WITHOUT TIME ZONE"):
        name = name.removesuffix(suffix)
    return name


def _fix(kind: Kind, parse: Callable[[str], Any]) -> Fix:
    serialize = scalar_of(kind).serialize

    def fix(text: Any) -> Any:
        return None if text is None else serialize(to_api(kind, parse(text)))

    return fix


class PostgresBackend:
    splices = False  # json_build_object writes `"key" : value`, with spaces

    def __init__(self, dialect: Dialect, reads: Reads) -> None:
        self.dialect = dialect
        self.reads = reads
        self.observers: list[Callable[[str], None]] = []

    # -- rendering ---------------------------------------------------------------

    def value(self, column: Column, expr: ColumnElement[Any]) -> tuple[ColumnElement[Any], Fix | None]:
        kind, name = column.kind, base_type(column.db_type)
        if kind in (Kind.INTEGER, Kind.BIGINT) and name in SMALL_INTEGERS | BIG_INTEGERS:
            return expr, None  # Int and bigint answer every 64-bit integer as a JSON number
        if kind is Kind.BOOLEAN and name == "BOOLEAN":
            return expr, None
        if kind is Kind.STRING and name in TEXTS:
            return expr, None
        if kind is Kind.FLOAT and name in FLOATS:
            digits = sa.cast(sa.cast(expr, postgresql.DOUBLE_PRECISION), sa.Text)
            whole = digits.op("~")(literal("'^-?[0-9]+$'"))
            # NaN and Infinity are no JSON: the cast fails, as GraphQL's Float refuses them.
            number = sa.case((whole, digits.concat(literal("'.0'"))), else_=digits)
            return sa.cast(number, postgresql.JSON), None
        parse = PARSED.get(kind, {}).get(name)
        if parse is None:
            raise Unrenderable(f"{column.name}: {column.db_type or kind.value}")
        text: ColumnElement[Any] = (
            sa.func.encode(expr, literal("'hex'")) if kind is Kind.BLOB else sa.cast(expr, sa.Text)
        )
        return text, _fix(kind, parse)

    def json_object(self, pairs: Sequence[tuple[str, ColumnElement[Any]]]) -> ColumnElement[Any]:
        return sa.func.json_build_object(
            *(part for key, value in pairs for part in (quoted(key), value))
        )

    def json_array(self, element: ColumnElement[Any]) -> ColumnElement[Any]:
        return sa.func.coalesce(sa.func.json_agg(element), literal("'[]'::json"))

    def embed(self, subquery: ColumnElement[Any]) -> ColumnElement[Any]:
        return subquery

    def answer(self, document: ColumnElement[Any]) -> ColumnElement[Any]:
        return sa.cast(document, sa.Text)

    # -- running -------------------------------------------------------------------

    async def fetch(self, sql: str, params: Sequence[Any]) -> str | None:
        for observe in self.observers:
            observe(sql)
        try:
            value = await self.reads.fetch_value(sql, params)
        except Exception as error:  # whatever it is, the normal path answers
            raise QueryFailed(str(error)) from error
        if value is not None and not isinstance(value, str):
            raise QueryFailed(f"unexpected answer {type(value).__name__}")
        return value
