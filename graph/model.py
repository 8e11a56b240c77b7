"""The table model: what reflection found, as plain frozen data.

Everything after reflection (naming, schema build, SQL, events) reads this
model and nothing else about the database's catalogue.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import cached_property


class Kind(enum.Enum):
    """How a column's values travel through GraphQL (SPEC section 4, Scalars)."""

    INTEGER = "integer"
    BIGINT = "bigint"
    """Declared BIGINT (PostgreSQL bigint/bigserial, SQLite columns declared so): Hasura's `bigint`."""
    FLOAT = "float"
    STRING = "string"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    DATE = "date"
    TIME = "time"
    JSON = "json"
    NUMERIC = "numeric"
    BLOB = "blob"


@dataclass(frozen=True)
class Column:
    name: str
    """The GraphQL field's name (graph.naming); the database's, unless renamed."""
    kind: Kind
    nullable: bool
    has_default: bool = False
    db_type: str = ""
    sql_name: str = ""
    """The database's name, which every statement written by hand quotes (defaults to `name`)."""

    def __post_init__(self) -> None:
        if not self.sql_name:
            object.__setattr__(self, "sql_name", self.name)


@dataclass(frozen=True)
class ForeignKey:
    """`columns` of the owning table reference `referred_columns` of `referred_table`."""

    columns: tuple[str, ...]
    referred_table: str
    referred_columns: tuple[str, ...]


@dataclass(frozen=True)
class UniqueConstraint:
    """The primary key or a UNIQUE constraint: what an upsert's `on_conflict` may name.

    `name` is the database's, or PostgreSQL's default for the same DDL where
    the database names none (SQLite's inline PRIMARY KEY and UNIQUE).
    """

    name: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Relationship:
    """A field that walks a foreign key from one table to another.

    An object relationship sits on the referencing table and yields at most one
    row; an array relationship sits on the referenced table and yields a list.
    `local_columns[i]` joins `remote_columns[i]`.
    """

    name: str
    is_array: bool
    table: str
    remote_table: str
    local_columns: tuple[str, ...]
    remote_columns: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    name: str
    """The table's GraphQL name (graph.naming): events' `table`, permission rules' key."""
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()
    relationships: tuple[Relationship, ...] = ()
    is_view: bool = False
    constraints: tuple[UniqueConstraint, ...] = ()
    """The primary key's first, then the UNIQUE constraints, by name."""
    sql_name: str = ""
    """The database's name (defaults to `name`). Columns, keys and relationships name columns by `name`."""
    root_fields: tuple[tuple[str, str], ...] = ()
    """Custom root field names by kind (`select_by_pk`, ...: graph.inflection.ROOT_FIELDS), from metadata."""

    def __post_init__(self) -> None:
        if not self.sql_name:
            object.__setattr__(self, "sql_name", self.name)

    @property
    def is_writable(self) -> bool:
        return bool(self.primary_key)

    def column(self, name: str) -> Column:
        return self._columns_by_name[name]

    # Cached: every write and every compiled statement asks, per request.
    @cached_property
    def _columns_by_name(self) -> dict[str, Column]:
        return {column.name: column for column in self.columns}

    @cached_property
    def relationships_by_name(self) -> dict[str, Relationship]:
        """Its relationships by field name; one named like a column is not a field (the column is)."""
        names = set(self.column_names)
        return {r.name: r for r in self.relationships if r.name not in names}

    @cached_property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


@dataclass(frozen=True)
class Problem:
    """A table, column or relationship left out of the API, and why (`GET /schema/problems`)."""

    table: str
    reason: str
    column: str | None = None

    def __str__(self) -> str:
        where = f"table {self.table!r}" if self.column is None else f"column {self.table}.{self.column}"
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class DatabaseModel:
    dialect: str
    tables: dict[str, Table] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()
    """Human-readable reasons for tables or columns left out of the API."""
    inflection: str = "hasura"
    """The naming convention (graph.inflection.Inflection): `hasura` or `graphql-default`."""
    problems: tuple[Problem, ...] = ()
    """What was left out of the API by name (database names), as `GET /schema/problems` lists it."""

    def table(self, name: str) -> Table:
        return self.tables[name]

    @cached_property
    def by_sql_name(self) -> dict[str, Table]:
        """The served tables by their database names (the change log's `table_name`)."""
        return {t.sql_name: t for t in self.tables.values()}
