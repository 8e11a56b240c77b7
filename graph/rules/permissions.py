"""Who may do what: row and column rules per table, action and role (SPEC section 7).

Rules come from a permissions file or, without one, everyone may do
everything. Every rule is checked once, at start-up, against the reflected
model, so a typo stops the server with one line naming the place instead of
denying (or granting) something at the first request. Filters are read into
`BoolExp`s (graph.rules.parse) whose operands may be session variables
(`X-User-Id`, `X-Role`): statement parameters in SQL, bound per request, and
resolved per session for events (graph.rules.session, graph.access).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from graph.rules._text import PermissionsError, one_line, parse_text, read_permissions
from graph.rules.bool_exp import BoolExp
from graph.rules.parse import RuleError, RuleParser, fail, hint

if TYPE_CHECKING:
    from graph.model import DatabaseModel, Table

ANONYMOUS = "anonymous"

ACTION_KEYS: dict[str, tuple[str, ...]] = {
    "select": ("filter", "columns"),
    "insert": ("check", "columns", "set"),
    "update": ("filter", "check", "columns", "set"),
    "delete": ("filter",),
}


@dataclass(frozen=True)
class SelectRule:
    filter: BoolExp | None
    """Operands may be session variables. None: every row."""
    columns: tuple[str, ...]
    """In table order; "*" already expanded."""


@dataclass(frozen=True)
class InsertRule:
    check: BoolExp | None
    columns: tuple[str, ...]
    """The columns the client may give; preset columns are never among them."""
    set: Mapping[str, Any]
    """Presets: column -> literal or SessionVariable."""


@dataclass(frozen=True)
class UpdateRule:
    filter: BoolExp | None
    """Which rows may be updated."""
    check: BoolExp | None
    """What must hold after the update."""
    columns: tuple[str, ...]
    set: Mapping[str, Any]


@dataclass(frozen=True)
class DeleteRule:
    filter: BoolExp | None


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
    custom: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))
    """Custom root fields (graph.extend) -> the roles granted them (`custom: {checkout: [user]}`)."""
    _unlimited: dict[tuple[str, str, tuple[str, ...]], Any] = field(default_factory=dict, repr=False)
    """The rules of a session no rule limits, per action and table (its columns included, which
    a reflected schema change may alter): asked on every request."""

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
        for roles in self.custom.values():
            names.update(roles)
        return frozenset(names)

    def custom_granted(self, role: str | None, name: str) -> bool:
        """Whether `role` (None: the admin secret) has the custom root field `name`; all do without a file."""
        return self.is_open or role is None or role in self.custom.get(name, ())

    # `role` None is the admin secret's session (graph.auth.Session.rules_role),
    # which no rule limits; a role *named* "admin" is looked up like any other.
    # Tables without a primary key are read-only for everyone, admin included:
    # there is no way to name the row to write.

    def select(self, role: str | None, table: Table) -> SelectRule | None:
        if role is None or self.is_open:
            return self._all("select", table, lambda: SelectRule(filter=None, columns=table.column_names))
        rules = self.tables.get(table.name)
        return rules.select.get(role) if rules else None

    def _all(self, action: str, table: Table, make: Callable[[], Any]) -> Any:
        key = (action, table.name, table.column_names)
        rule = self._unlimited.get(key)
        if rule is None:
            rule = self._unlimited[key] = make()
        return rule

    def insert(self, role: str | None, table: Table) -> InsertRule | None:
        if not table.is_writable:
            return None
        if role is None or self.is_open:
            return self._all("insert", table, lambda: InsertRule(check=None, columns=table.column_names, set={}))
        rules = self.tables.get(table.name)
        return rules.insert.get(role) if rules else None

    def update(self, role: str | None, table: Table) -> UpdateRule | None:
        if not table.is_writable:
            return None
        if role is None or self.is_open:
            return self._all(
                "update", table, lambda: UpdateRule(filter=None, check=None, columns=table.column_names, set={})
            )
        rules = self.tables.get(table.name)
        return rules.update.get(role) if rules else None

    def delete(self, role: str | None, table: Table) -> DeleteRule | None:
        if not table.is_writable:
            return None
        if role is None or self.is_open:
            return self._all("delete", table, lambda: DeleteRule(filter=None))
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
    checked, custom = _check_rules(data, model, source)
    for name, actions in checked.items():
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
    return Permissions(source=source, tables=MappingProxyType(tables), custom=MappingProxyType(custom))


# -- checking the file ----------------------------------------------------------

Rules = dict[str, dict[str, dict[str, dict[str, Any]]]]
"""table -> action -> role -> {"filter", "check", "columns", "set"}."""


def _check_rules(data: Any, model: DatabaseModel, source: str) -> tuple[Rules, dict[str, frozenset[str]]]:
    """The file's rules and custom grants, validated and normalised, or PermissionsError naming the place."""
    try:
        checker = _Checker(model)
        return checker.document(data), checker.custom(data.get("custom", {}))
    except RuleError as error:
        raise PermissionsError(one_line(f"{source}: {error}")) from None
    except RecursionError:
        raise PermissionsError(f"{source}: the rules are nested too deeply") from None


