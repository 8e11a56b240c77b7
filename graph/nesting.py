"""How deeply a client's `where` may nest, checked before anything recurses into it.

A `where` arrives as JSON (a subscription's `where: JSON`, a query's
`t_bool_exp` variables) and every consumer walks it recursively: the
filter checks, the in-memory matcher, the SQL compiler, the stream key's
JSON encoding (orjson refuses more than 254 levels). A filter nested a few
hundred levels deep would fail in one of them with a RecursionError or a
TypeError instead of a coded error, so the depth is bounded once, here,
and the check itself does not recurse.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graph.errors import ValidationFailed

MAX_FILTER_DEPTH = 100
"""Levels of JSON objects and arrays in one `where` (`{"_not": {"id": {"_eq": 1}}}` is 3).

Far beyond any filter a person or a query builder writes (an `_and` costs
two levels, its object and its list), and well within every recursive step
that reads a filter, with the session's row rule and-ed to it.
"""


def nesting_depth(value: Any, limit: int) -> int:
    """Levels of objects and arrays in `value`, counted no further than `limit` + 1."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def check_filter_depth(exp: Any, where: str = "where") -> None:
    """Raise ValidationFailed when `exp` nests deeper than MAX_FILTER_DEPTH."""
    if nesting_depth(exp, MAX_FILTER_DEPTH) > MAX_FILTER_DEPTH:
        raise too_deep(where)


def too_deep(where: str) -> ValidationFailed:
    return ValidationFailed(
        f"{where}: the filter is nested more than {MAX_FILTER_DEPTH} levels deep",
        limit=MAX_FILTER_DEPTH,
    )
