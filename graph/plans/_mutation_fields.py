"""A validated mutation operation read once into its root fields and what they select.

Pure: no SQL, no I/O, no variables. Only documents made of the generated
mutation fields, selecting columns and `__typename` (no relationships, no
@skip/@include), are read; anything else raises `NotPlanned` and is answered
by graphql-core as before. Each answer is built from the RETURNING rows the
way graphql-core would complete it: column values through `to_api`, then the
GraphQL scalar's `serialize`; a null for a non-null field, or a value the
scalar refuses, raises `Anomaly` so that the request is answered (and its
error told) by the normal path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphql import (
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLNonNull,
    GraphQLObjectType,
    OperationType,
    Visitor,
    get_named_type,
    get_operation_ast,
    visit,
)
from graphql.execution.values import get_argument_values

from graph.root_field import RootKind, root_field
from graph.selection import collect_fields
from graph.sql.values import to_api

if TYPE_CHECKING:
    from graphql import (
        DocumentNode,
        FieldNode,
        GraphQLField,
        GraphQLSchema,
        SelectionSetNode,
        VariableDefinitionNode,
    )

    from graph.model import DatabaseModel, Kind, Table

TYPENAME = "__typename"
INSERT_ONE, INSERT, UPDATE_BY_PK, UPDATE, DELETE_BY_PK, DELETE = (
    RootKind.INSERT_ONE,
    RootKind.INSERT,
    RootKind.UPDATE_BY_PK,
    RootKind.UPDATE,
    RootKind.DELETE_BY_PK,
    RootKind.DELETE,
)
MUTATIONS = frozenset({INSERT_ONE, INSERT, UPDATE_BY_PK, UPDATE, DELETE_BY_PK, DELETE})
ONE_ROW = (INSERT_ONE, UPDATE_BY_PK, DELETE_BY_PK)


class NotPlanned(Exception):
    """The operation is not one the mutation plans answer; graphql-core will."""


class Anomaly(Exception):
    """A row the answer cannot hold as graphql-core would complete it (a null for a
    non-null field, an Int out of range): the normal path answers, with its error."""


@dataclass(frozen=True)
class Picker:
    """The fields a selection takes from one row of a table, in response-key order."""

    typename: str
    fields: tuple[tuple[str, int, Kind | None, Callable[[Any], Any] | None, bool], ...]
    """(response key, column index or -1 for __typename, kind, serialize, non-null)"""

    def pick(self, row: Sequence[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, index, kind, serialize, non_null in self.fields:
            if index < 0:
                out[key] = self.typename
                continue
            try:
                value = None if kind is None else to_api(kind, row[index])
                if value is not None and serialize is not None:
                    value = serialize(value)
                    if value is None:  # graphql-core refuses a scalar serialized to null
                        raise ValueError("serialized to null")
            except Exception as error:  # graphql-core reports these as field errors
                raise Anomaly(f"{key!r}: {error}") from error
            if value is None and non_null:
                raise Anomaly(f"null for the non-null field {key!r}")
            out[key] = value
        return out


@dataclass(frozen=True)
class ResponsePart:
    """One key of a `t_mutation_response`: affected_rows, returning or __typename."""

    key: str
    name: str
    returning: Picker | None = None


@dataclass(frozen=True)
class MutationField:
    key: str
    kind: str
    """A mutation's RootKind, or TYPENAME for the root's own __typename."""
    table: Table | None
    field: GraphQLField | None
    node: FieldNode | None
    one: Picker | None = None
    """The selection of a one-row field (insert_one, update_by_pk, delete_by_pk)."""
    response: tuple[ResponsePart, ...] = ()
    """The selection of a `t_mutation_response` field (insert, update, delete)."""
    arguments: Mapping[str, Any] | None = None
    """The coerced arguments when they name no variable (the same for every request)."""
    typename: str = ""
    """The root type's name, for the root's own __typename."""


@dataclass(frozen=True)
class MutationOperation:
    fields: tuple[MutationField, ...]
    variable_definitions: tuple[VariableDefinitionNode, ...]


class _Finds(Visitor):
    """Whether a node of one kind occurs in what it visits."""

    def __init__(self) -> None:
        super().__init__()
        self.found = False


class _FindsDirectives(_Finds):
    def enter_directive(self, *_: Any) -> None:
        self.found = True


class _FindsVariables(_Finds):
    def enter_variable(self, *_: Any) -> None:
        self.found = True


def _has_directives(document: DocumentNode) -> bool:
    finder = _FindsDirectives()
    visit(document, finder)
    return finder.found


def _uses_variables(node: FieldNode) -> bool:
    finder = _FindsVariables()
    for argument in node.arguments or ():
        visit(argument, finder)
    return finder.found


def read_mutation(
    schema: GraphQLSchema, model: DatabaseModel, document: DocumentNode, operation_name: str | None
) -> MutationOperation:
    """The operation's root fields and variables, or NotPlanned."""
    operation = get_operation_ast(document, operation_name)
    mutation = schema.mutation_type
    if operation is None or operation.operation is not OperationType.MUTATION or mutation is None:
        raise NotPlanned("not a mutation")
    if _has_directives(document):
        raise NotPlanned("directives make the selection depend on variables")
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    reader = _Reader(schema, model, fragments)
    out: list[MutationField] = []
    for key, nodes in reader.collect([operation.selection_set]).items():
        name = nodes[0].name.value
        if name == TYPENAME:
            out.append(MutationField(key, TYPENAME, None, None, None, typename=mutation.name))
            continue
        field = mutation.fields[name]
        kind, table = _identify(name, field, model)
        one: Picker | None = None
        response: tuple[ResponsePart, ...] = ()
        if kind in ONE_ROW:
            one = reader.picker(table, nodes)
        else:
            response = reader.response(table, nodes)
        # graphql-core takes a field's arguments from its first node, as do we.
        arguments = None if _uses_variables(nodes[0]) else _literal_arguments(field, nodes[0])
        out.append(MutationField(key, kind, table, field, nodes[0], one, response, arguments))
    return MutationOperation(tuple(out), tuple(operation.variable_definitions or ()))


