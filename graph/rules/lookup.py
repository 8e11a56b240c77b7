"""What a filter requires of single columns, as values a row can be looked up by.

An event stream's filter often pins a column to a few values (`user_id:
{_eq: 7}`, `status: {_in: [...]}`, `deleted_at: {_is_null: true}`), alone
or in a conjunction with other conditions. `required_keys` reads those
columns out of the filter; `row_key` gives the key of a row's value. The
filter can hold for a row only when, for each such column, the row's key is
one of the required ones: so graph.events.index files a stream under its
keys and an event reaches only the streams filed under its rows' keys,
whatever the number of streams it does not reach. The full matcher still
decides on those (the other conditions, three-valued logic).

Keys are the matcher's own equality (`graph.rules.matcher.equality_key`), so
that a lookup finds exactly the rows `_eq` and `_in` accept; where a value
has no one key (NaN, which the matcher finds equal to every number), the
column is not used, or the row is looked up everywhere.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any, Final

from graph.rules.bool_exp import And, BoolExp, ColumnExp, Compare, SessionVariable
from graph.rules.matcher import equality_key
from graph.temporal import TEMPORAL

if TYPE_CHECKING:
    from graph.model import Table


class _Null:
    """The key of a NULL: only `_is_null: true` accepts it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NULL"


NULL: Final = _Null()

Keys = frozenset[Hashable]
UNSURE: Final = None
"""`row_key` of a value that has no one key: look the row up under every key."""


def row_key(row: Mapping[str, Any], column: str) -> Hashable | None:
    """The key of the row's value in `column` (NULL for null), or UNSURE (None)."""
    value = row.get(column)  # a missing column reads as null, as in the matcher
    return NULL if value is None else equality_key(value)


def required_keys(exp: BoolExp | None, table: Table | None = None) -> dict[str, Keys]:
    """Column -> the keys its value must have for `exp` to be True (an empty set: never).

    Only conditions that must all hold are read: the fields of `exp` and of
    the `_and`s in it, not `_or` or `_not`. Several conditions on one column
    narrow each other. A column no such condition pins is left out, and so
    is a date or time column of `table`: the matcher compares those as the
    instants they name, which one text has many ways to write.
    """
    required: dict[str, Keys] = {}
    for column, keys in _conjuncts(exp):
        if table is not None and _temporal(table, column):
            continue
        known = required.get(column)
        required[column] = keys if known is None else known & keys
    return required


def _temporal(table: Table, column: str) -> bool:
    try:
        return table.column(column).kind in TEMPORAL
    except KeyError:
        return False


def _conjuncts(exp: BoolExp | None) -> list[tuple[str, Keys]]:
    found: list[tuple[str, Keys]] = []
    if exp is None:
        return found
    for field in exp.fields:
        if isinstance(field, ColumnExp):
            for compare in field.comparisons:
                keys = _keys(compare)
                if keys is not None:
                    found.append((field.column, keys))
        elif isinstance(field, And):
            for inner in field.exps:
                found.extend(_conjuncts(inner))
    return found


def _keys(compare: Compare) -> Keys | None:
    """The keys one comparison admits; None when it does not pin the column to values."""
    op, operand = compare.op, compare.operand
    if operand is None or isinstance(operand, SessionVariable):
        return None  # a null operand drops the comparison; an unresolved one is refused elsewhere
    if op == "_is_null":
        return frozenset((NULL,)) if operand is True else None
    if op == "_eq":
        key = equality_key(operand)
        return None if key is None else frozenset((key,))
    if op == "_in":
        if not isinstance(operand, tuple) or any(isinstance(v, SessionVariable) for v in operand):
            return None
        # NaN in a list matches nothing (ValueSet), and a null item no row.
        return frozenset(key for key in map(equality_key, (v for v in operand if v is not None)) if key is not None)
    return None
