"""GraphQL over HTTP (POST and GET), per the GraphQL-over-HTTP specification.

Answers `application/graphql-response+json` when the client accepts it
(request errors are then 4xx), else `application/json` with 200, as older
clients expect. Bad requests still get a GraphQL error body with a code.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson
from graphql import OperationType
from starlette.responses import Response

from graph import execute
from graph.errors import InvalidJWT
from graph.execution import format_error

if TYPE_CHECKING:
    from starlette.requests import Request

    from graph.runtime import Runtime

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


class RequestError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _media_type(request: Request) -> str:
    accept = request.headers.get("accept", "")
    return GRAPHQL_RESPONSE if GRAPHQL_RESPONSE in accept and JSON not in accept.split(GRAPHQL_RESPONSE)[0] else JSON


def _respond(body: dict[str, Any], status: int, media_type: str, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=media_type, headers=headers)


def _error_body(message: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": "validation-failed"}}]}


class GraphQLEndpoint:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        status = 500  # unless an answer comes back
        try:
            response = await self._answer(request)
            status = response.status_code
            return response
        finally:
            # "other": a request that never got as far as a query or mutation to run.
            operation = getattr(request.state, "operation", "other")
            self.runtime.metrics.observe_request(operation, status, started)

    async def _answer(self, request: Request) -> Response:
        media_type = _media_type(request)
        try:
            params = await self._params(request)
            return await self._run(request, params, media_type)
        except RequestError as error:
            return _respond(_error_body(error.message), error.status, media_type, error.headers)

    async def _params(self, request: Request) -> dict[str, Any]:
        if request.method == "GET":
            params: dict[str, Any] = dict(request.query_params)
            if "variables" in params:
                params["variables"] = _decode(params["variables"], "variables")
            if "extensions" in params:
                params["extensions"] = _decode(params["extensions"], "extensions")
            return params
        # JSON only, declared: a page on any origin may POST text/plain, form or
        # multipart bodies (or none at all) without a preflight, so reading those
        # would let it run mutations here (CSRF).
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not content_type:
            raise RequestError(415, "a POST needs Content-Type: application/json")
        if content_type not in (JSON, GRAPHQL_RESPONSE):
            raise RequestError(415, f"unsupported content type {content_type!r}: send application/json")
        limit = self.runtime.settings.limits.max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise RequestError(413, f"request body is larger than {limit} bytes")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise RequestError(413, f"request body is larger than {limit} bytes")
        params = _decode(body, "request body")
        if not isinstance(params, dict):
            raise RequestError(400, "the request body must be a JSON object")
        return params

    async def _run(self, request: Request, params: dict[str, Any], media_type: str) -> Response:
        query = params.get("query")
        variables = params.get("variables")
        operation_name = params.get("operationName")
        if not isinstance(query, str) or not query.strip():
            raise RequestError(400, "the request has no GraphQL query (a non-empty `query` string)")
        if variables is not None and not isinstance(variables, dict):
            raise RequestError(400, "`variables` must be a JSON object")
        if operation_name is not None and not isinstance(operation_name, str):
            raise RequestError(400, "`operationName` must be a string")

        try:
            session = self.runtime.authenticator.from_headers(request.headers)
        except InvalidJWT as error:
            return _respond({"errors": [error.to_graphql()]}, error.http_status, media_type)
        # Read once: the request runs on this schema, whatever changes meanwhile (graph.generation).
        generation = self.runtime.generation
        executor = generation.executor_for(session)
        prepared = await executor.prepare_async(query)
        request_error_status = 400 if media_type == GRAPHQL_RESPONSE else 200
        if prepared.document is None:
            errors = {"errors": [format_error(e) for e in prepared.errors]}
            return _respond(errors, request_error_status, media_type)
        operation = executor.operation_type(prepared.document, operation_name)
        if operation is None:
            raise RequestError(400, "no operation in the document matches `operationName`")
        if request.method == "GET" and operation is not OperationType.QUERY:
            raise RequestError(405, "only queries may be sent with GET; use POST", {"Allow": "POST"})
        if operation is OperationType.SUBSCRIPTION:
            raise RequestError(400, "subscriptions are served over WebSocket at /graphql")
        request.state.operation = operation.value  # "query" or "mutation", for /metrics
        answer = await execute.answer(
            generation,
            execute.Operation(
                executor, prepared, prepared.document, operation, query, variables, operation_name, session
            ),
            "http",
        )
        status = request_error_status if answer.failed else 200
        return Response(answer.body, status_code=status, media_type=media_type)


def _decode(raw: str | bytes, what: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise RequestError(400, f"the {what} is not valid JSON: {error}") from None
