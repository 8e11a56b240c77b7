"""SQLite: JSON built with json_object/json_group_array, run on the database's reads.

SQLite keeps whatever a row was given, whatever the column's declared type,
so each value is checked with typeof(): the usual storage class is rendered
in SQL, anything else (a text in an integer column, NULL in a non-null key)
goes to `fg_value`. So do floats, numerics, JSON and blobs: `fg_value` runs
the driver-to-GraphQL conversion in Python (SQLite's own float printing is
not exact to the last digit), and writes a value GraphQL refuses as a marker
(`graph.compile._query_backend`), for graphql-core to refuse with its own error.
The function is registered on every connection
the reads open (graph.dialect.sqlite.SQLiteReads, which also decides where
a statement runs: in the event loop or, when long, in a thread).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from graph.compile._query_backend import MARK, QueryFailed, literal, marker, quoted
from graph.dialect import SQLFunction
from graph.like import ILIKE_FUNCTION, ilike
from graph.model import Kind
from graph.schema import scalar_of
from graph.sql.values import to_api_or_stored
from graph.temporal import INSTANT_FUNCTION, SHAPES, UTC, answer_zoned, instant_sql, zoned

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect
    from sqlalchemy.sql.elements import ColumnElement

    from graph.compile._query_backend import Fix
    from graph.dialect import Reads
    from graph.model import Column

KINDS = tuple(Kind)
ZONED = len(KINDS)
"""fg_value's code of a timestamptz column (declared so on SQLite): a datetime without an offset is UTC."""
MAX_NESTING = 4
"""Relationship levels per statement: SQLite's parser stack (100 deep) holds about 9 of ours."""
# Every character class JSON escapes differently (control, quote, backslash,
# DEL, non-ASCII, astral), to compare SQLite's JSON text with orjson's once.
ESCAPE_PROBE = "".join(chr(c) for c in range(0x80)) + "é€\u2028\U0001f600\ufeff"


def fg_value(code: int, nullable: int, value: Any) -> str | None:
    """One value as GraphQL answers it (`to_api_or_stored`, then the scalar), as JSON; else a marker.

    `code` is the column's kind's index in KINDS, or ZONED for a timestamptz.
    Never raises: an exception in a user-defined function would fail the whole statement.
    """
    if value is None:
        # NULL in a non-null column (SQLite allows it in some keys): GraphQL's non-null error.
        return None if nullable else marker(None)
    if code == ZONED:
        code = KINDS.index(Kind.DATETIME)
        if isinstance(value, str):
            value = answer_zoned(value)
    kind = KINDS[code]
    stored = to_api_or_stored(kind, value)
    try:
        return orjson.dumps(scalar_of(kind).serialize(stored)).decode()
    except Exception:  # noqa: BLE001 - refused by the scalar (or not JSON): graphql-core tells why
        return marker(stored)


def fg_sqrt(value: float | None) -> float | None:
    return None if value is None else math.sqrt(value)


FUNCTIONS = (
    SQLFunction("fg_value", 3, fg_value, deterministic=True),
    SQLFunction("fg_sqrt", 1, fg_sqrt, deterministic=True),
    SQLFunction(ILIKE_FUNCTION, 2, ilike, deterministic=True),
    SQLFunction(INSTANT_FUNCTION, 2, instant_sql, deterministic=True),
)
"""What the rendered SQL calls; every connection of the reads has them."""


class SQLiteBackend:
    def __init__(self, dialect: Dialect, reads: Reads) -> None:
        self.dialect = dialect
        self.reads = reads
        self.splices = False
        self.max_nesting: int | None = MAX_NESTING
        self._probed = False
        self.observers: list[Callable[[str], None]] = []

    # -- rendering ---------------------------------------------------------------

    def value(self, column: Column, expr: ColumnElement[Any]) -> tuple[ColumnElement[Any], Fix | None]:
        kind = column.kind
        typeof = sa.func.typeof(expr)
        code = literal(str(ZONED if zoned(column) else KINDS.index(kind)))
        nullable = literal("1" if column.nullable else "0")
        # Whatever SQL does not render below (and NULL in a non-null column) is Python's.
        in_python = sa.func.json(sa.func.fg_value(code, nullable, expr))
        null: list[tuple[Any, Any]] = [(expr.is_(None), sa.null())] if column.nullable else []
        if kind is Kind.INTEGER or kind is Kind.BIGINT:
            # Every SQLite integer is 64-bit, which Int and bigint answer alike.
            return sa.case((typeof == literal("'integer'"), expr), *null, else_=in_python), None
        if kind in SHAPES:
            return self._temporal(column, expr, typeof, null, in_python), None
        if kind is Kind.STRING:
            # Text as it is, an integer's digits; str() of anything else, in Python.
            return sa.case(
                (typeof == literal("'text'"), expr),
                (typeof == literal("'integer'"), sa.cast(expr, sa.Text)),
                *null,
                else_=in_python,
            ), None
        if kind is Kind.BOOLEAN:
            number = typeof.in_([literal("'integer'"), literal("'real'")])
            truth = sa.func.json(
                sa.case((expr != literal("0"), literal("'true'")), else_=literal("'false'"))
            )
            return sa.case((number, truth), *null, else_=in_python), None
        return in_python, None

    @staticmethod
    def _temporal(
        column: Column, expr: ColumnElement[Any], typeof: Any, null: list[tuple[Any, Any]], in_python: Any
    ) -> ColumnElement[Any]:
        """A date/time as graph.temporal answers it: text of the answer's shape (what our writes
        store) as it is, any other text by fg_value (and an integer as its digits, as before).

        The shape is enough: Python's parse either rewrites such text to itself or, when it is
        no date, leaves it as it is too. Other forms (SQLite's CURRENT_TIMESTAMP writes
        '2024-01-02 03:04:05') go to Python, which is about as fast as SQLite's own date
        functions would be at checking that they are real dates before rewriting them.
        """
        text = typeof == literal("'text'")
        shapes = (UTC,) if zoned(column) else SHAPES[column.kind]
        cases = [(sa.and_(text, expr.op("GLOB")(literal(f"'{shape}'"))), expr) for shape in shapes]
        return sa.case(
            *cases, (typeof == literal("'integer'"), sa.cast(expr, sa.Text)), *null, else_=in_python
        )

    def json_object(self, pairs: Sequence[tuple[str, ColumnElement[Any]]]) -> ColumnElement[Any]:
        return sa.func.json_object(*(part for key, value in pairs for part in (quoted(key), value)))

    def json_array(self, element: ColumnElement[Any]) -> ColumnElement[Any]:
        return sa.func.json_group_array(element)

    def json_list(self, values: Sequence[ColumnElement[Any]]) -> ColumnElement[Any]:
        return sa.func.json_array(*values)

    def cut(self, number: int, keys: Sequence[ColumnElement[Any]]) -> ColumnElement[Any]:
        return sa.func.json_object(
            literal(f"'{MARK}'"), sa.func.json_array(literal("'c'"), literal(str(number)), *keys)
        )

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
        except Exception as error:  # whatever it is, graph.errors classifies its cause
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
