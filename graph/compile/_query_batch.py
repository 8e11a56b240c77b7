"""One statement answering a plan for many requests: their bound values as rows of one JSON parameter.

A plan's statement has positional parameters; those bound per request (its
variables' and its session's slots, `query_plans.Plan`) vary between
requests, the others are the plan's own. The batched statement reads the
varying values of every request from one JSON array (one row per request)
and answers each request's JSON text beside its row number, all in one
JSON array: `[[0, "<answer of request 0>"], [1, ...], ...]`. Each answer is
the plan's own statement, as a scalar subquery correlated to its row, so
it is the same text the plan answers alone.

Only values JSON carries exactly are batched (text, integers within 64
bits, finite floats, booleans, NULL); a request holding another (a date, a
blob) is answered by the plan's statement alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

ROW = "fg_live"
"""The alias of the rows of requests (a name no generated statement uses)."""
_PG_PARAMETER = re.compile(r"\$(\d+)")
MAX_INT = 2**63


@dataclass(frozen=True)
class Batched:
    sql: str
    """The batched statement: the plan's own parameters first, then the JSON array of requests."""
    constants: tuple[Any, ...]
    """The plan's own parameter values, in order."""
    varying: tuple[int, ...]
    """The plan's parameter indexes bound per request, in the order of each request's row."""


def batched(dialect: str, sql: str, params: Sequence[Any], varying: set[int]) -> Batched | None:
    """The plan's statement batched, or None when its SQL is not one this can rewrite."""
    if dialect == "sqlite":
        return _sqlite(sql, params, varying)
    if dialect == "postgresql":
        return _postgres(sql, params, varying)
    return None


def row_of(values: Sequence[Any], varying: Sequence[int]) -> list[Any] | None:
    """One request's row: its varying values, or None when JSON cannot carry one exactly."""
    row = []
    for index in varying:
        value = values[index]
        if value is None or isinstance(value, bool | str):
            pass
        elif isinstance(value, int):
            if not -MAX_INT <= value < MAX_INT:
                return None
        elif isinstance(value, float):
            if not math.isfinite(value):
                return None
        else:
            return None
        row.append(value)
    return row


def _scan(sql: str, placeholder: re.Pattern[str]) -> list[tuple[int, int, str]] | None:
    """(start, end, text) of every placeholder outside quotes; None when quotes do not close."""
    found: list[tuple[int, int, str]] = []
    position = 0
    size = len(sql)
    while position < size:
        char = sql[position]
        if char in "'\"":
            end = sql.find(char, position + 1)
            while end != -1 and end + 1 < size and sql[end + 1] == char:  # a doubled quote
                end = sql.find(char, end + 2)
            if end == -1:
                return None
            position = end + 1
            continue
        match = placeholder.match(sql, position)
        if match is not None and not (position and (sql[position - 1].isalnum() or sql[position - 1] in "_$")):
            found.append((match.start(), match.end(), match.group(0)))
            position = match.end()
            continue
        position += 1
    return found


def _sqlite(sql: str, params: Sequence[Any], varying: set[int]) -> Batched | None:
    places = _scan(sql, re.compile(r"\?"))
    if places is None or len(places) != len(params):
        return None
    order = tuple(sorted(varying))
    column = {index: n for n, index in enumerate(order)}
    out: list[str] = []
    constants: list[Any] = []
    last = 0
    for index, (start, end, _text) in enumerate(places):
        out.append(sql[last:start])
        if index in column:
            out.append(f"json_extract({ROW}.value, '$[{column[index]}]')")
        else:
            out.append("?")
            constants.append(params[index])
        last = end
    out.append(sql[last:])
    inner = "".join(out)
    # `|| ''`: the answer as text, not JSON (which json_array would embed, re-written).
    text = (
        f"SELECT json_group_array(json_array({ROW}.key, ({inner}) || '')) "
        f"FROM json_each(?) AS {ROW}"
    )
    return Batched(text, tuple(constants), order)


def _postgres(sql: str, params: Sequence[Any], varying: set[int]) -> Batched | None:
    places = _scan(sql, _PG_PARAMETER)
    if places is None:
        return None
    order = tuple(sorted(varying))
    column = {index: n for n, index in enumerate(order)}
    renumbered: dict[int, int] = {}
    constants: list[Any] = []
    for index in range(len(params)):
        if index not in column:
            constants.append(params[index])
            renumbered[index] = len(constants)
    out: list[str] = []
    last = 0
    for start, end, text in places:
        index = int(text[1:]) - 1
        if not 0 <= index < len(params):
            return None
        out.append(sql[last:start])
        if index in column:
            # Its cast follows (`$2::INTEGER`): the value is read as text and cast the same way.
            if not sql.startswith("::", end):
                return None
            out.append(f"({ROW}.v ->> {column[index]})")
        else:
            out.append(f"${renumbered[index]}")
        last = end
    out.append(sql[last:])
    inner = "".join(out)
    rows = len(constants) + 1
    text = (
        f"SELECT CAST(coalesce(json_agg(json_build_array({ROW}.i - 1, ({inner}))), '[]'::json) AS TEXT) "
        f"FROM json_array_elements(${rows}::json) WITH ORDINALITY AS {ROW}(v, i)"
    )
    return Batched(text, tuple(constants), order)
