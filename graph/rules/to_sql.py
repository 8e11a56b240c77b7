"""A `BoolExp` compiled to a SQL condition (SQLAlchemy Core): the one SQL walker.

Semantics are the same on every database (SPEC section 4): `_like` is case
sensitive and `_ilike` is not, `\\` escapes a wildcard. SQLite's LIKE ignores
case, so there `_like` becomes GLOB, which does not; its LIKE folds ASCII
letters only, so `_ilike` calls graph.like's `fg_ilike`, which folds them all.

A rule's session variables (`SessionParameter` operands, from
graph.rules.session.parameterize) become bind parameters of fixed keys, so
that one condition, compiled once per role, serves every user of it: a
statement binds them per request from `Filters.parameters(session)`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from graph.like import ILIKE_FUNCTION
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
from graph.rules.related import Slot
from graph.rules.session import SessionParameter
from graph.sql.values import to_db
from graph.temporal import INSTANT_FUNCTION, SHAPES, TEMPORAL, UTC, WHOLE_SECONDS, instant

if TYPE_CHECKING:
    from sqlalchemy.sql import FromClause
    from sqlalchemy.sql.elements import BindParameter
    from sqlalchemy.types import TypeEngine

    from graph.model import Column, DatabaseModel, Relationship, Table
    from graph.rules.session import SessionValues

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

Convert = Callable[["SessionValues"], Any]
"""A session parameter's value for a session, as the statement binds it (None: SQL NULL)."""


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


def _pattern_text(pattern: str, glob: bool) -> str:
    trailing = len(pattern) - len(pattern.rstrip("\\"))
    if trailing % 2:
        # A lone escape at the end means a literal backslash, as GLOB and
        # the in-memory matcher read it (PostgreSQL would reject the pattern).
        pattern += "\\"
    return like_to_glob(pattern) if glob else pattern


