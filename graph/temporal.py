"""Dates and times kept as text (SQLite): the ISO 8601 form answered, and the instant compared.

SQLite has no date/time types: a TIMESTAMP column holds whatever text was
written ('2004-10-19 10:23:54' as SQLite's own datetime() writes it,
'2015-10-17T14:42:43Z', '...+02:00'). PostgreSQL parses such text on the
way in and answers its own form; these functions give SQLite's text the
same treatment, so that both databases answer alike:

- `answer`: the text as a query answers it, the form the PostgreSQL path
  gives (graph.sql.values.to_api of the driver's object): 'T' between date
  and time, a value with an offset converted to UTC and written `+00:00`,
  as PostgreSQL answers timestamptz in the session's UTC. A time of day
  keeps its offset (PostgreSQL's timetz does).
- `instant`: a text that sorts and compares as the instant does: a fixed
  width UTC form with microseconds, so '2015-10-17T16:00:00+02:00' equals
  '2015-10-17 14:00:00Z' and sorts before '2015-10-17T09:30:00-05:00'. A
  value without an offset is taken as UTC, as PostgreSQL reads one into a
  timestamptz in the session's UTC. SQLite calls it as `fg_instant` in
  filters and orderings (graph.rules.to_sql.comparable); the event
  matcher calls it on rows and operands (graph.rules.matcher).

Text that is no date or time (another program's) is left as it is by both,
so it is still answered and compared as before, never an error.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from graph.model import Kind

if TYPE_CHECKING:
    from graph.model import Column

INSTANT_FUNCTION = "fg_instant"
"""SQLite's name for `instant_sql`: fg_instant(value, kind) with kind 'datetime', 'date' or 'time'."""

TEMPORAL = frozenset({Kind.DATETIME, Kind.DATE, Kind.TIME})

# The answer's shapes, as SQLite GLOB patterns ('?': any one character, cheaper
# than [0-9] and as exact here): SQL handles text of these shapes itself, the
# same way the functions below do, and calls Python for any other. For such
# text Python's parse either gives the text back or fails (no date), so the
# functions below need no parse for it, and SQL none either.
DAY = "????-??-??"
CLOCK = "??:??:??"
NAIVE = f"{DAY}T{CLOCK}"
UTC = f"{NAIVE}+00:00"
SHAPES: dict[Kind, tuple[str, ...]] = {Kind.DATETIME: (NAIVE, UTC), Kind.DATE: (DAY,), Kind.TIME: (CLOCK,)}
"""The shapes `answer` leaves as they are, per kind (a timestamptz: UTC only, `answer_zoned`)."""
WHOLE_SECONDS = ".000000"
"""What `instant` appends to a time of the NAIVE, UTC or CLOCK shape (its fixed width)."""


def _shape(pattern: str) -> Callable[[str], Any]:
    return re.compile("".join("." if c == "?" else re.escape(c) for c in pattern), re.DOTALL).fullmatch


_IS_NAIVE, _IS_UTC, _IS_DAY, _IS_CLOCK = _shape(NAIVE), _shape(UTC), _shape(DAY), _shape(CLOCK)


def _answer_datetime(text: str) -> str:
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return value.isoformat()


def _answer_date(text: str) -> str:
    return dt.date.fromisoformat(text).isoformat()


def _answer_time(text: str) -> str:
    return dt.time.fromisoformat(text).isoformat()


def _instant_datetime(text: str) -> str:
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds")


def _instant_time(text: str) -> str:
    value = dt.time.fromisoformat(text)
    offset = value.utcoffset()
    if offset:
        # A time of day with an offset, as the UTC time of day (timetz compares so first).
        day = dt.datetime.combine(dt.date(2000, 1, 1), value.replace(tzinfo=None)) - offset
        value = day.time()
    return value.replace(tzinfo=None).isoformat(timespec="microseconds")


_ANSWERS: dict[Kind, Callable[[str], str]] = {
    Kind.DATETIME: _answer_datetime,
    Kind.DATE: _answer_date,
    Kind.TIME: _answer_time,
}
_INSTANTS: dict[Kind, Callable[[str], str]] = {
    Kind.DATETIME: _instant_datetime,
    Kind.DATE: _answer_date,
    Kind.TIME: _instant_time,
}
_BY_NAME = {kind.value: kind for kind in TEMPORAL}
UNREADABLE = (ValueError, OverflowError)
"""No date (ValueError), or one whose UTC reading is beyond year 1 to 9999 ('0001-01-01T00:00:00+01:00')."""


def answer(kind: Kind, text: str) -> str:
    """`text` of a `kind` column as a query answers it; the text itself when it is no date or time."""
    try:
        return _ANSWERS[kind](text)
    except UNREADABLE:
        return text


def zoned(column: Column) -> bool:
    """Whether `column` is a timestamptz (PostgreSQL's, or declared so on SQLite: graph.reflect)."""
    return column.kind is Kind.DATETIME and "WITH TIME ZONE" in column.db_type.upper()


def answer_zoned(text: str) -> str:
    """`answer` for a timestamptz column: text without an offset is UTC, as PostgreSQL reads it
    in the session's zone (SQLite's CURRENT_TIMESTAMP writes '2024-01-02 03:04:05')."""
    try:
        value = dt.datetime.fromisoformat(text)
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat()
    except UNREADABLE:
        return text


def instant(kind: Kind, value: Any) -> Any:
    """`value` of a `kind` column as it compares (see the module); anything not a date or time as it is.

    Text of the answer's shapes is keyed without a parse, as SQL keys it
    (graph.rules.to_sql.comparable), whether or not it is a real date.
    """
    if not isinstance(value, str):
        return value
    if kind is Kind.DATETIME:
        if _IS_NAIVE(value):
            return value + WHOLE_SECONDS
        if _IS_UTC(value):
            return value[:19] + WHOLE_SECONDS
    elif kind is Kind.DATE and _IS_DAY(value):
        return value
    elif kind is Kind.TIME and _IS_CLOCK(value):
        return value + WHOLE_SECONDS
    try:
        return _INSTANTS[kind](value)
    except UNREADABLE:
        return value


def instant_sql(value: Any, kind: Any) -> Any:
    """`instant` as SQLite calls it. Never raises: an exception would fail the whole statement."""
    if isinstance(value, bytes) or kind not in _BY_NAME:
        return value
    return instant(_BY_NAME[kind], value)
