"""Change events: one committed change to one row, as every transport carries it."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import orjson

from graph.model import Kind
from graph.sql.values import to_api

if TYPE_CHECKING:
    from graph.model import DatabaseModel, Table

ChangeType = Literal["create", "update", "delete"]


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    cursor: int
    table: str
    type: ChangeType
    old: dict[str, Any] | None
    new: dict[str, Any] | None

    def key(self, table: Table) -> Any:
        """The primary key value: the value itself, or an object for composite keys."""
        row = self.new if self.new is not None else self.old
        assert row is not None
        if len(table.primary_key) == 1:
            return row.get(table.primary_key[0])
        return {name: row.get(name) for name in table.primary_key}

    def to_json(self) -> dict[str, Any]:
        return {"c": self.cursor, "t": self.table, "k": self.type, "o": self.old, "n": self.new}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChangeEvent:
        return cls(cursor=data["c"], table=data["t"], type=data["k"], old=data["o"], new=data["n"])


def encode_batch(events: list[ChangeEvent]) -> str:
    return orjson.dumps([e.to_json() for e in events]).decode()


def decode_batch(message: str | bytes) -> list[ChangeEvent]:
    return [ChangeEvent.from_json(item) for item in orjson.loads(message)]


def row_image(table: Table, raw: Any) -> dict[str, Any] | None:
    """A captured row (JSON from the change log) with values typed as queries return them."""
    if raw is None:
        return None
    data = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    out: dict[str, Any] = {}
    for column in table.columns:
        value = data.get(column.name)
        if column.kind is Kind.BLOB and isinstance(value, str):
            # SQLite's triggers hex-encode blobs; PostgreSQL's to_jsonb writes "\x<hex>".
            out[column.name] = base64.b64encode(bytes.fromhex(value.removeprefix("\\x"))).decode()
        else:
            out[column.name] = to_api(column.kind, value)
    return out


def decode_row(model: DatabaseModel, cursor: int, table_name: str, op: str, old: Any, new: Any) -> ChangeEvent | None:
    table = model.tables.get(table_name)
    if table is None:
        return None  # a table served before a schema change, or one we do not serve
    return ChangeEvent(
        cursor=int(cursor),
        table=table_name,
        type=op,  # type: ignore[arg-type]
        old=row_image(table, old),
        new=row_image(table, new),
    )
