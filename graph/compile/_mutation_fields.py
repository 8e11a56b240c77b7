"""A validated mutation operation read into its root fields and what they select.

Pure: no SQL, no I/O. Every generated mutation field is read, selecting
columns, `__typename` and relationships; a root field the schema builder did
not tag raises `NotPlanned`; a custom one (graph.extend) is read as its
nodes only, for graphql-core to execute in the transaction
(graph.compile.custom). @skip/@include are applied with the request's variables, so a
document using them is read once per set of their values (`directive_variables`).

Each answer is completed as graphql-core completes it, errors included: a
column's value through `to_api_or_stored`, then the GraphQL scalar; a value
the scalar refuses is an error at its own path, and its field null; a null
for a non-null field is an error that nulls the nearest nullable parent (the
root field, since `returning` and its items are non-null).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from graphql import (
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLNonNull,
    GraphQLObjectType,
    OperationType,
    Visitor,
    get_named_type,
    located_error,
    visit,
)
from graphql.execution.values import get_argument_values

from graph import inflection
from graph.compile.selection import collect_fields
from graph.root_field import RootKind, root_field
from graph.sql.values import to_api_or_stored

if TYPE_CHECKING:
    from graphql import (
        DirectiveNode,
        DocumentNode,
        FieldNode,
        GraphQLField,
        GraphQLScalarType,
        GraphQLSchema,
        OperationDefinitionNode,
        SelectionSetNode,
    )
    from graphql.execution.values import VariableValues

    from graph.model import DatabaseModel, Kind, Table

TYPENAME = "__typename"
INSERT_ONE, INSERT, UPDATE_BY_PK, UPDATE, UPDATE_MANY, DELETE_BY_PK, DELETE = (
    RootKind.INSERT_ONE,
    RootKind.INSERT,
    RootKind.UPDATE_BY_PK,
    RootKind.UPDATE,
    RootKind.UPDATE_MANY,
    RootKind.DELETE_BY_PK,
    RootKind.DELETE,
)
CUSTOM = RootKind.CUSTOM
MUTATIONS = frozenset({INSERT_ONE, INSERT, UPDATE_BY_PK, UPDATE, UPDATE_MANY, DELETE_BY_PK, DELETE})
ONE_ROW = (INSERT_ONE, UPDATE_BY_PK, DELETE_BY_PK)
Path = list[str | int]


class NotPlanned(Exception):
    """A root field the compiler does not own: the request's `unexpected` error."""


