"""The permissions API by its earlier names, for callers that hold rules as mappings.

The rules live in `graph.rules` (permissions, session, bool_exp); the
functions here read a mapping into a `BoolExp` and call the one definition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from graph.rules._text import PermissionsError
from graph.rules.bool_exp import NEVER, BoolExp, canonical
from graph.rules.parse import parse_trusted
from graph.rules.permissions import (
    ANONYMOUS,
    DeleteRule,
    InsertRule,
    Permissions,
    SelectRule,
    TablePermissions,
    UpdateRule,
    load_permissions,
    parse_permissions,
)
from graph.rules.session import (
    SESSION_ROLE,
    SESSION_USER_ID,
    SessionValues,
    resolve,
    resolve_presets,
    session_variable,
)

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
    "never",
    "parse_permissions",
    "resolve_presets",
    "resolve_session",
    "session_variable",
]


def never() -> BoolExp:
    """A condition no row meets, in SQL and in memory: `{"_or": []}`."""
    return NEVER


def resolve_session(exp: Any, table: Table, model: DatabaseModel, session: SessionValues) -> Any:
    """`exp` (a BoolExp, or a rule's mapping whose strings may name session variables)
    with the session's values filled in (graph.rules.session.resolve)."""
    if not isinstance(exp, Mapping):
        return exp
    return resolve(parse_trusted(table, exp, model, variables=True), table, model, session)


def has_relationships(exp: Any, table: Table) -> bool:
    """Whether the filter (a BoolExp, or a mapping on `table`) walks any relationship."""
    return isinstance(exp, Mapping) and parse_trusted(table, exp).has_relationships
