"""Who may do what: row and column rules per table, action and role (SPEC section 7).

Rules come from a permissions file (checked in `graph._permissions_load`) or,
without one, everyone may do everything. Filters are `t_bool_exp`s whose
operands may name session variables (`X-User-Id`, `X-Role`); `resolve_session`
fills those in per session, for SQL (`graph.sql.where`) and for events
(`graph.matching`) alike.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import orjson

from graph._permissions_load import (
    ANONYMOUS,
    SESSION_ROLE,
    SESSION_USER_ID,
    PermissionsError,
    check_rules,
    parse_text,
    read_permissions,
    session_variable,
)
from graph.errors import ValidationFailed
from graph.model import Column, Kind
from graph.sql.values import to_db
from graph.sql.where import LIST_OPERATORS, PATTERN_OPERATORS

if TYPE_CHECKING:
    from graph.model import DatabaseModel, Table

__all__ = [
    "ANONYMOUS",
    "SESSION_ROLE",
    "SESSION_USER_ID",
    "DeleteRule",
    "InsertRule",
    "Permissions",
    "PermissionsError",
    "SelectRule",
    "TablePermissions",
    "UpdateRule",
    "canonical",
    "has_relationships",
    "load_permissions",
    "parse_permissions",
    "resolve_presets",
    "resolve_session",
    "session_variable",
]


@dataclass(frozen=True)
class SelectRule:
    filter: Mapping[str, Any] | None
    """A bool_exp; operands may be session-variable names. None: every row."""
    columns: tuple[str, ...]
    """In table order; "*" already expanded."""


@dataclass(frozen=True)
class InsertRule:
    check: Mapping[str, Any] | None
    columns: tuple[str, ...]
    """The columns the client may give; preset columns are never among them."""
    set: Mapping[str, Any]
    """Presets: column -> literal or session-variable name."""


@dataclass(frozen=True)
class UpdateRule:
    filter: Mapping[str, Any] | None
    """Which rows may be updated."""
    check: Mapping[str, Any] | None
    """What must hold after the update."""
    columns: tuple[str, ...]
    set: Mapping[str, Any]


@dataclass(frozen=True)
class DeleteRule:
    filter: Mapping[str, Any] | None


def _nothing() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class TablePermissions:
    """One table's rules, role -> rule per action; a role not listed is denied."""

    select: Mapping[str, SelectRule] = field(default_factory=_nothing)
    insert: Mapping[str, InsertRule] = field(default_factory=_nothing)
    update: Mapping[str, UpdateRule] = field(default_factory=_nothing)
    delete: Mapping[str, DeleteRule] = field(default_factory=_nothing)


@dataclass(frozen=True, eq=False)
class Permissions:
    """Who may do what. `Permissions.open()` (no file): every role may do everything.

    Compared and hashed by identity, so it can key a cache (e.g. a schema per role).
    """

    source: str | None
    """The file the rules came from; None when open."""
    tables: Mapping[str, TablePermissions]

    @classmethod
    def open(cls) -> Permissions:
        return cls(source=None, tables=MappingProxyType({}))

    @property
    def is_open(self) -> bool:
        return self.source is None

    def roles(self) -> frozenset[str]:
        """Every role the file names, plus anonymous."""
        names = {ANONYMOUS}
        for rules in self.tables.values():
            for action in (rules.select, rules.insert, rules.update, rules.delete):
                names.update(action)
        return frozenset(names)

    # `role` None is the admin secret's session (graph.auth.Session.rules_role),
    # which no rule limits; a role *named* "admin" is looked up like any other.
    # Tables without a primary key are read-only for everyone, admin included:
    # there is no way to name the row to write.

    def select(self, role: str | None, table: Table) -> SelectRule | None:
        if role is None or self.is_open:
            return SelectRule(filter=None, columns=table.column_names)
        rules = self.tables.get(table.name)
        return rules.select.get(role) if rules else None

    def insert(self, role: str | None, table: Table) -> InsertRule | None:
        if not table.is_writable:
            return None
        if role is None or self.is_open:
            return InsertRule(check=None, columns=table.column_names, set={})
        rules = self.tables.get(table.name)
        return rules.insert.get(role) if rules else None

    def update(self, role: str | None, table: Table) -> UpdateRule | None:
        if not table.is_writable:
            return None
        if role is None or self.is_open:
            return UpdateRule(filter=None, check=None, columns=table.column_names, set={})
        rules = self.tables.get(table.name)
        return rules.update.get(role) if rules else None

    def delete(self, role: str | None, table: Table) -> DeleteRule | None:
        if not table.is_writable:
            return None
        if role is None or self.is_open:
            return DeleteRule(filter=None)
        rules = self.tables.get(table.name)
        return rules.delete.get(role) if rules else None


def load_permissions(path: str, model: DatabaseModel) -> Permissions:
    """Read a YAML (or JSON) permissions file; PermissionsError names any problem in one line."""
    return parse_permissions(read_permissions(path), model, path)


