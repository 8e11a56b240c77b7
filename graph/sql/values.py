"""Column values between the database driver and GraphQL JSON, per SPEC section 4.

SQLite keeps dates and times as text: they are written and answered in the
ISO 8601 form PostgreSQL's are answered in (graph.temporal), whatever form
the row holds; PostgreSQL's driver wants and gives Python objects.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import re
import uuid
from typing import Any

import orjson

from graph.errors import ValidationFailed
from graph.model import Column, Kind
from graph.temporal import answer, answer_zoned

BIGINT_TEXT = re.compile(r"[+-]?[0-9]{1,19}")
INT64 = (-(2**63), 2**63 - 1)
INT32 = (-(2**31), 2**31 - 1)


def to_api(kind: Kind, value: Any) -> Any:
    """A driver's value as the API type of a `kind` column; ValueError/TypeError when it is not one.

    SQLite keeps whatever another program writes (`'abc'` in an INTEGER
    column): callers that must go on whatever the row holds use `to_api_or_stored`.
    """
    if value is None:
        return None
    if kind is Kind.INTEGER or kind is Kind.BIGINT:
        return int(value)
    if kind is Kind.FLOAT:
        return float(value)
    if kind is Kind.BOOLEAN:
        if isinstance(value, str):
            return value.strip().lower() in {"1", "t", "true", "yes", "on"}
        return bool(value)
    if kind in (Kind.DATETIME, Kind.DATE, Kind.TIME):
        if isinstance(value, str):
            return answer(kind, value)  # SQLite's text, in PostgreSQL's answer form
        return value.isoformat() if isinstance(value, (dt.date, dt.time)) else str(value)
    if kind is Kind.JSON:
        if isinstance(value, (str, bytes)):
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError:
                return value if isinstance(value, str) else value.decode(errors="replace")
        return _jsonable(value)
    if kind is Kind.BLOB:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return base64.b64encode(bytes(value)).decode()
        return str(value)
    if kind is Kind.NUMERIC:
        return str(value)
    return value if isinstance(value, str) else str(value)


def parse_bigint(value: Any) -> int:
    """A `bigint` input: a 64-bit integer, or a string of one (as Hasura takes them); ValueError if not."""
    number: int | None = None
    digits = isinstance(value, str) and BIGINT_TEXT.fullmatch(value.strip()) is not None
    integral = isinstance(value, float) and value.is_integer()
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif digits or integral:
        number = int(value)
    if number is None or not INT64[0] <= number <= INT64[1]:
        raise ValueError(f"not a 64-bit integer: {value!r}")
    return number


UNCONVERTIBLE = (ValueError, TypeError, ArithmeticError)
"""What `to_api` raises for a stored value that is not one of its column's type."""


def to_api_or_stored(kind: Kind, value: Any) -> Any:
    """`to_api`, or the value as the driver gave it when it is not one of the column's type.

    Queries then let the GraphQL scalar refuse it: an error for that one field
    (`Int cannot represent non-integer value: 'abc'`), the rest of the answer intact.
    """
    try:
        return to_api(kind, value)
    except UNCONVERTIBLE:
        return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    return value


PARSERS: dict[Kind, Any] = {
    Kind.DATETIME: dt.datetime.fromisoformat,
    Kind.DATE: dt.date.fromisoformat,
    Kind.TIME: dt.time.fromisoformat,
}


def to_stored(column: Column, value: Any, dialect: str) -> Any:
    """Convert a value a mutation writes into `column` (insert objects, update `_set`).

    Int inputs take every 64-bit integer, so that a key SQLite holds (it
    keeps 64 bits in any integer column) can be looked up, compared and
    named for an update or a delete. What is *written* into an Int column
    stays GraphQL's 32 bits, as in Hasura: the column's type is Int, and
    PostgreSQL's `integer` would refuse more. `bigint` columns take 64 bits.
    """
    if (
        column.kind is Kind.INTEGER
        and isinstance(value, int)
        and not INT32[0] <= value <= INT32[1]
    ):
        raise ValidationFailed(
            f"Int cannot represent non 32-bit signed integer value: {value!r}"
            f" (column {column.name!r} is an Int column; a bigint column takes 64-bit values)"
        )
    return to_db(column, value, dialect)


def to_db(column: Column, value: Any, dialect: str) -> Any:
    """Convert a GraphQL input value for `column`; raise ValidationFailed when it cannot be."""
    if value is None:
        return None
    kind = column.kind
    try:
        if kind is Kind.JSON:
            return orjson.dumps(value).decode()
        if kind is Kind.BLOB:
            return base64.b64decode(str(value), validate=True)
        if kind in PARSERS:
            # Parsed on every database so that SQLite refuses what PostgreSQL
            # would; SQLite then stores the text as queries answer it (ISO 8601,
            # an offset converted to UTC), so that the file holds one form.
            parsed = PARSERS[kind](str(value))
            zoned = "WITH TIME ZONE" in column.db_type.upper()
            if dialect != "postgresql":
                # A timestamptz column (declared so on SQLite) reads a value without
                # an offset as UTC, as PostgreSQL does in the session's UTC.
                return answer_zoned(str(value)) if zoned else answer(kind, str(value))
            if isinstance(parsed, dt.datetime):
                if zoned:
                    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
                return parsed.replace(tzinfo=None)
            return parsed
        if kind is Kind.BIGINT:
            return parse_bigint(value)
        if kind is Kind.NUMERIC:
            # Parsed on every database, so that SQLite refuses what PostgreSQL
            # would ('abc'); SQLite's numeric affinity converts a number's text.
            number = decimal.Decimal(str(value).strip())
            if isinstance(value, bool) or not number.is_finite():
                raise ValueError(f"not a finite number: {value!r}")
            return number if dialect == "postgresql" else value
        if dialect != "postgresql":
            return value
        if column.db_type.upper() == "UUID":
            return uuid.UUID(str(value))
    except (ValueError, TypeError, binascii.Error, decimal.InvalidOperation) as exc:
        raise ValidationFailed(
            f"invalid value {value!r} for column {column.name!r} of type {kind.value}"
        ) from exc
    return value
