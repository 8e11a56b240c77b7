"""Hasura's streaming subscriptions: `t_stream(batch_size:, cursor:, where:)`, exact under concurrent commits.

What a subscriber receives (README, "Streaming subscriptions"):

1. The catch-up: the rows a query would return with `where`, the role's
   rules and the cursor column after `initial_value` (before it with
   `DESC`), in cursor order (ties broken by the primary key), in messages of
   `batch_size` rows. Each page is one statement of the query compiler.
2. Then every row *inserted* after that read, in the order the inserts
   committed (the change log's order, not the cursor column's), when it
   matches `where`, the role's rules and the cursor condition at the moment
   it is read back (at once after the commit), with its values then; up to
   `batch_size` rows per message. Updates and deletes send nothing.

Every row is sent at most once. A row whose transaction drew a smaller id
but committed later is still sent (a poll on `id > last id`, Hasura's way,
steps past it): new rows are found from the `create` events of the log,
which is in commit order, not from the cursor column.

The hand-off is exact: the stream joins the hub (which from then on hands
it every new change) before its first read, and reads the log's newest
cursor in the same statement as its first page (`Beside`): the changes up
to that cursor are in the page's snapshot, those after it are not. Pages
after the first are read in later snapshots: a row they return that was
inserted after the first page's snapshot is remembered with that page's
cursor, so its create event is not sent a second time.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

import orjson
from graphql import ExecutionResult

from graph.compile.query_plans import Beside
from graph.delivery.stream_query import CURSOR_KEY, KEY_PREFIX, ROWS
from graph.errors import ForgeError, contained
from graph.events.changelog import LATEST_CURSOR_SQL
from graph.events.hub import StreamKey
from graph.execution import format_error

if TYPE_CHECKING:
    from collections.abc import Sequence

    from graph.auth import Session
    from graph.delivery.message import Frame
    from graph.delivery.outbox import Outbox
    from graph.delivery.stream_query import StreamQuery
    from graph.events.change import ChangeEvent, ChangeType
    from graph.events.hub import Subscription
    from graph.execution import Executor
    from graph.generation import Generation
    from graph.model import Table
    from graph.runtime import Runtime

log = logging.getLogger("forgegraph.delivery")

READ_BACK = 500
"""The most new rows read back by one statement (still at most --max-limit)."""
MAX_WAITING = 100_000
"""New rows a stream may have waiting to be read back; past it the connection is a slow consumer (1013)."""

Key = tuple[Any, ...]
Failed = Callable[[list[dict[str, Any]]], None]
"""Told the errors that ended a stream (the socket sends them and forgets the operation)."""


class _Gone(Exception):
    """The connection closed: the stream has nothing more to do."""


class StreamFailed(Exception):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0].get("message") if errors else "the stream failed")
        self.errors = errors


class NewRows:
    """Where the hub delivers a stream's changes: the keys of created rows, with their cursors.

    Meets `graph.events.sink.Sink`; the stream's task reads it. Only the
    keys are kept: the rows are read back through the query compiler.
    """

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.closed = False
        self.accepted = 0
        self.held = 0
        self.waiting: deque[tuple[int, str]] = deque()
        self.arrived = asyncio.Event()

    @property
    def limit(self) -> int:
        return MAX_WAITING

    @property
    def replay_page(self) -> int:
        return READ_BACK

    def push(self, messages: Sequence[Any]) -> None:
        for cursor, payload in messages:
            if payload:
                self.waiting.append((cursor, payload))
        if len(self.waiting) > MAX_WAITING:
            self.overflow()
        self.arrived.set()

    def overflow(self) -> None:
        self.closed = True
        self.outbox.overflow()

    def can_hold(self) -> bool:
        return True

    def let_go(self, held: int) -> None:
        pass

    def reserve_replay(self) -> None:
        pass

    async def room(self, messages: int) -> bool:
        return not self.closed

    async def take(self, most: int) -> list[tuple[int, str]]:
        """The next keys waiting (at least one, at most `most`), in commit order."""
        while not self.waiting:
            self.arrived.clear()
            await self.arrived.wait()
        return [self.waiting.popleft() for _ in range(min(most, len(self.waiting)))]


class KeyFrame:
    """Every stream subscription takes the payload as it is, with its cursor."""

    key: Hashable = "forgegraph-stream-keys"

    def __call__(self, payload: str, cursor: int) -> tuple[int, str]:
        return (cursor, payload)


def _created_keys(table: Table) -> Callable[[ChangeEvent, ChangeType], str]:
    """A render that names each created row by its primary key (JSON), and nothing else."""
    columns = table.primary_key

    def render(event: ChangeEvent, change: ChangeType) -> str:
        if change != "create" or event.new is None:
            return ""
        return orjson.dumps([event.new.get(c) for c in columns]).decode()

    return render


class Stream:
    """One `t_stream` subscription: its hub subscription and the task that reads and sends its rows."""

    def __init__(
        self,
        runtime: Runtime,
        generation: Generation,
        executor: Executor,
        session: Session,
        query: StreamQuery,
        outbox: Outbox,
        frame: Frame,
        failed: Failed,
    ) -> None:
        self.runtime = runtime
        self.generation = generation
        """The schema the stream was planned on: its reads stay on it (graph.generation)."""
        self.executor = executor
        self.session = session
        self.query = query
        self.outbox = outbox
        self.frame = frame
        self.failed = failed
        self.new_rows = NewRows(outbox)
        max_limit = runtime.settings.limits.max_limit
        # A page shorter than asked for is the last: ask for no more than a query may return.
        self.page = min(query.batch_size, max_limit) if max_limit else query.batch_size
        self.read_back = min(READ_BACK, max_limit) if max_limit else READ_BACK
        self.subscription: Subscription | None = None
        self.joined_at = 0
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Join the hub, then read and send in a task of its own (`task`)."""
        table = self.query.table
        realtime = self.runtime.realtime
        self.subscription = await realtime.subscribe(
            StreamKey("stream", table.name, ""), table, None, _created_keys(table), self.new_rows, KeyFrame()
        )
        # Every change after this one reaches `new_rows`; the first page's snapshot holds at least these.
        self.joined_at = realtime.dispatched_through
        self.task = asyncio.create_task(self._run(), name="forgegraph-stream")

    async def _run(self) -> None:
        try:
            through, remembered = await self._catch_up()
            if through < self.joined_at:
                await self._read_log(through, self.joined_at)
            await self._live(through, remembered)
        except asyncio.CancelledError:
            raise
        except _Gone:
            self.new_rows.closed = True
        except StreamFailed as failure:
            self.new_rows.closed = True
            self.failed(failure.errors)
        except ForgeError as error:
            self.new_rows.closed = True
            self.failed([error.to_graphql()])
        except Exception as error:  # noqa: BLE001 - this stream's alone: the socket lives on
            self.new_rows.closed = True
            self.failed([contained(error, "streaming").to_graphql()])

    async def _catch_up(self) -> tuple[int, dict[Key, int]]:
        """Send the rows after the cursor, page by page; the first page's cursor, and rows to remember."""
        query = self.query
        first: int | None = None
        remembered: dict[Key, int] = {}
        position: tuple[Any, Key | None] = (query.initial, None)
        while True:
            rows, seen = await self._read(query.filter(query.after(*position)), self.page)
            if first is None:
                first = seen
            elif seen > first:
                for key, _value, _row in rows:
                    remembered[key] = seen
            await self._send([row for _key, _value, row in rows])
            # A statement may complete without yielding (SQLite answers short reads on
            # the loop): a long catch-up must not hold the loop from every other request.
            await asyncio.sleep(0)
            if len(rows) < self.page:
                return first, remembered
            key, value, _row = rows[-1]
            position = (value, key)

    async def _read_log(self, after: int, through: int) -> None:
        """Put the rows created in (`after`, `through`] first in line, from the change log.

        Only if the first page's snapshot were older than the hub's position
        when the stream joined, which commit order rules out; kept so that
        a stream never has a gap.
        """
        log.warning("stream read a snapshot at cursor %d, older than %d: reading the log between", after, through)
        realtime = self.runtime.realtime
        render = _created_keys(self.query.table)
        created: list[tuple[int, str]] = []
        while after < through:
            async with realtime.engine.connect() as conn:
                batch = await realtime.changelog.read_retained(conn, after, [self.query.table.name])
            if batch.through == after:
                break
            after = batch.through
            created.extend((e.cursor, render(e, e.type)) for e in batch.events if e.cursor <= through)
        self.new_rows.waiting.extendleft(reversed([c for c in created if c[1]]))

    async def _live(self, through: int, remembered: dict[Key, int]) -> None:
        """Send each row inserted after the change with cursor `through`, in commit order."""
        query = self.query
        latest = max(remembered.values(), default=0)
        while True:
            keys: dict[Key, None] = {}
            for cursor, payload in await self.new_rows.take(self.read_back):
                if cursor <= through:
                    continue  # in the first page's snapshot already
                key = tuple(orjson.loads(payload))
                if remembered.get(key, 0) >= cursor:
                    continue  # a later page read this very row
                keys.pop(key, None)  # a key inserted again: its last insert's place
                keys[key] = None
                if latest and cursor > latest:
                    remembered.clear()
                    latest = 0
            if not keys:
                continue
            rows, _seen = await self._read(query.with_keys(list(keys)), None, beside=False)
            by_key = {key: row for key, _value, row in rows}
            await self._send([by_key[key] for key in keys if key in by_key])
            await asyncio.sleep(0)  # as in the catch-up: others' turn

    async def _read(
        self, where: dict[str, Any], limit: int | None, *, beside: bool = True
    ) -> tuple[list[tuple[Key, Any, dict[str, Any]]], int]:
        """(key, cursor value, row as sent) of the rows read, and the log's cursor in their snapshot."""
        realtime = self.runtime.realtime
        # Without capture no log to read beside the rows: the newest event dispatched
        # before the read is in its snapshot (one after it may be too, and sent again).
        side = Beside(LATEST_CURSOR_SQL) if beside and realtime.capture else None
        before = realtime.dispatched_through
        answer = await self.generation.query_plans.answer(
            self.executor, self.session, self.query.document, None,
            self.query.variables_for(where, limit), beside=side,
        )
        if isinstance(answer, ExecutionResult):
            if answer.errors:
                raise StreamFailed([format_error(e) for e in answer.errors])
            data = answer.data or {}
        else:
            body = orjson.loads(answer)
            if body.get("errors"):
                raise StreamFailed(body["errors"])
            data = body["data"]
        if side is not None and side.value is None:
            raise StreamFailed([{"message": "the stream's rows were not read in one statement",
                                 "extensions": {"code": "unexpected"}}])
        width = len(self.query.key_columns)
        out = []
        for row in data[ROWS]:
            key = tuple(row.pop(f"{KEY_PREFIX}{i}") for i in range(width))
            out.append((key, row.pop(CURSOR_KEY), row))
        if beside and not realtime.capture:
            return out, before
        return out, int(side.value) if side is not None and side.value is not None else 0

    async def _send(self, rows: list[dict[str, Any]]) -> None:
        """Send `rows` in messages of at most batch_size, each when the connection has room."""
        size = self.query.batch_size
        for start in range(0, len(rows), size):
            if self.outbox.closed or (self.outbox.waiting >= self.outbox.limit and not await self.outbox.room(1)):
                raise _Gone
            payload = orjson.dumps({"data": {self.query.root_key: rows[start : start + size]}}).decode()
            self.outbox.push([self.frame(payload, 0)])

    def stop(self) -> None:
        """End the stream (the socket unsubscribes its hub subscription)."""
        self.new_rows.closed = True
        if self.task is not None:
            self.task.cancel()
