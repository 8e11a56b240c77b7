"""A `BoolExp` compiled to a function of one row, with SQL's three-valued logic:
the one in-memory walker.

Events are filtered here instead of in the database, so that a change is
matched once per distinct filter rather than queried once per subscriber.
`None` stands for SQL's UNKNOWN: a row is kept only when the result is True,
exactly as a WHERE clause keeps it. The semantics are graph.rules.to_sql's.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from graph.errors import ValidationFailed
from graph.like import LikePattern
from graph.model import Kind
from graph.rules.bool_exp import (
    INSENSITIVE_PATTERNS,
    PATTERN_OPERATORS,
    And,
    BoolExp,
    ColumnExp,
    Not,
    Or,
    Related,
    SessionVariable,
)
from graph.rules.related import operand_keys, related_part
from graph.temporal import TEMPORAL, instant

if TYPE_CHECKING:
    from graph.model import Table
    from graph.rules.related import Truths

Truth = bool | None
Matcher = Callable[[Mapping[str, Any]], Truth]
"""A filter compiled for rows: True, False, or None (SQL's UNKNOWN)."""


def compile_matcher(exp: BoolExp | None, table: Table | None = None, truths: Truths | None = None) -> Matcher:
    """`exp` as a function of a row of `table`, built once per filter.

    Everything that depends on the filter alone is done here, not per row:
    `_in` lists become sets, LIKE patterns are compiled. Every operator then
    costs time linear in the row's value. With the table, dates and times
    compare as the instants they name (graph.temporal), as SQL compares them:
    '2015-10-17T16:00:00+02:00' equals the row's '2015-10-17T14:00:00+00:00'.

    A relationship field is looked up in `truths`, the answers SQL gave for
    the batch being matched (graph.rules.related): a row image carries no
    related rows.
    """
    if exp is None or not exp.fields:
        return _always
    parts: list[Matcher] = []
    for field in exp.fields:
        if isinstance(field, And):
            parts.append(_conjunction([compile_matcher(e, table, truths) for e in field.exps]))
        elif isinstance(field, Or):
            parts.append(_disjunction([compile_matcher(e, table, truths) for e in field.exps]))
        elif isinstance(field, Not):
            parts.append(_negation(compile_matcher(field.exp, table, truths)))
        elif isinstance(field, ColumnExp):
            kind = _kind(table, field.column)
            parts.extend(_comparison(field.column, c.op, c.operand, kind) for c in field.comparisons)
        else:
            assert isinstance(field, Related)
            if truths is None or table is None:
                raise ValidationFailed(f"{field.relationship!r}: events cannot be filtered through relationships here")
            parts.append(_related(field, table, truths))
    return _conjunction(parts)


def _related(field: Related, table: Table, truths: Truths) -> Matcher:
    part = related_part(table, field)
    operands = operand_keys(part)
    holds = truths.holds
    return lambda row: holds(part, operands, row)


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


def _kind(table: Table | None, column: str) -> Kind | None:
    if table is None:
        return None
    try:
        return table.column(column).kind
    except KeyError:
        return None


def _comparison(column: str, op: str, operand: Any, kind: Kind | None = None) -> Matcher:
    if op == "_is_null" and operand is not None:
        wanted = bool(operand)
        return lambda row: (row.get(column) is None) == wanted
    temporal = kind in TEMPORAL and op not in PATTERN_OPERATORS
    if temporal:
        assert kind is not None
        operand = _instants(kind, operand)
    test = _test(op, operand)
    if test is None:
        return _always  # a null operand leaves the comparison out, as in SQL building
    if isinstance(test, bool):
        constant: Truth = test
        return lambda _row: constant
    if temporal:
        assert kind is not None
        instant_kind = kind

        def by_instant(row: Mapping[str, Any]) -> Truth:
            value = row.get(column)
            return None if value is None else test(instant(instant_kind, value))

        return by_instant

    def comparison(row: Mapping[str, Any]) -> Truth:
        value = row.get(column)
        return None if value is None else test(value)

    return comparison


def _instants(kind: Kind, operand: Any) -> Any:
    """An operand (a value, or `_in`'s tuple) as the instants it names; variables stay for `_test` to refuse."""
    if isinstance(operand, tuple):
        return tuple(v if isinstance(v, SessionVariable) else instant(kind, v) for v in operand)
    return operand if isinstance(operand, SessionVariable) else instant(kind, operand)


def _test(op: str, operand: Any) -> Callable[[Any], bool] | bool | None:
    """The test of one non-null value; a constant where the answer does not depend on the
    row (even a NULL one); None when the comparison is left out."""
    if operand is None:
        return None
    if isinstance(operand, SessionVariable):
        raise TypeError(f"{op}: a session variable not resolved")  # graph.rules.session.resolve
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
        pattern = LikePattern(str(operand), insensitive=op in INSENSITIVE_PATTERNS)
        wanted = op in ("_like", "_ilike")
        return lambda value: pattern.matches(value if isinstance(value, str) else str(value)) == wanted
    raise ValidationFailed(f"unknown operator {op!r}")


class ValueSet:
    """An `_in` list as a set: `value in ValueSet(items)` is `any(_order(value, i) == 0 ...)`.

    Filed by `equality_key`: numbers by value (1, 1.0 and True are one, as
    `_order` compares them), text as itself, anything else (JSON values) by
    its repr. NaN equals nothing here.
    """

    __slots__ = ("_keys",)

    def __init__(self, items: Iterable[Any]) -> None:
        self._keys: set[Hashable] = set()
        for item in items:
            if isinstance(item, SessionVariable):
                raise TypeError("_in: a session variable not resolved")
            key = equality_key(item)
            if key is not None:
                self._keys.add(key)

    def __contains__(self, value: Any) -> bool:
        key = equality_key(value)
        return key is not None and key in self._keys


def equality_key(value: Any) -> Hashable | None:
    """A key that two non-null values share exactly when `_eq` holds between them.

    `_order(a, b) == 0` if and only if `equality_key(a) == equality_key(b)`,
    as `ValueSet` also files them: numbers by value (Python's equal numbers
    hash alike), text as itself, anything else by its repr. None for NaN,
    which `_order` finds equal to every number: it has no one key.
    """
    rank = _rank(value)
    if rank == 0:
        return value if value == value else None
    if rank == 1:
        return value
    return (_REPR, repr(value))


_REPR = "repr"
"""Tags the repr of a value that is neither number nor text, so it never equals a text key."""


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
