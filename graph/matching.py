"""`t_bool_exp` evaluated against one row in memory, with SQL's three-valued logic.

Events are filtered here instead of in the database, so that a change is
matched once per distinct filter rather than queried once per subscriber.
`None` stands for SQL's UNKNOWN: a row is kept only when the result is True,
exactly as a WHERE clause keeps it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from graph.errors import ValidationFailed
from graph.model import Kind, Table
from graph.sql.where import ALL_OPERATORS, PATTERN_OPERATORS

Truth = bool | None


def check_filter(table: Table, exp: Any, where: str = "where") -> None:
    """Raise ValidationFailed unless `exp` is a bool_exp this module can evaluate on `table`."""
    if exp is None:
        return
    if not isinstance(exp, Mapping):
        raise ValidationFailed(f"{where}: expected an object of {table.name}_bool_exp")
    relationships = {r.name for r in table.relationships}
    for key, value in exp.items():
        if value is None:
            continue
        if key in ("_and", "_or"):
            if not isinstance(value, list):
                raise ValidationFailed(f"{where}.{key}: expected a list")
            for item in value:
                check_filter(table, item, f"{where}.{key}")
        elif key == "_not":
            check_filter(table, value, f"{where}._not")
        elif key in relationships:
            raise ValidationFailed(
                f"{where}.{key}: filters through relationships are not supported on change streams"
            )
        elif key in table.column_names:
            if not isinstance(value, Mapping):
                raise ValidationFailed(f"{where}.{key}: expected an object of comparison operators")
            kind = table.column(key).kind
            for op, operand in value.items():
                if op not in ALL_OPERATORS:
                    raise ValidationFailed(f"{where}.{key}: unknown operator {op!r}")
                if op in ("_in", "_nin") and operand is not None and not isinstance(operand, list):
                    raise ValidationFailed(f"{where}.{key}.{op}: expected a list")
                _check_operand(kind, op, operand, f"{where}.{key}.{op}")
        else:
            raise ValidationFailed(f"{where}: field {key!r} not found in type: '{table.name}_bool_exp'")


def _check_operand(kind: Kind, op: str, operand: Any, where: str) -> None:
    """The operand types GraphQL would have enforced, for filters that arrive as plain JSON."""
    if operand is None or op == "_is_null":
        if op == "_is_null" and not isinstance(operand, bool | None):
            raise ValidationFailed(f"{where}: expected true or false")
        return
    values = operand if op in ("_in", "_nin") else [operand]
    if op in PATTERN_OPERATORS and kind in (Kind.INTEGER, Kind.BIGINT, Kind.FLOAT, Kind.BOOLEAN, Kind.JSON):
        raise ValidationFailed(f"{where}: pattern operators apply to text columns only")
    for value in values:
        ok = {
            # Any number against a number column: both sides compare them alike.
            Kind.INTEGER: isinstance(value, int | float) and not isinstance(value, bool),
            Kind.BIGINT: isinstance(value, int | float) and not isinstance(value, bool),
            Kind.FLOAT: isinstance(value, int | float) and not isinstance(value, bool),
            Kind.BOOLEAN: isinstance(value, bool),
            Kind.JSON: True,
        }.get(kind, isinstance(value, str))
        if not ok:
            raise ValidationFailed(f"{where}: {value!r} is not a valid {kind.value} value")


def matches(exp: Mapping[str, Any] | None, row: Mapping[str, Any]) -> Truth:
    if not exp:
        return True
    results: list[Truth] = []
    for key, value in exp.items():
        if value is None:
            continue
        if key == "_and":
            results.append(_all([matches(v, row) for v in value]))
        elif key == "_or":
            results.append(_any([matches(v, row) for v in value]))
        elif key == "_not":
            inner = matches(value, row)
            results.append(None if inner is None else not inner)
        else:
            results.extend(_compare(row.get(key), op, operand) for op, operand in value.items())
    return _all(results)


def _all(values: list[Truth]) -> Truth:
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


def _any(values: list[Truth]) -> Truth:
    if any(v is True for v in values):
        return True
    return None if any(v is None for v in values) else False


def _compare(value: Any, op: str, operand: Any) -> Truth:
    if operand is None:
        return True  # as in SQL building: a null operand leaves the comparison out
    if op == "_is_null":
        return (value is None) == bool(operand)
    if op in ("_in", "_nin") and not operand:
        return op == "_nin"  # IN () is false and NOT IN () true, even for NULL
    if value is None:
        return None
    if op == "_eq":
        return _order(value, operand) == 0
    if op == "_neq":
        return _order(value, operand) != 0
    if op == "_gt":
        return _order(value, operand) > 0
    if op == "_gte":
        return _order(value, operand) >= 0
    if op == "_lt":
        return _order(value, operand) < 0
    if op == "_lte":
        return _order(value, operand) <= 0
    if op == "_in":
        return any(_order(value, v) == 0 for v in operand)
    if op == "_nin":
        return all(_order(value, v) != 0 for v in operand)
    text = value if isinstance(value, str) else str(value)
    if op in ("_like", "_nlike"):
        found = _like_regex(str(operand), False).fullmatch(text) is not None
        return found if op == "_like" else not found
    if op in ("_ilike", "_nilike"):
        found = _like_regex(str(operand), True).fullmatch(text) is not None
        return found if op == "_ilike" else not found
    raise ValidationFailed(f"unknown operator {op!r}")


def _rank(value: Any) -> int:
    # SQLite's order between storage classes: numbers before text before anything else.
    if isinstance(value, bool | int | float):
        return 0
    if isinstance(value, str):
        return 1
    return 2


def _order(a: Any, b: Any) -> int:
    ra, rb = _rank(a), _rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == 2:
        a, b = repr(a), repr(b)
    return (a > b) - (a < b)


@lru_cache(maxsize=4096)
def _like_regex(pattern: str, insensitive: bool) -> re.Pattern[str]:
    out: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL | (re.IGNORECASE if insensitive else 0))
