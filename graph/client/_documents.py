"""GraphQL documents for one table, in SPEC section 4's naming.

Only names are written into a document, and only names checked against the
GraphQL grammar; every value travels as a variable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")

CHANGE_FIELDS = "type table id record old_record cursor"

TABLE_CHANGED = (
    "subscription ($table: String!, $where: JSON, $since: String) {\n"
    "  tableChanged(table: $table, where: $where, since: $since) { " + CHANGE_FIELDS + " }\n"
    "}"
)

# The newest cursor now (SPEC section 5): where a first subscribe starts, so it has no gap.
CHANGE_CURSOR = "query { changeCursor }"

# A table's fields, with enough of their type to tell columns from relationships.
TABLE_FIELDS = (
    "query ($name: String!) {\n"
    "  __type(name: $name) { fields { name type { kind ofType { kind } } } }\n"
    "}"
)
LEAF_KINDS = frozenset({"SCALAR", "ENUM"})


def checked_name(name: str, what: str = "table") -> str:
    """`name`, if a GraphQL document can carry it; ValueError otherwise."""
    if not _NAME.match(name) or name.startswith("__"):
        raise ValueError(f"{name!r} is not a valid GraphQL name for a {what}")
    return name


def _selection(columns: Iterable[str]) -> str:
    names = [checked_name(c, "column") for c in columns]
    if not names:
        raise ValueError("select at least one column")
    return " ".join(names)


def select(table: str, columns: Iterable[str], arguments: Iterable[str]) -> str:
    """`table(where:, order_by:, limit:, offset:)`, declaring only the arguments given."""
    types = {
        "where": f"{table}_bool_exp",
        "order_by": f"[{table}_order_by!]",
        "limit": "Int",
        "offset": "Int",
    }
    given = [a for a in types if a in set(arguments)]
    declared = ", ".join(f"${a}: {types[a]}" for a in given)
    passed = ", ".join(f"{a}: ${a}" for a in given)
    head = f"query ({declared})" if declared else "query"
    call = f"{table}({passed})" if passed else table
    return f"{head} {{ {call} {{ {_selection(columns)} }} }}"


def insert(table: str, columns: Iterable[str]) -> str:
    return (
        f"mutation ($objects: [{table}_insert_input!]!) "
        f"{{ insert_{table}(objects: $objects) {{ returning {{ {_selection(columns)} }} }} }}"
    )


def update(table: str, columns: Iterable[str]) -> str:
    return (
        f"mutation ($where: {table}_bool_exp!, $set: {table}_set_input) "
        f"{{ update_{table}(where: $where, _set: $set) {{ returning {{ {_selection(columns)} }} }} }}"
    )


def delete(table: str, columns: Iterable[str]) -> str:
    return (
        f"mutation ($where: {table}_bool_exp!) "
        f"{{ delete_{table}(where: $where) {{ returning {{ {_selection(columns)} }} }} }}"
    )
