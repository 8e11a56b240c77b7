"""The event-side filter API by its earlier names, for callers that hold filters as mappings.

The one reader is graph.rules.parse and the one in-memory walker
graph.rules.matcher; these read a mapping and call them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from graph.rules.matcher import Matcher, Truth, ValueSet, compile_matcher
from graph.rules.parse import parse_stream_where, parse_trusted

if TYPE_CHECKING:
    from graph.model import Table

__all__ = ["Matcher", "Truth", "ValueSet", "check_filter", "compile_filter", "matches"]


def check_filter(table: Table, exp: Any, where: str = "where") -> None:
    """Raise ValidationFailed unless `exp` is a bool_exp events can be filtered by on `table`."""
    parse_stream_where(table, exp, where)


def compile_filter(exp: Mapping[str, Any] | None) -> Matcher:
    """`exp` (a BoolExp, or a mapping checked by check_filter) as a function of a row."""
    return compile_matcher(None if exp is None else parse_trusted(None, exp))


def matches(exp: Mapping[str, Any] | None, row: Mapping[str, Any]) -> Truth:
    """Whether `row` passes `exp`; compile the filter once (`compile_filter`) to test many rows."""
    return compile_filter(exp)(row)
