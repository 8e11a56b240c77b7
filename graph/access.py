"""Permissions applied: SQL row filters and write checks per role, presets and
the view an event stream gives (filter and columns) per session.

The rules come from `graph.rules.permissions`. As SQL conditions (queries,
aggregates, relationships, mutations) they are compiled once per role, each
session variable a statement parameter (`RoleAccess`) that a request binds
to its session's value (`SessionAccess.parameters`): one compiled statement
serves every user of a role. Events are filtered in memory by the same rule
with the session's values filled in (its parts through relationships decided
per batch with SQL, graph.events.decide), so queries and events always agree
on what a session may see.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from graph.auth import Session
from graph.errors import ValidationFailed
from graph.rules.bool_exp import And, BoolExp, Field, Not, Or, Related
from graph.rules.session import parameterize, resolve, resolve_presets

if TYPE_CHECKING:
    from sqlalchemy.sql import FromClause

    from graph.model import DatabaseModel, Table
    from graph.rules.permissions import Permissions
    from graph.rules.to_sql import Condition, Filters, SessionParameters


@dataclass(frozen=True)
class EventView:
    """What one session sees of a table's events: rows matching `filter`, `columns` of them."""

    filter: BoolExp | None
    """The row rule with the session's values filled in."""
    columns: tuple[str, ...]

    def shows_key(self, table: Table) -> bool:
        """Whether events may carry the row's key (`id`): only when every key column is selectable.

        Otherwise the key would reveal a column the role may not select (an
        email used as the key); events then carry no key (SPEC section 5).
        """
        return all(name in self.columns for name in table.primary_key)


class Access:
    def __init__(self, model: DatabaseModel, permissions: Permissions, filters: Filters) -> None:
        self.model = model
        self.permissions = permissions
        self.filters = filters
        # The roles the file names (and None, the admin secret's): any other has no rule to keep.
        self._roles: dict[str | None, RoleAccess] = {}
        self._named = permissions.roles() | {None}

    def for_session(self, session: Session) -> SessionAccess:
        return SessionAccess(self, session)

    def for_role(self, role: str | None) -> RoleAccess:
        """The role's rules as SQL (None: the admin secret's session, which no rule limits)."""
        rules = self._roles.get(role)
        if rules is None:
            rules = RoleAccess(self, role)
            if role in self._named:
                rules = self._roles.setdefault(role, rules)
        return rules

    def parameters(self, session: Session) -> SessionParameters:
        """The session's values for the session parameters of the roles' conditions."""
        return self.filters.parameters(session.variables)


class RoleAccess:
    """A role's rules as SQL conditions, the same for every user of the role.

    Each session variable a rule reads is a bind parameter
    (graph.rules.to_sql): a statement holding a condition binds it with
    `Access.parameters(session)`. The conditions on the tables themselves
    are compiled once and kept; those on an alias (a query plan's
    subqueries) are compiled when a plan is.
    """

    def __init__(self, access: Access, role: str | None) -> None:
        self.access = access
        self.role = role
        self.permissions = access.permissions
        self._kept: dict[tuple[str, str], Condition | None] = {}

    def _condition(self, table: Table, exp: BoolExp | None, target: FromClause | None = None) -> Condition | None:
        if not exp:
            return None
        # Rules are applied as written: a rule's own relationships are not
        # filtered again by other tables' rules (as in Hasura).
        return self.access.filters.compile(table.name, parameterize(exp, table, self.access.model), target)

    def _kept_condition(self, action: str, table: Table, exp: BoolExp | None) -> Condition | None:
        key = (action, table.name)
        try:
            return self._kept[key]
        except KeyError:
            condition = self._kept[key] = self._condition(table, exp)
            return condition

    def select_filter(self, table_name: str, target: FromClause | None = None) -> Condition | None:
        """The role's row rule for a table, on `target` (an alias) or the table itself."""
        table = self.access.model.table(table_name)
        rule = self.permissions.select(self.role, table)
        if rule is None:
            return None
        if target is not None:
            return self._condition(table, rule.filter, target)
        return self._kept_condition("select", table, rule.filter)

    def insert_check(self, table: Table) -> Condition | None:
        rule = self.permissions.insert(self.role, table)
        return self._kept_condition("insert", table, rule.check) if rule else None

    def update_filter(self, table: Table) -> Condition | None:
        rule = self.permissions.update(self.role, table)
        return self._kept_condition("update", table, rule.filter) if rule else None

    def update_check(self, table: Table) -> Condition | None:
        rule = self.permissions.update(self.role, table)
        return self._kept_condition("update check", table, rule.check) if rule else None

    def delete_filter(self, table: Table) -> Condition | None:
        rule = self.permissions.delete(self.role, table)
        return self._kept_condition("delete", table, rule.filter) if rule else None


