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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from graphql import (
    DocumentNode,
    ExecutionResult,
    OperationDefinitionNode,
    SelectionSetNode,
    execute,
)
from graphql.pyutils import is_awaitable

if TYPE_CHECKING:
    from graphql import FieldNode, FragmentDefinitionNode, GraphQLSchema

    from graph.auth import Session
    from graph.dialect import Driver, Execute
    from graph.sql.compiled import Statements


class DatabaseHandle:
    """`await db.execute(sql, params)`: SQL text with `:name` parameters, on the request's database.

    In a mutation every statement runs in the request's transaction; in a
    query each runs on its own. Rows come back as tuples.
    """

    def __init__(self, run: Execute, statements: Statements) -> None:
        self._run = run
        self._statements = statements

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

    def __init__(self, driver: Driver, statements: Statements) -> None:
        self.driver = driver
        self.statements = statements

    def context(self, session: Session, run: Execute | None = None) -> Context:
        """The context of a request; `run`: the transaction's (else each statement on its own)."""
        return Context(session, DatabaseHandle(run or self.driver.fetch, self.statements))

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
            context_value=self.context(session, run),
            variable_values=dict(variables or {}),
        )
        if is_awaitable(result):
            result = await result
        assert isinstance(result, ExecutionResult)
        return result
