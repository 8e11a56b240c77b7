"""GraphQL over WebSocket: `graphql-transport-ws` (the graphql-ws library) and the
legacy `graphql-ws` (subscriptions-transport-ws), one handler class each.

Hand-written rather than strawberry's handlers: our schema is built with
graphql-core from reflection, and a subscription here is not executed per
subscriber but joined to a shared stream whose frames are encoded once
(a `t_stream` reads its rows itself: graph.delivery.streams).
Queries and mutations sent over the socket are answered by `graph.execute`, as over HTTP.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from graphql import GraphQLError, OperationType
from starlette.websockets import WebSocket

from graph import deepjson, execute
from graph.delivery.changes import plan_change_query, withdrawn
from graph.delivery.custom import is_custom_subscription, run_custom_subscription
from graph.delivery.live import LiveSubscription, live_queries, live_query
from graph.delivery.message import Frame, Message
from graph.delivery.socket import FORBIDDEN, CloseConnection, EventSocket
from graph.delivery.stream_query import plan_stream
from graph.delivery.streams import Stream
from graph.errors import ForgeError, InvalidJWT, PermissionDenied, contained
from graph.execution import format_error
from graph.nesting import MAX_FILTER_DEPTH

if TYPE_CHECKING:
    from graph.access import Access
    from graph.execution import Executor
    from graph.generation import Generation
    from graph.runtime import Runtime

log = logging.getLogger("forgegraph.delivery")

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"

# Close codes of the graphql-transport-ws protocol.
BAD_REQUEST = 4400
UNAUTHORIZED = 4401
INIT_TIMEOUT = 4408
DUPLICATE_ID = 4409
TOO_MANY_INITS = 4429


ProtocolError = CloseConnection


def _dumps(message: Any) -> str:
    return orjson.dumps(message).decode()


class GraphQLSocket(EventSocket):
    """One WebSocket connection: reads client messages, owns its subscriptions."""

    next_type: ClassVar[str]

    def __init__(self, runtime: Runtime, websocket: WebSocket) -> None:
        super().__init__(runtime, websocket)
        self.operations: dict[str, asyncio.Task[None]] = {}
        self._streams: dict[str, Stream] = {}
        self.live: dict[str, LiveSubscription] = {}
        """Live queries (graph.delivery.live), by operation id."""
        self.custom: set[str] = set()
        """Custom subscriptions (graph.delivery.custom) among `operations`, by operation id."""
        self.acknowledged = False

    @property
    def subscribed(self) -> int:
        # A t_stream is in `subscriptions` (its hub subscription); live queries and custom ones are apart.
        return len(self.subscriptions) + len(self.live) + len(self.custom)

    def send(self, message: dict[str, Any]) -> None:
        self.outbox.push_one(_dumps(message))

    def release(self) -> None:
        for operation in self.operations.values():
            operation.cancel()
        if self.live:
            queries = live_queries(self.runtime)
            for subscription in self.live.values():
                queries.unsubscribe(subscription)
            self.live.clear()

    async def read_messages(self) -> None:
        timeout = self.runtime.settings.limits.connection_init_timeout
        try:
            async with asyncio.timeout(timeout or None):  # 0: no limit
                while not self.acknowledged:
                    await self._handle(await self._receive())
        except TimeoutError:
            raise ProtocolError(INIT_TIMEOUT, "Connection initialisation timeout") from None
        while True:
            await self._handle(await self._receive())

    async def _receive(self) -> dict[str, Any]:
        text = await self.receive_frame()
        if not isinstance(text, str):
            raise ProtocolError(BAD_REQUEST, "Invalid message received: expected a text frame")
        try:
            # Any depth: a too-deep `where` is the operation's error, not the connection's.
            data = deepjson.loads(text)
        except orjson.JSONDecodeError:
            raise ProtocolError(BAD_REQUEST, "Invalid message received: not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise ProtocolError(BAD_REQUEST, "Invalid message received: expected an object with a type")
        if deepjson.TOO_DEEP in data.values():
            # Read the slow way: it counts as one message per 16 KB more, which bounds
            # the event-loop time one connection can take with such messages.
            self.charge(deepjson.slow_cost(text) - 1)
            if data.get("payload") is deepjson.TOO_DEEP and data["type"] not in _OPERATION_OR_INIT:
                raise ProtocolError(BAD_REQUEST, f"Invalid message received: {_too_deep()}")
        return data

    async def _handle(self, message: dict[str, Any]) -> None:
        raise NotImplementedError

    def authenticate(self, payload: Any) -> None:
        """Take the session from connection_init; its token's expiry closes the socket (4403).

        Once per connection, on both protocols: a second init would switch the
        session under subscriptions made with the first one, which would keep
        its view and outlive its token's expiry.
        """
        if self.acknowledged:
            raise ProtocolError(TOO_MANY_INITS, "Too many initialisation requests")
        if payload is not None and not isinstance(payload, dict):
            raise ProtocolError(BAD_REQUEST, "Invalid message received: payload must be an object")
        try:
            self.use_session(self.runtime.authenticator.from_init_payload(payload))
        except InvalidJWT as error:
            raise ProtocolError(FORBIDDEN, f"Forbidden: {error.message}") from None

    # -- operations ---------------------------------------------------------

    async def start(self, op_id: str, payload: Any) -> None:
        """Run or subscribe one operation; errors go to the client as an error message."""
        if payload is deepjson.TOO_DEEP:
            # Nothing nests that deep (a `where` stops at MAX_FILTER_DEPTH): the operation's error.
            self.send_error(op_id, [_validation(f"payload: {_too_deep()}")])
            return
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            raise ProtocolError(BAD_REQUEST, "Invalid message received: payload.query must be a string")
        variables = payload.get("variables")
        operation_name = payload.get("operationName")
        if variables is not None and not isinstance(variables, dict):
            raise ProtocolError(BAD_REQUEST, "Invalid message received: variables must be an object")
        # Read once: the whole operation runs on this schema, whatever changes meanwhile.
        generation = self.runtime.generation
        executor = generation.executor_for(self.session)
        prepared = await executor.prepare_async(payload["query"])
        if prepared.document is None:
            self.send_error(op_id, [format_error(e) for e in prepared.errors])
            return
        operation = executor.operation_type(prepared.document, operation_name)
        if operation is None:
            self.send_error(op_id, [_validation("no operation matches operationName")])
            return
        if operation is not OperationType.SUBSCRIPTION:
            once = execute.Operation(
                executor, prepared, prepared.document, operation,
                payload["query"], variables, operation_name, self.session,
            )
            task = asyncio.create_task(self._execute_once(op_id, once, generation))
            self.operations[op_id] = task
            task.add_done_callback(lambda _t: self.operations.pop(op_id, None))
            return
        limit = self.runtime.settings.limits.max_subscriptions_per_connection
        if limit and self.subscribed >= limit:
            self.send_error(op_id, [_validation(f"at most {limit} subscriptions per connection")])
            return
        if is_custom_subscription(executor.schema, prepared.document, operation_name, variables):
            self._start_custom(op_id, executor, prepared.document, operation_name, variables)
            return
        live = live_query(executor.schema, prepared.document, operation_name)
        if live is not None:
            self._start_live(op_id, generation, executor, live, operation_name, variables)
            return
        try:
            stream = plan_stream(
                executor.schema, generation.model, prepared.document, variables, operation_name
            )
            if stream is not None:
                await self._start_stream(op_id, Stream(
                    self.runtime, generation, executor, self.session, stream, self.outbox, self._frame(op_id),
                    lambda errors: self._stream_failed(op_id, errors),
                ))
                return
            query = plan_change_query(
                executor.schema,
                generation.model,
                prepared.document,
                variables,
                operation_name,
                generation.access.for_session(self.session),
            )
            subscription = self.subscriptions[op_id] = await self.realtime.subscribe(
                query.stream_key("graphql"),
                query.table,
                query.where,
                query.render,
                self.outbox,
                self._frame(op_id),
                since=query.since,
            )
            subscription.ended = self.ended
        except ForgeError as error:
            self.send_error(op_id, [error.to_graphql()])
        except GraphQLError as error:
            self.send_error(op_id, [format_error(error)])
        except Exception as error:  # noqa: BLE001 - e.g. the database failing a `since` read
            # One operation's failure: the socket and its other subscriptions live on.
            self.send_error(op_id, [contained(error, "subscribing").to_graphql()])

    def _frame(self, op_id: str) -> Frame:
        return Frame(f'{{"id":{_dumps(op_id)},"type":"{self.next_type}","payload":', "}")

    async def _start_stream(self, op_id: str, stream: Stream) -> None:
        """A `t_stream` (graph.delivery.streams): a subscription, and the task that reads its rows."""
        await stream.start()
        assert stream.subscription is not None and stream.task is not None
        self.subscriptions[op_id] = stream.subscription
        self.operations[op_id] = stream.task
        self._streams[op_id] = stream
        stream.subscription.ended = self.ended

    def end_subscription(self, key: str, error: ForgeError) -> None:
        # A `t_stream` stops reading too; a `tableChanged` subscription just ends.
        stream = self._streams.pop(key, None)
        if stream is not None:
            stream.stop()
            if self.operations.get(key) is stream.task:
                del self.operations[key]
        self.send_error(key, [error.to_graphql()])

    def rules_withdrawn(self, tables: frozenset[str], access: Access) -> None:
        super().rules_withdrawn(tables, access)
        # Live queries answer on the schema they began with: end those reading what is withdrawn.
        view = access.for_session(self.session)
        for op_id, live in list(self.live.items()):
            group = live.group
            read = tables if group is None or group.tables is None else tables & group.tables
            lost = [n for n in sorted(read) if n in access.model.tables and view.event_view(n) is None]
            if lost:
                del self.live[op_id]
                live_queries(self.runtime).unsubscribe(live)
                self.send_error(op_id, [PermissionDenied(withdrawn(lost[0])).to_graphql()])

    def _stream_failed(self, op_id: str, errors: list[dict[str, Any]]) -> None:
        """A stream's reads failed (the database went away, a rule no longer compiles): it ends, with its errors."""
        stream = self._streams.pop(op_id, None)
        if stream is None:
            return
        if self.subscriptions.get(op_id) is stream.subscription:
            self.realtime.unsubscribe(self.subscriptions.pop(op_id))
        if self.operations.get(op_id) is stream.task:
            del self.operations[op_id]
        self.send_error(op_id, errors)

    def _start_live(
        self,
        op_id: str,
        generation: Generation,
        executor: Executor,
        query: str,
        operation_name: str | None,
        variables: dict[str, Any] | None,
    ) -> None:
        """Join a live query: its answer now and after every commit that changes it."""
        prefix = f'{{"id":{_dumps(op_id)},"type":"{self.next_type}","payload":'
        outbox = self.outbox

        def deliver(body: bytes) -> None:
            outbox.push((Message(prefix + body.decode() + "}"),))

        def finish(body: bytes, first: bool) -> None:
            if self.live.get(op_id) is not subscription:
                return
            del self.live[op_id]
            if first:  # refused as a subscription is at subscribe time
                self.send_error(op_id, orjson.loads(body)["errors"])
                return
            # The failed answer with its errors, then `complete`: on both protocols
            # a result message may carry errors, and `complete` ends the operation.
            deliver(body)
            self.send_complete(op_id)

        try:
            subscription = live_queries(self.runtime).subscribe(
                generation, executor, self.session, query, operation_name, variables, deliver, finish, self.transport
            )
        except ForgeError as error:
            self.send_error(op_id, [error.to_graphql()])
            return
        except GraphQLError as error:
            self.send_error(op_id, [format_error(error)])
            return
        except Exception as error:  # noqa: BLE001 - one operation's failure: the socket lives on
            self.send_error(op_id, [contained(error, "subscribing").to_graphql()])
            return
        self.live[op_id] = subscription

    def _start_custom(
        self, op_id: str, executor: Executor, document: Any, operation_name: str | None, variables: dict[str, Any] | None
    ) -> None:
        """A custom subscription: the user's generator, its results sent as events are."""
        prefix = f'{{"id":{_dumps(op_id)},"type":"{self.next_type}","payload":'
        outbox = self.outbox
        custom = self.runtime.query_plans.custom
        context = custom.context(self.session) if custom is not None else None

        def deliver(body: dict[str, Any]) -> None:
            outbox.push((Message(prefix + _dumps(body) + "}"),))

        def fail(errors: list[dict[str, Any]]) -> None:
            if op_id in self.custom:
                self.send_error(op_id, errors)

        def done() -> None:
            if op_id in self.custom:
                self.send_complete(op_id)

        def ended(_task: asyncio.Task[None]) -> None:
            self.custom.discard(op_id)
            if self.operations.get(op_id) is task:
                del self.operations[op_id]

        task = asyncio.create_task(run_custom_subscription(
            executor.schema, document, operation_name, variables, context, deliver, fail, done
        ))
        self.custom.add(op_id)
        self.operations[op_id] = task
        task.add_done_callback(ended)

    async def _execute_once(self, op_id: str, operation: execute.Operation, generation: Generation) -> None:
        try:
            answer = await execute.answer(generation, operation, self.transport)
        except Exception as error:  # noqa: BLE001 - reported to the client, logged by format_error
            # Contained to this operation: it still ends with its result and
            # `complete` (format_error logs the error and tells the client its code).
            answer = execute.failure(error)
        # The body is spliced in as it is: built once, by the entry HTTP uses too.
        prefix = f'{{"id":{_dumps(op_id)},"type":"{self.next_type}","payload":'
        self.outbox.push_one(prefix + answer.body.decode() + "}")
        self.send_complete(op_id)

    def stop(self, op_id: str) -> None:
        stream = self._streams.pop(op_id, None)
        if stream is not None:
            stream.stop()
        subscription = self.subscriptions.pop(op_id, None)
        if subscription is not None:
            self.realtime.unsubscribe(subscription)
        self.custom.discard(op_id)
        operation = self.operations.pop(op_id, None)
        if operation is not None:
            operation.cancel()
        live = self.live.pop(op_id, None)
        if live is not None:
            live_queries(self.runtime).unsubscribe(live)

    def send_error(self, op_id: str, errors: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def send_complete(self, op_id: str) -> None:
        self.send({"id": op_id, "type": "complete"})



# Messages whose payload, when too deep to read, is answered without closing the connection.
_OPERATION_OR_INIT = frozenset({"subscribe", "start", "connection_init"})


def _too_deep() -> str:
    return (
        f"nested more than {deepjson.JSON_DEPTH_LIMIT} levels deep"
        f" (a filter may nest no more than {MAX_FILTER_DEPTH} levels)"
    )


def _validation(message: str) -> dict[str, Any]:
    return {"message": message, "extensions": {"code": "validation-failed"}}


def _op_id(message: dict[str, Any]) -> str:
    op_id = message.get("id")
    if not isinstance(op_id, str) or not op_id:
        raise ProtocolError(BAD_REQUEST, "Invalid message received: id must be a non-empty string")
    return op_id


class TransportWS(GraphQLSocket):
    """The `graphql-transport-ws` protocol of the graphql-ws library."""

    subprotocol = TRANSPORT_WS
    transport = TRANSPORT_WS
    next_type = "next"

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "connection_init":
            self.authenticate(message.get("payload"))
            self.acknowledged = True
            self.send({"type": "connection_ack"})
        elif kind == "ping":
            pong: dict[str, Any] = {"type": "pong"}
            if "payload" in message:
                pong["payload"] = message["payload"]
            self.send(pong)
        elif kind == "pong":
            pass
        elif kind == "subscribe":
            if not self.acknowledged:
                raise ProtocolError(UNAUTHORIZED, "Unauthorized")
            op_id = _op_id(message)
            if op_id in self.subscriptions or op_id in self.operations or op_id in self.live:
                raise ProtocolError(DUPLICATE_ID, f"Subscriber for {op_id} already exists")
            await self.start(op_id, message.get("payload"))
        elif kind == "complete":
            self.stop(_op_id(message))
        else:
            raise ProtocolError(BAD_REQUEST, f"Invalid message received: unknown type {kind!r}")

    def send_error(self, op_id: str, errors: list[dict[str, Any]]) -> None:
        self.send({"id": op_id, "type": "error", "payload": errors})


class LegacyWS(GraphQLSocket):
    """The legacy `graphql-ws` protocol of subscriptions-transport-ws (Apollo's old client)."""

    subprotocol = LEGACY_WS
    transport = LEGACY_WS
    next_type = "data"

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "connection_init":
            try:
                self.authenticate(message.get("payload"))
            except ProtocolError as error:
                self.send({"type": "connection_error", "payload": {"message": error.reason}})
                if error.code == BAD_REQUEST:
                    return  # a malformed payload: the client may send a good one
                raise
            self.acknowledged = True
            self.send({"type": "connection_ack"})
            self.send({"type": "ka"})
        elif kind == "start":
            op_id = _op_id(message)
            if not self.acknowledged:
                self.send_error(op_id, [_validation("send connection_init first")])
                return
            self.stop(op_id)  # the protocol lets a client restart an id
            await self.start(op_id, message.get("payload"))
        elif kind == "stop":
            op_id = _op_id(message)
            self.stop(op_id)
            self.send_complete(op_id)
        elif kind == "connection_terminate":
            # Closed by us with a close frame, as subscriptions-transport-ws does.
            raise ProtocolError(1000, "")
        else:
            self.send({"type": "error", "id": message.get("id"),
                       "payload": _validation(f"unknown message type {kind!r}")})

    def send_error(self, op_id: str, errors: list[dict[str, Any]]) -> None:
        self.send({"id": op_id, "type": "error", "payload": errors[0] if len(errors) == 1 else errors})


async def graphql_websocket(runtime: Runtime, websocket: WebSocket) -> None:
    offered = websocket.scope.get("subprotocols") or []
    if TRANSPORT_WS in offered:
        handler: GraphQLSocket = TransportWS(runtime, websocket)
    elif LEGACY_WS in offered:
        handler = LegacyWS(runtime, websocket)
    else:
        await websocket.close(BAD_REQUEST, "Subprotocol not acceptable: use graphql-transport-ws")
        return
    await handler.serve()
