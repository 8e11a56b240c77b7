"""The metadata file (`--metadata FILE`): names users choose, as Hasura's table metadata spells them.

```yaml
inflection: graphql-default        # or hasura (the default: database names as they are)
tables:
  chinook_artist:                  # the database's table name
    custom_name: artist
    custom_root_fields: {select: artists, select_by_pk: artist}
    column_config: {ArtistId: {custom_name: id}}
    relationships: {albums: records}   # generated name -> custom name
  django_migrations: {exclude: true}
```

This module reads and checks the file's shape; graph.naming applies it to the
model and refuses what does not fit the database (an unknown table or column,
a clash). Every error is one line naming the entry (`MetadataError`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from graph.errors import StartupError
from graph.inflection import ROOT_FIELDS, is_graphql_name
from graph.rules._text import PermissionsError, parse_text

INFLECTIONS = ("hasura", "graphql-default")
ROOT_FIELD_KINDS = tuple(ROOT_FIELDS)
TABLE_KEYS = frozenset(
    {"custom_name", "custom_root_fields", "column_config", "custom_column_names", "relationships", "exclude",
     "configuration"}
)


class MetadataError(StartupError):
    """A metadata file that cannot be read or does not fit the database."""


@dataclass(frozen=True)
class TableMetadata:
    custom_name: str | None = None
    root_fields: Mapping[str, str] = field(default_factory=dict)
    """Root field kind (ROOT_FIELD_KINDS) -> its name."""
    columns: Mapping[str, str] = field(default_factory=dict)
    """Database column name -> GraphQL field name."""
    relationships: Mapping[str, str] = field(default_factory=dict)
    """Generated relationship name (as it would be served) -> the name to serve it under."""
    exclude: bool = False


@dataclass(frozen=True)
class Metadata:
    inflection: str = "hasura"
    tables: Mapping[str, TableMetadata] = field(default_factory=dict)
    source: str = "metadata"
    """The file's path, for error messages."""

    def fail(self, entry: str, reason: str) -> MetadataError:
        return MetadataError(f"{self.source}: {entry}: {reason}")


def load_metadata(path: str) -> Metadata:
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except UnicodeDecodeError as error:
        raise MetadataError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise MetadataError(f"cannot read metadata file {path}: {error.strerror or error}") from None
    return parse_metadata(text, path)


def parse_metadata(text: str, source: str = "metadata") -> Metadata:
    try:
        data = parse_text(text, source)
    except PermissionsError as error:
        raise MetadataError(str(error)) from None
    if data is None:
        return Metadata(source=source)
    if not isinstance(data, dict):
        raise MetadataError(f"{source}: expected a mapping with `inflection` and `tables`")
    unknown = sorted(set(map(str, data)) - {"inflection", "tables", "version"})
    if unknown:
        raise MetadataError(f"{source}: unknown key {unknown[0]!r} (expected inflection, tables)")
    inflection = data.get("inflection", "hasura")
    if inflection not in INFLECTIONS:
        raise MetadataError(f"{source}: inflection: expected one of {', '.join(INFLECTIONS)}, not {inflection!r}")
    tables_data = data.get("tables") or {}
    if not isinstance(tables_data, dict):
        raise MetadataError(f"{source}: tables: expected a mapping of database table names")
    tables = {str(name): _table(source, str(name), entry) for name, entry in tables_data.items()}
    return Metadata(inflection=inflection, tables=tables, source=source)


def _table(source: str, name: str, entry: Any) -> TableMetadata:
    where = f"{source}: tables.{name}"
    if entry is None:
        return TableMetadata()
    if not isinstance(entry, dict):
        raise MetadataError(f"{where}: expected a mapping")
    if isinstance(entry.get("configuration"), dict):  # Hasura nests these under `configuration`
        entry = {**{k: v for k, v in entry.items() if k != "configuration"}, **entry["configuration"]}
    unknown = sorted(set(map(str, entry)) - TABLE_KEYS)
    if unknown:
        raise MetadataError(f"{where}: unknown key {unknown[0]!r} (expected {', '.join(sorted(TABLE_KEYS))})")
    exclude = entry.get("exclude", False)
    if not isinstance(exclude, bool):
        raise MetadataError(f"{where}.exclude: expected true or false")
    root_fields = _names(f"{where}.custom_root_fields", entry.get("custom_root_fields"))
    bad = sorted(set(root_fields) - set(ROOT_FIELD_KINDS))
    if bad:
        raise MetadataError(
            f"{where}.custom_root_fields: unknown root field {bad[0]!r} (expected {', '.join(ROOT_FIELD_KINDS)})"
        )
    columns = dict(_names(f"{where}.custom_column_names", entry.get("custom_column_names")))
    config = entry.get("column_config") or {}
    if not isinstance(config, dict):
        raise MetadataError(f"{where}.column_config: expected a mapping of database column names")
    for column, settings in config.items():
        if not isinstance(settings, dict) or set(map(str, settings)) - {"custom_name", "comment"}:
            raise MetadataError(f"{where}.column_config.{column}: expected {{custom_name: NAME}}")
        if "custom_name" in settings:
            columns[str(column)] = _name(f"{where}.column_config.{column}.custom_name", settings["custom_name"])
    custom_name = entry.get("custom_name")
    if custom_name is not None:
        custom_name = _name(f"{where}.custom_name", custom_name)
    return TableMetadata(
        custom_name=custom_name,
        root_fields=MappingProxyType(root_fields),
        columns=MappingProxyType(columns),
        relationships=MappingProxyType(_names(f"{where}.relationships", entry.get("relationships"))),
        exclude=exclude,
    )


def _names(where: str, given: Any) -> dict[str, str]:
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise MetadataError(f"{where}: expected a mapping")
    out = {}
    for key, value in given.items():
        if isinstance(value, dict) and "name" in value:  # Hasura's {name: ..., comment: ...}
            value = value["name"]
        out[str(key)] = _name(f"{where}.{key}", value)
    return out


def _name(where: str, value: Any) -> str:
    if not isinstance(value, str) or not is_graphql_name(value):
        raise MetadataError(f"{where}: {value!r} is not a name GraphQL can carry ([_A-Za-z][_0-9A-Za-z]*)")
    return value
