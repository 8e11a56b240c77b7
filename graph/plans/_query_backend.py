"""What a database must offer the query plans: JSON built in SQL, run on the database's reads.

One file per dialect (`_query_sqlite.py`, `_query_postgres.py`) implements
`Backend`; the connections are graph.dialect's (`Database.reads`).
A column's value is rendered so that the JSON the database builds holds
exactly what the normal path would answer; where SQL cannot say it exactly,
the backend either returns a `Fix` that finishes the value in Python, or
renders an expression that fails at run time for the unusual value, so that
the request is answered by the normal path instead (`Backend.fetch` raises).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect
    from sqlalchemy.sql.elements import ColumnElement

    from graph.model import Column

Fix = Callable[[Any], Any]
"""Finishes one value of the database's JSON in Python (None stays None)."""


class Unrenderable(Exception):
    """A column this backend cannot render exactly (an unknown database type)."""


class QueryFailed(Exception):
    """The statement failed in the database or its answer could not be read.

    The request is then answered by the normal path, which reports the error
    as it always does (or succeeds, when the failure was a plan's own guard).
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
