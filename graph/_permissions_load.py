"""Reading and checking a permissions file (SPEC section 7).

Every rule is checked once, at start-up, against the reflected model, so a
typo stops the server with one line naming the place instead of denying (or
granting) something at the first request. The result is plain validated data;
`graph.permissions` turns it into rules.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any, NoReturn

import yaml

from graph.errors import StartupError, ValidationFailed
from graph.model import Column, DatabaseModel, Kind, Table
from graph.sql.values import to_db
from graph.sql.where import ALL_OPERATORS, LIST_OPERATORS, PATTERN_OPERATORS

SESSION_USER_ID = "X-User-Id"
SESSION_ROLE = "X-Role"
ANONYMOUS = "anonymous"

# Hasura's spellings are accepted too, so that rules can be copied over.
SESSION_VARIABLES = {
    "x-user-id": SESSION_USER_ID,
    "x-hasura-user-id": SESSION_USER_ID,
    "x-role": SESSION_ROLE,
    "x-hasura-role": SESSION_ROLE,
}

ACTION_KEYS: dict[str, tuple[str, ...]] = {
    "select": ("filter", "columns"),
    "insert": ("check", "columns", "set"),
    "update": ("filter", "check", "columns", "set"),
    "delete": ("filter",),
}

# Hasura drops a comparison whose operand is null: in a rule that would quietly
# grant more than was written, so the file may not say it.
NULL_OPERAND = "null is not allowed here (it would drop the condition and grant every row); use _is_null"

Rules = dict[str, dict[str, dict[str, dict[str, Any]]]]
"""table -> action -> role -> {"filter", "check", "columns", "set"}."""


class PermissionsError(StartupError):
    """A permissions file that cannot be read or holds an invalid rule."""


def session_variable(value: Any) -> str | None:
    """The canonical name when `value` names a session variable, else None."""
    return SESSION_VARIABLES.get(value.lower()) if isinstance(value, str) else None


def read_permissions(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except UnicodeDecodeError as error:
        raise PermissionsError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise PermissionsError(f"{path}: cannot read the permissions file: {error.strerror or error}") from None
    return parse_text(text, path)


def parse_text(text: str, source: str) -> Any:
    is_json = source.lower().endswith(".json")
    if is_json or text.lstrip().startswith("{"):
        try:
            return json.loads(text, object_pairs_hook=_unique_keys)
        except (ValueError, RecursionError) as error:
            # ValueError: JSONDecodeError, a duplicate key, or an integer of over 4300 digits.
            if is_json:
                where = f"line {error.lineno}, column {error.colno}: {error.msg}" if isinstance(error, json.JSONDecodeError) else _unreadable(error)
                raise PermissionsError(_one_line(f"{source}: {where}")) from None
            # Not JSON after all: a YAML flow mapping also starts with "{".
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        reason = error.problem or error.context or "invalid YAML"
        raise PermissionsError(_one_line(f"{source}: {where}{reason}")) from None
    except yaml.YAMLError as error:
        raise PermissionsError(_one_line(f"{source}: invalid YAML: {error}")) from None
    except (ValueError, TypeError, LookupError, RecursionError) as error:
        # PyYAML's constructors let these through: "!!int" alone (IndexError), "!!bool x"
        # (KeyError), "!!map [1]" (TypeError), an integer of over 4300 digits, deep nesting.
        raise PermissionsError(_one_line(f"{source}: invalid YAML: {_unreadable(error)}")) from None


def _unreadable(error: Exception) -> str:
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return f"a value cannot be read ({type(error).__name__}: {error})"


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(f"duplicate key {key!r}")
        out[key] = value
    return out


class _Loader(yaml.SafeLoader):
    """`safe_load`, refusing duplicate keys (the last would silently win) and
    keeping timestamps as the text written, as GraphQL would send them."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool):
            continue  # construct_mapping reports keys that cannot be keys
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(
    "tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node)
)


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _Invalid(Exception):
    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}" if where else reason)


def _fail(where: str, reason: str) -> NoReturn:
    raise _Invalid(where, reason)


