"""Variables bound per request into a plan's parameters, so one plan serves every value.

A variable qualifies when it is an Int, Float, String or ID, appears only in
field arguments (never in a directive, which would change the selection)
and is not null in the request. The plan is compiled with a *probe* in its
place: a value of the same Python type (so SQLAlchemy gives its parameter
the same type, hence the same SQL) that no statement could contain by
chance. The plan may bind the variable per request only if every place the
variable is written in the document became exactly one parameter holding
the probe itself: a value that was converted (a `_like` pattern made into
a GLOB), clamped (`limit` under --max-limit), written into the SQL, or
decided a shape (`_is_null`) leaves the probe out or changes it, and the
document's plans then go by the values instead.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from graphql import (
    ArgumentNode,
    DirectiveNode,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLString,
    NamedTypeNode,
    NonNullTypeNode,
    VariableNode,
)

if TYPE_CHECKING:
    from graphql import FragmentDefinitionNode, Node, OperationDefinitionNode

BINDABLE_TYPES = frozenset(t.name for t in (GraphQLInt, GraphQLFloat, GraphQLString, GraphQLID))
WRITTEN_ARGUMENTS = frozenset({"limit", "offset"})
_serial = itertools.count(1)


class IntProbe(int):
    __sa_type_engine__ = sa.literal(0).type


class FloatProbe(float):
    __sa_type_engine__ = sa.literal(0.5).type


class StrProbe(str):
    __sa_type_engine__ = sa.literal("").type


Probe = IntProbe | FloatProbe | StrProbe


INT32 = (-(2**31), 2**31 - 1)


def is_bindable(value: Any) -> bool:
    """Whether the value may fill a probe's parameter: an integer probe's is typed 32-bit.

    A wider integer goes by its value, for which SQLAlchemy types its parameter 64-bit.
    """
    if type(value) is int:
        return INT32[0] <= value <= INT32[1]
    return type(value) in (float, str)


def probe_for(value: Any) -> Probe | None:
    """A probe standing for `value` (None for a type that is not bound per request)."""
    n = next(_serial)
    if type(value) is int:
        return IntProbe(1_900_000_000 + n % 100_000_000)
    if type(value) is float:
        return FloatProbe(1.0e-300 * (1 + n % 1_000_000))
    if type(value) is str:
        # NUL and the rest: no date, number, UUID or base64 text reads it as a value.
        return StrProbe(f"\x00forgegraph probe {n}\x00")
    return None


def bindable_variables(
    operation: OperationDefinitionNode, fragments: Mapping[str, FragmentDefinitionNode]
) -> dict[str, int]:
    """Variables that may be bound per request, with how often the document writes each."""
    scalar = {
        d.variable.name.value
        for d in operation.variable_definitions or ()
        if _named_type(d.type) in BINDABLE_TYPES
    }
    uses: Counter[str] = Counter()
    excluded: set[str] = set()
    for node in itertools.chain([operation], fragments.values()):
        for found, shapes in _variables(node, shapes=False):
            (excluded.add(found) if shapes else uses.update([found]))
    return {name: count for name, count in uses.items() if name in scalar - excluded}


def _named_type(type_node: Any) -> str | None:
    if isinstance(type_node, NonNullTypeNode):
        type_node = type_node.type
    return type_node.name.value if isinstance(type_node, NamedTypeNode) else None


def _variables(node: Node, shapes: bool) -> Iterator[tuple[str, bool]]:
    """Every variable written under `node`, and whether it decides the statement's shape:
    in a directive (which fields there are) or as a `limit`/`offset` (written into the SQL)."""
    if isinstance(node, VariableNode):
        yield node.name.value, shapes
        return
    if isinstance(node, DirectiveNode) or (
        isinstance(node, ArgumentNode) and node.name.value in WRITTEN_ARGUMENTS
    ):
        shapes = True
    for key in node.keys:
        if key in ("loc", "variable_definitions"):
            continue
        child = getattr(node, key, None)
        children = child if isinstance(child, tuple | list) else (child,)
        for item in children:
            if hasattr(item, "keys"):  # an AST node
                yield from _variables(item, shapes)


def probe_slots(
    values: Sequence[Any], probes: Mapping[str, Probe], uses: Mapping[str, int], sql: str
) -> tuple[tuple[tuple[int, str], ...], set[str]]:
    """(parameter index, variable) for each probe found, and the variables that cannot be bound."""
    by_identity = {id(p): name for name, p in probes.items()}
    slots: list[tuple[int, str]] = []
    failed: set[str] = set()
    for index, value in enumerate(values):
        name = by_identity.get(id(value))
        if name is not None:
            slots.append((index, name))
        elif isinstance(value, str):
            # A probe made into something else (a pattern, a JSON text).
            failed.update(n for n, p in probes.items() if isinstance(p, str) and p in value)
    found = Counter(name for _index, name in slots)
    for name, probe in probes.items():
        if found[name] != uses.get(name) or (not isinstance(probe, str) and repr(probe) in sql):
            failed.add(name)
    return tuple(slots), failed
