"""`t_bool_exp` evaluated against one row in memory, with SQL's three-valued logic.

Events are filtered here instead of in the database, so that a change is
matched once per distinct filter rather than queried once per subscriber.
`None` stands for SQL's UNKNOWN: a row is kept only when the result is True,
exactly as a WHERE clause keeps it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from graph.errors import ValidationFailed
from graph.like import LikePattern
from graph.model import Kind, Table
from graph.nesting import check_filter_depth
from graph.sql.where import ALL_OPERATORS, PATTERN_OPERATORS

Truth = bool | None


def check_filter(table: Table, exp: Any, where: str = "where") -> None:
    """Raise ValidationFailed unless `exp` is a bool_exp this module can evaluate on `table`."""
    check_filter_depth(exp, where)  # before anything below recurses into it
    _check_filter(table, exp, where)


def _check_filter(table: Table, exp: Any, where: str) -> None:
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
                _check_filter(table, item, f"{where}.{key}")
        elif key == "_not":
            _check_filter(table, value, f"{where}._not")
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
    """Whether `row` passes `exp`; compile the filter once (`compile_filter`) to test many rows."""
    return compile_filter(exp)(row)


Matcher = Callable[[Mapping[str, Any]], Truth]
"""A filter compiled for rows: True, False, or None (SQL's UNKNOWN)."""


def compile_filter(exp: Mapping[str, Any] | None) -> Matcher:
    """`exp` (checked by check_filter) as a function of a row, built once per filter.

    Everything that depends on the filter alone is done here, not per row:
    `_in` lists become sets, LIKE patterns are compiled. Every operator then
    costs time linear in the row's value.
    """
    if not exp:
        return _always
    parts: list[Matcher] = []
    for key, value in exp.items():
        if value is None:
            continue
        if key == "_and":
            parts.append(_conjunction([compile_filter(v) for v in value]))
        elif key == "_or":
            parts.append(_disjunction([compile_filter(v) for v in value]))
        elif key == "_not":
            parts.append(_negation(compile_filter(value)))
        else:
            parts.extend(_comparison(key, op, operand) for op, operand in value.items())
    return _conjunction(parts)


def _always(_row: Mapping[str, Any]) -> Truth:
    return True


def _conjunction(parts: list[Matcher]) -> Matcher:
    if len(parts) == 1:
        return parts[0]

    def conjunction(row: Mapping[str, Any]) -> Truth:
        result: Truth = True
        for part in parts:
            truth = part(row)
            if truth is False:
                return False
            if truth is None:
                result = None
        return result

    return conjunction


def _disjunction(parts: list[Matcher]) -> Matcher:
    def disjunction(row: Mapping[str, Any]) -> Truth:
        result: Truth = False
        for part in parts:
            truth = part(row)
            if truth is True:
                return True
            if truth is None:
                result = None
        return result

    return disjunction


def _negation(inner: Matcher) -> Matcher:
    def negation(row: Mapping[str, Any]) -> Truth:
        truth = inner(row)
        return None if truth is None else not truth

    return negation


def _comparison(column: str, op: str, operand: Any) -> Matcher:
    if op == "_is_null" and operand is not None:
        wanted = bool(operand)
        return lambda row: (row.get(column) is None) == wanted
    test = _test(op, operand)
    if test is None:
        return _always  # a null operand leaves the comparison out, as in SQL building
    if isinstance(test, bool):
        constant: Truth = test
        return lambda _row: constant

    def comparison(row: Mapping[str, Any]) -> Truth:
        value = row.get(column)
        return None if value is None else test(value)

    return comparison


def _test(op: str, operand: Any) -> Callable[[Any], bool] | bool | None:
    """The test of one non-null value; a constant where the answer does not depend on the
    row (even a NULL one); None when the comparison is left out."""
    if operand is None:
        return None
    if op in ("_in", "_nin") and not operand:
        return op == "_nin"  # IN () is false and NOT IN () true, even for NULL
    if op == "_eq":
        return lambda value: _order(value, operand) == 0
    if op == "_neq":
        return lambda value: _order(value, operand) != 0
    if op == "_gt":
        return lambda value: _order(value, operand) > 0
    if op == "_gte":
        return lambda value: _order(value, operand) >= 0
    if op == "_lt":
        return lambda value: _order(value, operand) < 0
    if op == "_lte":
        return lambda value: _order(value, operand) <= 0
    if op == "_in":
        return ValueSet(operand).__contains__
    if op == "_nin":
        values = ValueSet(operand)
        return lambda value: value not in values
    if op in PATTERN_OPERATORS:
        pattern = LikePattern(str(operand), insensitive=op in ("_ilike", "_nilike"))
        wanted = op in ("_like", "_ilike")
        return lambda value: pattern.matches(value if isinstance(value, str) else str(value)) == wanted
    raise ValidationFailed(f"unknown operator {op!r}")


class ValueSet:
    """An `_in` list as sets: `value in ValueSet(items)` is `any(_order(value, i) == 0 ...)`.

    Numbers are one set, since Python's equal numbers hash alike (1, 1.0 and
    True, as `_order` compares them); text another; anything else (JSON
    values) by its repr, as `_order` compares those. NaN equals nothing.
    """

    __slots__ = ("_numbers", "_others", "_texts")

    def __init__(self, items: Iterable[Any]) -> None:
        self._numbers: set[Any] = set()
        self._texts: set[str] = set()
        self._others: set[str] = set()
        for item in items:
            rank = _rank(item)
            if rank == 0:
                if item == item:  # NaN is the one number unequal to itself
                    self._numbers.add(item)
            elif rank == 1:
                self._texts.add(item)
            else:
                self._others.add(repr(item))

    def __contains__(self, value: Any) -> bool:
        rank = _rank(value)
        if rank == 0:
            return value == value and value in self._numbers
        if rank == 1:
            return value in self._texts
        return repr(value) in self._others


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
