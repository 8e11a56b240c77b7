"""What a GraphQL selection asks of the database, with GraphQL already gone.

Resolvers turn a field's arguments and sub-selection into these plans; the
statement builders turn plans into SQL. Keys are response keys (aliases).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graph.model import Relationship, Table


@dataclass
class RowShape:
    """The fields wanted from each row of one table."""

    table: Table
    columns: list[tuple[str, str]] = field(default_factory=list)
    """(response key, column name)"""
    objects: list[tuple[str, Relationship, RowShape]] = field(default_factory=list)
    arrays: list[tuple[str, Relationship, ListQuery]] = field(default_factory=list)

    def needed_columns(self) -> list[str]:
        """Selected columns plus the ones relationships join on, each once, in table order."""
        wanted = {name for _, name in self.columns}
        for _, rel, _shape in self.objects:
            wanted.update(rel.local_columns)
        for _, rel, _query in self.arrays:
            wanted.update(rel.local_columns)
        return [c for c in self.table.column_names if c in wanted]


@dataclass
class ListQuery:
    """`t(where:, order_by:, limit:, offset:)` and array relationships."""

    shape: RowShape
    where: dict[str, Any] | None = None
    order_by: list[dict[str, str]] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None
