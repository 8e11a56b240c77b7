"""Custom root fields (graph.extend): executed by graphql-core, with the user's resolvers.

A query's custom fields are root fields the compiler does not own: graphql-core
answers them while completing the answer (graph.compile._query_shell), with a
`Context` whose database handle runs each statement on its own. A mutation's
custom field is one step of the request's job (graph.compile._mutation_writes):
the driver awaits it inside the transaction (`graph.dialect.Awaited`), and its
handle runs statements in that transaction, so what it writes commits or rolls
back with the generated fields of the request, and change capture sees it as
any write. graphql-core executes the field alone (its nodes in a document of
their own), so its value and its errors come back at the field's own path.

A custom field returning a generated table type (graph.extend.table) has its
resolver's primary keys read as rows by the compiler (`Custom.rows`): the
field's selection becomes a query of the table's list field, filtered by the
keys, answered by the query plans with the role's rules as any query is, in
the mutation's transaction when there is one (so it sees what was written).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from graphql import (
    ArgumentNode,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLError,
    NamedTypeNode,
    NameNode,
    NonNullTypeNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableDefinitionNode,
    VariableNode,
    execute,
    get_named_type,
    print_ast,
    specified_rules,
    validate,
)
from graphql.pyutils import is_awaitable
from graphql.validation import NoUnusedFragmentsRule, NoUnusedVariablesRule

from graph.compile.query_plans import IN_TRANSACTION
from graph.execution import Prepared
from graph.root_field import RootKind, root_field, table_type

if TYPE_CHECKING:
    from collections.abc import Callable

    from graphql import FragmentDefinitionNode, GraphQLResolveInfo, GraphQLSchema

    from graph.auth import Session
    from graph.compile.query_plans import QueryPlans
    from graph.dialect import Driver, Execute
    from graph.execution import Executor
    from graph.model import DatabaseModel
    from graph.sql.compiled import Statements

WHERE = "forgegraph_where"
"""The variable of the keys' filter in the query reading a custom field's rows."""
KEY = "forgegraph_key_"
# The selection may spread fragments and read variables the query of its rows does not all use.
ROW_RULES = tuple(r for r in specified_rules if r not in (NoUnusedFragmentsRule, NoUnusedVariablesRule))
PREPARED_ROW_QUERIES = 256


class DatabaseHandle:
    """`await db.execute(sql, params)`: SQL text with `:name` parameters, on the request's database.

    In a mutation every statement runs in the request's transaction; in a
    query each runs on its own. Rows come back as tuples.
    """

    def __init__(self, run: Execute, statements: Statements, *, transaction: bool = False) -> None:
        self._run = run
        self._statements = statements
        self.transaction = transaction
        """Whether its statements run in the request's transaction (a mutation's)."""

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`, for SQL that differs between them."""
        return str(self._statements.dialect.name)

    async def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        clause = sa.text(sql)
        if params:
            clause = clause.bindparams(**params)
        rows = await self._run(self._statements.bind(clause))
        return [tuple(row) for row in rows]


@dataclass(frozen=True)
class Context:
    """What a custom resolver gets as `info.context`: the request's session and database handle."""

    session: Session
    db: DatabaseHandle
    custom: Custom
    variables: Mapping[str, Any] | None = None
    """The request's variables as sent (the rows of a table type are read with them)."""

    async def rows(self, info: GraphQLResolveInfo, table: str, keys: Any, *, many: bool) -> Any:
        """The rows of `table` with these primary keys, as the field's selection and the role's rules read them."""
        return await self.custom.rows(self, info, table, keys, many=many)

    @property
    def role(self) -> str:
        return self.session.role

    @property
    def user_id(self) -> str | None:
        return self.session.user_id

    @property
    def claims(self) -> Mapping[str, Any]:
        return self.session.claims

    @property
    def is_admin(self) -> bool:
        """Authenticated by the admin secret."""
        return self.session.is_admin


