"""SQLite: JSON built with json_object/json_group_array, run on the database's reads.

SQLite keeps whatever a row was given, whatever the column's declared type,
so each value is checked with typeof(): the usual storage class is rendered
in SQL, anything else (a text in an integer column) calls `fg_fail`, and the request goes the normal way.
Floats, numerics, JSON and blobs are rendered by `fg_value`, which runs the
normal path's own conversion in Python: SQLite's own float printing is not
exact to the last digit. Both functions are registered on every connection
the reads open (graph.dialect.sqlite.SQLiteReads, which also decides where
a statement runs: in the event loop or, when long, in a thread).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from graph.dialect import SQLFunction
from graph.model import Kind
from graph.plans._query_backend import QueryFailed, literal, quoted
from graph.schema import scalar_of
from graph.sql.values import to_api

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect
    from sqlalchemy.sql.elements import ColumnElement

    from graph.dialect import Reads
    from graph.model import Column
    from graph.plans._query_backend import Fix

KINDS = tuple(Kind)
# Every character class JSON escapes differently (control, quote, backslash,
# DEL, non-ASCII, astral), to compare SQLite's JSON text with orjson's once.
ESCAPE_PROBE = "".join(chr(c) for c in range(0x80)) + "é€\u2028\U0001f600\ufeff"


class GuardFailed(Exception):
    """Raised inside SQLite by `fg_fail`: a value the SQL rendering does not cover."""


def fg_fail(_value: Any) -> None:
    raise GuardFailed


def fg_value(code: int, nullable: int, value: Any) -> str | None:
    """One value as the normal path writes it: `to_api`, then the GraphQL scalar, as JSON."""
    kind = KINDS[code]
    if value is None:
        if nullable:
            return None
        raise GuardFailed  # GraphQL's non-null error, the normal path's to report
    return orjson.dumps(scalar_of(kind).serialize(to_api(kind, value))).decode()


FUNCTIONS = (SQLFunction("fg_fail", 1, fg_fail), SQLFunction("fg_value", 3, fg_value, deterministic=True))
"""What the rendered SQL calls; every connection of the reads has them."""


class SQLiteBackend:
    def __init__(self, dialect: Dialect, reads: Reads) -> None:
        self.dialect = dialect
        self.reads = reads
        self.splices = False
        self._probed = False
        self.observers: list[Callable[[str], None]] = []

    # -- rendering ---------------------------------------------------------------

    def value(self, column: Column, expr: ColumnElement[Any]) -> tuple[ColumnElement[Any], Fix | None]:
        kind = column.kind
        typeof = sa.func.typeof(expr)
        fail = sa.func.fg_fail(expr)
        # NULL in a non-null column (SQLite allows it in some primary keys) falls to `fail`.
        null: list[tuple[Any, Any]] = [(expr.is_(None), sa.null())] if column.nullable else []
        if kind is Kind.INTEGER or kind is Kind.BIGINT:
            # Every SQLite integer is 64-bit, which Int and bigint answer alike.
            return sa.case((typeof == literal("'integer'"), expr), *null, else_=fail), None
        if kind in (Kind.STRING, Kind.DATETIME, Kind.DATE, Kind.TIME):
            # The normal path answers text as it is, and str() of anything else.
            return sa.case(
                (typeof == literal("'text'"), expr),
                (typeof == literal("'integer'"), sa.cast(expr, sa.Text)),
                *null,
                else_=fail,
            ), None
        if kind is Kind.BOOLEAN:
            number = typeof.in_([literal("'integer'"), literal("'real'")])
            truth = sa.case((expr != literal("0"), literal("'true'")), else_=literal("'false'"))
            return sa.func.json(sa.case((number, truth), *null, else_=fail)), None
        code = literal(str(KINDS.index(kind)))
        nullable = literal("1" if column.nullable else "0")
        return sa.func.json(sa.func.fg_value(code, nullable, expr)), None

    def json_object(self, pairs: Sequence[tuple[str, ColumnElement[Any]]]) -> ColumnElement[Any]:
        return sa.func.json_object(*(part for key, value in pairs for part in (quoted(key), value)))

    def json_array(self, element: ColumnElement[Any]) -> ColumnElement[Any]:
        return sa.func.json_group_array(element)

    def embed(self, subquery: ColumnElement[Any]) -> ColumnElement[Any]:
        # A subquery's value loses its JSON subtype in some SQLite versions: say it again.
        return sa.func.json(subquery)

    def answer(self, document: ColumnElement[Any]) -> ColumnElement[Any]:
        return document  # json_object() is text already

    # -- running -------------------------------------------------------------------

    async def fetch(self, sql: str, params: Sequence[Any]) -> str | None:
        try:
            if not self._probed:
                await self._probe()
            for observe in self.observers:
                observe(sql)
            value = await self.reads.fetch_value(sql, params)
        except Exception as error:  # whatever it is, the normal path answers
            raise QueryFailed(str(error)) from error
        if value is not None and not isinstance(value, str):
            raise QueryFailed(f"unexpected answer {type(value).__name__}")
        return value

    async def _probe(self) -> None:
        # Answers are spliced into the response unparsed only when SQLite writes
        # JSON strings exactly as orjson does (checked, since versions differ).
        written = await self.reads.fetch_value("SELECT json_object('k', ?)", (ESCAPE_PROBE,))
        self.splices = written == orjson.dumps({"k": ESCAPE_PROBE}).decode()
        self._probed = True