def _hint(name: Any, choices: Any) -> str:
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_rules(data: Any, model: DatabaseModel, source: str) -> Rules:
    """The file's rules, validated and normalised, or PermissionsError naming the place."""
    try:
        return _Checker(model).document(data)
    except _Invalid as error:
        raise PermissionsError(_one_line(f"{source}: {error}")) from None
    except RecursionError:
        raise PermissionsError(f"{source}: the rules are nested too deeply") from None


class _Checker:
    def __init__(self, model: DatabaseModel) -> None:
        self.model = model

    def document(self, data: Any) -> Rules:
        if not isinstance(data, Mapping) or "tables" not in data:
            _fail("", "expected a mapping with a 'tables' key")
        for key in data:
            if key != "tables":
                _fail(str(key), f"unknown key {key!r}; the file holds only 'tables'")
        tables = data["tables"]
        if not isinstance(tables, Mapping):
            _fail("tables", "expected a mapping of table names to their rules")
        rules: Rules = {}
        for name, actions in tables.items():
            where = f"tables.{name}"
            table = self.model.tables.get(name) if isinstance(name, str) else None
            if table is None:
                _fail(where, f"unknown table {name!r}{_hint(name, self.model.tables)}")
            rules[name] = self.table(table, actions, where)
        return rules

    def table(self, table: Table, actions: Any, where: str) -> dict[str, dict[str, Any]]:
        if not isinstance(actions, Mapping):
            _fail(where, "expected a mapping of actions (select, insert, update, delete)")
        out: dict[str, dict[str, Any]] = {}
        for action, roles in actions.items():
            here = f"{where}.{action}"
            if action not in ACTION_KEYS:
                _fail(here, f"unknown action {action!r} (expected select, insert, update or delete){_hint(action, ACTION_KEYS)}")
            if action != "select" and not table.is_writable:
                _fail(here, f"table {table.name!r} has no primary key, so it is read-only: only select rules apply")
            if not isinstance(roles, Mapping):
                _fail(here, "expected a mapping of role names to rules")
            out[action] = {}
            for role, body in roles.items():
                if not isinstance(role, str) or not role.strip():
                    _fail(here, f"role names are non-empty strings, got {role!r}")
                out[action][role] = self.rule(table, action, body, f"{here}.{role}")
        return out

    def rule(self, table: Table, action: str, body: Any, where: str) -> dict[str, Any]:
        allowed = ACTION_KEYS[action]
        if not isinstance(body, Mapping):
            _fail(where, f"expected a mapping with {', '.join(allowed)}")
        for key in body:
            if key not in allowed:
                _fail(f"{where}.{key}", f"unknown key {key!r}: {action} rules take {', '.join(allowed)}")
        rule: dict[str, Any] = {}
        for key in ("filter", "check"):
            if key in allowed:
                exp = body.get(key)
                # No condition and an empty one both grant every row: None says so.
                checked = None if exp is None else self.bool_exp(table, exp, f"{where}.{key}")
                rule[key] = checked or None
        if "set" in allowed:
            rule["set"] = self.presets(table, body.get("set"), f"{where}.set")
        if "columns" in allowed:
            if "columns" not in body:
                _fail(where, "missing 'columns' (a list of column names, or \"*\" for all)")
            columns = self.columns(table, body["columns"], f"{where}.columns")
            # A preset column takes its value from the rule, never from the client.
            rule["columns"] = tuple(c for c in columns if c not in rule.get("set", ()))
        return rule

    def columns(self, table: Table, value: Any, where: str) -> tuple[str, ...]:
        if value == "*":
            return table.column_names
        if not isinstance(value, list):
            _fail(where, 'expected "*" or a list of column names')
        for name in value:
            if not isinstance(name, str) or name not in table.column_names:
                _fail(where, f"unknown column {name!r}{_hint(name, table.column_names)}")
        return tuple(c for c in table.column_names if c in value)

    def presets(self, table: Table, value: Any, where: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            _fail(where, "expected a mapping of column names to values")
        out: dict[str, Any] = {}
        for name, preset in value.items():
            if not isinstance(name, str) or name not in table.column_names:
                _fail(where, f"unknown column {name!r}{_hint(name, table.column_names)}")
            column = table.column(name)
            if preset is None:
                if not column.nullable:
                    _fail(f"{where}.{name}", f"column {name!r} is not nullable")
                out[name] = None
            else:
                out[name] = self.operand(column, preset, f"{where}.{name}")
        return out

    def bool_exp(self, table: Table, exp: Any, where: str) -> dict[str, Any]:
        if not isinstance(exp, Mapping):
            _fail(where, f"expected a mapping (a {table.name}_bool_exp)")
        relationships = {r.name: r for r in table.relationships}
        out: dict[str, Any] = {}
        for key, value in exp.items():
            here = f"{where}.{key}"
            if value is None:
                _fail(here, NULL_OPERAND)
            if key in ("_and", "_or"):
                if not isinstance(value, list):
                    _fail(here, "expected a list of conditions")
                out[key] = [self.bool_exp(table, v, f"{here}[{i}]") for i, v in enumerate(value)]
            elif key == "_not":
                out[key] = self.bool_exp(table, value, here)
            elif key in relationships:
                remote = self.model.tables.get(relationships[key].remote_table)
                if remote is None:
                    _fail(here, f"relationship {key!r} leads to a table that is not served")
                out[key] = self.bool_exp(remote, value, here)
            elif isinstance(key, str) and key in table.column_names:
                out[key] = self.comparison(table.column(key), value, here)
            else:
                names = (*table.column_names, *relationships)
                _fail(where, f"unknown column or relationship {key!r} of table {table.name!r}{_hint(key, names)}")
        return out

    def comparison(self, column: Column, ops: Any, where: str) -> dict[str, Any]:
        if not isinstance(ops, Mapping):
            _fail(where, "expected a mapping of comparison operators, e.g. {_eq: ...}")
        out: dict[str, Any] = {}
        for op, operand in ops.items():
            here = f"{where}.{op}"
            if op not in ALL_OPERATORS:
                _fail(where, f"unknown operator {op!r}{_hint(op, ALL_OPERATORS)}")
            if operand is None:
                _fail(here, NULL_OPERAND)
            if op == "_is_null":
                if not isinstance(operand, bool):
                    _fail(here, f"expected true or false, got {operand!r}")
                out[op] = operand
            elif op in LIST_OPERATORS:
                if not isinstance(operand, list):
                    _fail(here, "expected a list")
                out[op] = [self.operand(column, v, f"{here}[{i}]") for i, v in enumerate(operand)]
            elif op in PATTERN_OPERATORS:
                if not isinstance(operand, str):
                    _fail(here, f"expected a pattern string, got {operand!r}")
                out[op] = self.operand(column, operand, here, pattern=True)
            else:
                out[op] = self.operand(column, operand, here)
        return out

    def operand(self, column: Column, value: Any, where: str, pattern: bool = False) -> Any:
        if value is None:
            _fail(where, NULL_OPERAND)
        variable = session_variable(value)
        if variable is not None:
            return variable
        if isinstance(value, str) and value.lower().startswith("x-hasura-"):
            _fail(where, f"unknown session variable {value!r} (known: {SESSION_USER_ID}, {SESSION_ROLE})")
        if not pattern:
            _check_literal(column, value, where)
        return value


_LITERALS: dict[Kind, tuple[str, type | tuple[type, ...]]] = {
    Kind.INTEGER: ("an integer", int),
    Kind.BIGINT: ("an integer", int),
    Kind.FLOAT: ("a number", (int, float)),
    Kind.BOOLEAN: ("true or false", bool),
    Kind.STRING: ("a string", str),
}


def _check_literal(column: Column, value: Any, where: str) -> None:
    kind = column.kind
    expected = _LITERALS.get(kind)
    wrong_bool = isinstance(value, bool) and kind is not Kind.BOOLEAN
    if expected and (wrong_bool or not isinstance(value, expected[1])):
        _fail(where, f"expected {expected[0]} for column {column.name!r}, got {value!r}")
    if kind is not Kind.JSON and isinstance(value, list | dict):
        _fail(where, f"expected a single value for column {column.name!r}, got {value!r}")
    try:
        # PostgreSQL's conversions are the strict ones (dates, numerics, UUIDs).
        to_db(column, value, "postgresql")
    except ValidationFailed as error:
        _fail(where, error.message)
