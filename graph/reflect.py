"""Read a live database's catalogue into the table model.

Reflection goes through SQLAlchemy's inspector (one bulk call per kind of
catalogue fact), so SQLite and PostgreSQL take the same path. A table whose
columns cannot be read is reported in `DatabaseModel.skipped`, not fatal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from graph.model import Column, DatabaseModel, ForeignKey, Kind, Table, UniqueConstraint

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

# Bookkeeping tables that belong to tools, not to the user's data.
HIDDEN_TABLES = frozenset({"alembic_version"})
HIDDEN_PREFIXES = ("sqlite_", "_forgegraph")


def kind_of(sql_type: sa.types.TypeEngine[Any]) -> Kind:
    # Order matters: Boolean and Float are Numeric/Integer subclasses in places.
    checks: tuple[tuple[type[Any], Kind], ...] = (
        (sa.Boolean, Kind.BOOLEAN),
        (sa.BigInteger, Kind.BIGINT),
        (sa.Integer, Kind.INTEGER),
        (sa.Float, Kind.FLOAT),
        (sa.Numeric, Kind.NUMERIC),
        (sa.DateTime, Kind.DATETIME),
        (sa.Date, Kind.DATE),
        (sa.Time, Kind.TIME),
        (sa.JSON, Kind.JSON),
        (postgresql.ARRAY, Kind.JSON),
        (sa.LargeBinary, Kind.BLOB),
    )
    for cls, kind in checks:
        if isinstance(sql_type, cls):
            return kind
    return Kind.STRING


class _ZonedTimestamp(sa.TIMESTAMP):
    """A SQLite column declared `timestamptz` or `timestamp with time zone` (PostgreSQL's names)."""

    def __init__(self, *_precision: int) -> None:
        super().__init__(timezone=True)


class _ZonedTime(sa.TIME):
    """A SQLite column declared `timetz` or `time with time zone`."""

    def __init__(self, *_precision: int) -> None:
        super().__init__(timezone=True)


SQLITE_ZONED_TYPES: dict[str, type[Any]] = {
    "TIMESTAMPTZ": _ZonedTimestamp,
    "TIMESTAMP WITH TIME ZONE": _ZonedTimestamp,
    "TIMETZ": _ZonedTime,
    "TIME WITH TIME ZONE": _ZonedTime,
}
"""Declared types SQLAlchemy's SQLite reflection does not know: by SQLite's affinity rules it
would call them NUMERIC, and a date column would then refuse dates."""


def _is_hidden(name: str) -> bool:
    return name in HIDDEN_TABLES or name.startswith(HIDDEN_PREFIXES)


def _reflect(sync_conn: sa.Connection) -> DatabaseModel:
    if sync_conn.dialect.name == "sqlite":
        # On this connection's dialect only (the class's table is SQLAlchemy's, shared).
        dialect: Any = sync_conn.dialect
        dialect.ischema_names = {**dialect.ischema_names, **SQLITE_ZONED_TYPES}
    inspector = sa.inspect(sync_conn)
    schema = "public" if sync_conn.dialect.name == "postgresql" else None
    names = [n for n in inspector.get_table_names(schema=schema) if not _is_hidden(n)]
    views = [n for n in inspector.get_view_names(schema=schema) if not _is_hidden(n)]
    columns = inspector.get_multi_columns(schema=schema, kind=sa.engine.ObjectKind.ANY)
    pks = inspector.get_multi_pk_constraint(schema=schema)
    fks = inspector.get_multi_foreign_keys(schema=schema)
    uniques = inspector.get_multi_unique_constraints(schema=schema)

    tables: dict[str, Table] = {}
    skipped: list[str] = []
    for name in sorted(names + views):
        key = (schema, name)
        if key not in columns:
            skipped.append(f"table {name!r}: its columns could not be read")
            continue
        pk_info: Any = pks.get(key) or {}
        pk = tuple(pk_info.get("constrained_columns") or ())
        cols = tuple(_column(c, in_pk=c["name"] in pk, single_pk=len(pk) == 1) for c in columns[key])
        foreign = tuple(
            ForeignKey(
                columns=tuple(fk["constrained_columns"]),
                referred_table=fk["referred_table"],
                referred_columns=tuple(fk["referred_columns"]),
            )
            for fk in fks.get(key, ())
            if fk.get("referred_table") and not _is_hidden(fk["referred_table"])
        )
        constraints = [UniqueConstraint(pk_info.get("name") or f"{name}_pkey", pk)] if pk else []
        constraints += sorted(
            (
                UniqueConstraint(u.get("name") or "_".join((name, *u["column_names"], "key")), tuple(u["column_names"]))
                for u in uniques.get(key, ())
                if u.get("column_names")
            ),
            key=lambda c: c.name,
        )
        tables[name] = Table(
            name=name,
            columns=cols,
            primary_key=pk,
            foreign_keys=foreign,
            is_view=name in views,
            constraints=tuple(constraints),
        )
    return DatabaseModel(dialect=sync_conn.dialect.name, tables=tables, skipped=tuple(skipped))


def _column(info: Any, *, in_pk: bool, single_pk: bool) -> Column:
    sql_type = info["type"]
    kind = kind_of(sql_type)
    # An integer primary key alone is a rowid (SQLite) or a serial (PostgreSQL)
    # in every case we serve; either way the database fills it in.
    implicit = in_pk and single_pk and kind in (Kind.INTEGER, Kind.BIGINT)
    return Column(
        name=info["name"],
        kind=kind,
        nullable=bool(info.get("nullable", True)) and not in_pk,
        has_default=info.get("default") is not None or implicit or bool(info.get("identity")),
        db_type=_type_name(sql_type),
    )


def _type_name(sql_type: sa.types.TypeEngine[Any]) -> str:
    if isinstance(sql_type, sa.types.NullType):
        return ""
    try:
        name = str(sql_type)
    except sa.exc.CompileError:  # a dialect-only type the generic compiler cannot print
        name = type(sql_type).__name__
    # The generic compiler drops the time zone, which decides how values bind.
    return f"{name} WITH TIME ZONE" if getattr(sql_type, "timezone", False) else name


async def reflect(engine: AsyncEngine) -> DatabaseModel:
    async with engine.connect() as conn:
        return await conn.run_sync(_reflect)
