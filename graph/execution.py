"""Parse, validate (cached per document, in bytes) and execute GraphQL; format errors with codes.

Shared by every transport so errors look the same over HTTP and WebSocket.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    OperationType,
    execute,
    get_operation_ast,
    parse,
    specified_rules,
    validate,
)
from graphql.pyutils import is_awaitable
from sqlalchemy import exc as sa_exc

from graph.byte_cache import ByteBoundedCache, document_bytes
from graph.document_limits import limit_errors
from graph.errors import contained

if TYPE_CHECKING:
    from graphql import GraphQLSchema

    from graph.config import Limits
    from graph.context import RequestContext

OFFLOAD_CHARS = 8_192
"""Documents at least this long are parsed in a worker thread (Executor.prepare_async)."""


@dataclass(frozen=True)
class Prepared:
    document: DocumentNode | None
    errors: tuple[GraphQLError, ...] = ()
    size: int = 0
    """Estimated bytes of the query text and its parsed document (graph.byte_cache)."""


DocumentCache = ByteBoundedCache[tuple["Executor", str], Prepared]
"""Parsed and validated documents of every role's executor, bounded together in bytes."""


@functools.cache
def _parser() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="forgegraph-parse")


class Executor:
    def __init__(self, schema: GraphQLSchema, limits: Limits, cache: DocumentCache | None = None) -> None:
        self.schema = schema
        self.limits = limits
        self.cache: DocumentCache = (
            cache if cache is not None else ByteBoundedCache(limits.document_cache_bytes)
        )

    def prepare(self, query: str) -> Prepared:
        """The document of `query`, parsed and validated once while it stays in the cache."""
        key = (self, query)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        prepared = self._prepare(query)
        self.cache.put(key, prepared, prepared.size)
        return prepared

    async def prepare_async(self, query: str) -> Prepared:
        """`prepare`, with a large document parsed and validated in a worker thread.

        Parsing is pure Python: about 0.3 s for a 50 KB document of 2,000 aliases.
        In a thread the event loop still gets the interpreter every few milliseconds,
        so a handful of such requests does not hold up everyone else's. One thread
        for all: more would only take turns at the interpreter, and each would make
        the event loop wait longer for its turn.
        """
        key = (self, query)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        if len(query) < OFFLOAD_CHARS:
            return self.prepare(query)
        loop = asyncio.get_running_loop()
        prepared = await loop.run_in_executor(_parser(), self._prepare, query)
        self.cache.put(key, prepared, prepared.size)  # on the loop: the cache is not shared with threads
        return prepared

    def _prepare(self, query: str) -> Prepared:
        try:
            document = parse(query)
        except GraphQLError as error:
            return Prepared(None, (error,), document_bytes(query, None))
        # The limits first, alone: a document past them (2,000 aliases) is refused
        # without the cost of every other rule.
        errors = limit_errors(self.schema, document, self.limits)
        if not errors:
            errors = validate(self.schema, document, specified_rules)
        return Prepared(None if errors else document, tuple(errors), document_bytes(query, document))

    @staticmethod
    def operation_type(document: DocumentNode, operation_name: str | None) -> OperationType | None:
        operation = get_operation_ast(document, operation_name)
        return operation.operation if operation else None

    async def execute(
        self,
        document: DocumentNode,
        context: RequestContext,
        variables: dict[str, Any] | None,
        operation_name: str | None,
    ) -> ExecutionResult:
        try:
            result = execute(
                self.schema,
                document,
                context_value=context,
                variable_values=variables,
                operation_name=operation_name,
            )
            if is_awaitable(result):
                result = await result
        except BaseException:
            await context.finish(commit=False)
            raise
        assert isinstance(result, ExecutionResult)
        try:
            await context.finish(commit=not result.errors)
        except Exception as error:  # noqa: BLE001 - reported to the client, logged by format_error
            # The COMMIT failed: nothing of the request stands (a refused commit,
            # rolled back), or nobody can tell (the connection was lost while
            # committing). Either way no field's data is the answer; format_error says which.
            return ExecutionResult(None, [GraphQLError(str(error), original_error=error)])
        if result.errors and self.operation_type(document, operation_name) is OperationType.MUTATION:
            # The whole request was rolled back: no field's data stands. On PostgreSQL
            # the fields after a failed one fail too ("current transaction is aborted"):
            # they report nothing of their own, the first failure is the answer.
            errors = [e for e in result.errors if not _after_failure(e)] or result.errors
            result = ExecutionResult(None, errors)
        return result


def _after_failure(error: GraphQLError) -> bool:
    """A statement refused because an earlier one failed in the same transaction (SQLSTATE 25P02)."""
    original = error.original_error
    orig = original.orig if isinstance(original, sa_exc.DBAPIError) else None
    return getattr(orig, "sqlstate", None) == "25P02"


def format_error(error: GraphQLError) -> dict[str, Any]:
    """One error as the client sees it: always with `extensions.code`, never a traceback."""
    original = error.original_error
    if original is not None and not isinstance(original, GraphQLError):
        # Nothing was committed when an outage is reported here (a connection lost
        # while committing is CommitOutcomeUnknown), so trying again is safe.
        failure = contained(original, "executing the request")
        out: dict[str, Any] = {"message": failure.message}
        extensions = {"code": failure.code, **failure.extensions}
    else:
        out = {"message": error.message}
        extensions = {**(error.extensions or {}), "code": "validation-failed"}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        out["path"] = error.path
    out["extensions"] = extensions
    return out