def _literal_arguments(field: GraphQLField, node: FieldNode) -> Mapping[str, Any] | None:
    try:
        return get_argument_values(field, node)
    except GraphQLError:
        return None  # coerced per request, where the normal path reports the error


def _identify(name: str, field: GraphQLField, model: DatabaseModel) -> tuple[str, Table]:
    """Which generated mutation the field is, and of which table, as the schema builder tagged it."""
    tag = root_field(field)
    if tag is None or tag.kind not in MUTATIONS or tag.table is None:
        raise NotPlanned(f"root field {name!r}")
    return tag.kind, model.table(tag.table)


class _Reader:
    def __init__(
        self,
        schema: GraphQLSchema,
        model: DatabaseModel,
        fragments: Mapping[str, FragmentDefinitionNode],
    ) -> None:
        self.schema = schema
        self.model = model
        self.fragments = fragments

    def collect(self, selection_sets: Sequence[SelectionSetNode | None]) -> dict[str, list[FieldNode]]:
        return collect_fields(self.fragments, None, [s for s in selection_sets if s is not None])

    def picker(self, table: Table, nodes: Sequence[FieldNode]) -> Picker:
        object_type = self.schema.get_type(table.name)
        if not isinstance(object_type, GraphQLObjectType):
            raise NotPlanned(f"no object type {table.name!r}")
        index = {c.name: i for i, c in enumerate(table.columns)}
        fields: list[tuple[str, int, Kind | None, Callable[[Any], Any] | None, bool]] = []
        for key, field_nodes in self.collect([n.selection_set for n in nodes]).items():
            name = field_nodes[0].name.value
            if name == TYPENAME:
                fields.append((key, -1, None, None, False))
                continue
            field = object_type.fields.get(name)
            if name not in index or field is None:
                raise NotPlanned(f"field {name!r} of {table.name!r} (a relationship)")
            serialize = getattr(get_named_type(field.type), "serialize", None)
            non_null = isinstance(field.type, GraphQLNonNull)
            fields.append((key, index[name], table.columns[index[name]].kind, serialize, non_null))
        return Picker(object_type.name, tuple(fields))

    def response(self, table: Table, nodes: Sequence[FieldNode]) -> tuple[ResponsePart, ...]:
        parts = []
        for key, field_nodes in self.collect([n.selection_set for n in nodes]).items():
            name = field_nodes[0].name.value
            if name == "returning":
                parts.append(ResponsePart(key, name, self.picker(table, field_nodes)))
            elif name in ("affected_rows", TYPENAME):
                parts.append(ResponsePart(key, name))
            else:
                raise NotPlanned(f"field {name!r} of a mutation response")
        return tuple(parts)
