"""What every statement of the compiled path filters, orders and caps rows with, per table.

The statement builders (graph.compile) take the tables, the `bool_exp`
compiler, the orderings and `--max-limit` from one `Reader`, so queries and
mutations' answers read rows alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from graph.rules.to_sql import Condition, Filters, Visible
from graph.sql.order import Orderings
from graph.sql.values import to_db

if TYPE_CHECKING:
    from graph.model import DatabaseModel, Table


class Reader:
    def __init__(
        self, model: DatabaseModel, tables: Mapping[str, sa.Table], *, max_rows: int = 0
    ) -> None:
        self.model = model
        self.tables = tables
        self.max_rows = max_rows
        """--max-limit: rows per list (per parent row for relationships); 0 means no cap."""
        self.filters = Filters(model, tables)
        self.orderings = Orderings(model, tables)

    def where(
        self, table: str, exp: Mapping[str, Any] | None, visible: Visible | None = None
    ) -> Condition:
        return self.filters.compile(table, exp, visible=visible)

    def pk_condition(self, table: Table, values: Mapping[str, Any]) -> Condition:
        core = self.tables[table.name]
        return sa.and_(
            sa.true(),
            *(
                core.c[name] == to_db(table.column(name), values[name], self.model.dialect)
                for name in table.primary_key
            ),
        )
