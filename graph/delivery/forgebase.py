"""ForgeBase's raw realtime protocol on `WS /realtime` (and at `/` of --websocket-port).

Client -> server (text frames, JSON):
    {"type": "subscribe", "table": "posts"}
    {"type": "subscribe", "table": "posts", "since": "12"}   # extension: resume after a cursor
    {"type": "unsubscribe", "table": "posts"}
    {"type": "auth", "token": "<jwt>"}
Server -> client, ForgeBase's format plus the cursor:
    {"type": "create", "table": "posts", "record": {...}, "cursor": "13"}
    {"type": "update", "table": "posts", "record": {...}, "cursor": "14"}
    {"type": "delete", "table": "posts", "id": 123, "cursor": "15"}
    {"type": "error", "message": "..."}            # the connection stays open

A delete carries `id` only when the subscriber may select every key column;
otherwise the key is left out, as it would reveal what the role may not see.

`since` is not in ForgeBase: it replays the retained change log after that
cursor before going live, as `tableChanged(since:)` does. Subscribing to a
table already subscribed is a no-op, so one table never yields an event twice.
Every raw-protocol subscriber of a table (WebSocket or SSE) shares one stream,
so each event is encoded once for all of them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal, NoReturn, NotRequired, TypedDict

import orjson
from starlette.websockets import WebSocket

from graph.auth import Session
from graph.delivery.changes import project, unknown_table
from graph.delivery.message import Frame
from graph.delivery.socket import FORBIDDEN, CloseConnection, EventSocket
from graph.errors import ForgeError, InvalidCursor, InvalidJWT, contained
from graph.events.hub import StreamKey
from graph.rules.bool_exp import canonical

if TYPE_CHECKING:
    from graph.access import EventView
    from graph.events.change import ChangeEvent, ChangeType
    from graph.events.hub import Render
    from graph.model import Table
    from graph.runtime import Runtime

log = logging.getLogger("forgegraph.delivery")

PROTOCOL = "forgebase"


class RecordMessage(TypedDict):
    type: Literal["create", "update"]
    table: str
    record: dict[str, Any] | None
    cursor: str


class DeleteMessage(TypedDict):
    type: Literal["delete"]
    table: str
    id: NotRequired[Any]
    cursor: str


class ErrorMessage(TypedDict):
    type: Literal["error"]
    message: str


# -- the event format, shared with SSE ------------------------------------------


def stream_key(table: Table, view: EventView) -> StreamKey:
    # Keyed by the resolved rule: every session that sees the table alike shares a stream.
    return StreamKey(PROTOCOL, table.name, canonical(view.filter), (view.columns,))


def renderer(table: Table, view: EventView) -> Render:
    """Encode an event as ForgeBase does: `record` for create/update, the key for delete."""
    columns = None if view.columns == table.column_names else view.columns
    shows_key = view.shows_key(table)

    def render(event: ChangeEvent, change: ChangeType) -> str:
        message: RecordMessage | DeleteMessage
        if change == "delete":
            if shows_key:
                message = {"type": "delete", "table": event.table, "id": event.key(table),
                           "cursor": str(event.cursor)}
            else:
                message = {"type": "delete", "table": event.table, "cursor": str(event.cursor)}
        else:
            message = {"type": change, "table": event.table,
                       "record": project(event.new, columns), "cursor": str(event.cursor)}
        return orjson.dumps(message).decode()

    return render


def error_message(message: str) -> str:
    error: ErrorMessage = {"type": "error", "message": message}
    return orjson.dumps(error).decode()


def served_table(runtime: Runtime, name: str, session: Session) -> tuple[Table, EventView]:
    """The table `name` and the session's view of it; ValidationFailed when it cannot be subscribed to."""
    table = runtime.model.tables.get(name)
    if table is None or not table.primary_key:
        raise unknown_table(name)
    view = runtime.access.for_session(session).event_view(name)
    if view is None:
        raise unknown_table(name)
    return table, view


AS_IS = Frame()
"""The raw protocol's message is the stream's payload itself."""


class ClientError(Exception):
    """A message this connection cannot act on; answered with an error message, not a close."""


# -- the connection -------------------------------------------------------------


