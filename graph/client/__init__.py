"""An async Python SDK for a forgegraph server, over HTTP and graphql-transport-ws.

    async with Client("http://127.0.0.1:8000", token=jwt) as client:
        posts = client.table("posts")
        rows = await posts.select(where={"published": {"_eq": True}}, order_by={"id": "asc"}, limit=10)
        unsubscribe = await posts.subscribe(print)

It imports nothing of the server: httpx and websockets are all it needs.
"""

from graph.client._backoff import Backoff
from graph.client._client import Client, Table
from graph.client._errors import ClientError, ConnectionFailed
from graph.client._events import ChangeEvent, ChangeType
from graph.client._subscription import ChangeStream, Subscription

__all__ = [
    "Backoff",
    "ChangeEvent",
    "ChangeStream",
    "ChangeType",
    "Client",
    "ClientError",
    "ConnectionFailed",
    "Subscription",
    "Table",
]
