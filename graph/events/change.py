"""Change events: one committed change to one row, as every transport carries it.

An event's values are exactly what a query of the row answers at that
moment: the capture triggers (graph.events.changelog) write them without loss, and
each is turned into its API value by the query path's own conversion
(`to_api`, then the column's GraphQL scalar). A value that is not one of its
column's type (another program wrote `'abc'` into an INTEGER column, which
SQLite allows) is carried as stored and named in `ChangeEvent.unconvertible`:
one odd value must never stop a change from being delivered.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import orjson
from graphql import GraphQLError

from graph.model import Kind
from graph.schema import scalar_of
from graph.sql.values import PARSERS, UNCONVERTIBLE, to_api
from graph.temporal import answer_zoned, zoned

if TYPE_CHECKING:
    from collections.abc import Sequence

    from graph.model import Column, DatabaseModel, Table

ChangeType = Literal["create", "update", "delete"]
NEGATIVE_ZERO = re.compile(r":-0[,}\]]")
BLOB_KEY = "hex"
"""SQLite's triggers write a blob as {"hex": "..."}: no other stored value becomes a JSON object."""


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    cursor: int
    table: str
    type: ChangeType
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    unconvertible: tuple[str, ...] = ()
    """Columns (of old and new, once each time) whose stored value is carried as stored."""

    def key(self, table: Table) -> Any:
        """The primary key value: the value itself, or an object for composite keys."""
        row = self.new if self.new is not None else self.old
        assert row is not None
        if len(table.primary_key) == 1:
            return row.get(table.primary_key[0])
        return {name: row.get(name) for name in table.primary_key}


def row_image(table: Table, raw: Any, dialect: str = "sqlite") -> tuple[dict[str, Any] | None, list[str]]:
    """A captured row (JSON from the change log) with values as queries return them.

    Also the columns whose stored value does not fit the column's API type
    and is therefore given as stored.
    """
    if raw is None:
        return None, []
    postgres = dialect == "postgresql"
    exact = False
    if isinstance(raw, str | bytes):
        # PostgreSQL's row_to_json writes numeric as JSON numbers: read them as
        # Decimal so "4.50" stays "4.50", as queries return it. (SQLite has no
        # exact numerics: its triggers write every real with the digits that
        # read back as the same double, which a float parse keeps.)
        exact = postgres and any(c.kind is Kind.NUMERIC for c in table.columns)
        if postgres and NEGATIVE_ZERO.search(raw if isinstance(raw, str) else raw.decode()):
            # row_to_json writes a float8 -0 as `-0`, which JSON parsers read as the integer 0.
            data = json.loads(raw, parse_float=decimal.Decimal if exact else float, parse_int=_integer)
        elif exact:
            data = json.loads(raw, parse_float=decimal.Decimal)
        else:
            data = orjson.loads(raw)
    else:
        data = raw
    out: dict[str, Any] = {}
    unconvertible: list[str] = []
    for column in table.columns:
        stored = data.get(column.sql_name)
        try:
            out[column.name] = _api_value(column, stored, postgres)
        except (*UNCONVERTIBLE, GraphQLError):
            out[column.name] = _as_stored(stored, postgres)
            unconvertible.append(column.name)
    return out, unconvertible


def driver_row_image(table: Table, row: Sequence[Any], dialect: str) -> tuple[dict[str, Any], list[str]]:
    """A row as the driver returned it (RETURNING, in column order), with values as queries answer them.

    For the events of `serve --no-capture` (graph.events.capture.Realtime.written).
    """
    postgres = dialect == "postgresql"
    out: dict[str, Any] = {}
    unconvertible: list[str] = []
    for column, value in zip(table.columns, row, strict=False):
        try:
            if value is None:
                out[column.name] = None
                continue
            if postgres and column.kind is Kind.JSON and isinstance(value, str):
                value = json.loads(value)  # asyncpg hands json over as its text
            out[column.name] = _answer(column, value, postgres)
        except (*UNCONVERTIBLE, GraphQLError):
            # As the log would carry it: a blob as base64, anything else JSON has no value for as text.
            if isinstance(value, bytes):
                out[column.name] = base64.b64encode(value).decode()
            elif isinstance(value, str | int | float | bool | list | dict):
                out[column.name] = _plain_numbers(value)
            else:
                out[column.name] = str(value)
            unconvertible.append(column.name)
    return out, unconvertible


