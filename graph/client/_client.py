"""`Client` and `Table`: the SDK's public face over HTTP (reads, writes) and WebSocket (changes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from graph.client import _documents as documents
from graph.client._backoff import Backoff
from graph.client._connection import Connection
from graph.client._errors import ClientError
from graph.client._http import HTTPTransport
from graph.client._subscription import ChangeStream, Subscription

if TYPE_CHECKING:
    from graph.client._subscription import Callback, ErrorCallback

Row = dict[str, Any]


def endpoints(url: str) -> tuple[str, str]:
    """The HTTP and WebSocket URLs of /graphql, from the server's base URL (or /graphql itself)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/graphql"):
        path += "/graphql"
    http = urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
    ws = urlunsplit(("wss" if parts.scheme == "https" else "ws", parts.netloc, path, parts.query, ""))
    return http, ws


class Client:
    """A forgegraph server: `async with Client(url, token=...) as client:`.

    One HTTP connection pool for queries and mutations, and one WebSocket,
    opened on the first subscription, shared by all subscriptions. `close()`
    ends every subscription and task the client owns.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        admin_secret: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        backoff: Backoff = Backoff(),
        buffer: int = 1000,
        trust_env: bool = True,
    ) -> None:
        http_url, ws_url = endpoints(url)
        auth = dict(headers or {})
        if token is not None:
            auth["Authorization"] = f"Bearer {token}"
        if admin_secret is not None:
            auth["X-Admin-Secret"] = admin_secret
        self.buffer = buffer
        self.http = HTTPTransport(http_url, auth, timeout=timeout, trust_env=trust_env)
        self.connection = Connection(
            ws_url, auth, backoff, open_timeout=min(timeout, 10.0), trust_env=trust_env
        )
        self._columns: dict[str, tuple[str, ...]] = {}

    def table(self, name: str) -> Table:
        return Table(self, documents.checked_name(name))

    async def execute(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run any GraphQL query or mutation; its `data`, or ClientError."""
        return await self.http.execute(query, variables)

    async def change_cursor(self) -> str:
        """The newest change cursor now: a subscription with `since` set to it misses nothing after."""
        data = await self.execute(documents.CHANGE_CURSOR)
        return str(data["changeCursor"])

    async def columns(self, table: str) -> tuple[str, ...]:
        """The table's columns this client's role may read (learned once, by introspection)."""
        known = self._columns.get(table)
        if known is not None:
            return known
        data = await self.execute(documents.TABLE_FIELDS, {"name": table})
        described = data.get("__type")
        if not described or not described.get("fields"):
            raise ClientError(
                f"table {table!r} does not exist or is not available to this role", "validation-failed"
            )
        columns = tuple(
            field["name"] for field in described["fields"] if _leaf_kind(field["type"]) in documents.LEAF_KINDS
        )
        self._columns[table] = columns
        return columns

    async def close(self) -> None:
        await self.connection.close()
        await self.http.aclose()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()


def _leaf_kind(type_ref: Mapping[str, Any]) -> str | None:
    # Columns are T or T! with T a scalar or enum; relationships are objects or lists.
    if type_ref.get("kind") == "NON_NULL":
        inner = type_ref.get("ofType") or {}
        return str(inner.get("kind"))
    return str(type_ref.get("kind"))


class Table:
    """One table of the server, as `client.table("posts")`."""

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = name

    async def _columns(self, columns: Sequence[str] | None) -> Sequence[str]:
        return columns if columns is not None else await self.client.columns(self.name)

    async def select(
        self,
        *,
        where: Mapping[str, Any] | None = None,
        order_by: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        limit: int | None = None,
        offset: int | None = None,
        columns: Sequence[str] | None = None,
    ) -> list[Row]:
        """Rows as dicts; `where` and `order_by` in the Hasura dialect (`{"id": {"_gt": 3}}`, `{"id": "desc"}`)."""
        given = {"where": where, "order_by": order_by, "limit": limit, "offset": offset}
        variables = {name: value for name, value in given.items() if value is not None}
        query = documents.select(self.name, await self._columns(columns), variables)
        rows: list[Row] = (await self.client.execute(query, variables))[self.name]
        return rows

    async def by_pk(self, key: Mapping[str, Any], *, columns: Sequence[str] | None = None) -> Row | None:
        """The row whose primary key is `key` (`{"id": 3}`), or None."""
        where = {name: {"_eq": value} for name, value in key.items()}
        rows = await self.select(where=where, limit=1, columns=columns)
        return rows[0] if rows else None

    async def insert(
        self, objects: Mapping[str, Any] | Sequence[Mapping[str, Any]], *, columns: Sequence[str] | None = None
    ) -> list[Row]:
        """Insert one row or several, in one transaction; the rows as stored."""
        listed = [dict(objects)] if isinstance(objects, Mapping) else [dict(o) for o in objects]
        query = documents.insert(self.name, await self._columns(columns))
        return await self._mutate(f"insert_{self.name}", query, {"objects": listed})

    async def update(
        self, where: Mapping[str, Any], values: Mapping[str, Any], *, columns: Sequence[str] | None = None
    ) -> list[Row]:
        """Set `values` on every row matching `where`; the rows after the change."""
        query = documents.update(self.name, await self._columns(columns))
        return await self._mutate(f"update_{self.name}", query, {"where": dict(where), "set": dict(values)})

    async def delete(self, where: Mapping[str, Any], *, columns: Sequence[str] | None = None) -> list[Row]:
        """Delete every row matching `where` (`{}` matches all); the rows as they were."""
        query = documents.delete(self.name, await self._columns(columns))
        return await self._mutate(f"delete_{self.name}", query, {"where": dict(where)})

    async def _mutate(self, field: str, query: str, variables: dict[str, Any]) -> list[Row]:
        data = await self.client.execute(query, variables)
        rows: list[Row] = data[field]["returning"]
        return rows

    async def subscribe(
        self,
        callback: Callback,
        *,
        where: Mapping[str, Any] | None = None,
        since: str | None = None,
        on_error: ErrorCallback | None = None,
    ) -> Subscription:
        """Call `callback(event)` (sync or async) for each change, in cursor order, exactly once.

        Without `since`, starts from the newest cursor when called
        (`changeCursor`), so every change committed after the call is
        delivered, even one made while a dropped connection before the first
        event was being reopened. `since` replays retained events after that
        cursor first ("0": everything still retained). Raises ClientError when the server refuses (unknown
        table, bad `where`, `invalid-cursor`, `invalid-jwt`) or cannot be
        reached. Later drops are retried; an error that ends the subscription
        afterwards goes to `on_error` (or the log). Call the returned
        subscription (`await unsubscribe()`) to stop.
        """
        subscription = await self._open(where, since)
        subscription.deliver_to(callback, on_error)
        return subscription

    def changes(
        self, *, where: Mapping[str, Any] | None = None, since: str | None = None
    ) -> ChangeStream:
        """`async for event in table.changes(...)`: the same events as `subscribe`, as an iterator.

        Subscribes on first iteration (or on `async with`); a ClientError that
        ends the subscription is raised from the iteration.
        """
        return ChangeStream(lambda: self._open(where, since))

    async def _open(self, where: Mapping[str, Any] | None, since: str | None) -> Subscription:
        connection = self.client.connection
        if since is None and not connection.closed:  # closed: add() says so
            # A cursor from the start, not from the first event: a drop before
            # that event then resumes from here and loses nothing.
            since = await self.client.change_cursor()
        subscription = Subscription(connection, self.name, where, since, self.client.buffer)
        await connection.add(subscription)
        return subscription