class ForgeBaseSocket(EventSocket):
    """One raw-protocol WebSocket: reads client messages, owns its table subscriptions."""

    task_name = "forgegraph-forgebase-writer"
    transport = PROTOCOL

    def send_error(self, message: str) -> None:
        self.outbox.push_one(error_message(message))

    def too_many_messages(self) -> NoReturn:
        # Say why first, as for a bad token: a raw-protocol client may only read messages.
        self.send_error(f"too many messages: at most {self.message_rate.rate} per second")
        super().too_many_messages()

    async def read_messages(self) -> None:
        token = self.websocket.query_params.get("token")
        if token is not None:
            await self.authenticate(token)
        while True:
            raw = await self.receive_frame()
            try:
                await self._handle(raw)
            except ClientError as error:
                self.send_error(str(error))
            except ForgeError as error:
                self.send_error(error.message)

    async def _handle(self, raw: str | bytes) -> None:
        # Frames over limits.max_message_bytes never get here: the server
        # refuses them with 1009 (message too big), on every WebSocket route.
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ClientError("malformed message: not JSON") from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise ClientError('malformed message: expected a JSON object with a string "type"')
        kind = message["type"]
        if kind == "subscribe":
            await self.subscribe(message)
        elif kind == "unsubscribe":
            self.unsubscribe(message)
        elif kind == "auth":
            token = message.get("token")
            if not isinstance(token, str):
                raise ClientError('malformed message: "auth" needs a "token" string')
            await self.authenticate(token)
        else:
            raise ClientError(f"unknown message type {kind!r}")

    async def subscribe(self, message: dict[str, Any]) -> None:
        name = _table_name(message)
        table, view = served_table(self.runtime, name, self.session)
        since = message.get("since")
        if since is not None and not isinstance(since, str):
            raise InvalidCursor(f"malformed cursor {since!r}: expected a string of decimal digits")
        if name in self.subscriptions:
            return  # already receiving this table's events since the first subscribe
        limit = self.runtime.settings.limits.max_subscriptions_per_connection
        if limit and len(self.subscriptions) >= limit:
            raise ClientError(f"at most {limit} subscriptions per connection")
        try:
            subscription = await self.realtime.subscribe(
                stream_key(table, view), table, view.filter, renderer(table, view), self.outbox, AS_IS,
                since=since,
            )
        except Exception as error:  # noqa: BLE001 - e.g. the database failing a `since` read
            # An error message for this subscribe; the connection and its other tables live on.
            raise contained(error, "subscribing") from None
        self.subscriptions[name] = subscription
        subscription.ended = self.ended

    def end_subscription(self, key: str, error: ForgeError) -> None:
        self.send_error(error.message)  # the connection and its other tables live on

    def unsubscribe(self, message: dict[str, Any]) -> None:
        name = _table_name(message)
        subscription = self.subscriptions.pop(name, None)
        if subscription is None:
            served_table(self.runtime, name, self.session)  # unknown: an error; known: a no-op
            return
        self.realtime.unsubscribe(subscription)

    async def authenticate(self, token: str) -> None:
        """Take the session of `token` (SPEC section 6); an invalid one closes with 4403.

        Tables already subscribed to switch to the new session's view, from
        the last event this connection received, so nothing is lost between.
        """
        try:
            session = self.runtime.authenticator.from_token(token)
        except InvalidJWT as error:
            self.send_error(error.message)
            raise CloseConnection(FORBIDDEN, f"Forbidden: {error.message}") from None
        self.use_session(session)
        previous, self.subscriptions = self.subscriptions, {}
        for name, subscription in previous.items():
            self.realtime.unsubscribe(subscription)
            try:
                await self.subscribe({"type": "subscribe", "table": name})
            except ForgeError as error:
                self.send_error(error.message)  # the new role may not see this table
                continue
            self.subscriptions[name].last_cursor = subscription.last_cursor


def _table_name(message: dict[str, Any]) -> str:
    table = message.get("table")
    if not isinstance(table, str) or not table:
        raise ClientError(f'missing "table": a {message["type"]} message names a table')
    return table


async def forgebase_websocket(runtime: Runtime, websocket: WebSocket) -> None:
    await ForgeBaseSocket(runtime, websocket).serve()
