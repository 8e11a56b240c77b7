"""One `t_bool_exp`: its operators and the nodes it is read into, once.

`graph.rules.parse` reads the plain form (GraphQL's coercion of `where`, a
subscription's JSON `where`, a rules file) into these nodes, checking it on
the way. Two walkers compile them: `graph.rules.to_sql` into a SQL condition
and `graph.rules.matcher` into a function of a row for event streams. Client
filters and permission rules are the same nodes.

The nodes keep the shape the filter was written in, as Hasura's own
`BoolExp` does: a `BoolExp` is one object whose fields all hold, each field
one key of it (`_and`, `_or`, `_not`, a relationship, or a column with its
comparisons). So a `BoolExp` reads back as the mapping it came from (it is a
read-only `Mapping`): a rule equals what its file says, and `canonical`
gives one text per filter for cache and stream keys.

An operand is a literal or, in rules only, a `SessionVariable`, so one rule
serves every user: in SQL a statement parameter each request binds
(`graph.rules.session.parameterize`), for events filled in per session
(`graph.rules.session.resolve`). A client's string "X-User-Id" is always a
literal.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from graph.model import Kind

# -- the operator table -----------------------------------------------------------


class Takes(enum.Enum):
    """What an operator's operand is."""

    VALUE = "a value of the column's type"
    LIST = "a list of values of the column's type"
    BOOLEAN = "true or false"
    PATTERN = "a LIKE pattern"


OPERATORS: dict[str, Takes] = {
    "_eq": Takes.VALUE,
    "_neq": Takes.VALUE,
    "_gt": Takes.VALUE,
    "_gte": Takes.VALUE,
    "_lt": Takes.VALUE,
    "_lte": Takes.VALUE,
    "_in": Takes.LIST,
    "_nin": Takes.LIST,
    "_is_null": Takes.BOOLEAN,
    "_like": Takes.PATTERN,
    "_nlike": Takes.PATTERN,
    "_ilike": Takes.PATTERN,
    "_nilike": Takes.PATTERN,
}
"""Every comparison operator, in the order the schema lists them (SPEC section 4)."""

COMPARISONS = tuple(op for op, takes in OPERATORS.items() if takes is Takes.VALUE)
LIST_OPERATORS = tuple(op for op, takes in OPERATORS.items() if takes is Takes.LIST)
PATTERN_OPERATORS = tuple(op for op, takes in OPERATORS.items() if takes is Takes.PATTERN)
INSENSITIVE_PATTERNS = frozenset({"_ilike", "_nilike"})
NEGATED_PATTERNS = frozenset({"_nlike", "_nilike"})

NOT_TEXT = frozenset({Kind.INTEGER, Kind.BIGINT, Kind.FLOAT, Kind.BOOLEAN, Kind.JSON})
"""Kinds whose values are not text in GraphQL: pattern operators do not apply to them."""


def operators_for(kind: Kind) -> dict[str, Takes]:
    """The operators a client may use on a column of `kind` (its `<scalar>_comparison_exp`)."""
    return {
        op: takes
        for op, takes in OPERATORS.items()
        if takes is not Takes.PATTERN or kind not in NOT_TEXT
    }


# -- operands ---------------------------------------------------------------------


class SessionVariable(str):
    """An operand naming a session variable, in its canonical spelling (`X-User-Id`).

    A `str`, so that a rule reads back (and compares equal to) what its file
    says; its type, not its text, is what makes it a variable.
    """

    __slots__ = ()


def _operand_depth(value: Any) -> int:
    if isinstance(value, Mapping):
        return 1 + max((_operand_depth(v) for v in value.values()), default=0)
    if isinstance(value, list | tuple):
        return 1 + max((_operand_depth(v) for v in value), default=0)
    return 0


# -- the nodes --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Compare:
    """One operator of a column's comparison object, with its operand."""

    op: str
    operand: Any
    """A literal, or a SessionVariable in rules; for `_in`/`_nin` a tuple of those."""

    @property
    def written(self) -> Any:
        return list(self.operand) if OPERATORS.get(self.op) is Takes.LIST else self.operand


