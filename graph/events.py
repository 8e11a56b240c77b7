"""Change events: one committed change to one row, as every transport carries it."""

from __future__ import annotations

import base64
import decimal
import json
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



def row_image(table: Table, raw: Any) -> dict[str, Any] | None:
    """A captured row (JSON from the change log) with values typed as queries return them."""
    if raw is None:
        return None
    exact = False
    if isinstance(raw, str | bytes):
        # PostgreSQL's to_jsonb writes numeric as JSON numbers: read them as
        # Decimal so "4.50" stays "4.50", as queries return it.
        exact = any(c.kind is Kind.NUMERIC for c in table.columns)
        data = json.loads(raw, parse_float=decimal.Decimal) if exact else orjson.loads(raw)
    else:
        data = raw
    out: dict[str, Any] = {}
    for column in table.columns:
        value = data.get(column.name)
        if column.kind is Kind.JSON and exact:
            out[column.name] = to_api(column.kind, _plain_numbers(value))
        elif column.kind is Kind.BLOB and isinstance(value, str):
            # SQLite's triggers hex-encode blobs; PostgreSQL's to_jsonb writes "\x<hex>".
            out[column.name] = base64.b64encode(bytes.fromhex(value.removeprefix("\\x"))).decode()
        else:
            out[column.name] = to_api(column.kind, value)
    return out


def _plain_numbers(value: Any) -> Any:
    """JSON column values as JSON numbers again, after an exact (Decimal) parse."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, list):
        return [_plain_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain_numbers(v) for k, v in value.items()}
    return value


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
