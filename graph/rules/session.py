"""Session variables: their names, and their values filled into rules per session.

A rule is read once with its variables as `SessionVariable` operands; each
session resolves it to literals (`resolve`), converted to the compared
column's type (`"7"` equals integer 7, SPEC section 7).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
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
        return int(text)
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
    return _resolve(exp, table, model, session, positive=True)


def _resolve(
    exp: BoolExp, table: Table, model: DatabaseModel, session: SessionValues, positive: bool
) -> BoolExp:
    # `positive` is False under an odd number of _not. An UNKNOWN comparison
    # admits exactly what a false one would where it is not negated, and what a
    # true one would where it is: so it is replaced by that constant, which
    # keeps SQL and the in-memory matcher in step without needing a NULL.
    fields: list[Field] = []
    for field in exp.fields:
        if isinstance(field, And):
            fields.append(And(tuple(_resolve(e, table, model, session, positive) for e in field.exps)))
        elif isinstance(field, Or):
            fields.append(Or(tuple(_resolve(e, table, model, session, positive) for e in field.exps)))
        elif isinstance(field, Not):
            fields.append(Not(_resolve(field.exp, table, model, session, not positive)))
        elif isinstance(field, Related):
            rel = next(r for r in table.relationships if r.name == field.relationship)
            remote = model.table(rel.remote_table)
            fields.append(Related(field.relationship, _resolve(field.exp, remote, model, session, positive)))
        else:
            comparisons = _resolve_comparisons(table.column(field.column), field, session, positive)
            if comparisons is None:
                return NEVER  # one false comparison makes this whole conjunction false
            fields.append(ColumnExp(field.column, comparisons))
    return BoolExp(tuple(fields))


def _resolve_comparisons(
    column: Column, exp: ColumnExp, session: SessionValues, positive: bool
) -> tuple[Compare, ...] | None:
    """The comparisons with session values filled in; None when they can hold for no row."""
    out: list[Compare] = []
    for compare in exp.comparisons:
        op, operand = compare.op, compare.operand
        takes = OPERATORS[op]
        if takes is Takes.LIST:
            values, unknown = [], False
            for item in operand:
                try:
                    values.append(_value(column, item, session, pattern=False))
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
                value = _value(column, operand, session, pattern=takes is Takes.PATTERN)
            except _NoValue:
                if positive:
                    return None
                continue
            out.append(compare if value is operand else Compare(op, value))
    return tuple(out)


def _value(column: Column, operand: Any, session: SessionValues, pattern: bool) -> Any:
    if not isinstance(operand, SessionVariable):
        return operand
    raw = session.get(operand)
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