class Filters:
    """Compiles any table's `t_bool_exp`, following relationships with EXISTS."""

    def __init__(self, model: DatabaseModel, tables: Mapping[str, sa.Table]) -> None:
        self.model = model
        self.tables = tables
        self.dialect = model.dialect
        self.session_parameters: dict[str, Convert] = {}
        """Every session parameter's key, with its value for a session; one per variable and conversion."""
        self._keys: dict[tuple[str, str, Any], str] = {}
        self._lock = threading.Lock()

    def parameters(self, session: SessionValues) -> SessionParameters:
        """The session's values of the session parameters, for a statement to bind."""
        return SessionParameters(self.session_parameters, session)

    def compile(
        self,
        table: str,
        exp: Mapping[str, Any] | None,
        target: FromClause | None = None,
        visible: Visible | None = None,
        slots: Sequence[Any] = (),
    ) -> Condition:
        """The condition on `target` (the table itself unless given, e.g. an alias).

        `exp` is a `where` as GraphQL coerced it (read here), or a BoolExp
        already read (a rule, its session variables resolved). `visible`
        gives the session's row rule of each table a filter walks into, so
        a client's filter cannot probe rows it may not select. `slots`: the
        SQL operand of each `Slot` in `exp` (graph.rules.related; a column of
        a row of operands, already as `operand` converts a value).
        """
        if isinstance(exp, BoolExp):
            if exp.depth > MAX_FILTER_DEPTH:
                raise too_deep("where")
        elif not exp:
            return sa.true()
        else:
            exp = parse_where(self.model.table(table), exp, self.model)
        target = self.tables[table] if target is None else target
        return self._condition(self.model.table(table), exp, target, visible, slots)

    def _condition(
        self, table: Table, exp: BoolExp, target: FromClause, visible: Visible | None, slots: Sequence[Any] = ()
    ) -> Condition:
        parts: list[Condition] = []
        for field in exp.fields:
            if isinstance(field, And):
                parts.append(_all([self._condition(table, e, target, visible, slots) for e in field.exps]))
            elif isinstance(field, Or):
                branches = [self._condition(table, e, target, visible, slots) for e in field.exps]
                parts.append(sa.or_(*branches) if branches else sa.false())
            elif isinstance(field, Not):
                parts.append(sa.not_(self._condition(table, field.exp, target, visible, slots)))
            elif isinstance(field, Related):
                parts.append(self._related(table, field, target, visible, slots))
            else:
                parts.extend(self._column(table, target, field, slots))
        return _all(parts)

    def _related(
        self, table: Table, field: Related, target: FromClause, visible: Visible | None, slots: Sequence[Any]
    ) -> Condition:
        rel = next(r for r in table.relationships if r.name == field.relationship)
        remote, joined = related_rows(self.tables, rel, target, visible)
        condition = self._condition(self.model.table(rel.remote_table), field.exp, remote, visible, slots)
        # Every other table it names is an enclosing one, however far out (auto-correlation
        # looks one level out only): a row of operands two relationships up (graph.events.decide).
        exists = sa.select(sa.literal(1)).select_from(remote).where(*joined, condition)
        return exists.correlate_except(remote).exists()

    def operand(self, column: Column, value: Any) -> Any:
        """A literal operand of `column` as a statement binds it (a `Slot`'s value, graph.events.decide)."""
        return self._literal(column, value)

    def operand_type(self, column: Column) -> TypeEngine[Any]:
        """The SQL type of `operand`'s values for `column`."""
        if self._by_instant(column.kind):
            return sa.String()  # SQLite's instants are text
        return _parameter_type(column, self.dialect)

    def _column(self, table: Table, target: FromClause, field: ColumnExp, slots: Sequence[Any] = ()) -> list[Condition]:
        column = table.column(field.column)
        stored = target.c[field.column]
        col = comparable(stored, column.kind, self.dialect)
        parts: list[Condition] = []
        for compare in field.comparisons:
            op, value = compare.op, compare.operand
            takes = OPERATORS[op]
            if _unresolved(value):
                raise TypeError(f"{op} on {field.column}: a session variable not resolved")
            if isinstance(value, Slot):
                parts.append(_OPERATORS[op](col, slots[value.index]))
            elif takes is Takes.VALUE:
                parts.append(_OPERATORS[op](col, self._value(column, value)))
            elif takes is Takes.LIST:
                if any(isinstance(v, SessionParameter) for v in value):
                    values: list[Any] = [self._value(column, v) for v in value]
                else:
                    values = [self._literal(column, v) for v in value]
                parts.append(col.in_(values) if op == "_in" else col.not_in(values))
            elif takes is Takes.BOOLEAN:
                parts.append(stored.is_(None) if value else stored.is_not(None))
            else:
                # Patterns match the stored text (a date's too), not the compared form.
                pattern_col = stored if self._by_instant(column.kind) else col
                parts.append(self._pattern(op, pattern_col, column, value))
        return parts

    def _value(self, column: Column, value: Any) -> Any:
        if isinstance(value, SessionParameter):
            parameter = self._parameter(value, "value")
            if self._by_instant(column.kind):
                return _instant(parameter, column.kind)
            return parameter
        # A bound literal, since SQLAlchemy refuses `col > True` on a bare bool.
        return sa.literal(self._literal(column, value))

    def _literal(self, column: Column, value: Any) -> Any:
        """A literal operand as the statement binds it: as stored, or as the instant it is."""
        converted = to_db(column, value, self.dialect)
        return instant(column.kind, converted) if self._by_instant(column.kind) else converted

    def _by_instant(self, kind: Kind) -> bool:
        return by_instant(kind, self.dialect)

    def _pattern(self, op: str, col: Any, column: Column, pattern: str | SessionParameter) -> Condition:
        # PostgreSQL has no LIKE on a uuid (String in the API): its text is matched, as for dates.
        textual = column.kind is Kind.STRING and column.db_type.upper() != "UUID"
        text = col if textual else sa.cast(col, sa.Text)
        insensitive = op in INSENSITIVE_PATTERNS
        glob = self.dialect != "postgresql" and not insensitive
        operand: Any
        if isinstance(pattern, SessionParameter):
            operand = self._parameter(pattern, "glob" if glob else "pattern")
        else:
            operand = _pattern_text(str(pattern), glob)
        if self.dialect == "postgresql":
            cond = text.ilike(operand) if insensitive else text.like(operand)
        elif insensitive:
            cond = getattr(sa.func, ILIKE_FUNCTION)(text, operand) == 1
        else:
            cond = text.op("GLOB")(operand)
        return sa.not_(cond) if op in NEGATED_PATTERNS else cond

    def _parameter(self, parameter: SessionParameter, use: str) -> BindParameter[Any]:
        """The bind parameter standing for a session variable, converted for `use` of it.

        Its key is the same wherever the variable is converted alike (an
        integer column's value, a pattern), so that every statement, of any
        role, names it so; its value comes with each request (`parameters`).
        """
        column = parameter.column
        conversion = (column.kind, column.db_type) if use == "value" else None
        with self._lock:
            key = self._keys.get((parameter.variable, use, conversion))
            if key is None:
                key = _slug(parameter.variable)
                taken = sum(1 for k in self._keys if k[0] == parameter.variable)
                key = f"session__{key}" if not taken else f"session__{key}__{taken + 1}"
                self._keys[(parameter.variable, use, conversion)] = key
                self.session_parameters[key] = self._converter(parameter, use)
        type_ = _parameter_type(column, self.dialect) if use == "value" else sa.String()
        return sa.bindparam(key, None, type_=type_)

    def _converter(self, parameter: SessionParameter, use: str) -> Convert:
        column, dialect = parameter.column, self.dialect

        def convert(session: SessionValues) -> Any:
            value = parameter.value(session)
            if value is None:
                return None
            if use == "value":
                return to_db(column, value, dialect)
            return _pattern_text(value, glob=use == "glob")

        return convert


