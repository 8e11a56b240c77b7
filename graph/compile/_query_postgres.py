"""PostgreSQL: JSON built with json_build_object/json_agg, run on the database's pooled connections.

PostgreSQL's types are strict, so most values are rendered as they are. Those
the driver hands to Python as an object first (numerics, dates and times, JSON,
bytea, intervals, bit strings) come as text and are finished by a `Fix` that
makes the object the driver makes and applies the same conversion (`to_api`,
then the GraphQL scalar). Floats are written with the shortest digits that
read back exactly (extra_float_digits >= 1, PostgreSQL 12+, the session
graph.dialect.postgres sets), with a `.0` where
PostgreSQL leaves it out, so that they parse as floats; NaN and the infinities,
which JSON cannot say, as markers for graphql-core to refuse (as Float does).
A type named nowhere here is answered as its text (the type's output function),
which is what asyncpg gives for every type it has no codec for; arrays as JSON.
The answer comes back as text: the pool's connections decode json values
into Python objects (SQLAlchemy's codec).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from graph.compile._query_backend import MARK, QueryFailed, Raw, literal, quoted
from graph.model import Kind
from graph.schema import scalar_of
from graph.sql.values import to_api_or_stored

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect
    from sqlalchemy.sql.elements import ColumnElement

    from graph.compile._query_backend import Fix
    from graph.dialect import Reads
    from graph.model import Column

SMALL_INTEGERS = frozenset({"SMALLINT", "INTEGER", "INT", "INT2", "INT4", "SERIAL", "SMALLSERIAL"})
BIG_INTEGERS = frozenset({"BIGINT", "INT8", "BIGSERIAL"})
FLOATS = frozenset({"REAL", "FLOAT", "FLOAT4", "FLOAT8", "DOUBLE PRECISION", "DOUBLE_PRECISION"})
TEXTS = frozenset({"TEXT", "VARCHAR", "CHARACTER VARYING", "UUID"})
NOT_NUMBERS = ("'NaN'", "'Infinity'", "'-Infinity'")


def _infinite(parse: Callable[[str], Any], latest: Any, earliest: Any) -> Callable[[str], Any]:
    """asyncpg reads PostgreSQL's `infinity` and `-infinity` as the latest and earliest values."""

    def read(text: str) -> Any:
        if text == "infinity":
            return latest
        if text == "-infinity":
            return earliest
        return parse(text)

    return read


PARSED: dict[Kind, dict[str, Callable[[str], Any]]] = {
    Kind.NUMERIC: {"NUMERIC": decimal.Decimal, "DECIMAL": decimal.Decimal},
    Kind.DATETIME: {"TIMESTAMP": _infinite(dt.datetime.fromisoformat, dt.datetime.max, dt.datetime.min)},
    Kind.DATE: {"DATE": _infinite(dt.date.fromisoformat, dt.date.max, dt.date.min)},
    Kind.TIME: {"TIME": dt.time.fromisoformat},
    # Decoded with the standard library, as SQLAlchemy's codec does (the golden answers were its).
    Kind.JSON: {"JSON": json.loads, "JSONB": json.loads},
    Kind.BLOB: {"BYTEA": bytes.fromhex},
}


def quoted_key(key: str) -> ColumnElement[Any]:
    """A SQL string literal of a marker's key (letters, digits and `-` only)."""
    assert key.replace("-", "").isalnum()
    return literal(f"'{key}'")


def base_type(db_type: str) -> str:
    """`NUMERIC(10, 2)` -> NUMERIC, `TIMESTAMP WITH TIME ZONE` -> TIMESTAMP."""
    name = db_type.upper().split("(")[0].strip()
    for suffix in (" WITH TIME ZONE", " WITHOUT TIME ZONE"):
        name = name.removesuffix(suffix)
    return name


def _fix(kind: Kind, parse: Callable[[Any], Any]) -> Fix:
    serialize = scalar_of(kind).serialize

    def fix(text: Any) -> Any:
        if text is None:
            return None
        value = to_api_or_stored(kind, parse(text))
        try:
            return serialize(value)
        except Exception:  # noqa: BLE001 - refused by the scalar: graphql-core tells why
            return Raw(value)

    return fix


