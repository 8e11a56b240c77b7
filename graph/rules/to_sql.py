"""A `BoolExp` compiled to a SQL condition (SQLAlchemy Core): the one SQL walker.

Semantics are the same on every database (SPEC section 4): `_like` is case
sensitive and `_ilike` is not, `\\` escapes a wildcard. SQLite's LIKE ignores
case, so there `_like` becomes GLOB, which does not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from graph.model import Kind
from graph.nesting import MAX_FILTER_DEPTH, too_deep
from graph.rules.bool_exp import (
    COMPARISONS,
    INSENSITIVE_PATTERNS,
    NEGATED_PATTERNS,
    OPERATORS,
    And,
    BoolExp,
    ColumnExp,
    Not,
    Or,
    Related,
    SessionVariable,
    Takes,
)
from graph.rules.parse import parse_where
from graph.sql.values import to_db

if TYPE_CHECKING:
    from sqlalchemy.sql import FromClause

    from graph.model import DatabaseModel, Table

Condition = ColumnElement[bool]
Visible = Callable[[str, "FromClause | None"], "Condition | None"]
"""The session's row rule for a table, on a given alias of it (None: every row); graph.access."""

_OPERATORS: dict[str, Callable[[Any, Any], Condition]] = {
    "_eq": lambda c, v: c == v,
    "_neq": lambda c, v: c != v,
    "_gt": lambda c, v: c > v,
    "_gte": lambda c, v: c >= v,
    "_lt": lambda c, v: c < v,
    "_lte": lambda c, v: c <= v,
}
assert tuple(_OPERATORS) == COMPARISONS


def like_to_glob(pattern: str) -> str:
    out: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            ch = next(chars, "\\")
            out.append(_glob_literal(ch))
        elif ch == "%":
            out.append("*")
        elif ch == "_":
            out.append("?")
        else:
            out.append(_glob_literal(ch))
    return "".join(out)


def _glob_literal(ch: str) -> str:
    return f"[{ch}]" if ch in "*?[" else ch


class Filters:
    """Compiles any table's `t_bool_exp`, following relationships with EXISTS."""

    def __init__(self, model: DatabaseModel, tables: Mapping[str, sa.Table]) -> None:
        self.model = model
        self.tables = tables
        self.dialect = model.dialect

    def compile(
        self,
        table: str,
        exp: Mapping[str, Any] | None,
        target: FromClause | None = None,
        visible: Visible | None = None,
    ) -> Condition:
        """The condition on `target` (the table itself unless given, e.g. an alias).

        `exp` is a `where` as GraphQL coerced it (read here), or a BoolExp
        already read (a rule, its session variables resolved). `visible`
        gives the session's row rule of each table a filter walks into, so
        a client's filter cannot probe rows it may not select.
        """
        if isinstance(exp, BoolExp):
            if exp.depth > MAX_FILTER_DEPTH:
                raise too_deep("where")
        elif not exp:
            return sa.true()
        else:
            exp = parse_where(self.model.table(table), exp, self.model)
        target = self.tables[table] if target is None else target
        return self._condition(self.model.table(table), exp, target, visible)

    def _condition(
        self, table: Table, exp: BoolExp, target: FromClause, visible: Visible | None
    ) -> Condition:
        parts: list[Condition] = []
        for field in exp.fields:
            if isinstance(field, And):
                parts.append(_all([self._condition(table, e, target, visible) for e in field.exps]))
            elif isinstance(field, Or):
                branches = [self._condition(table, e, target, visible) for e in field.exps]
                parts.append(sa.or_(*branches) if branches else sa.false())
            elif isinstance(field, Not):
                parts.append(sa.not_(self._condition(table, field.exp, target, visible)))
            elif isinstance(field, Related):
                parts.append(self._related(table, field, target, visible))
            else:
                parts.extend(self._column(table, target, field))
        return _all(parts)

    def _related(
        self, table: Table, field: Related, target: FromClause, visible: Visible | None
    ) -> Condition:
        rel = next(r for r in table.relationships if r.name == field.relationship)
        # An alias keeps a self-referencing table (message.parent) apart from itself.
        remote = self.tables[rel.remote_table].alias()
        joined = [
            remote.c[r] == target.c[local]
            for local, r in zip(rel.local_columns, rel.remote_columns, strict=True)
        ]
        condition = self._condition(self.model.table(rel.remote_table), field.exp, remote, visible)
        allowed = visible(rel.remote_table, remote) if visible else None
        if allowed is not None:
            joined.append(allowed)
        return sa.select(sa.literal(1)).select_from(remote).where(*joined, condition).exists()

    def _column(self, table: Table, target: FromClause, field: ColumnExp) -> list[Condition]:
        column = table.column(field.column)
        col = comparable(target.c[field.column], column.kind, self.dialect)
        parts: list[Condition] = []
        for compare in field.comparisons:
            op, value = compare.op, compare.operand
            takes = OPERATORS[op]
            if _unresolved(value):
                raise TypeError(f"{op} on {field.column}: a session variable not resolved")
            if takes is Takes.VALUE:
                # A bound literal, since SQLAlchemy refuses `col > True` on a bare bool.
                operand = sa.literal(to_db(column, value, self.dialect))
                parts.append(_OPERATORS[op](col, operand))
            elif takes is Takes.LIST:
                values = [to_db(column, v, self.dialect) for v in value]
                parts.append(col.in_(values) if op == "_in" else col.not_in(values))
            elif takes is Takes.BOOLEAN:
                parts.append(col.is_(None) if value else col.is_not(None))
            else:
                parts.append(self._pattern(op, col, column.kind, str(value)))
        return parts

    def _pattern(self, op: str, col: Any, kind: Kind, pattern: str) -> Condition:
        text = col if kind is Kind.STRING else sa.cast(col, sa.Text)
        insensitive = op in INSENSITIVE_PATTERNS
        trailing = len(pattern) - len(pattern.rstrip("\\"))
        if trailing % 2:
            # A lone escape at the end means a literal backslash, as GLOB and
            # the in-memory matcher read it (PostgreSQL would reject the pattern).
            pattern += "\\"
        if self.dialect == "postgresql":
            cond = text.ilike(pattern) if insensitive else text.like(pattern)
        elif insensitive:
            cond = text.like(pattern, escape="\\")
        else:
            cond = text.op("GLOB")(like_to_glob(pattern))
        return sa.not_(cond) if op in NEGATED_PATTERNS else cond


def comparable(col: Any, kind: Kind, dialect: str) -> Any:
    """The column as compared and ordered: PostgreSQL's `json` type has no operators
    at all (not even `=`), so JSON is compared as its text there, as SQLite does."""
    return sa.cast(col, sa.Text) if kind is Kind.JSON and dialect == "postgresql" else col


def _unresolved(operand: Any) -> bool:
    # A rule reaches SQL only through graph.rules.session.resolve: never bind a
    # variable's name as if it were the value.
    if isinstance(operand, tuple):
        return any(isinstance(v, SessionVariable) for v in operand)
    return isinstance(operand, SessionVariable)


def _all(parts: list[Condition]) -> Condition:
    if not parts:
        return sa.true()
    return parts[0] if len(parts) == 1 else sa.and_(*parts)
