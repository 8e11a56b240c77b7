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

A stream whose filter pins no column but must meet a relationship part
(`{invoice: {customer_id: {_eq: 7}}}` in its top-level conjunction) is
filed under that part's shape and operands: its candidates are those whose
part the batch's answers (graph.rules.related.Truths) say holds for the old
or the new row. Any other stream's part is false or UNKNOWN for both rows.

Candidates come in the order their streams were first joined, as a scan of
every stream would visit them, so the frames of one event reach a
connection in the same order either way.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import TYPE_CHECKING

from graph.rules.lookup import UNSURE, required_keys, row_key
from graph.rules.related import operand_keys, required_parts, row_keys

if TYPE_CHECKING:
    from graph.events.change import ChangeEvent
    from graph.events.hub import Stream
    from graph.rules.related import Operands, RelatedPart, Truths


class TableStreams:
    """Every stream of one table: in join order, and filed by required value."""

    __slots__ = ("_columns", "_filed", "_next", "_order", "_related", "_related_filed", "_truths", "_unfiled")

    def __init__(self, truths: Truths | None = None) -> None:
        self._truths = truths
        self._related: dict[Hashable, tuple[RelatedPart, dict[Operands, dict[Stream, None]]]] = {}
        """Shape -> a part of it (its join columns), and operands -> the streams filed under them."""
        self._related_filed: dict[Stream, tuple[Hashable, Operands]] = {}
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
            parts = required_parts(stream.where, stream.table) if self._truths is not None else []
            if parts:
                part = parts[0]
                operands = operand_keys(part)
                _part, by_operands = self._related.setdefault(part.shape, (part, {}))
                by_operands.setdefault(operands, {})[stream] = None
                self._related_filed[stream] = (part.shape, operands)
            else:
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
            related = self._related_filed.pop(stream, None)
            if related is None:
                self._unfiled.pop(stream, None)
                return
            shape, operands = related
            _part, by_operands = self._related[shape]
            bucket = by_operands[operands]
            del bucket[stream]
            if not bucket:
                del by_operands[operands]
            if not by_operands:
                del self._related[shape]
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
        if not self._columns and not self._related:
            return list(self._unfiled)
        found: list[dict[Stream, None]] = []
        if self._related:
            self._related_candidates(event, found)
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

    def _related_candidates(self, event: ChangeEvent, found: list[dict[Stream, None]]) -> None:
        """The buckets of the streams whose relationship part holds for the old or the new row."""
        assert self._truths is not None
        for shape, (part, by_operands) in self._related.items():
            answers = self._truths.answers(shape)
            if answers is None:
                continue  # not decided: UNKNOWN for every stream of the shape
            for row in (event.old, event.new):
                if row is None:
                    continue
                keys = row_keys(row, part.local_columns)
                for operands in answers.by_row.get(keys, ()) if keys is not None else ():
                    bucket = by_operands.get(operands)
                    if bucket:
                        found.append(bucket)
