"""The user's strawberry schema, merged into every role's generated schema (SPEC section 9).

`create_app(extend=strawberry.Schema(...))` or `serve --extend module:attr`.
What is merged is graphql-core's: the root fields of strawberry's own
GraphQLSchema (`schema._schema`), with the resolvers strawberry gave them and
their argument and return types, and every other type of that schema. Each
root field is copied, tagged `RootKind.CUSTOM` (graph.root_field), into
`query_root`, `mutation_root` or `subscription_root` of each role's schema
it is granted to (`Permissions.custom_granted`). Pure and done once at
start-up: a name the generated schema already has (a root field, or a type
the user's schema defines differently) is a `StartupError` naming both.

A custom query or mutation field may return a generated table type: its
annotation names `table("posts")` (a placeholder strawberry type), its
resolver returns primary keys (a value, or a dict for a composite key; a
list of them for a list type), and the field takes the role's own `posts`
type, its rows read by the compiler under the role's rules
(`Context.rows`, graph.compile.custom). A role that cannot see the table
does not have the field.

Names are strawberry's: with `StrawberryConfig(auto_camel_case=False)` as
written in Python; with strawberry's default (camelCase) as strawberry
renamed them, which start-up logs.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as default
from typing import TYPE_CHECKING, Any

from graphql import (
    GraphQLError,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    introspection_types,
    specified_scalar_types,
    validate_schema,
)
from graphql.pyutils import is_awaitable

from graph.errors import StartupError
from graph.root_field import RootKind, root_field, table_type, tagged

if TYPE_CHECKING:
    from graph.rules.permissions import Permissions

log = logging.getLogger("forgegraph")
TABLE_MARK = "__forgegraph_table__"
STRAWBERRY_DEFINITION = "strawberry-definition"

ROOTS = ("query", "mutation", "subscription")
GENERATED_ROOTS = {"query": "query_root", "mutation": "mutation_root", "subscription": "subscription_root"}


@dataclass(frozen=True)
class Extension:
    """The root fields and types of a user's strawberry schema, ready to merge."""

    source: str
    """How the user named it, for messages (`app:schema`, or `create_app(extend=...)`)."""
    fields: Mapping[str, Mapping[str, GraphQLField]]
    """Per root ("query", "mutation", "subscription"), name -> the field, tagged CUSTOM."""
    types: tuple[GraphQLNamedType, ...]
    """Every named type of the user's schema but its roots, introspection's, the standard scalars
    and the placeholders of generated table types."""
    tables: frozenset[str] = frozenset()
    """The generated table types the root fields return (`table(...)`)."""
    shared: set[str] = default(default_factory=set)
    """The user's scalars replaced by the generated ones of the same name (`_share_scalars`)."""

    @property
    def names(self) -> frozenset[str]:
        return frozenset(name for fields in self.fields.values() for name in fields)


def table(name: str) -> Any:
    """A strawberry type standing for the generated type of table `name`, for custom fields to return.

    `async def checkout(...) -> table("orders")` (or `Orders = table("orders")`
    at module level, then `-> Orders`, `-> list[Orders]`, `-> Orders | None`):
    the resolver returns the rows' primary keys, the API answers the rows.
    """
    import strawberry

    placeholder = type(name, (), {"__annotations__": {"placeholder": bool}, "__module__": __name__})
    setattr(placeholder, TABLE_MARK, name)
    return strawberry.type(placeholder, name=name, description=f"The generated type of table {name!r}.")


def _table_of(type_: Any) -> str | None:
    """The table a placeholder type (`table(...)`) stands for, else None."""
    definition = (getattr(type_, "extensions", None) or {}).get(STRAWBERRY_DEFINITION)
    name = getattr(getattr(definition, "origin", None), TABLE_MARK, None)
    return name if isinstance(name, str) else None


def _named(type_: Any) -> Any:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    return type_


