"""One exception hierarchy, mapped here (and only here) to the codes users see.

A `ForgeError` carries its GraphQL `extensions.code`, the HTTP status used
when it ends a request outright, and the WebSocket close code used when it
ends a connection.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any, ClassVar, NoReturn

from sqlalchemy import exc

log = logging.getLogger("forgegraph.errors")


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


class Unexpected(ForgeError):
    """A failure that is not the client's: the message says what is known, never a traceback."""

    code = "unexpected"


class DatabaseUnreachable(Unexpected):
    http_status = 503

    def __init__(self) -> None:
        super().__init__("the database is unreachable; try again shortly")


OUTAGE_WORDS = ("unable to open database", "connect", "closed", "terminat", "shutting down")


def database_unreachable(error: BaseException | None) -> bool:
    """Whether `error` says the database cannot be reached (an outage, not a bug)."""
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated or isinstance(error, exc.InterfaceError):
            return True
        if isinstance(error.orig, OSError):
            return True
        text = str(error.orig).lower()
        return isinstance(error, exc.OperationalError) and any(w in text for w in OUTAGE_WORDS)
    # asyncpg and the OS report a refused or dropped connection before SQLAlchemy wraps it.
    if isinstance(error, OSError):
        return True
    return _driver_outage(error)


def _driver_outage(error: BaseException | None) -> bool:
    """The same, told by a driver itself (graph.dialect runs statements past SQLAlchemy)."""
    if error is None:
        return False
    asyncpg = any(c.__module__.startswith("asyncpg") for c in type(error).__mro__)
    if not (asyncpg or isinstance(error, sqlite3.Error)):
        return False
    # asyncpg's own "connection is closed", "released back to the pool".
    if asyncpg and any(c.__name__ == "InterfaceError" for c in type(error).__mro__):
        return True
    # PostgreSQL's connection exceptions (08) and operator intervention (57P: a terminated backend).
    if str(getattr(error, "sqlstate", None) or "").startswith(("08", "57P")):
        return True
    return any(w in str(error).lower() for w in OUTAGE_WORDS)


def contained(error: BaseException, doing: str) -> ForgeError:
    """The coded error one operation gets for `error`, raised while `doing` it; logged here.

    The one classification of failures for every path (HTTP, WebSocket,
    subscribing): a ForgeError as it is; the database refusing the request's
    data as the client's error; an outage as "unreachable"; anything else as
    `unexpected`, with the traceback in the log only. The operation fails,
    the connection and its other operations carry on.
    """
    if isinstance(error, ForgeError):
        return error
    refusal = database_refusal(error)
    if refusal is not None:
        return refusal
    if database_unreachable(error):
        # An outage is not a bug: one line in the log.
        log.warning("database unreachable while %s: %s", doing, (str(error).splitlines() or [""])[0])
        return DatabaseUnreachable()
    log.error("unexpected error while %s", doing, exc_info=error)
    return Unexpected(f"unexpected error while {doing}")


class CommitOutcomeUnknown(ForgeError):
    """The connection to the database was lost while committing: the write may or may not stand.

    Not an outage of the kind "try again shortly" answers (graph.execution):
    running the write again blindly could apply it twice.
    """

    code = "commit-outcome-unknown"
    http_status = 503
    MESSAGE: ClassVar[str] = (
        "the connection to the database was lost while committing; the write may or may not "
        "have been applied: check before retrying"
    )

    def __init__(self, message: str = MESSAGE, **extensions: Any) -> None:
        super().__init__(message, **extensions)


# More bind parameters than the driver takes in one statement (a 40,000-value `_in`).
TOO_MANY_PARAMETERS = ("number of query arguments cannot exceed", "too many sql variables")
MALFORMED_JSON = "malformed json"
"""SQLite's JSON functions' refusal of text that is not JSON."""


def database_refusal(error: BaseException) -> ForgeError | None:
    """The client's error when the database refused the request's data; None for anything else.

    Takes SQLAlchemy's wrapped errors and the drivers' own (sqlite3, asyncpg),
    raised by a statement or by COMMIT (a deferred constraint), so that every
    path tells the same refusal in the same words.
    """
    orig = error.orig if isinstance(error, exc.DBAPIError) else error
    sqlstate = str(getattr(orig, "sqlstate", None) or "")
    if (
        isinstance(error, exc.IntegrityError)
        or isinstance(orig, sqlite3.IntegrityError)
        or sqlstate.startswith("23")  # PostgreSQL's integrity constraint violations
    ):
        return ConstraintViolation(_reason(orig if orig is not None else error))
    reason = _reason(orig if orig is not None else error)
    lowered = reason.lower()
    if (
        isinstance(error, exc.DataError)
        or sqlstate.startswith("22")  # PostgreSQL's data exceptions: NUL in text, out of range
        or any(words in lowered for words in TOO_MANY_PARAMETERS)
    ):
        return ValidationFailed(f"the database refused a value of the request: {reason}")
    if MALFORMED_JSON in lowered:
        # SQLite keeps any text in a JSON column (another program wrote it); its JSON
        # functions refuse it when a filter or `_append` reads it. PostgreSQL never stores such text.
        return ValidationFailed(f"a stored JSON value could not be read: {reason} (the row holds text that is not JSON)")
    if isinstance(error, exc.DBAPIError) and isinstance(orig, ValueError | TypeError | OverflowError):
        # Data the driver rejects before it reaches the database (asyncpg's type checks).
        return ValidationFailed(f"the database refused a value of the request: {_reason(orig)}")
    return None


def raise_commit_failure(error: BaseException, *, connection_lost: bool) -> NoReturn:
    """Raise what a failed COMMIT tells the client, once its transaction owner has rolled back.

    A connection lost while committing leaves the outcome unknown; a refused
    commit (a deferred constraint) is the client's error; anything else is
    raised as it is (nothing was committed).
    """
    if connection_lost:
        # The operator's to look into: the client is told to check, not to retry.
        log.warning("the connection was lost while committing: %s", _reason(error))
        raise CommitOutcomeUnknown() from error
    refusal = database_refusal(error)
    if refusal is not None:
        raise refusal from error
    raise error


def _reason(error: BaseException) -> str:
    """The first line of the database's own words, without SQLAlchemy's adapter class prefix."""
    lines = str(error).strip().splitlines() or [""]
    return lines[0].split(": ", 1)[-1] if lines[0].startswith("<class") else lines[0]


class StartupError(Exception):
    """A user error found while starting (bad URL, unreachable database, port in use).

    The CLI prints its message as one line and exits non-zero, without a traceback.
    """
