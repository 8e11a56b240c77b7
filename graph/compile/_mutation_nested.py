"""Nested inserts: one insert object read into its columns and the relationships it inserts through.

Pure: no SQL. `insert_article(objects: [{title: "x", author: {data: {...}}}])`
writes the author first (an object relationship: the row points at it), the
article with the author's key in its foreign key, then the rows of each
array relationship (`author: {..., article: {data: [...]}}`) with the
parent's key in theirs (`_mutation_writes.Writes._insert_tree`). As Hasura,
a column the relationship determines may not also be given: such an object
is refused with `validation-failed` before anything of it is written.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graph.errors import ValidationFailed

if TYPE_CHECKING:
    from graph.model import Relationship, Table


@dataclass
class Nested:
    """One insert object: its own columns (API values), and what it inserts through relationships."""

    columns: dict[str, Any]
    parents: list[tuple[Relationship, Mapping[str, Any]]] = field(default_factory=list)
    """Object relationships given (`{data, on_conflict}`): rows written before this one."""
    children: list[tuple[Relationship, Mapping[str, Any]]] = field(default_factory=list)
    """Array relationships given (`{data: [...], on_conflict}`): rows written after this one."""


def read_object(
    table: Table, relationships: Mapping[str, Relationship], obj: Mapping[str, Any], determined: Collection[str]
) -> Nested:
    """`obj` split by what its keys name; `determined`: columns the parent's relationship sets.

    `relationships`: `table.relationships_by_name`. A relationship given as
    null inserts nothing, as in Hasura.
    """
    out = Nested({})
    for name, value in obj.items():
        relationship = relationships.get(name)
        if relationship is None:
            out.columns[name] = value
        elif value is not None:
            (out.children if relationship.is_array else out.parents).append((relationship, value))
    given = [name for name in out.columns if name in determined]
    if given:
        raise ValidationFailed(
            f'cannot insert column "{given[0]}" of {table.name!r}: its value is determined by the'
            f" relationship the row is inserted through"
        )
    taken = set(out.columns) | set(determined)
    for relationship, _value in out.parents:
        clash = [c for c in relationship.local_columns if c in taken]
        if clash:
            raise ValidationFailed(
                f'cannot insert object relationship "{relationship.name}" as "{clash[0]}" column values'
                f" are already determined"
            )
        taken.update(relationship.local_columns)
    return out


def has_nested(table: Table, objects: Sequence[Mapping[str, Any]]) -> bool:
    """Whether any object names a relationship (even as null, which inserts nothing)."""
    names = table.relationships_by_name.keys()
    return bool(names) and any(not names.isdisjoint(obj) for obj in objects)
