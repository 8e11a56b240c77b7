"""The graphql-transport-ws protocol, as far as the SDK speaks it, and which endings are final."""

from __future__ import annotations

from typing import Any

SUBPROTOCOL = "graphql-transport-ws"

# Close codes after which reconnecting cannot help: the server rejected the
# credentials (4403) or the client broke the protocol (its own bug). 4429 is
# not among them: forgegraph also sends it for a rate limit, which passes.
BAD_REQUEST = 4400
UNAUTHORIZED = 4401
FORBIDDEN = 4403
DUPLICATE_ID = 4409
FINAL_CLOSE_CODES = {
    BAD_REQUEST: "validation-failed",
    UNAUTHORIZED: "invalid-jwt",
    FORBIDDEN: "invalid-jwt",
    DUPLICATE_ID: "validation-failed",
}
# Client messages per second (and burst), well under the server's default
# limit of 100, so that resubscribing many subscriptions at once is not cut off.
MESSAGES_PER_SECOND = 50
# HTTP answers to the upgrade request that mean the URL or credentials are wrong.
FINAL_HTTP_STATUSES = {400: "validation-failed", 401: "invalid-jwt", 403: "invalid-jwt", 404: "not-found"}


def connection_init(headers: dict[str, str]) -> dict[str, Any]:
    return {"type": "connection_init", "payload": {"headers": headers}}


def subscribe(op_id: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    return {"id": op_id, "type": "subscribe", "payload": {"query": query, "variables": variables}}


def complete(op_id: str) -> dict[str, Any]:
    return {"id": op_id, "type": "complete"}


def ping(barrier: int) -> dict[str, Any]:
    return {"type": "ping", "payload": {"barrier": barrier}}


def pong(payload: Any = None) -> dict[str, Any]:
    return {"type": "pong"} if payload is None else {"type": "pong", "payload": payload}