class SessionParameters(Mapping[str, Any]):
    """One session's values of the session parameters, converted when a statement first asks.

    A statement binds the keys it holds (`key in parameters`, then
    `parameters[key]`), as SQLAlchemy's `construct_params` takes its `params`.
    """

    def __init__(self, parameters: Mapping[str, Convert], session: SessionValues) -> None:
        self._parameters = parameters
        self._session = session
        self._values: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            pass
        value = self._values[key] = self._parameters[key](self._session)
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._parameters

    def __iter__(self) -> Iterator[str]:
        return iter(self._parameters)

    def __len__(self) -> int:
        return len(self._parameters)


def _slug(variable: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", variable.lower()).strip("_")


def _parameter_type(column: Column, dialect: str) -> TypeEngine[Any]:
    """The type SQLAlchemy gives a literal of the column's converted values (graph.sql.values.to_db),
    whatever the value: it decides the statement's SQL (asyncpg's `$1::BIGINT`) and the driver's conversion."""
    kind = column.kind
    if kind is Kind.INTEGER or kind is Kind.BIGINT:
        return sa.BigInteger()  # a session value may exceed 32 bits: it then matches no integer, as before
    if kind is Kind.FLOAT:
        return sa.Float()
    if kind is Kind.BOOLEAN:
        return sa.Boolean()
    if kind is Kind.BLOB:
        return sa.LargeBinary()
    if dialect == "postgresql":
        zoned = "WITH TIME ZONE" in column.db_type.upper()
        if kind is Kind.DATETIME:
            return sa.DateTime(timezone=zoned)
        if kind is Kind.DATE:
            return sa.Date()
        if kind is Kind.TIME:
            return sa.Time(timezone=zoned)
        if kind is Kind.NUMERIC:
            return sa.Numeric()
        if column.db_type.upper() == "UUID":
            return sa.Uuid()
    return sa.String()  # SQLite keeps dates and numerics as text; JSON is compared as text


def related_rows(
    tables: Mapping[str, sa.Table], rel: Relationship, target: FromClause, visible: Visible | None
) -> tuple[FromClause, list[Any]]:
    """The rows `rel` reaches from `target`: an alias of its table and the conditions joining it.

    A related row the session may not select (`visible`) is absent, in filters
    and in orderings alike.
    """
    # An alias keeps a self-referencing table (message.parent) apart from itself.
    remote = tables[rel.remote_table].alias()
    joined: list[Any] = [
        remote.c[r] == target.c[local]
        for local, r in zip(rel.local_columns, rel.remote_columns, strict=True)
    ]
    allowed = visible(rel.remote_table, remote) if visible else None
    if allowed is not None:
        joined.append(allowed)
    return remote, joined


def comparable(col: Any, kind: Kind, dialect: str) -> Any:
    """The column as compared and ordered: PostgreSQL's `json` type has no operators
    at all (not even `=`), so JSON is compared as its text there, as SQLite does;
    SQLite's date/time text as the instant it names (graph.temporal), as
    PostgreSQL compares its date/time types."""
    if kind is Kind.JSON and dialect == "postgresql":
        return sa.cast(col, sa.Text)
    if by_instant(kind, dialect):
        return _instant(col, kind)
    return col


def by_instant(kind: Kind, dialect: str) -> bool:
    """Whether values of `kind` are compared through graph.temporal's `fg_instant` (SQLite's text)."""
    return kind in TEMPORAL and dialect != "postgresql"


def _instant(expr: Any, kind: Kind) -> Any:
    """graph.temporal.instant in SQL: the answer's shapes keyed here (what our writes store,
    ten times faster than a call), any other text by `fg_instant`."""
    keyed: list[tuple[Any, Any]] = []
    for shape in SHAPES[kind]:
        matches = expr.op("GLOB")(sa.literal_column(f"'{shape}'"))
        if kind is Kind.DATE:
            keyed.append((matches, expr))
        else:
            seconds = expr if shape != UTC else sa.func.substr(expr, sa.literal_column("1"), sa.literal_column("19"))
            keyed.append((matches, seconds.concat(sa.literal_column(f"'{WHOLE_SECONDS}'"))))
    called = getattr(sa.func, INSTANT_FUNCTION)(expr, sa.literal_column(f"'{kind.value}'"))
    return sa.case(*keyed, else_=called)


def _unresolved(operand: Any) -> bool:
    # A rule reaches SQL only through graph.rules.session (parameterize, or resolve):
    # never bind a variable's name as if it were the value.
    if isinstance(operand, tuple):
        return any(isinstance(v, SessionVariable) for v in operand)
    return isinstance(operand, SessionVariable)


def _all(parts: list[Condition]) -> Condition:
    if not parts:
        return sa.true()
    return parts[0] if len(parts) == 1 else sa.and_(*parts)