class SessionAccess:
    def __init__(self, access: Access, session: Session) -> None:
        self.access = access
        self.session = session
        self.role = session.rules_role
        """None for the admin secret's session, which no rule limits."""
        self.variables = session.variables
        self.permissions = access.permissions
        self.rules = access.for_role(self.role)
        """The role's conditions, their session variables bound with `parameters`."""
        self.parameters = access.parameters(session)
        self.written: list[tuple[Table, str, list[Any]]] | None = None
        """The rows this operation's mutation wrote (table, change type, rows; an update's as
        (old, new) pairs), kept only when the process makes its events from them (`--no-capture`)."""

    def _table(self, name: str) -> Table:
        return self.access.model.table(name)

    # -- reading -------------------------------------------------------------

    def event_view(self, table_name: str) -> EventView | None:
        """None when the session may not see the table at all."""
        table = self._table(table_name)
        rule = self.permissions.select(self.role, table)
        if rule is None:
            return None
        # A rule through relationships is decided per batch with SQL (graph.events.decide).
        resolved = (
            resolve(rule.filter, table, self.access.model, self.variables)
            if rule.filter
            else None
        )
        return EventView(resolved, rule.columns)

    def stream_table(self, name: str) -> Table | None:
        """A table as a stream's `where` may name it: the columns the session may select (None: none)."""
        table = self._table(name)
        rule = self.permissions.select(self.role, table)
        if rule is None:
            return None
        return replace(table, columns=tuple(c for c in table.columns if c.name in rule.columns))

    def guard_related(self, table: Table, exp: BoolExp | None) -> BoolExp | None:
        """A client's stream filter with the session's row rule on each table it walks into.

        As in queries (graph.rules.to_sql's `visible`), a related row the
        session may not select is absent, so a filter cannot probe it.
        """
        if not exp:
            return exp
        fields: list[Field] = []
        for field in exp.fields:
            if isinstance(field, And | Or):
                inner = tuple(self.guard_related(table, e) or e for e in field.exps)
                fields.append(And(inner) if isinstance(field, And) else Or(inner))
            elif isinstance(field, Not):
                fields.append(Not(self.guard_related(table, field.exp) or field.exp))
            elif isinstance(field, Related):
                rel = next(r for r in table.relationships if r.name == field.relationship)
                remote = self._table(rel.remote_table)
                guarded = self.guard_related(remote, field.exp) or field.exp
                view = self.event_view(remote.name)
                if view is None:
                    raise ValidationFailed(f"field {field.relationship!r} is not available to this role")
                if view.filter:
                    guarded = BoolExp((And((guarded, view.filter)),))
                fields.append(Related(field.relationship, guarded))
            else:
                fields.append(field)
        return BoolExp(tuple(fields))

    # -- writing -------------------------------------------------------------

    def insert_presets(self, table: Table) -> dict[str, Any]:
        rule = self.permissions.insert(self.role, table)
        return resolve_presets(rule.set, table, self.variables) if rule and rule.set else {}

    def update_presets(self, table: Table) -> dict[str, Any]:
        rule = self.permissions.update(self.role, table)
        return resolve_presets(rule.set, table, self.variables) if rule and rule.set else {}