class Nulled(Exception):
    """A non-null field completed to null: its error nulls the nearest nullable parent."""

    def __init__(self, error: GraphQLError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(frozen=True)
class Leaf:
    """A column (or `__typename`, index -1) of the written row."""

    key: str
    nodes: tuple[FieldNode, ...]
    index: int
    kind: Kind | None
    scalar: GraphQLScalarType | None
    non_null: bool
    name: str


@dataclass(frozen=True)
class Related:
    """A relationship of the written row, answered by `_mutation_related`."""

    key: str


@dataclass(frozen=True)
class Picker:
    """What a selection takes from one written row, in response-key order."""

    typename: str
    table: Table
    fields: tuple[Leaf | Related, ...]
    nodes: tuple[FieldNode, ...]
    """The selection's own nodes: its relationships are read from them per request."""

    @property
    def related(self) -> bool:
        return any(isinstance(f, Related) for f in self.fields)

    def pick(
        self, row: Sequence[Any], related: Mapping[str, Any] | None, path: Path, errors: list[GraphQLError]
    ) -> dict[str, Any]:
        """The row's answer; a field error is added to `errors`, Nulled raised for a non-null one."""
        out: dict[str, Any] = {}
        for part in self.fields:
            if isinstance(part, Related):
                out[part.key] = related[part.key] if related is not None else None
            elif part.index < 0:
                out[part.key] = self.typename
            else:
                out[part.key] = self._leaf(part, row[part.index], [*path, part.key], errors)
        return out

    def _leaf(self, part: Leaf, raw: Any, path: Path, errors: list[GraphQLError]) -> Any:
        assert part.kind is not None
        value = to_api_or_stored(part.kind, raw)
        try:
            if value is None:
                if part.non_null:
                    raise TypeError(f"Cannot return null for non-nullable field {self.typename}.{part.name}.")
                return None
            assert part.scalar is not None
            serialized = part.scalar.coerce_output_value(value)
            if serialized is None:
                raise TypeError(
                    f"Expected `{part.scalar.name}.coerce_output_value({value!r})`"
                    f" to return non-nullable value, returned: None"
                )
            return serialized
        except Exception as raw_error:  # graphql-core's field error, at the field's path
            error = located_error(raw_error, list(part.nodes), path)
            if part.non_null:
                raise Nulled(error) from raw_error
            errors.append(error)
            return None


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
    nodes: tuple[FieldNode, ...]
    one: Picker | None = None
    """The selection of a one-row field (insert_one, update_by_pk, delete_by_pk)."""
    response: tuple[ResponsePart, ...] = ()
    """The selection of a `t_mutation_response` field (insert, update, delete; each of update_many's)."""
    arguments: Mapping[str, Any] | None = None
    """The coerced arguments when they name no variable (the same for every request)."""
    typename: str = ""
    """The root type's name, for the root's own __typename."""

    @cached_property
    def reads_relationships(self) -> bool:
        """Whether its answer selects relationships (reads of any size)."""
        pickers = [self.one, *(part.returning for part in self.response)]
        return any(picker is not None and picker.related for picker in pickers)

    def coerce(self, variables: VariableValues) -> Mapping[str, Any]:
        """The field's arguments, as graphql-core coerces them (from its first node)."""
        if self.arguments is not None:
            return self.arguments
        if self.field is None:
            return {}
        return get_argument_values(self.field, self.nodes[0], variables)


@dataclass(frozen=True)
class MutationOperation:
    fields: tuple[MutationField, ...]
    fragments: Mapping[str, FragmentDefinitionNode] = field(default_factory=dict)


class _Finds(Visitor):
    """The names of the variables its directives read, and whether it has any."""

    def __init__(self) -> None:
        super().__init__()
        self.directives = False
        self.names: set[str] = set()

    def enter_directive(self, node: DirectiveNode, *_: Any) -> None:
        self.directives = True
        for argument in node.arguments or ():
            visit(argument, _VariableNames(self.names))


class _VariableNames(Visitor):
    def __init__(self, names: set[str]) -> None:
        super().__init__()
        self.names = names

    def enter_variable(self, node: Any, *_: Any) -> None:
        self.names.add(node.name.value)


def directive_variables(document: DocumentNode) -> tuple[str, ...] | None:
    """The variables @skip/@include read (sorted); None when the document has no directive."""
    finder = _Finds()
    visit(document, finder)
    return tuple(sorted(finder.names)) if finder.directives else None


def _uses_variables(node: FieldNode) -> bool:
    names: set[str] = set()
    for argument in node.arguments or ():
        visit(argument, _VariableNames(names))
    return bool(names)


def read_mutation(
    schema: GraphQLSchema,
    model: DatabaseModel,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: VariableValues,
) -> MutationOperation:
    """The operation's root fields, with directives applied for `variables`; or NotPlanned."""
    mutation = schema.mutation_type
    if operation.operation is not OperationType.MUTATION or mutation is None:
        raise NotPlanned("not a mutation")
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    reader = _Reader(schema, model, fragments, variables)
    out: list[MutationField] = []
    for key, node_list in reader.collect([operation.selection_set]).items():
        nodes = tuple(node_list)
        name = nodes[0].name.value
        if name == TYPENAME:
            out.append(MutationField(key, TYPENAME, None, None, nodes, typename=mutation.name))
            continue
        root = mutation.fields[name]
        tag = root_field(root)
        if tag is not None and tag.kind is CUSTOM:
            # Its arguments are graphql-core's to coerce when it executes the field.
            out.append(MutationField(key, CUSTOM, None, None, nodes))
            continue
        kind, table = _identify(name, root, model)
        one: Picker | None = None
        response: tuple[ResponsePart, ...] = ()
        if kind in ONE_ROW:
            one = reader.picker(table, nodes)
        else:
            response = reader.response(table, nodes)
        # graphql-core takes a field's arguments from its first node, as do we.
        arguments = None if _uses_variables(nodes[0]) else _literal_arguments(root, nodes[0])
        out.append(MutationField(key, kind, table, root, nodes, one, response, arguments))
    return MutationOperation(tuple(out), fragments)


def _literal_arguments(field: GraphQLField, node: FieldNode) -> Mapping[str, Any] | None:
    try:
        return get_argument_values(field, node)
    except GraphQLError:
        return None  # coerced per request, where the error is the field's


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
        variables: VariableValues,
    ) -> None:
        self.schema = schema
        self.model = model
        self.fragments = fragments
        self.variables = variables

    def collect(self, selection_sets: Sequence[SelectionSetNode | None]) -> dict[str, list[FieldNode]]:
        return collect_fields(self.fragments, self.variables, [s for s in selection_sets if s is not None])

    def picker(self, table: Table, nodes: Sequence[FieldNode]) -> Picker:
        object_type = self.schema.get_type(inflection.inflection_of(self.model).object(table.name))
        if not isinstance(object_type, GraphQLObjectType):
            raise NotPlanned(f"no object type {table.name!r}")
        index = {c.name: i for i, c in enumerate(table.columns)}
        relationships = {r.name for r in table.relationships}
        relationships |= {inflection.inflection_of(self.model).aggregate_field(r.name) for r in table.relationships if r.is_array}
        fields: list[Leaf | Related] = []
        for key, field_nodes in self.collect([n.selection_set for n in nodes]).items():
            name = field_nodes[0].name.value
            if name == TYPENAME:
                fields.append(Leaf(key, tuple(field_nodes), -1, None, None, False, name))
                continue
            field = object_type.fields[name]
            if name in relationships and name not in index:
                fields.append(Related(key))
                continue
            scalar: Any = get_named_type(field.type)
            non_null = isinstance(field.type, GraphQLNonNull)
            column = index[name]
            fields.append(Leaf(key, tuple(field_nodes), column, table.columns[column].kind, scalar, non_null, name))
        return Picker(object_type.name, table, tuple(fields), tuple(nodes))

    def response(self, table: Table, nodes: Sequence[FieldNode]) -> tuple[ResponsePart, ...]:
        parts = []
        for key, field_nodes in self.collect([n.selection_set for n in nodes]).items():
            name = field_nodes[0].name.value
            if name == "returning":
                parts.append(ResponsePart(key, name, self.picker(table, field_nodes)))
            else:  # affected_rows (as the inflection spells it), __typename: validation allows nothing else
                parts.append(ResponsePart(key, name if name == TYPENAME else "affected_rows"))
        return tuple(parts)
