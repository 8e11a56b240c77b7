"""SQLAlchemy Core tables built from the model (not reflected again).

Columns are untyped on purpose: values are converted by `graph.sql.values`,
so the driver's own Python values come back untouched.
"""

from __future__ import annotations

import sqlalchemy as sa

from graph.model import DatabaseModel


def core_tables(model: DatabaseModel) -> dict[str, sa.Table]:
    metadata = sa.MetaData()
    schema = "public" if model.dialect == "postgresql" else None
    return {
        # Keyed by GraphQL names (`core.c[column.name]`), written with the database's.
        table.name: sa.Table(
            table.sql_name,
            metadata,
            *(
                sa.Column(
                    c.sql_name,
                    sa.types.NullType(),
                    key=c.name,
                    primary_key=c.name in table.primary_key,
                    # The database fills these in; saying so keeps SQLAlchemy from warning.
                    server_default=sa.FetchedValue() if c.has_default else None,
                )
                for c in table.columns
            ),
            schema=schema,
        )
        for table in model.tables.values()
    }