def load_extension(value: Any) -> Extension | None:
    """The extension `--extend` (or `create_app(extend=)`) names: `module:attr` or a strawberry.Schema.

    StartupError, one line, when the module does not import, the attribute
    is missing or not a strawberry schema, or its types cannot be merged.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return extension_of(_imported(value), value)
    return extension_of(value, "create_app(extend=...)")


def _imported(spec: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise StartupError(f"--extend {spec!r}: expected MODULE:ATTRIBUTE (e.g. app.api:schema)")
    # As uvicorn does: the module is looked for from the current directory too.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - any failure of the user's module is told in one line
        reason = " ".join(str(error).split()) or type(error).__name__
        raise StartupError(f"--extend {spec!r}: cannot import module {module_name!r}: {reason}") from None
    value = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise StartupError(f"--extend {spec!r}: module {module_name!r} has no attribute {attribute!r}")
        value = getattr(value, part)
    return value


def extension_of(schema: Any, source: str) -> Extension:
    """The root fields and types of a strawberry.Schema, each root field tagged CUSTOM."""
    import strawberry

    if not isinstance(schema, strawberry.Schema):
        raise StartupError(f"{source}: expected a strawberry.Schema, got {type(schema).__name__}")
    core: GraphQLSchema = schema._schema
    if schema.config.name_converter.auto_camel_case:
        log.warning(
            "%s: strawberry's auto_camel_case is on: its fields are served as strawberry renamed them "
            "(build it with StrawberryConfig(auto_camel_case=False) to keep the names as written)",
            source,
        )
    roots = {"query": core.query_type, "mutation": core.mutation_type, "subscription": core.subscription_type}
    fields: dict[str, dict[str, GraphQLField]] = {}
    for root, type_ in roots.items():
        fields[root] = {} if type_ is None else {n: _tagged(f) for n, f in type_.fields.items()}
    skipped = {t.name for t in roots.values() if t is not None} | set(introspection_types) | set(specified_scalar_types)
    types = tuple(t for name, t in core.type_map.items() if name not in skipped and _table_of(t) is None)
    tables = {name for t in core.type_map.values() if (name := _table_of(t)) is not None}
    for root, named in fields.items():
        for name, field in named.items():
            returned = _table_of(_named(field.type))
            if returned is not None and root == "subscription":
                raise StartupError(f"{source}: subscription field {name!r} cannot return a table type ({returned!r})")
    for named_type in types:
        for name, field in (getattr(named_type, "fields", None) or {}).items():
            returned = _table_of(_named(field.type))
            if returned is not None:
                raise StartupError(
                    f"{source}: {named_type.name}.{name} returns table({returned!r}): "
                    "only root fields may return table types"
                )
    return Extension(source, fields, types, frozenset(tables))


def _tagged(field: GraphQLField) -> GraphQLField:
    kwargs = field.to_kwargs()
    kwargs["extensions"] = {**(field.extensions or {}), **tagged(RootKind.CUSTOM)}
    return GraphQLField(**kwargs)


def is_custom(field: GraphQLField | None) -> bool:
    tag = root_field(field) if field is not None else None
    return tag is not None and tag.kind is RootKind.CUSTOM


def check_tables(extension: Extension | None, tables: Mapping[str, Any]) -> None:
    """Every table a custom field returns (`table(...)`) is one the database has."""
    for name in sorted(extension.tables if extension is not None else ()):
        if name not in tables:
            assert extension is not None
            raise StartupError(f"{extension.source}: table({name!r}) names no table of the database")


def check_grants(extension: Extension | None, permissions: Permissions) -> None:
    """Every custom field the permissions file grants is one the extension has."""
    names = extension.names if extension is not None else frozenset()
    for name in sorted(permissions.custom):
        if name not in names:
            where = f"{permissions.source}: custom.{name}"
            if extension is None:
                raise StartupError(f"{where}: no --extend schema is served, so there is no custom field {name!r}")
            raise StartupError(f"{where}: {extension.source} has no root field {name!r}")


def merge(
    generated: GraphQLSchema, extension: Extension | None, granted: Callable[[str], bool]
) -> GraphQLSchema:
    """`generated` with the extension's root fields that `granted` allows; StartupError on a clash."""
    if extension is None:
        return generated
    roots = {
        "query": generated.query_type,
        "mutation": generated.mutation_type,
        "subscription": generated.subscription_type,
    }
    shared = _share_scalars(extension, generated)
    # Types first, all of them whatever is granted: the same error for every role.
    for type_ in extension.types:
        mine = generated.type_map.get(type_.name)
        if mine is not None and mine is not type_ and type_.name not in shared:
            raise StartupError(
                f"{extension.source}: type {type_.name!r} clashes with the generated type {mine.name!r}"
            )
    merged: dict[str, GraphQLObjectType | None] = {}
    added = False
    for root in ROOTS:
        own = roots[root]
        fields: dict[str, GraphQLField] = dict(own.fields) if own is not None else {}
        for name, field in extension.fields[root].items():
            if name in fields:
                raise StartupError(
                    f"{extension.source}: {root} field {name!r} clashes with the generated field "
                    f"{GENERATED_ROOTS[root]}.{name}{_what(fields[name])}"
                )
            if not granted(name):
                continue
            returned = _table_of(_named(field.type))
            if returned is None:
                fields[name] = field
                added = True
                continue
            own_type = table_type(generated, returned)
            if own_type is not None:  # else the role cannot see the table
                fields[name] = _returning(field, returned, own_type)
                added = True
        if own is None and not fields:
            merged[root] = None
            continue
        merged[root] = GraphQLObjectType(own.name if own is not None else GENERATED_ROOTS[root], fields)
    try:
        schema = GraphQLSchema(
            query=merged["query"],
            mutation=merged["mutation"],
            subscription=merged["subscription"],
            # A role without custom fields shows none of their types either (its types
            # reachable from its fields are collected by graphql-core all the same).
            types=[t for t in extension.types if t.name not in generated.type_map and t.name not in shared]
            if added
            else [],
        )
        errors = validate_schema(schema)
    except (TypeError, ValueError, GraphQLError) as error:
        raise StartupError(f"{extension.source}: cannot be merged: {error}") from None
    if errors:
        raise StartupError(f"{extension.source}: cannot be merged: {errors[0].message}")
    return schema


