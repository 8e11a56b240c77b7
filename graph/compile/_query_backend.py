"""What a database must offer the query plans: JSON built in SQL, run on the database's reads.

One file per dialect (`_query_sqlite.py`, `_query_postgres.py`) implements
`Backend`; the connections are graph.dialect's (`Database.reads`).
A column's value is rendered so that the JSON the database builds holds
exactly what GraphQL answers for it; where SQL cannot say it exactly, the
backend returns a `Fix` that finishes the value in Python. A value GraphQL
cannot answer at all (NaN, `'abc'` kept by SQLite in an integer column, NULL
in a non-null column) is not an error of the statement: the JSON holds it as
a *marker*, `{MARK: [tag, value]}`, or a fix returns it as `Raw`, and the
answer is completed by graphql-core, whose scalar refuses it with the
field's own error and path, the rest of the answer intact.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson
import sqlalchemy as sa

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect
    from sqlalchemy.sql.elements import ColumnElement

    from graph.model import Column

Fix = Callable[[Any], Any]
"""Finishes one value of the database's JSON in Python (None stays None); `Raw` for a value GraphQL refuses."""

MARK = "forgegraph-raw-" + secrets.token_hex(8)
"""The key of a marker object: random per process, so no stored JSON holds it by chance."""


@dataclass(frozen=True)
class Raw:
    """A value as the database gave it, for GraphQL's scalar to serialize or refuse (graphql-core completes)."""

    value: Any


def marker(value: Any) -> str:
    """The JSON text of a marker holding `value` (what the driver gave, after `to_api_or_stored`)."""
    if value is None:
        encoded: list[Any] = ["n"]
    elif isinstance(value, float) and not math.isfinite(value):
        encoded = ["f", repr(value)]
    elif isinstance(value, bytes | bytearray | memoryview):
        encoded = ["b", bytes(value).hex()]
    else:
        encoded = ["j", value]
    return orjson.dumps({MARK: encoded}).decode()


def unmark(encoded: list[Any]) -> Any:
    tag = encoded[0]
    if tag == "n":
        return None
    if tag == "f":
        return float(encoded[1])
    if tag == "b":
        return bytes.fromhex(encoded[1])
    return encoded[1]


class Unrenderable(Exception):
    """A column this backend cannot render exactly (an unknown database type)."""


class QueryFailed(Exception):
    """The statement failed in the database or its answer could not be read.

    Its cause is the driver's own error, which `graph.errors.contained`
    classifies (the client's value refused, the database unreachable, or ours).
    """


class Backend(Protocol):
    dialect: Dialect
    splices: bool
    """Whether the database's JSON text is byte for byte what orjson would write."""
    observers: list[Callable[[str], None]]
    """Called with each statement's SQL before it runs (tests watch what is sent)."""

    def value(self, column: Column, expr: ColumnElement[Any]) -> tuple[ColumnElement[Any], Fix | None]:
        """A column's value for a JSON object, and the fix it needs in Python, if any."""

    def json_object(self, pairs: Sequence[tuple[str, ColumnElement[Any]]]) -> ColumnElement[Any]: ...

    def json_array(self, element: ColumnElement[Any]) -> ColumnElement[Any]:
        """The aggregate collecting `element` of every row into a JSON array ([] for none)."""

    def embed(self, subquery: ColumnElement[Any]) -> ColumnElement[Any]:
        """A scalar subquery's JSON as a JSON value of the enclosing object."""

    def answer(self, document: ColumnElement[Any]) -> ColumnElement[Any]:
        """The whole answer's JSON as the text the statement returns."""

    max_nesting: int | None
    """Relationship levels one statement may nest (SQLite's parser stack); None: no bound."""

    def json_list(self, values: Sequence[ColumnElement[Any]]) -> ColumnElement[Any]:
        """A JSON array of `values`."""

    def cut(self, number: int, keys: Sequence[ColumnElement[Any]]) -> ColumnElement[Any]:
        """The marker of relationship cut `number` of a parent row with join `keys` (`["c", number, *keys]`)."""

    async def fetch(self, sql: str, params: Sequence[Any]) -> str | None:
        """Run one statement answering one JSON text; QueryFailed when it cannot."""


def literal(sql: str) -> ColumnElement[Any]:
    """A constant written into the statement: only for text built here, never for input."""
    return sa.literal_column(sql)


def quoted(text: str) -> ColumnElement[Any]:
    """A SQL string literal of a GraphQL name (letters, digits and `_` only)."""
    if not text.replace("_", "a").isalnum() or not text.isascii():
        raise Unrenderable(f"not a GraphQL name: {text!r}")
    return sa.literal_column(f"'{text}'")
