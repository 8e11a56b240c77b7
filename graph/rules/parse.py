"""The plain form of a `t_bool_exp` read into `graph.rules.bool_exp` nodes, checked on the way.

One walk (`_Parser.object`) reads every source. The sources differ only in
what they refuse and in how their errors read, which clients and operators
already rely on:
- `parse_where`: a query's or mutation's `where` as GraphQL coerced it, so
  only names and operators are checked here (values by the SQL compiler's
  conversions). As in Hasura, a null operand leaves its expression out.
- `parse_stream_where`: a subscription's `where: JSON`, checked for what
  GraphQL would have enforced, naming the path of the first mistake.
- `RuleParser`: a permissions file's filters (SPEC section 7). A null is
  refused (it would drop the condition and widen the grant), literals are
  checked against their column, and strings naming session variables are
  variables.
- `parse_trusted`: a mapping that was checked before, read without checks.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from graph.errors import ValidationFailed
from graph.model import Kind
from graph.nesting import check_filter_depth
from graph.rules.bool_exp import (
    ALWAYS,
    NOT_TEXT,
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
from graph.rules.session import SESSION_ROLE, SESSION_USER_ID, session_variable
from graph.sql.values import to_db

if TYPE_CHECKING:
    from graph.model import Column, DatabaseModel, Relationship, Table


class _Parser:
    """The walk; subclasses decide what each step accepts (`None` table: no table known)."""

    def __init__(self, model: DatabaseModel | None) -> None:
        self.model = model

    def object(self, table: Table | None, exp: Any, where: str) -> BoolExp:
        items = self.mapping(table, exp, where)
        if items is None:
            return ALWAYS
        relationships = {r.name: r for r in table.relationships} if table else {}
        fields: list[Field] = []
        for key, value in items.items():
            here = self.path(where, key)
            if value is None:
                self.null(here)
                continue
            if key == "_and" or key == "_or":
                exps = tuple(
                    self.object(table, item, self.item(here, i))
                    for i, item in enumerate(self.conditions(value, here))
                )
                fields.append(And(exps) if key == "_and" else Or(exps))
            elif key == "_not":
                fields.append(Not(self.object(table, value, here)))
            elif key in relationships:
                remote = self.remote(relationships[key], here)
                fields.append(Related(key, self.object(remote, value, here)))
            elif table is None or (isinstance(key, str) and key in table.column_names):
                fields.append(self.column(table, key, value, here))
            else:
                fields.append(self.unknown(table, key, value, where))
        return BoolExp(tuple(fields))

    def column(self, table: Table | None, name: str, ops: Any, where: str) -> ColumnExp:
        column = table.column(name) if table is not None and name in table.column_names else None
        comparisons = []
        for op, operand in self.operators(name, ops, where).items():
            compare = self.compare(column, name, op, operand, where)
            if compare is not None:
                comparisons.append(compare)
        return ColumnExp(name, tuple(comparisons))

    # -- what each source decides -------------------------------------------------

    def mapping(self, table: Table | None, exp: Any, where: str) -> Mapping[Any, Any] | None:
        """`exp` as an object of fields; None for one that holds always."""
        raise NotImplementedError

    def path(self, where: str, key: Any) -> str:
        return f"{where}.{key}"

    def item(self, where: str, index: int) -> str:
        return where

    def null(self, where: str) -> None:
        """A field whose value is null: left out (Hasura), unless refused."""

    def conditions(self, value: Any, where: str) -> list[Any]:
        """The items of `_and` / `_or`."""
        raise NotImplementedError

    def remote(self, rel: Relationship, where: str) -> Table | None:
        """The table a relationship in the filter leads to."""
        raise NotImplementedError

    def unknown(self, table: Table, key: Any, value: Any, where: str) -> Field:
        raise NotImplementedError

    def operators(self, column: str, ops: Any, where: str) -> Mapping[Any, Any]:
        raise NotImplementedError

    def compare(
        self, column: Column | None, name: str, op: Any, operand: Any, where: str
    ) -> Compare | None:
        """One comparison; None to leave it out."""
        raise NotImplementedError


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


# -- a query's or mutation's `where` ------------------------------------------------


class _WhereParser(_Parser):
    # GraphQL's own errors name the place; these messages never did.
    def path(self, where: str, key: Any) -> str:
        return where

    def mapping(self, table: Table | None, exp: Any, where: str) -> Mapping[Any, Any] | None:
        if not exp:
            return None
        if not isinstance(exp, Mapping):
            name = table.name if table is not None else ""
            raise ValidationFailed(f"expected an object of {name}_bool_exp, got {exp!r}")
        return exp

    def conditions(self, value: Any, where: str) -> list[Any]:
        return _as_list(value)

    def remote(self, rel: Relationship, where: str) -> Table | None:
        assert self.model is not None
        return self.model.table(rel.remote_table)

    def unknown(self, table: Table, key: Any, value: Any, where: str) -> Field:
        raise ValidationFailed(f"field {key!r} not found in type: '{table.name}_bool_exp'")

    def operators(self, column: str, ops: Any, where: str) -> Mapping[Any, Any]:
        if not isinstance(ops, Mapping):
            raise ValidationFailed(f"expected an object of comparison operators for {column!r}")
        return ops

    def compare(
        self, column: Column | None, name: str, op: Any, operand: Any, where: str
    ) -> Compare | None:
        if operand is None:
            return None
        takes = OPERATORS.get(op)
        if takes is None:
            raise ValidationFailed(f"field {op!r} not found in type: comparison expression of {name!r}")
        return Compare(op, tuple(_as_list(operand)) if takes is Takes.LIST else operand)


def parse_where(table: Table, exp: Any, model: DatabaseModel) -> BoolExp:
    """A query's or mutation's `where` on `table`; ValidationFailed for a name it does not have."""
    check_filter_depth(exp)  # before anything recurses into it
    return _WhereParser(model).object(table, exp, "where")


# -- a subscription's JSON `where` --------------------------------------------------


class _StreamParser(_Parser):
    def __init__(self, remote: Callable[[Relationship], Table | None] | None) -> None:
        super().__init__(None)
        self._remote = remote

    def mapping(self, table: Table | None, exp: Any, where: str) -> Mapping[Any, Any] | None:
        if exp is None:
            return None
        if not isinstance(exp, Mapping):
            name = table.name if table is not None else ""
            raise ValidationFailed(f"{where}: expected an object of {name}_bool_exp")
        return exp

    def conditions(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise ValidationFailed(f"{where}: expected a list")
        return value

    def remote(self, rel: Relationship, where: str) -> Table | None:
        if self._remote is None:
            raise ValidationFailed(
                f"{where}: filters through relationships are not supported on change streams"
            )
        remote = self._remote(rel)
        if remote is None:
            # The same words as for a name that does not exist (`unknown`): the role's schema has no such field.
            parent = where.removesuffix(f".{rel.name}")
            raise ValidationFailed(f"{parent}: field {rel.name!r} not found in type: '{rel.table}_bool_exp'")
        return remote

    def unknown(self, table: Table, key: Any, value: Any, where: str) -> Field:
        raise ValidationFailed(f"{where}: field {key!r} not found in type: '{table.name}_bool_exp'")

    def operators(self, column: str, ops: Any, where: str) -> Mapping[Any, Any]:
        if not isinstance(ops, Mapping):
            raise ValidationFailed(f"{where}: expected an object of comparison operators")
        return ops

    def compare(
        self, column: Column | None, name: str, op: Any, operand: Any, where: str
    ) -> Compare | None:
        takes = OPERATORS.get(op)
        if takes is None:
            raise ValidationFailed(f"{where}: unknown operator {op!r}")
        if takes is Takes.LIST and operand is not None and not isinstance(operand, list):
            raise ValidationFailed(f"{where}.{op}: expected a list")
        assert column is not None
        _check_operand(column.kind, takes, operand, f"{where}.{op}")
        if operand is None:
            return None
        return Compare(op, tuple(operand) if takes is Takes.LIST else operand)


def _check_operand(kind: Kind, takes: Takes, operand: Any, where: str) -> None:
    """The operand types GraphQL would have enforced, for filters that arrive as plain JSON."""
    if operand is None or takes is Takes.BOOLEAN:
        if takes is Takes.BOOLEAN and not isinstance(operand, bool | None):
            raise ValidationFailed(f"{where}: expected true or false")
        return
    values = operand if takes is Takes.LIST else [operand]
    if takes is Takes.PATTERN and kind in NOT_TEXT:
        raise ValidationFailed(f"{where}: pattern operators apply to text columns only")
    for value in values:
        ok = {
            # Any number against a number column: both sides compare them alike.
            Kind.INTEGER: isinstance(value, int | float) and not isinstance(value, bool),
            Kind.BIGINT: isinstance(value, int | float) and not isinstance(value, bool),
            Kind.FLOAT: isinstance(value, int | float) and not isinstance(value, bool),
            Kind.BOOLEAN: isinstance(value, bool),
            Kind.JSON: True,
        }.get(kind, isinstance(value, str))
        if not ok:
            raise ValidationFailed(f"{where}: {value!r} is not a valid {kind.value} value")


def parse_stream_where(
    table: Table,
    exp: Any,
    where: str = "where",
    remote: Callable[[Relationship], Table | None] | None = None,
) -> BoolExp | None:
    """A subscription's `where` on the columns of `table`; ValidationFailed names the first mistake.

    `remote` gives the table a relationship leads to as the filter may see
    it (None: not at all); without it, relationships are refused.
    """
    check_filter_depth(exp, where)  # before anything recurses into it
    return None if exp is None else _StreamParser(remote).object(table, exp, where)


# -- a permissions file's filters ---------------------------------------------------

# Hasura drops a comparison whose operand is null: in a rule that would quietly
# grant more than was written, so the file may not say it.
NULL_OPERAND = "null is not allowed here (it would drop the condition and grant every row); use _is_null"


class RuleError(Exception):
    """A mistake in a rule, at a place in the file (`tables.posts.select.user.filter`)."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}" if where else reason)