def parse_permissions(data: Any, model: DatabaseModel, source: str) -> Permissions:
    """Rules from already-parsed data (a str is parsed as YAML/JSON text), named `source` in errors."""
    if isinstance(data, str):
        data = parse_text(data, source)
    tables: dict[str, TablePermissions] = {}
    for name, actions in check_rules(data, model, source).items():
        tables[name] = TablePermissions(
            select=MappingProxyType(
                {role: SelectRule(r["filter"], r["columns"]) for role, r in actions.get("select", {}).items()}
            ),
            insert=MappingProxyType(
                {role: InsertRule(r["check"], r["columns"], r["set"]) for role, r in actions.get("insert", {}).items()}
            ),
            update=MappingProxyType(
                {
                    role: UpdateRule(r["filter"], r["check"], r["columns"], r["set"])
                    for role, r in actions.get("update", {}).items()
                }
            ),
            delete=MappingProxyType(
                {role: DeleteRule(r["filter"]) for role, r in actions.get("delete", {}).items()}
            ),
        )
    return Permissions(source=source, tables=MappingProxyType(tables))


# -- session variables ---------------------------------------------------------


def never() -> dict[str, Any]:
    """A condition no row meets, in SQL (`graph.sql.where`) and in memory (`graph.matching`)."""
    return {"_or": []}


_INTEGER = re.compile(r"[+-]?\d+")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


class _NoValue(Exception):
    """A session value that is missing or not a value of the compared column's type."""


def _convert(column: Column, raw: str | None) -> Any:
    if raw is None:
        raise _NoValue
    text = raw if isinstance(raw, str) else str(raw)
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


def resolve_session(
    exp: Any, table: Table, model: DatabaseModel, session: Mapping[str, str | None]
) -> Any:
    """A copy of the bool_exp `exp` with session variables replaced by the session's values.

    Values are converted to the compared column's type ("7" equals integer 7).
    A value the session lacks, or one that does not convert, makes its
    comparison UNKNOWN, as an SQL NULL would: it admits no row, and neither
    does its negation under `_not`, so a missing value never widens a grant.
    Only for rules: a client's own `where` holds literals, never variables.
    """
    if not isinstance(exp, Mapping):
        return exp
    return _resolve(exp, table, model, session, positive=True)


def _resolve(
    exp: Mapping[str, Any],
    table: Table,
    model: DatabaseModel,
    session: Mapping[str, str | None],
    positive: bool,
) -> Any:
    # `positive` is False under an odd number of _not. An UNKNOWN comparison
    # admits exactly what a false one would where it is not negated, and what a
    # true one would where it is: so it is replaced by that constant, which
    # keeps SQL and the in-memory matcher in step without needing a NULL.
    relationships = {r.name: r for r in table.relationships}
    out: dict[str, Any] = {}
    for key, value in exp.items():
        if key in ("_and", "_or") and isinstance(value, list):
            out[key] = [_resolve(v, table, model, session, positive) for v in value]
        elif key == "_not" and isinstance(value, Mapping):
            out[key] = _resolve(value, table, model, session, not positive)
        elif key in relationships and isinstance(value, Mapping):
            remote = model.table(relationships[key].remote_table)
            out[key] = _resolve(value, remote, model, session, positive)
        elif key in table.column_names and isinstance(value, Mapping):
            ops = _resolve_ops(table.column(key), value, session, positive)
            if ops is None:
                return never()  # one false comparison makes this whole conjunction false
            out[key] = ops
        else:
            out[key] = value
    return out


def _resolve_ops(
    column: Column, ops: Mapping[str, Any], session: Mapping[str, str | None], positive: bool
) -> dict[str, Any] | None:
    """The operators with session values filled in; None when they can hold for no row."""
    out: dict[str, Any] = {}
    for op, operand in ops.items():
        if op in LIST_OPERATORS and isinstance(operand, list):
            values, unknown = [], False
            for item in operand:
                try:
                    values.append(_operand(column, item, session, pattern=False))
                except _NoValue:
                    unknown = True
            # x IN (a, NULL) is true for a and UNKNOWN otherwise; x NOT IN (a, NULL)
            # is never true: under each polarity that leaves one of two outcomes.
            if not unknown or (op == "_in" and positive) or (op == "_nin" and not positive):
                out[op] = values
            elif positive:
                return None
            # else: negated, the UNKNOWN comparison counts as true and is dropped
        else:
            try:
                out[op] = _operand(column, operand, session, pattern=op in PATTERN_OPERATORS)
            except _NoValue:
                if positive:
                    return None
    return out


def _operand(column: Column, value: Any, session: Mapping[str, str | None], pattern: bool) -> Any:
    name = session_variable(value)
    if name is None:
        return value
    raw = session.get(name)
    if pattern:
        if raw is None:
            raise _NoValue
        return str(raw)
    return _convert(column, raw)


def resolve_presets(
    values: Mapping[str, Any], table: Table, session: Mapping[str, str | None]
) -> dict[str, Any]:
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


def has_relationships(exp: Any, table: Table) -> bool:
    """Whether the bool_exp walks any relationship (the in-memory matcher cannot)."""
    if not isinstance(exp, Mapping):
        return False
    names = {r.name for r in table.relationships}
    for key, value in exp.items():
        if key in names:
            return True
        if key in ("_and", "_or") and isinstance(value, list):
            if any(has_relationships(v, table) for v in value):
                return True
        elif key == "_not" and has_relationships(value, table):
            return True
    return False


def canonical(exp: Any) -> str:
    """One text per distinct bool_exp (sorted keys): a cache key, e.g. per event filter."""
    return orjson.dumps(exp, option=orjson.OPT_SORT_KEYS).decode()