class Custom:
    """Contexts for custom resolvers, and a mutation's custom field run in its transaction."""

    def __init__(
        self,
        driver: Driver,
        statements: Statements,
        model: DatabaseModel,
        query_plans: QueryPlans,
        executor_of: Callable[[GraphQLSchema], Executor],
    ) -> None:
        self.driver = driver
        self.statements = statements
        self.model = model
        self.query_plans = query_plans
        self.executor_of = executor_of
        self._prepared: dict[tuple[int, str], Prepared] = {}

    def context(
        self, session: Session, variables: Mapping[str, Any] | None = None, run: Execute | None = None
    ) -> Context:
        """The context of a request; `run`: the transaction's (else each statement on its own)."""
        handle = DatabaseHandle(run or self.driver.fetch, self.statements, transaction=run is not None)
        return Context(session, handle, self, variables)

    async def rows(self, context: Context, info: GraphQLResolveInfo, table: str, keys: Any, *, many: bool) -> Any:
        """The rows of a custom field returning a table type (`Context.rows`)."""
        primary_key = self.model.table(table).primary_key
        wanted = [k for k in (keys or []) if k is not None] if many else [] if keys is None else [keys]
        if not wanted or not primary_key:
            return [] if many else None
        tuples = [_key(primary_key, key) for key in wanted]
        if len(primary_key) == 1:
            where: dict[str, Any] = {primary_key[0]: {"_in": [k[0] for k in tuples]}}
        else:
            where = {"_or": [{c: {"_eq": v} for c, v in zip(primary_key, k, strict=True)} for k in tuples]}
        own = table_type(info.schema, table)
        keyed = own is not None and all(c in own.fields for c in primary_key)
        text, prepared = self._row_query(info, table, primary_key if keyed else ())
        variables = {**(context.variables or {}), WHERE: where}
        executor = self.executor_of(info.schema)
        token = IN_TRANSACTION.set(context.db._run if context.db.transaction else None)
        try:
            outcome = await self.query_plans.answer(executor, context.session, text, None, variables, prepared)
        finally:
            IN_TRANSACTION.reset(token)
        if isinstance(outcome, bytes):
            data = orjson.loads(outcome).get("data")
        elif outcome.errors:
            raise outcome.errors[0].original_error or GraphQLError(outcome.errors[0].message)
        else:
            data = outcome.data
        rows: list[dict[str, Any]] = (data or {}).get("rows") or []
        if keyed:
            found = {}
            for row in rows:
                found[tuple(str(row.pop(f"{KEY}{n}")) for n in range(len(primary_key)))] = row
            rows = [found[k] for k in (tuple(str(v) for v in t) for t in tuples) if k in found]
        if many:
            return rows
        return rows[0] if rows else None

    def _row_query(
        self, info: GraphQLResolveInfo, table: str, key_columns: Sequence[str]
    ) -> tuple[str, Prepared]:
        """The query reading the rows of `table` as the field selects them (validated, kept)."""
        query = info.schema.query_type
        found = None
        for name, field in (query.fields if query is not None else {}).items():
            tag = root_field(field)
            if tag is not None and tag.kind is RootKind.SELECT and tag.table == table:
                found = (name, field)
                break
        if found is None:
            raise GraphQLError(f"the rows of {table!r} are not readable here")
        name, field = found
        where_type = get_named_type(field.args["where"].type)
        selections: list[Any] = [
            FieldNode(alias=NameNode(value=f"{KEY}{n}"), name=NameNode(value=column))
            for n, column in enumerate(key_columns)
        ]
        for node in info.field_nodes:
            if node.selection_set is not None:
                selections.extend(node.selection_set.selections)
        rows = FieldNode(
            alias=NameNode(value="rows"),
            name=NameNode(value=name),
            arguments=(ArgumentNode(name=NameNode(value="where"), value=VariableNode(name=NameNode(value=WHERE))),),
            selection_set=SelectionSetNode(selections=tuple(selections)),
        )
        where = VariableDefinitionNode(
            variable=VariableNode(name=NameNode(value=WHERE)),
            type=NonNullTypeNode(type=NamedTypeNode(name=NameNode(value=where_type.name))),
        )
        operation = OperationDefinitionNode(
            operation=OperationType.QUERY,
            variable_definitions=(*(info.operation.variable_definitions or ()), where),
            selection_set=SelectionSetNode(selections=(rows,)),
        )
        document = DocumentNode(definitions=(operation, *info.fragments.values()))
        text = print_ast(document)
        key = (id(info.schema), text)
        prepared = self._prepared.get(key)
        if prepared is None:
            errors = validate(info.schema, document, ROW_RULES)
            if errors:
                raise errors[0]
            prepared = Prepared(document, (), len(text))
            if len(self._prepared) >= PREPARED_ROW_QUERIES:
                self._prepared.pop(next(iter(self._prepared)))
            self._prepared[key] = prepared
        return text, prepared

    async def mutation_field(
        self,
        schema: GraphQLSchema,
        operation: OperationDefinitionNode,
        fragments: Mapping[str, FragmentDefinitionNode],
        nodes: Sequence[FieldNode],
        variables: Mapping[str, Any] | None,
        session: Session,
        run: Execute,
    ) -> ExecutionResult:
        """One custom mutation field executed by graphql-core, its statements run by `run`."""
        alone = OperationDefinitionNode(
            operation=operation.operation,
            name=operation.name,
            variable_definitions=operation.variable_definitions,
            directives=operation.directives,
            selection_set=SelectionSetNode(selections=tuple(nodes)),
        )
        result = execute(
            schema,
            DocumentNode(definitions=(alone, *fragments.values())),
            context_value=self.context(session, variables, run),
            variable_values=dict(variables or {}),
        )
        if is_awaitable(result):
            result = await result
        assert isinstance(result, ExecutionResult)
        return result


def _key(columns: Sequence[str], key: Any) -> tuple[Any, ...]:
    """A primary key as the resolver gave it (a value, or a mapping by column) in column order."""
    if isinstance(key, Mapping):
        return tuple(key[c] for c in columns)
    if len(columns) != 1:
        raise GraphQLError(f"a composite primary key ({', '.join(columns)}) is given as a mapping by column")
    return (key,)