@dataclass(frozen=True, slots=True)
class ColumnExp:
    """`column: {op: operand, ...}`: every comparison holds (none: always)."""

    column: str
    comparisons: tuple[Compare, ...]

    @property
    def key(self) -> str:
        return self.column

    @property
    def written(self) -> dict[str, Any]:
        return {c.op: c.written for c in self.comparisons}


@dataclass(frozen=True, slots=True)
class And:
    """`_and: [...]`: every one holds (an empty list: always)."""

    exps: tuple[BoolExp, ...]
    key = "_and"

    @property
    def written(self) -> list[BoolExp]:
        return list(self.exps)


@dataclass(frozen=True, slots=True)
class Or:
    """`_or: [...]`: one of them holds (an empty list: never)."""

    exps: tuple[BoolExp, ...]
    key = "_or"

    @property
    def written(self) -> list[BoolExp]:
        return list(self.exps)


@dataclass(frozen=True, slots=True)
class Not:
    exp: BoolExp
    key = "_not"

    @property
    def written(self) -> BoolExp:
        return self.exp


@dataclass(frozen=True, slots=True)
class Related:
    """`relationship: {...}`: some related row the relationship leads to meets `exp`."""

    relationship: str
    exp: BoolExp

    @property
    def key(self) -> str:
        return self.relationship

    @property
    def written(self) -> BoolExp:
        return self.exp


Field = And | Or | Not | Related | ColumnExp


@dataclass(frozen=True, slots=True, eq=False)
class BoolExp(Mapping[str, Any]):
    """One `t_bool_exp` object: true when every field holds (no field: always).

    As a Mapping it is the object as written, one key per field; equality is
    the Mapping's, so a rule equals the dict it was read from.
    """

    fields: tuple[Field, ...] = ()

    def __getitem__(self, key: str) -> Any:
        for field in self.fields:
            if field.key == key:
                return field.written
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (field.key for field in self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def plain(self) -> dict[str, Any]:
        """The written form as plain dicts and lists (JSON)."""
        return {field.key: _plain(field.written) for field in self.fields}

    def subexpressions(self) -> Iterator[BoolExp]:
        """The objects directly inside this one's fields (not through relationships)."""
        for field in self.fields:
            if isinstance(field, And | Or):
                yield from field.exps
            elif isinstance(field, Not):
                yield field.exp

    @property
    def has_relationships(self) -> bool:
        """Whether it walks any relationship (which a row image alone cannot decide: graph.rules.related)."""
        return any(isinstance(f, Related) for f in self.fields) or any(
            e.has_relationships for e in self.subexpressions()
        )

    @property
    def reads_session(self) -> bool:
        """Whether any operand is a session variable, here or through relationships."""
        for field in self.fields:
            if isinstance(field, ColumnExp):
                for compare in field.comparisons:
                    operand = compare.operand
                    if isinstance(operand, SessionVariable) or (
                        isinstance(operand, tuple) and any(isinstance(v, SessionVariable) for v in operand)
                    ):
                        return True
            elif isinstance(field, Related) and field.exp.reads_session:
                return True
        return any(e.reads_session for e in self.subexpressions())

    @property
    def depth(self) -> int:
        """Levels of objects and lists in the written form (graph.nesting counts them so)."""
        deepest = 0
        for field in self.fields:
            if isinstance(field, And | Or):
                depth = 1 + max((e.depth for e in field.exps), default=0)
            elif isinstance(field, Not | Related):
                depth = field.exp.depth
            else:
                depth = 1 + max((_operand_depth(c.operand) for c in field.comparisons), default=0)
            deepest = max(deepest, depth)
        return 1 + deepest


ALWAYS = BoolExp()
NEVER = BoolExp((Or(()),))
"""A condition no row meets, in SQL and in memory alike: `{"_or": []}`."""


def _plain(value: Any) -> Any:
    if isinstance(value, BoolExp):
        return value.plain()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def canonical(exp: Mapping[str, Any] | None) -> str:
    """One text per distinct filter (keys sorted): a cache key, e.g. of an event stream."""
    value = exp.plain() if isinstance(exp, BoolExp) else exp
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:
        # An integer beyond 64 bits, which a JSON `where` may hold, or nesting beyond
        # orjson's limit: the standard encoder takes both.
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
