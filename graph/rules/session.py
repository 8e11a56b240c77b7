"""Session variables: their names, and their values filled into rules.

A rule is read once with its variables as `SessionVariable` operands. For
SQL it is compiled once per role with each variable a statement parameter
(`parameterize`), which every request binds to its session's value; the
in-memory matcher of event streams takes it resolved to literals per session
(`resolve`). Either way a value is converted to the compared column's type
(`"7"` equals integer 7, SPEC section 7).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graph.errors import ValidationFailed
from graph.model import Kind
from graph.rules.bool_exp import (
    NEVER,
    OPERATORS,
    And,
    BoolExp,
    ColumnExp,
    Compare,
    Field,
    Not,
    Or,
    Related,
    SessionVariable,
    Takes,
)
from graph.sql.values import to_db

if TYPE_CHECKING:
    from graph.model import Column, DatabaseModel, Table

SESSION_USER_ID = "X-User-Id"
SESSION_ROLE = "X-Role"

# Hasura's spellings are accepted too, so that rules can be copied over.
SESSION_VARIABLES = {
    "x-user-id": SESSION_USER_ID,
    "x-hasura-user-id": SESSION_USER_ID,
    "x-role": SESSION_ROLE,
    "x-hasura-role": SESSION_ROLE,
}

SessionValues = Mapping[str, str | None]
"""Canonical variable name -> the session's value (None: the session has none)."""


def session_variable(value: Any) -> str | None:
    """The canonical name when `value` names a session variable, else None."""
    return SESSION_VARIABLES.get(value.lower()) if isinstance(value, str) else None


_INTEGER = re.compile(r"[+-]?\d+")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


class _NoValue(Exception):
    """A session value that is missing or not a value of the compared column's type."""


def _convert(column: Column, raw: str | None) -> Any:
    if raw is None:
        raise _NoValue
    text = raw  # session values are text (graph.auth.Session.variables)
    kind = column.kind
    if kind is Kind.INTEGER or kind is Kind.BIGINT:
        if not _INTEGER.fullmatch(text.strip()):
            raise _NoValue
        integer = int(text)
        if not -(2**63) <= integer < 2**63:
            raise _NoValue  # no integer column of either database holds it: it does not convert
        return integer
    if kind is Kind.FLOAT:
        try:
            number = float(text)
        except ValueError:
            raise _NoValue from None
        if not math.isfinite(number):
            raise _NoValue
        return number
    if kind is Kind.BOOLEAN:
        if text.strip().lower() not in _BOOLEANS:
            raise _NoValue
        return _BOOLEANS[text.strip().lower()]
    try:
        to_db(column, text, "postgresql")  # dates, numerics, UUIDs: refuse what would not bind
    except ValidationFailed:
        raise _NoValue from None
    return text


def resolve(exp: BoolExp, table: Table, model: DatabaseModel, session: SessionValues) -> BoolExp:
    """`exp` with its session variables replaced by the session's values.

    Values are converted to the compared column's type. A value the session
    lacks, or one that does not convert, makes its comparison UNKNOWN, as an
    SQL NULL would: it admits no row, and neither does its negation under
    `_not`, so a missing value never widens a grant.
    """

    def fill(column: Column, operand: Any, pattern: bool) -> Any:
        if not isinstance(operand, SessionVariable):
            return operand
        return _session_value(column, operand, session, pattern)

    return _substitute(exp, table, model, fill, positive=True)


@dataclass(frozen=True, slots=True)
class SessionParameter:
    """A session variable's place in a rule compiled once for every user of a role (`parameterize`).

    graph.rules.to_sql makes it a statement parameter. Its `value` for a
    session is what `resolve` writes in its place, or None (an SQL NULL)
    where `resolve` makes the comparison UNKNOWN: in a WHERE clause, where
    rules are applied, NULL admits exactly the rows `resolve`'s constants do
    (UNKNOWN admits no row, and neither does its negation).
    """

    variable: str
    """Its canonical name (`X-User-Id`)."""
    column: Column
    """The compared column, to whose type the value is converted."""
    pattern: bool
    """A LIKE pattern's operand: text, whatever the column's type."""

    def value(self, session: SessionValues) -> Any:
        try:
            return _session_value(self.column, self.variable, session, self.pattern)
        except _NoValue:
            return None


