"""`t_bool_exp` to a SQL condition.

Semantics are the same on every database (SPEC section 4): `_like` is case
sensitive and `_ilike` is not, `\\` escapes a wildcard. SQLite's LIKE ignores
case, so there `_like` becomes GLOB, which does not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from graph.errors import ValidationFailed
from graph.model import Kind
from graph.nesting import check_filter_depth
from graph.sql.values import to_db

if TYPE_CHECKING:
    from sqlalchemy.sql import FromClause

    from graph.model import DatabaseModel, Relationship, Table

Condition = ColumnElement[bool]
Visible = Callable[[str, "FromClause | None"], "Condition | None"]
"""The session's row rule for a table, on a given alias of it (None: every row); graph.access."""

COMPARISONS: dict[str, Callable[[Any, Any], Condition]] = {
    "_eq": lambda c, v: c == v,
    "_neq": lambda c, v: c != v,
    "_gt": lambda c, v: c > v,
    "_gte": lambda c, v: c >= v,
    "_lt": lambda c, v: c < v,
    "_lte": lambda c, v: c <= v,
}
LIST_OPERATORS = ("_in", "_nin")
PATTERN_OPERATORS = ("_like", "_nlike", "_ilike", "_nilike")
ALL_OPERATORS = (*COMPARISONS, *LIST_OPERATORS, "_is_null", *PATTERN_OPERATORS)


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

        `visible` gives the session's row rule of each table a filter walks
        into, so a client's filter cannot probe rows it may not select.
        """
        check_filter_depth(exp)  # before the compiler recurses into it
        return self._compile(table, exp, target, visible)

    def _compile(
        self,
        table: str,
        exp: Mapping[str, Any] | None,
        target: FromClause | None = None,
        visible: Visible | None = None,
    ) -> Condition:
        if not exp:
            return sa.true()
        model = self.model.table(table)
        if not isinstance(exp, Mapping):
            raise ValidationFailed(f"expected an object of {table}_bool_exp, got {exp!r}")
        target = self.tables[table] if target is None else target
        relationships = {rel.name: rel for rel in model.relationships}
        parts: list[Condition] = []
        for key, value in exp.items():
            if value is None:
                continue  # Hasura: a null operand leaves the expression out
            if key == "_and":
                parts.append(_all([self._compile(table, v, target, visible) for v in _as_list(value)]))
            elif key == "_or":
                branches = [self._compile(table, v, target, visible) for v in _as_list(value)]
                parts.append(sa.or_(*branches) if branches else sa.false())
            elif key == "_not":
                parts.append(sa.not_(self._compile(table, value, target, visible)))
            elif key in relationships:
                parts.append(self._related(relationships[key], value, target, visible))
            else:
                parts.extend(self._column(model, target, key, value))
        return _all(parts)

    def _related(
        self, rel: Relationship, exp: Any, target: FromClause, visible: Visible | None
    ) -> Condition:
        # An alias keeps a self-referencing table (message.parent) apart from itself.
        remote = self.tables[rel.remote_table].alias()
        joined = [
            remote.c[r] == target.c[local]
            for local, r in zip(rel.local_columns, rel.remote_columns, strict=True)
        ]
        condition = self._compile(rel.remote_table, exp, remote, visible)
        allowed = visible(rel.remote_table, remote) if visible else None
        if allowed is not None:
            joined.append(allowed)
        return sa.select(sa.literal(1)).select_from(remote).where(*joined, condition).exists()

    def _column(self, table: Table, target: FromClause, name: str, ops: Any) -> list[Condition]:
        try:
            column = table.column(name)
        except KeyError:
            raise ValidationFailed(
                f"field {name!r} not found in type: '{table.name}_bool_exp'"
            ) from None
        if not isinstance(ops, Mapping):
            raise ValidationFailed(f"expected an object of comparison operators for {name!r}")
        col = comparable(target.c[name], column.kind, self.dialect)
        parts: list[Condition] = []
        for op, value in ops.items():
            if value is None:
                continue
            if op in COMPARISONS:
                # A bound literal, since SQLAlchemy refuses `col > True` on a bare bool.
                operand = sa.literal(to_db(column, value, self.dialect))
                parts.append(COMPARISONS[op](col, operand))
            elif op in LIST_OPERATORS:
                values = [to_db(column, v, self.dialect) for v in _as_list(value)]
                parts.append(col.in_(values) if op == "_in" else col.not_in(values))
            elif op == "_is_null":
                parts.append(col.is_(None) if value else col.is_not(None))
            elif op in PATTERN_OPERATORS:
                parts.append(self._pattern(op, col, column.kind, str(value)))
            else:
                raise ValidationFailed(
                    f"field {op!r} not found in type: comparison expression of {name!r}"
                )
        return parts

    def _pattern(self, op: str, col: Any, kind: Kind, pattern: str) -> Condition:
        text = col if kind is Kind.STRING else sa.cast(col, sa.Text)
        insensitive = op in ("_ilike", "_nilike")
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
        return sa.not_(cond) if op.startswith("_n") else cond


def comparable(col: Any, kind: Kind, dialect: str) -> Any:
    """The column as compared and ordered: PostgreSQL's `json` type has no operators
    at all (not even `=`), so JSON is compared as its text there, as SQLite does."""
    return sa.cast(col, sa.Text) if kind is Kind.JSON and dialect == "postgresql" else col


def _all(parts: list[Condition]) -> Condition:
    if not parts:
        return sa.true()
    return parts[0] if len(parts) == 1 else sa.and_(*parts)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]
