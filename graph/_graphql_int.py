"""GraphQL's `Int`, widened to 64 bits in answers and in inputs alike.

SQLite integers are 64-bit whatever a column's declared type, so an `Int`
column may hold 2**53+1: SPEC section 4 answers it exactly, and a value a
query returns must be usable as an input again (`t_by_pk(id:)`, `where:
{id: {_eq:}}`, update and delete by key), as a literal and as a variable.
graphql-core's `Int` stops at 32 bits both ways.

graphql-core 3.3 refuses a second type named `Int` in a schema (the name is
reserved for its standard scalar), so its `GraphQLInt` is adjusted in place:
this private module is the one place that touches it, imported once by
graph.schema. The patch is checked through graphql-core's public coercion
functions at import; should a later graphql-core read other attributes, the
check fails and Int stays graphql-core's 32-bit one (logged), which refuses
large values with a validation-failed error instead of answering wrongly.

Still refused, with graphql-core's words: non-integers (`1.5`, `"1"`, `true`)
and integers beyond 64 bits. A database column narrower than 64 bits
(PostgreSQL `integer`) refuses a wider value itself, as validation-failed.
"""

from __future__ import annotations

import logging
from math import isfinite
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLInt,
    IntValueNode,
    Undefined,
    ValueNode,
    parse_value,
    print_ast,
)
from graphql.type import scalars
from graphql.utilities import coerce_input_literal, coerce_input_value

from graph.sql.values import INT64

log = logging.getLogger("forgegraph.schema")

_original = {
    name: getattr(GraphQLInt, name, None)
    for name in (
        "serialize", "parse_value", "parse_literal",
        "coerce_output_value", "coerce_input_value", "coerce_input_literal", "value_to_literal",
    )
}  # fmt: skip


def _is_int64(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and INT64[0] <= value <= INT64[1]


def serialize_int(value: Any) -> int:
    """An answer: every 64-bit integer as it is; anything else as graphql-core answers it."""
    if _is_int64(value):
        return int(value)
    if isinstance(value, float) and isfinite(value) and value.is_integer() and _is_int64(int(value)):
        return int(value)
    return scalars.serialize_int(value)


SAFE_FLOAT_INT = 2**53
"""Integral floats up to this magnitude are taken as Ints: beyond it a float is not exact.

The JSON decoder reads integers outside [-2**63, 2**64) as floats, so
-(2**63)-1 arrives as -9.223372036854776e18: taking it would silently
change the client's value to -(2**63).
"""


def coerce_int(value: Any) -> int:
    """A variable's value: an integer of 64 bits at most (or an exact integral float)."""
    number: Any = value
    if isinstance(value, float) and isfinite(value) and value.is_integer():
        if abs(value) > SAFE_FLOAT_INT:
            raise GraphQLError(
                f"Int cannot represent non 64-bit signed integer value: {scalars.inspect(value)}"
                " (a number beyond 2^53 read as a float is not exact)"
            )
        number = int(value)
    if not isinstance(number, int) or isinstance(number, bool):
        raise GraphQLError(f"Int cannot represent non-integer value: {scalars.inspect(value)}")
    if not _is_int64(number):
        raise GraphQLError(f"Int cannot represent non 64-bit signed integer value: {scalars.inspect(value)}")
    return number


def parse_int_literal(node: ValueNode, _variables: Any = None) -> int:
    """A literal in the document: an integer of 64 bits at most."""
    if not isinstance(node, IntValueNode):
        raise GraphQLError(f"Int cannot represent non-integer value: {print_ast(node)}", node)
    number = int(node.value)
    if not _is_int64(number):
        raise GraphQLError(f"Int cannot represent non 64-bit signed integer value: {print_ast(node)}", node)
    return number


def int_value_to_literal(value: Any) -> IntValueNode | None:
    """A default value printed back into the schema (introspection, SDL)."""
    if isinstance(value, float) and isfinite(value) and value.is_integer():
        value = int(value)
    return IntValueNode(value=str(value)) if _is_int64(value) else None


def _patch() -> None:
    for name, function in (
        ("serialize", serialize_int), ("coerce_output_value", serialize_int),
        ("parse_value", coerce_int), ("coerce_input_value", coerce_int),
        ("parse_literal", parse_int_literal), ("coerce_input_literal", parse_int_literal),
        ("value_to_literal", int_value_to_literal),
    ):  # fmt: skip
        setattr(GraphQLInt, name, function)


def _restore() -> None:
    for name, function in _original.items():
        if function is not None:
            setattr(GraphQLInt, name, function)


def _works() -> bool:
    """Whether graphql-core's public coercion now reads Int as 64-bit, and still refuses the rest."""
    big = 2**53 + 1
    try:
        reads = (
            coerce_input_value(big, GraphQLInt) == big
            and coerce_input_literal(parse_value(str(big)), GraphQLInt) == big
            and GraphQLInt.coerce_output_value(big) == big
        )
        refused = all(coerce_input_value(v, GraphQLInt) is Undefined for v in (2**63, 1.5, "1", True))
    except Exception:  # noqa: BLE001 - any surprise means the patch does not hold
        return False
    return bool(reads and refused)


_patch()
WIDE_INT = _works()
"""Whether Int reads and answers 64-bit integers (False: graphql-core's 32-bit Int, logged)."""
if not WIDE_INT:
    _restore()
    log.warning(
        "graphql-core's Int could not be widened to 64 bits (graphql-core %s): "
        "integers beyond 32 bits are refused as inputs and answers",
        getattr(__import__("graphql"), "__version__", "?"),
    )