def _interval(parts: list[str]) -> dt.timedelta:
    """An interval as asyncpg reads it: a month is 30 days, a year 365."""
    years, months, days, seconds = parts
    whole = decimal.Decimal(seconds)
    return dt.timedelta(
        days=int(days) + int(months) * 30 + int(years) * 365,
        microseconds=int(whole * 1_000_000),
    )


def _bit_string(text: str) -> str:
    """str() of asyncpg's BitString: its repr, the bits in groups of four."""
    groups = " ".join(text[i : i + 4] for i in range(0, len(text), 4))
    return f"<BitString {groups}>"


def _identity(value: Any) -> Any:
    return value


class PostgresBackend:
    splices = False  # json_build_object writes `"key" : value`, with spaces
    max_nesting: int | None = None

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
            return self._float(expr), None
        parse = PARSED.get(kind, {}).get(name)
        if parse is not None:
            text: ColumnElement[Any] = (
                sa.func.encode(expr, literal("'hex'")) if kind is Kind.BLOB else sa.cast(expr, sa.Text)
            )
            return text, _fix(kind, parse)
        return self._other(column, name, expr)

    @staticmethod
    def _float(expr: ColumnElement[Any]) -> ColumnElement[Any]:
        double = sa.cast(expr, postgresql.DOUBLE_PRECISION)
        digits = sa.cast(double, sa.Text)
        whole = digits.op("~")(literal("'^-?[0-9]+$'"))
        number = sa.cast(sa.case((whole, digits.concat(literal("'.0'"))), else_=digits), postgresql.JSON)
        # NaN and the infinities are no JSON: a marker, which Float refuses in graphql-core.
        refused = sa.func.json_build_object(
            quoted_key(MARK), sa.func.json_build_array(literal("'f'"), digits)
        )
        special = double.in_([sa.cast(literal(n), postgresql.DOUBLE_PRECISION) for n in NOT_NUMBERS])
        return sa.case((special, refused), else_=number)

    @staticmethod
    def _other(column: Column, name: str, expr: ColumnElement[Any]) -> tuple[ColumnElement[Any], Fix | None]:
        """A type with no rendering of its own: what asyncpg would give, from the type's text."""
        kind = column.kind
        if column.db_type.upper().endswith("[]") or name == "ARRAY":
            # The driver reads arrays as lists; to_json writes their elements as JSON does.
            return sa.cast(sa.func.to_json(expr), sa.Text), _fix(kind, orjson.loads)
        if name == "INTERVAL":
            parts = [sa.cast(sa.extract(field, expr), sa.Text) for field in ("year", "month", "day")]
            seconds = sa.cast(
                sa.extract("hour", expr) * 3600 + sa.extract("minute", expr) * 60 + sa.extract("second", expr),
                sa.Text,
            )
            parts_or_null = sa.case((expr.is_(None), sa.null()), else_=sa.func.json_build_array(*parts, seconds))
            return parts_or_null, _fix(kind, _interval)
        # The type's output function, as asyncpg hands over the text of types it has no codec for.
        text = sa.case((expr.is_(None), sa.null()), else_=sa.func.format(literal("'%s'"), expr))
        if name in ("BIT", "BIT VARYING", "VARBIT"):
            return text, _fix(kind, _bit_string)
        return text, _fix(kind, _identity)

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

    def json_list(self, values: Sequence[ColumnElement[Any]]) -> ColumnElement[Any]:
        return sa.func.json_build_array(*values)

    def cut(self, number: int, keys: Sequence[ColumnElement[Any]]) -> ColumnElement[Any]:
        return sa.func.json_build_object(
            quoted_key(MARK), sa.func.json_build_array(literal("'c'"), literal(str(number)), *keys)
        )

    # -- running -------------------------------------------------------------------

    async def fetch(self, sql: str, params: Sequence[Any]) -> str | None:
        for observe in self.observers:
            observe(sql)
        try:
            value = await self.reads.fetch_value(sql, params)
        except Exception as error:  # whatever it is, graph.errors classifies its cause
            raise QueryFailed(str(error)) from error
        if value is not None and not isinstance(value, str):
            raise QueryFailed(f"unexpected answer {type(value).__name__}")
        return value
