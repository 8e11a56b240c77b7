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
from typing import TYPE_CHECKING, Any

from graphql import (
    GraphQLField,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    introspection_types,
    specified_scalar_types,
)

from graph.errors import StartupError
from graph.root_field import RootKind, root_field, tagged

if TYPE_CHECKING:
    from graph.rules.permissions import Permissions

log = logging.getLogger("forgegraph")

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
    """Every named type of the user's schema but its roots, introspection's and the standard scalars."""

    @property
    def names(self) -> frozenset[str]:
        return frozenset(name for fields in self.fields.values() for name in fields)


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
    types = tuple(t for name, t in core.type_map.items() if name not in skipped)
    return Extension(source, fields, types)


def _tagged(field: GraphQLField) -> GraphQLField:
    kwargs = field.to_kwargs()
    kwargs["extensions"] = {**(field.extensions or {}), **tagged(RootKind.CUSTOM)}
    return GraphQLField(**kwargs)


def is_custom(field: GraphQLField | None) -> bool:
    tag = root_field(field) if field is not None else None
    return tag is not None and tag.kind is RootKind.CUSTOM


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
    # Types first, all of them whatever is granted: the same error for every role.
    for type_ in extension.types:
        mine = generated.type_map.get(type_.name)
        if mine is not None and mine is not type_:
            raise StartupError(
                f"{extension.source}: type {type_.name!r} clashes with the generated type {mine.name!r}"
            )
    merged: dict[str, GraphQLObjectType | None] = {}
    for root in ROOTS:
        own = roots[root]
        fields: dict[str, GraphQLField] = dict(own.fields) if own is not None else {}
        for name, field in extension.fields[root].items():
            if name in fields:
                raise StartupError(
                    f"{extension.source}: {root} field {name!r} clashes with the generated field "
                    f"{GENERATED_ROOTS[root]}.{name}{_what(fields[name])}"
                )
            if granted(name):
                fields[name] = field
        if own is None and not fields:
            merged[root] = None
            continue
        merged[root] = GraphQLObjectType(own.name if own is not None else GENERATED_ROOTS[root], fields)
    return GraphQLSchema(
        query=merged["query"],
        mutation=merged["mutation"],
        subscription=merged["subscription"],
        types=[t for t in extension.types if t.name not in generated.type_map],
    )


def _what(field: GraphQLField) -> str:
    tag = root_field(field)
    if tag is None or tag.table is None:
        return ""
    return f" ({tag.kind.value} of table {tag.table!r})"
