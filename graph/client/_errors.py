"""What the SDK raises: one exception type carrying the server's `extensions.code`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class ClientError(Exception):
    """The server refused a request or a subscription, or could not be reached.

    `code` is the GraphQL `extensions.code` of the first error
    (`validation-failed`, `permission-denied`, `constraint-violation`,
    `invalid-jwt`, `not-found`, `invalid-cursor`), or None when the server
    gave none. `errors` holds every GraphQL error of the response as sent.
    """

    def __init__(
        self,
        message: str,
        code: str | None = None,
        errors: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.errors = list(errors)

    @classmethod
    def from_graphql(cls, errors: Sequence[Any]) -> ClientError:
        """The error for a GraphQL `errors` list (as in a response or an `error` message)."""
        listed = [e for e in errors if isinstance(e, Mapping)] or [{"message": "unknown error"}]
        first = listed[0]
        extensions = first.get("extensions")
        code = extensions.get("code") if isinstance(extensions, Mapping) else None
        return cls(str(first.get("message", "unknown error")), code if isinstance(code, str) else None, listed)

    def __str__(self) -> str:
        return f"{self.message} ({self.code})" if self.code else self.message


class ConnectionFailed(ClientError):
    """The server could not be reached, or the connection broke before it answered."""