def fail(where: str, reason: str) -> NoReturn:
    raise RuleError(where, reason)


def hint(name: Any, choices: Any) -> str:
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


class RuleParser(_Parser):
    """Reads the filters (and preset values) of one permissions file; RuleError names a mistake."""

    def __init__(self, model: DatabaseModel) -> None:
        super().__init__(model)
        self.tables = model.tables

    def parse(self, table: Table, exp: Any, where: str) -> BoolExp:
        return self.object(table, exp, where)

    def mapping(self, table: Table | None, exp: Any, where: str) -> Mapping[Any, Any] | None:
        if not isinstance(exp, Mapping):
            name = table.name if table is not None else ""
            fail(where, f"expected a mapping (a {name}_bool_exp)")
        return exp

    def item(self, where: str, index: int) -> str:
        return f"{where}[{index}]"

    def null(self, where: str) -> None:
        fail(where, NULL_OPERAND)

    def conditions(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            fail(where, "expected a list of conditions")
        return value

    def remote(self, rel: Relationship, where: str) -> Table | None:
        remote = self.tables.get(rel.remote_table)
        if remote is None:
            fail(where, f"relationship {rel.name!r} leads to a table that is not served")
        return remote

    def unknown(self, table: Table, key: Any, value: Any, where: str) -> Field:
        names = (*table.column_names, *(r.name for r in table.relationships))
        fail(where, f"unknown column or relationship {key!r} of table {table.name!r}{hint(key, names)}")

    def operators(self, column: str, ops: Any, where: str) -> Mapping[Any, Any]:
        if not isinstance(ops, Mapping):
            fail(where, "expected a mapping of comparison operators, e.g. {_eq: ...}")
        return ops

    def compare(
        self, column: Column | None, name: str, op: Any, operand: Any, where: str
    ) -> Compare | None:
        assert column is not None
        here = f"{where}.{op}"
        takes = OPERATORS.get(op)
        if takes is None:
            fail(where, f"unknown operator {op!r}{hint(op, OPERATORS)}")
        if operand is None:
            fail(here, NULL_OPERAND)
        if takes is Takes.BOOLEAN:
            if not isinstance(operand, bool):
                fail(here, f"expected true or false, got {operand!r}")
            return Compare(op, operand)
        if takes is Takes.LIST:
            if not isinstance(operand, list):
                fail(here, "expected a list")
            return Compare(op, tuple(self.operand(column, v, f"{here}[{i}]") for i, v in enumerate(operand)))
        if takes is Takes.PATTERN:
            if not isinstance(operand, str):
                fail(here, f"expected a pattern string, got {operand!r}")
            return Compare(op, self.operand(column, operand, here, pattern=True))
        return Compare(op, self.operand(column, operand, here))

    def operand(self, column: Column, value: Any, where: str, pattern: bool = False) -> Any:
        """A literal of `column`'s type, or a SessionVariable (also for `set` presets)."""
        if value is None:
            fail(where, NULL_OPERAND)
        variable = session_variable(value)
        if variable is not None:
            return SessionVariable(variable)
        if isinstance(value, str) and value.lower().startswith("x-hasura-"):
            fail(where, f"unknown session variable {value!r} (known: {SESSION_USER_ID}, {SESSION_ROLE})")
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
        fail(where, f"expected {expected[0]} for column {column.name!r}, got {value!r}")
    if kind is not Kind.JSON and isinstance(value, list | dict):
        fail(where, f"expected a single value for column {column.name!r}, got {value!r}")
    try:
        # PostgreSQL's conversions are the strict ones (dates, numerics, UUIDs).
        to_db(column, value, "postgresql")
    except ValidationFailed as error:
        fail(where, error.message)


# -- a checked mapping ----------------------------------------------------------


class _TrustedParser(_Parser):
    """Reads without checking: keys that name no relationship are columns."""

    def __init__(self, model: DatabaseModel | None, variables: bool) -> None:
        super().__init__(model)
        self.variables = variables

    def path(self, where: str, key: Any) -> str:
        return where

    def mapping(self, table: Table | None, exp: Any, where: str) -> Mapping[Any, Any] | None:
        return exp if isinstance(exp, Mapping) else None

    def conditions(self, value: Any, where: str) -> list[Any]:
        return _as_list(value)

    def remote(self, rel: Relationship, where: str) -> Table | None:
        return self.model.tables.get(rel.remote_table) if self.model is not None else None

    def unknown(self, table: Table, key: Any, value: Any, where: str) -> Field:
        return self.column(None, key, value, where)

    def operators(self, column: str, ops: Any, where: str) -> Mapping[Any, Any]:
        return ops if isinstance(ops, Mapping) else {}

    def compare(
        self, column: Column | None, name: str, op: Any, operand: Any, where: str
    ) -> Compare | None:
        if operand is None:
            return None
        if OPERATORS.get(op) is Takes.LIST:
            return Compare(op, tuple(self._operand(v) for v in _as_list(operand)))
        return Compare(op, self._operand(operand))

    def _operand(self, value: Any) -> Any:
        variable = session_variable(value) if self.variables else None
        return value if variable is None else SessionVariable(variable)


def parse_trusted(
    table: Table | None,
    exp: Mapping[str, Any] | None,
    model: DatabaseModel | None = None,
    *,
    variables: bool = False,
) -> BoolExp:
    """A mapping checked before (or a rule's written form with `variables`), read as it is."""
    if isinstance(exp, BoolExp):
        return exp
    return _TrustedParser(model, variables).object(table, exp, "")