def _api_value(column: Column, stored: Any, postgres: bool) -> Any:
    """The value a query answers for this column: the driver's value, `to_api`, the scalar."""
    if stored is None:
        return None
    return _answer(column, _driver_value(column.kind, stored, postgres), postgres)


def _answer(column: Column, value: Any, postgres: bool) -> Any:
    """A driver's value of the column as queries answer it."""
    if not postgres and isinstance(value, str) and zoned(column):
        value = answer_zoned(value)  # as the query path answers a timestamptz (graph.compile._query_sqlite)
    return scalar_of(column.kind).serialize(to_api(column.kind, value))


# asyncpg reads PostgreSQL's infinite dates and timestamps as the extremes of
# Python's types (and binds those extremes as infinities), so queries answer
# 9999-12-31 and 0001-01-01 where row_to_json writes "infinity": events too.
INFINITIES: dict[Kind, dict[str, Any]] = {
    Kind.DATE: {"infinity": dt.date.max, "-infinity": dt.date.min},
    Kind.DATETIME: {"infinity": dt.datetime.max, "-infinity": dt.datetime.min},
}


def _driver_value(kind: Kind, stored: Any, postgres: bool) -> Any:
    """The stored JSON value as the query path's driver hands it over."""
    if not postgres:
        # SQLite's trigger renders reals exactly and blobs as {"hex": ...}; all
        # else is the stored integer or text, as sqlite3 hands it over.
        if isinstance(stored, dict):
            return bytes.fromhex(stored[BLOB_KEY])
        return stored
    if kind is Kind.BLOB and isinstance(stored, str):
        return bytes.fromhex(stored.removeprefix("\\x"))  # row_to_json writes bytea as "\x<hex>"
    if kind is Kind.JSON:
        return _plain_numbers(stored)
    if isinstance(stored, str) and stored in INFINITIES.get(kind, {}):
        return INFINITIES[kind][stored]
    if kind in PARSERS and isinstance(stored, str):
        # row_to_json writes "10:00:00.12" where asyncpg gives time(10, 0, 0, 120000),
        # which queries answer as "10:00:00.120000"; and timestamptz with an
        # offset (the capture function's UTC), where queries answer UTC.
        value = PARSERS[kind](stored)
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            return value.astimezone(dt.UTC)
        return value
    return stored


def _as_stored(stored: Any, postgres: bool) -> Any:
    """A value that does not fit its column, as JSON: what the row holds."""
    if not postgres and isinstance(stored, dict):
        return base64.b64encode(bytes.fromhex(stored[BLOB_KEY])).decode()
    return _plain_numbers(stored)


def _integer(text: str) -> Any:
    """A JSON integer; `-0` as Decimal("-0"), which a float column reads as -0.0."""
    return decimal.Decimal(text) if text == "-0" else int(text)


def _plain_numbers(value: Any) -> Any:
    """JSON values as JSON numbers again, after an exact (Decimal) parse."""
    if isinstance(value, decimal.Decimal):
        if value.is_zero() and value.as_tuple().exponent == 0:
            return 0  # `-0` in a json column: the integer 0, as queries read it
        return float(value)
    if isinstance(value, list):
        return [_plain_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain_numbers(v) for k, v in value.items()}
    return value


def decode_row(model: DatabaseModel, cursor: int, table_name: str, op: str, old: Any, new: Any) -> ChangeEvent | None:
    table = model.by_sql_name.get(table_name)
    if table is None:
        return None  # a table served before a schema change, or one we do not serve
    old_image, old_bad = row_image(table, old, model.dialect)
    new_image, new_bad = row_image(table, new, model.dialect)
    return ChangeEvent(
        cursor=int(cursor),
        table=table.name,
        type=op,  # type: ignore[arg-type]
        old=old_image,
        new=new_image,
        unconvertible=(*old_bad, *new_bad),
    )