def _share_scalars(extension: Extension, generated: GraphQLSchema) -> frozenset[str]:
    """The user's scalars named as generated ones (strawberry's `JSON`): the generated one serves both.

    A schema holds one type per name, so the user's types are changed in place
    to name the generated scalar (the same object for every role's schema).
    """
    ours: dict[str, GraphQLScalarType] = {}
    for type_ in extension.types:
        mine = generated.type_map.get(type_.name)
        if isinstance(type_, GraphQLScalarType) and isinstance(mine, GraphQLScalarType) and mine is not type_:
            ours[type_.name] = mine
    if not ours:
        return frozenset(extension.shared)

    def swapped(type_: Any) -> Any:
        if isinstance(type_, GraphQLNonNull):
            return GraphQLNonNull(swapped(type_.of_type))
        if isinstance(type_, GraphQLList):
            return GraphQLList(swapped(type_.of_type))
        return ours.get(type_.name, type_) if isinstance(type_, GraphQLScalarType) else type_

    fields: list[Any] = [f for root in extension.fields.values() for f in root.values()]
    for type_ in extension.types:
        if isinstance(type_, GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType):
            fields.extend(type_.fields.values())
    for field in fields:
        field.type = swapped(field.type)
        for argument in (getattr(field, "args", None) or {}).values():
            argument.type = swapped(argument.type)
    extension.shared.update(ours)
    return frozenset(extension.shared)


def _what(field: GraphQLField) -> str:
    tag = root_field(field)
    if tag is None or tag.table is None:
        return ""
    return f" ({tag.kind.value} of table {tag.table!r})"


def _returning(field: GraphQLField, table_name: str, own_type: GraphQLObjectType) -> GraphQLField:
    """`field` returning the role's own type of the table: its resolver's keys read as rows."""

    def rewrap(type_: Any) -> Any:
        if isinstance(type_, GraphQLNonNull):
            return GraphQLNonNull(rewrap(type_.of_type))
        if isinstance(type_, GraphQLList):
            return GraphQLList(rewrap(type_.of_type))
        return own_type

    many = _is_list(field.type)
    keys_of = field.resolve

    async def resolve(source: Any, info: Any, **args: Any) -> Any:
        keys = keys_of(source, info, **args) if keys_of is not None else None
        if is_awaitable(keys):
            keys = await keys
        return await info.context.rows(info, table_name, keys, many=many)

    kwargs = field.to_kwargs()
    kwargs["type_"] = rewrap(field.type)
    kwargs["resolve"] = resolve
    return GraphQLField(**kwargs)


def _is_list(type_: Any) -> bool:
    while isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)
