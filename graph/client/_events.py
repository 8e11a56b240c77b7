"""A change event as the SDK hands it to callbacks and iterators."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

ChangeType = Literal["create", "update", "delete"]


@dataclass(frozen=True)
class ChangeEvent:
    """One committed row change (SPEC section 5's `TableChange`)."""

    type: ChangeType
    table: str
    id: Any
    """The primary key value; a dict for composite keys; None when the role may not select every key column."""
    record: dict[str, Any] | None
    """The row after the change; None on delete."""
    old_record: dict[str, Any] | None
    """The row before the change (update, delete), where the role may see it."""
    cursor: str
    """Decimal digits, strictly increasing: resume after this event with `since=`."""

    @property
    def position(self) -> int:
        """The cursor as a number, for ordering."""
        return int(self.cursor)

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> ChangeEvent:
        return cls(
            type=data["type"],
            table=data["table"],
            id=data.get("id"),
            record=data.get("record"),
            old_record=data.get("old_record"),
            cursor=str(data["cursor"]),
        )