def parameterize(exp: BoolExp, table: Table, model: DatabaseModel) -> BoolExp:
    """`exp` with its session variables as `SessionParameter`s, for one SQL condition per role."""

    def fill(column: Column, operand: Any, pattern: bool) -> Any:
        return SessionParameter(operand, column, pattern) if isinstance(operand, SessionVariable) else operand

    return _substitute(exp, table, model, fill, positive=True)


Fill = Callable[["Column", Any, bool], Any]
"""An operand as substituted (a literal stays itself); `_NoValue` when a session has none of its type."""


def _substitute(exp: BoolExp, table: Table, model: DatabaseModel, fill: Fill, positive: bool) -> BoolExp:
    # `positive` is False under an odd number of _not. An UNKNOWN comparison
    # admits exactly what a false one would where it is not negated, and what a
    # true one would where it is: so it is replaced by that constant, which
    # keeps SQL and the in-memory matcher in step without needing a NULL.
    fields: list[Field] = []
    for field in exp.fields:
        if isinstance(field, And):
            fields.append(And(tuple(_substitute(e, table, model, fill, positive) for e in field.exps)))
        elif isinstance(field, Or):
            fields.append(Or(tuple(_substitute(e, table, model, fill, positive) for e in field.exps)))
        elif isinstance(field, Not):
            fields.append(Not(_substitute(field.exp, table, model, fill, not positive)))
        elif isinstance(field, Related):
            rel = next(r for r in table.relationships if r.name == field.relationship)
            remote = model.table(rel.remote_table)
            fields.append(Related(field.relationship, _substitute(field.exp, remote, model, fill, positive)))
        else:
            comparisons = _substitute_comparisons(table.column(field.column), field, fill, positive)
            if comparisons is None:
                return NEVER  # one false comparison makes this whole conjunction false
            fields.append(ColumnExp(field.column, comparisons))
    return BoolExp(tuple(fields))


def _substitute_comparisons(
    column: Column, exp: ColumnExp, fill: Fill, positive: bool
) -> tuple[Compare, ...] | None:
    """The comparisons with operands filled in; None when they can hold for no row."""
    out: list[Compare] = []
    for compare in exp.comparisons:
        op, operand = compare.op, compare.operand
        takes = OPERATORS[op]
        if takes is Takes.LIST:
            values, unknown = [], False
            for item in operand:
                try:
                    values.append(fill(column, item, False))
                except _NoValue:
                    unknown = True
            # x IN (a, NULL) is true for a and UNKNOWN otherwise; x NOT IN (a, NULL)
            # is never true: under each polarity that leaves one of two outcomes.
            if not unknown or (op == "_in" and positive) or (op == "_nin" and not positive):
                out.append(Compare(op, tuple(values)))
            elif positive:
                return None
            # else: negated, the UNKNOWN comparison counts as true and is dropped
        else:
            try:
                value = fill(column, operand, takes is Takes.PATTERN)
            except _NoValue:
                if positive:
                    return None
                continue
            out.append(compare if value is operand else Compare(op, value))
    return tuple(out)


def _session_value(column: Column, variable: str, session: SessionValues, pattern: bool) -> Any:
    raw = session.get(variable)
    if pattern:
        if raw is None:
            raise _NoValue
        return str(raw)
    return _convert(column, raw)


def resolve_presets(values: Mapping[str, Any], table: Table, session: SessionValues) -> dict[str, Any]:
    """`set` presets with session variables replaced by values of each column's type."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        variable = session_variable(value)
        if variable is None:
            out[name] = value
            continue
        raw = session.get(variable)
        if raw is None:
            raise ValidationFailed(
                f"session variable {variable} is required to set column {table.name}.{name}"
            )
        try:
            out[name] = _convert(table.column(name), raw)
        except _NoValue:
            kind = table.column(name).kind.value
            raise ValidationFailed(
                f"session variable {variable} value {raw!r} is not a valid {kind} "
                f"for column {table.name}.{name}"
            ) from None
    return out
