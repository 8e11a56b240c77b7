"""One exception hierarchy, mapped here (and only here) to the codes users see.

A `ForgeError` carries its GraphQL `extensions.code`, the HTTP status used
when it ends a request outright, and the WebSocket close code used when it
ends a connection.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ForgeError(Exception):
    code: ClassVar[str] = "unexpected"
    http_status: ClassVar[int] = 500
    close_code: ClassVar[int] = 1011

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = extensions

    def to_graphql(self) -> dict[str, Any]:
        return {"message": self.message, "extensions": {"code": self.code, **self.extensions}}


class ValidationFailed(ForgeError):
    code = "validation-failed"
    http_status = 400
    close_code = 4400


class PermissionDenied(ForgeError):
    code = "permission-denied"
    http_status = 403
    close_code = 4403


class ConstraintViolation(ForgeError):
    code = "constraint-violation"
    http_status = 400


class NotFound(ForgeError):
    code = "not-found"
    http_status = 404


class InvalidJWT(ForgeError):
    code = "invalid-jwt"
    http_status = 401
    close_code = 4403


class InvalidCursor(ForgeError):
    code = "invalid-cursor"
    http_status = 400


class TooManyRequests(ForgeError):
    """A client over a rate or connection limit (README "Limits and security")."""

    code = "too-many-requests"
    http_status = 429
    close_code = 4429


class StartupError(Exception):
    """A user error found while starting (bad URL, unreachable database, port in use).

    The CLI prints its message as one line and exits non-zero, without a traceback.
    """