class _Checker:
    def __init__(self, model: DatabaseModel) -> None:
        self.model = model
        self.filters = RuleParser(model)

    def document(self, data: Any) -> Rules:
        if not isinstance(data, Mapping) or ("tables" not in data and "custom" not in data):
            fail("", "expected a mapping with a 'tables' key")
        for key in data:
            if key not in ("tables", "custom"):
                fail(str(key), f"unknown key {key!r}; the file holds only 'tables' and 'custom'")
        tables = data.get("tables", {})
        if not isinstance(tables, Mapping):
            fail("tables", "expected a mapping of table names to their rules")
        rules: Rules = {}
        for name, actions in tables.items():
            where = f"tables.{name}"
            table = self.model.tables.get(name) if isinstance(name, str) else None
            if table is None:
                fail(where, f"unknown table {name!r}{hint(name, self.model.tables)}")
            rules[name] = self.table(table, actions, where)
        return rules

    def custom(self, data: Any) -> dict[str, frozenset[str]]:
        """`custom: {field: [role, ...]}`: which roles have each custom root field (graph.extend)."""
        if not isinstance(data, Mapping):
            fail("custom", "expected a mapping of custom root fields to lists of roles")
        out: dict[str, frozenset[str]] = {}
        for name, roles in data.items():
            where = f"custom.{name}"
            if not isinstance(name, str) or not name:
                fail("custom", f"custom field names are non-empty strings, got {name!r}")
            if isinstance(roles, str):
                roles = [roles]
            if not isinstance(roles, list) or not all(isinstance(r, str) and r.strip() for r in roles):
                fail(where, "expected a list of role names")
            out[name] = frozenset(roles)
        return out

    def table(self, table: Table, actions: Any, where: str) -> dict[str, dict[str, Any]]:
        if not isinstance(actions, Mapping):
            fail(where, "expected a mapping of actions (select, insert, update, delete)")
        out: dict[str, dict[str, Any]] = {}
        for action, roles in actions.items():
            here = f"{where}.{action}"
            if action not in ACTION_KEYS:
                fail(here, f"unknown action {action!r} (expected select, insert, update or delete){hint(action, ACTION_KEYS)}")
            if action != "select" and not table.is_writable:
                fail(here, f"table {table.name!r} has no primary key, so it is read-only: only select rules apply")
            if not isinstance(roles, Mapping):
                fail(here, "expected a mapping of role names to rules")
            out[action] = {}
            for role, body in roles.items():
                if not isinstance(role, str) or not role.strip():
                    fail(here, f"role names are non-empty strings, got {role!r}")
                out[action][role] = self.rule(table, action, body, f"{here}.{role}")
        return out

    def rule(self, table: Table, action: str, body: Any, where: str) -> dict[str, Any]:
        allowed = ACTION_KEYS[action]
        if not isinstance(body, Mapping):
            fail(where, f"expected a mapping with {', '.join(allowed)}")
        for key in body:
            if key not in allowed:
                fail(f"{where}.{key}", f"unknown key {key!r}: {action} rules take {', '.join(allowed)}")
        rule: dict[str, Any] = {}
        for key in ("filter", "check"):
            if key in allowed:
                exp = body.get(key)
                # No condition and an empty one both grant every row: None says so.
                checked = None if exp is None else self.filters.parse(table, exp, f"{where}.{key}")
                rule[key] = checked or None
        if "set" in allowed:
            rule["set"] = self.presets(table, body.get("set"), f"{where}.set")
        if "columns" in allowed:
            if "columns" not in body:
                fail(where, "missing 'columns' (a list of column names, or \"*\" for all)")
            columns = self.columns(table, body["columns"], f"{where}.columns")
            # A preset column takes its value from the rule, never from the client.
            rule["columns"] = tuple(c for c in columns if c not in rule.get("set", ()))
        return rule

    def columns(self, table: Table, value: Any, where: str) -> tuple[str, ...]:
        if value == "*":
            return table.column_names
        if not isinstance(value, list):
            fail(where, 'expected "*" or a list of column names')
        for name in value:
            if not isinstance(name, str) or name not in table.column_names:
                fail(where, f"unknown column {name!r}{hint(name, table.column_names)}")
        return tuple(c for c in table.column_names if c in value)

    def presets(self, table: Table, value: Any, where: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            fail(where, "expected a mapping of column names to values")
        out: dict[str, Any] = {}
        for name, preset in value.items():
            if not isinstance(name, str) or name not in table.column_names:
                fail(where, f"unknown column {name!r}{hint(name, table.column_names)}")
            column = table.column(name)
            if preset is None:
                if not column.nullable:
                    fail(f"{where}.{name}", f"column {name!r} is not nullable")
                out[name] = None
            else:
                out[name] = self.filters.operand(column, preset, f"{where}.{name}")
        return out


def parse_permissions_after_change(data: Any, model: DatabaseModel, source: str) -> tuple[Permissions, tuple[str, ...]]:
    """The rules that still hold on a model the database changed while serving, and why each other failed.

    `data` passed `parse_permissions` at start-up. A rule (one table, action
    and role) that names a table, column or relationship the database no
    longer has is left out, which denies what it granted: a role without a
    rule is refused. A schema change never widens access; start-up, by
    contrast, refuses such a file outright.
    """
    try:
        return parse_permissions(data, model, source), ()
    except PermissionsError:
        pass
    broken: list[str] = []
    kept: dict[str, dict[str, dict[str, Any]]] = {}
    for name, actions in data.get("tables", {}).items():
        for action, roles in actions.items():
            for role, body in roles.items():
                try:
                    parse_permissions({"tables": {name: {action: {role: body}}}}, model, source)
                except PermissionsError as error:
                    broken.append(str(error))
                    continue
                kept.setdefault(name, {}).setdefault(action, {})[role] = body
    return parse_permissions({**data, "tables": kept}, model, source), tuple(broken)
