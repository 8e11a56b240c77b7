"""The parts of an event stream's filter that go through relationships, and their per-batch answers.

A row image carries no related rows, so `{invoice: {customer_id: {_eq: 7}}}`
cannot be decided from the image alone. Such a part is decided with SQL once
per batch of changes (graph.events.decide), and the in-memory matcher looks
the answer up here (`Truths`).

Streams whose relationship parts differ only in the operands they compare
with (one customer's 7, another's 8: the same rule with each session's value)
share a *shape*: one statement per batch answers the part for every row image
and every set of operands (`RelatedPart.values`), which it takes as rows of
parameters. An operand becomes a `Slot` of the shape where the SQL can take it
from such a row: a single value (`_eq`, `_gt`, ...). Lists, patterns and
`_is_null` stay in the shape itself.

What the related table says is read when the batch is decided, just after
commit: a change of the subscribed table is decided against the related rows
as they are then (SPEC section 5).
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graph.rules.bool_exp import (
    OPERATORS,
    And,
    BoolExp,
    ColumnExp,
    Compare,
    Field,
    Not,
    Or,
    Related,
    Takes,
)

if TYPE_CHECKING:
    from graph.model import Table

Truth = bool | None


@dataclass(frozen=True, slots=True)
class Slot:
    """An operand of a shape, taken from column `index` of a row of operands."""

    index: int


@dataclass(frozen=True, slots=True)
class RelatedPart:
    """One `relationship: {...}` field of a stream's filter, split into shape and operands."""

    table: str
    """The table whose rows the part is asked of (the field's own table)."""
    relationship: str
    local_columns: tuple[str, ...]
    """The row's columns the relationship joins on: all the SQL needs of a row image."""
    template: Related
    """The field with `Slot`s for its operands."""
    shape: Hashable
    """Equal for fields that differ only in their operands."""
    values: tuple[Any, ...]
    """The operands, in slot order."""


def related_parts(exp: BoolExp | None, table: Table) -> list[RelatedPart]:
    """The relationship fields of `exp` that its own table's rows meet (not the ones nested in them)."""
    return [related_part(table, field) for field in _related_fields(exp)] if exp else []


def _related_fields(exp: BoolExp) -> Iterator[Related]:
    for field in exp.fields:
        if isinstance(field, Related):
            yield field
    for inner in exp.subexpressions():
        yield from _related_fields(inner)


def related_part(table: Table, field: Related) -> RelatedPart:
    rel = next(r for r in table.relationships if r.name == field.relationship)
    values: list[Any] = []
    template = Related(field.relationship, _template(field.exp, values))
    shape = (table.name, _shape(template))
    return RelatedPart(table.name, rel.name, rel.local_columns, template, shape, tuple(values))


def _template(exp: BoolExp, values: list[Any]) -> BoolExp:
    fields: list[Field] = []
    for field in exp.fields:
        if isinstance(field, And):
            fields.append(And(tuple(_template(e, values) for e in field.exps)))
        elif isinstance(field, Or):
            fields.append(Or(tuple(_template(e, values) for e in field.exps)))
        elif isinstance(field, Not):
            fields.append(Not(_template(field.exp, values)))
        elif isinstance(field, Related):
            fields.append(Related(field.relationship, _template(field.exp, values)))
        else:
            comparisons = []
            for compare in field.comparisons:
                if OPERATORS[compare.op] is Takes.VALUE:
                    comparisons.append(Compare(compare.op, Slot(len(values))))
                    values.append(compare.operand)
                else:
                    comparisons.append(compare)
            fields.append(ColumnExp(field.column, tuple(comparisons)))
    return BoolExp(tuple(fields))


def _shape(value: Any) -> Hashable:
    """A hashable key of a template: its fields and operators, its slots and the operands left in it."""
    if isinstance(value, BoolExp):
        return ("exp", tuple(_shape(f) for f in value.fields))
    if isinstance(value, And | Or):
        return (value.key, tuple(_shape(e) for e in value.exps))
    if isinstance(value, Not):
        return ("_not", _shape(value.exp))
    if isinstance(value, Related):
        return ("rel", value.relationship, _shape(value.exp))
    if isinstance(value, ColumnExp):
        return ("col", value.column, tuple((c.op, _shape(c.operand)) for c in value.comparisons))
    if isinstance(value, Slot):
        return value
    return ("lit", type(value).__name__, value_key(value))


def value_key(value: Any) -> Hashable:
    """A hashable stand-in for a value of a row or an operand (JSON values are lists and dicts)."""
    if isinstance(value, list | tuple | Mapping):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def row_keys(row: Mapping[str, Any], columns: Sequence[str]) -> tuple[Hashable, ...] | None:
    """The row's key for a relationship: its join columns' values; None when one is null (no related row)."""
    keys = []
    for column in columns:
        value = row.get(column)
        if value is None:
            return None
        keys.append(value_key(value))
    return tuple(keys)


RowKey = tuple[Hashable, ...]
Operands = tuple[Hashable, ...]
"""A set of operands by their `value_key`s."""


@dataclass(frozen=True, slots=True)
class Answers:
    """One shape decided for a batch: for which operands each row image's key meets it."""

    asked: frozenset[Operands]
    """The operands decided (a stream joined after the batch was decided has none: UNKNOWN)."""
    by_row: Mapping[RowKey, frozenset[Operands]]
    """Row key -> the operands the part holds for (a key not here: none)."""


Decided = dict[Hashable, Answers]
"""Shape -> its answers for the batch."""


class Truths:
    """The answers of the batch being dispatched, which the matchers of relationship fields read.

    One per hub. The answers are set and used without an await in between
    (graph.events.hub), so a live batch and a replayed page never see each other's.
    """

    __slots__ = ("decided",)

    def __init__(self) -> None:
        self.decided: Decided | None = None

    def answers(self, shape: Hashable) -> Answers | None:
        decided = self.decided
        return None if decided is None else decided.get(shape)

    def holds(self, part: RelatedPart, operands: Operands, row: Mapping[str, Any]) -> Truth:
        keys = row_keys(row, part.local_columns)
        if keys is None:
            return False  # a null join value reaches no row: EXISTS is false
        answers = self.answers(part.shape)
        if answers is None or operands not in answers.asked:
            return None  # not decided (the statement failed, or the stream joined meanwhile): UNKNOWN
        found = answers.by_row.get(keys)
        return found is not None and operands in found


def required_parts(exp: BoolExp | None, table: Table) -> list[RelatedPart]:
    """The relationship fields that must hold for `exp` to: its own fields and its `_and`s' (graph.events.index)."""
    found: list[RelatedPart] = []
    if exp is None:
        return found
    for field in exp.fields:
        if isinstance(field, Related):
            found.append(related_part(table, field))
        elif isinstance(field, And):
            for inner in field.exps:
                found.extend(required_parts(inner, table))
    return found


def operand_keys(part: RelatedPart) -> Operands:
    return tuple(value_key(v) for v in part.values)
