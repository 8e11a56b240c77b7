"""The streams of one table, looked up by the values their filters require.

A stream whose filter pins a column to values (graph.rules.lookup: `_eq`,
`_in`, `_is_null: true`, in its top-level conjunction) is filed under that
column and each of those values; any other stream is kept in a plain list.
An event's candidates are the streams filed under its old row's values and
its new row's values (a row moving from user 1 to user 2 leaves the one
stream and enters the other) plus the unfiled ones. Every other stream's
filter is false for both rows, so the event does not reach it: the cost of
an event follows the streams it may reach, not all of them. The hub still
asks each candidate's full filter (`Stream.view`).

Candidates come in the order their streams were first joined, as a scan of
every stream would visit them, so the frames of one event reach a
connection in the same order either way.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import TYPE_CHECKING

from graph.rules.lookup import UNSURE, required_keys, row_key

if TYPE_CHECKING:
    from graph.events.change import ChangeEvent
    from graph.events.hub import Stream


class TableStreams:
    """Every stream of one table: in join order, and filed by required value."""

    __slots__ = ("_columns", "_filed", "_next", "_order", "_unfiled")

    def __init__(self) -> None:
        self._order: dict[Stream, int] = {}
        """Every stream -> when it joined (its place in a full scan)."""
        self._next = 0
        self._columns: dict[str, dict[Hashable, dict[Stream, None]]] = {}
        """Column -> key -> the streams filed under it, in join order."""
        self._filed: dict[Stream, tuple[str, frozenset[Hashable]]] = {}
        self._unfiled: dict[Stream, None] = {}

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[Stream]:
        return iter(self._order)

    def add(self, stream: Stream) -> None:
        self._order[stream] = self._next
        self._next += 1
        required = required_keys(stream.where, stream.table)
        if not required:
            self._unfiled[stream] = None
            return
        column = min(required, key=lambda name: self._preference(name, required[name]))
        keys = required[column]
        buckets = self._columns.setdefault(column, {})
        for key in keys:
            buckets.setdefault(key, {})[stream] = None
        self._filed[stream] = (column, keys)

    def _preference(self, column: str, keys: frozenset[Hashable]) -> tuple[int, int, str]:
        # A column other streams are filed under first: each filed column costs
        # every event a lookup. Then the one pinned to the fewest values.
        filed = self._columns.get(column)
        return (0 if filed else 1, len(keys), column)

    def remove(self, stream: Stream) -> None:
        if self._order.pop(stream, None) is None:
            return
        placed = self._filed.pop(stream, None)
        if placed is None:
            self._unfiled.pop(stream, None)
            return
        column, keys = placed
        buckets = self._columns[column]
        for key in keys:
            bucket = buckets[key]
            del bucket[stream]
            if not bucket:
                del buckets[key]
        if not buckets:
            del self._columns[column]

    def candidates(self, event: ChangeEvent) -> list[Stream]:
        """The streams the event may reach, in join order (a new list: streams may leave meanwhile)."""
        if not self._columns:
            return list(self._unfiled)
        found: list[dict[Stream, None]] = []
        for column, buckets in self._columns.items():
            for row in (event.old, event.new):
                if row is None:
                    continue
                key = row_key(row, column)
                if key is UNSURE:
                    return list(self._order)  # NaN: the filters decide, as without an index
                bucket = buckets.get(key)
                if bucket and (not found or bucket is not found[-1]):
                    found.append(bucket)
        if self._unfiled:
            found.append(self._unfiled)
        if not found:
            return []
        if len(found) == 1:
            return list(found[0])
        order = self._order
        merged = dict.fromkeys(stream for streams in found for stream in streams)
        return sorted(merged, key=order.__getitem__)
