"""Parse, validate (cached per document) and execute GraphQL; format errors with codes.

Shared by every transport so errors look the same over HTTP and WebSocket.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValidationRule,
    execute,
    get_operation_ast,
    parse,
    specified_rules,
    validate,
)
from graphql.pyutils import is_awaitable
from sqlalchemy import exc as sa_exc

from graph.complexity import complexity_rule
from graph.errors import DatabaseUnreachable, ForgeError, database_unreachable

if TYPE_CHECKING:
    from graphql import GraphQLSchema, ValidationContext

    from graph.config import Limits
    from graph.context import RequestContext

log = logging.getLogger("forgegraph")
DOCUMENT_CACHE_SIZE = 1024


@dataclass(frozen=True)
class Prepared:
    document: DocumentNode | None
    errors: tuple[GraphQLError, ...] = ()


def depth_rule(max_depth: int) -> type[ValidationRule]:
    class MaxDepth(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            depth = _depth(self.context, node.selection_set, frozenset())
            if depth > max_depth:
                self.report_error(
                    GraphQLError(
                        f"the query depth {depth} exceeds the maximum depth of {max_depth}", node
                    )
                )

    return MaxDepth


def _depth(context: ValidationContext, selection_set: SelectionSetNode | None, seen: frozenset[str]) -> int:
    if selection_set is None:
        return 0
    deepest = 0
    for node in selection_set.selections:
        if isinstance(node, FieldNode):
            if node.name.value.startswith("__"):
                continue  # introspection (GraphiQL's own query) does not count
            deepest = max(deepest, 1 + _depth(context, node.selection_set, seen))
        elif isinstance(node, InlineFragmentNode):
            deepest = max(deepest, _depth(context, node.selection_set, seen))
        elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen:
            fragment = context.get_fragment(node.name.value)
            if fragment is not None:
                inner = seen | {node.name.value}
                deepest = max(deepest, _depth(context, fragment.selection_set, inner))
    return deepest


def limit_rules(limits: Limits) -> tuple[type[ValidationRule], ...]:
    """The validation rules for `limits`' query depth and cost; a 0 leaves its rule out."""
    rules: list[type[ValidationRule]] = []
    if limits.max_depth:
        rules.append(depth_rule(limits.max_depth))
    if limits.max_complexity:
        rules.append(complexity_rule(limits.max_complexity, limits.max_limit))
    return tuple(rules)


class Executor:
    def __init__(self, schema: GraphQLSchema, limits: Limits) -> None:
        self.schema = schema
        self.rules = (*specified_rules, *limit_rules(limits))
        self._cache: OrderedDict[str, Prepared] = OrderedDict()

    def prepare(self, query: str) -> Prepared:
        cached = self._cache.get(query)
        if cached is not None:
            self._cache.move_to_end(query)
            return cached
        try:
            document = parse(query)
        except GraphQLError as error:
            prepared = Prepared(None, (error,))
        else:
            errors = validate(self.schema, document, self.rules)
            prepared = Prepared(None if errors else document, tuple(errors))
        self._cache[query] = prepared
        if len(self._cache) > DOCUMENT_CACHE_SIZE:
            self._cache.popitem(last=False)
        return prepared

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


# More bind parameters than the driver takes in one statement (a 40,000-value `_in`).
TOO_MANY_PARAMETERS = ("number of query arguments cannot exceed", "too many sql variables")


def _refused_value(error: BaseException | None) -> str | None:
    """Why the database refused the request's values, when it did (the client's error, not ours):
    PostgreSQL's data exceptions (SQLSTATE class 22: NUL in text, a value out of range) and
    statements with more parameters than the driver allows."""
    if not isinstance(error, sa_exc.DBAPIError) or error.orig is None:
        return None
    reason = (str(error.orig).strip().splitlines() or [""])[0]
    sqlstate = str(getattr(error.orig, "sqlstate", None) or "")
    if sqlstate.startswith("22") or any(w in reason.lower() for w in TOO_MANY_PARAMETERS):
        return reason
    return None


def format_error(error: GraphQLError) -> dict[str, Any]:
    """One error as the client sees it: always with `extensions.code`, never a traceback."""
    original = error.original_error
    refused = _refused_value(original)
    if isinstance(original, ForgeError):
        out: dict[str, Any] = {"message": original.message}
        extensions = {"code": original.code, **original.extensions}
    elif refused is not None:
        out = {"message": f"the database refused a value of the request: {refused}"}
        extensions = {"code": "validation-failed"}
    elif database_unreachable(original):
        # An outage is not a bug: one line in the log, and a message that says what happened.
        # Nothing was committed (a connection lost while committing is CommitOutcomeUnknown,
        # a ForgeError above), so trying again is safe.
        log.warning("database unreachable in %s: %s", error.path, str(original).splitlines()[0])
        outage = DatabaseUnreachable()
        out = {"message": outage.message}
        extensions = {"code": outage.code}
    elif original is not None and not isinstance(original, GraphQLError):
        log.error("unexpected error in %s", error.path, exc_info=original)
        out = {"message": "unexpected error while executing the request"}
        extensions = {"code": "unexpected"}
    else:
        out = {"message": error.message}
        extensions = {**(error.extensions or {}), "code": "validation-failed"}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        out["path"] = error.path
    out["extensions"] = extensions
    return out
