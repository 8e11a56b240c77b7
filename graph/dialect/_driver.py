"""What the compiled mutations run on: jobs of statements, one transaction each.

A `Job` is a generator that yields `Statement`s and is sent each one's rows;
what it returns is the transaction's result. The same job runs on either
database: `transact` wraps it in one transaction, committed only when the
job returns, rolled back when anything raises. Each dialect's driver runs
it on connections its `Database` owns (`sqlite.py`, `postgres.py`).

A job may also yield an `Awaited` step: a coroutine (a user's resolver,
graph.compile.custom) given an `execute` that runs statements in the same
transaction, awaited by the driver, its result sent back into the job. So
what a custom mutation writes commits or rolls back with the generated
ones: one transaction, one path. Such a job is never `short`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from graph.sql.compiled import Statement

log = logging.getLogger("forgegraph")
T = TypeVar("T")
Rows = list[Sequence[Any]]
Execute = Callable[["Statement"], Awaitable[Rows]]
"""Runs one statement in the transaction of the job that yielded an `Awaited`."""


@dataclass(frozen=True)
class Awaited:
    """A step of a job that awaits: `run(execute)`, whose result is sent back into the job."""

    run: Callable[[Execute], Awaitable[Any]]


Job = Callable[[], Generator["Statement | Awaited", Any, T]]
"""Yields statements, is sent their rows (or thrown the statement's error, which it may catch
and carry on, as graphql-core carries on with the next root field); may be started again
from scratch (a retry)."""
StatementObserver = Callable[[str], None]


class Driver(Protocol):
    dialect: str
    observers: list[StatementObserver]
    """Called with each statement's SQL before it runs (tests watch what reaches the database)."""

    async def transact(
        self, job: Job[T], *, on_commit: Callable[[], None] | None = None, short: bool = False
    ) -> T:
        """Run `job` in one transaction; `short` allows running it without leaving the loop.

        Raises only when the transaction did not commit (so that running the
        request again is safe; a refused commit raises graph.errors' error for
        it, after the rollback), or CommitOutcomeUnknown when the connection
        was lost while committing; `on_commit` is called once it has
        committed, even when the awaiting task is gone.
        """
        ...

    async def fetch(self, statement: Statement) -> Rows:
        """Run one read outside any transaction."""
        ...


def drive(
    job: Job[T],
    execute: Callable[[Statement], Rows],
    abort: Callable[[Exception], bool] | None = None,
    wait: Callable[[Awaited], Any] | None = None,
) -> T:
    """Run `job` to its end, executing each statement it yields with `execute`.

    A statement's error is thrown into the job, unless `abort` says it ends
    the run outright (a busy SQLite database: the job runs again elsewhere).
    An `Awaited` step is `wait`'s (blocking until the event loop ran it).
    """
    steps = job()
    try:
        statement = next(steps)
        while True:
            try:
                if isinstance(statement, Awaited):
                    if wait is None:
                        raise TypeError("an awaiting job must not be run as a short one")
                    rows = wait(statement)
                else:
                    rows = execute(statement)
            except Exception as error:
                if abort is not None and abort(error):
                    steps.close()
                    raise
                statement = steps.throw(error)
            else:
                statement = steps.send(rows)
    except StopIteration as done:
        result: T = done.value
        return result


def committed(on_commit: Callable[[], None] | None) -> None:
    """Tell of a commit; nothing after a commit may raise (the request would run again)."""
    if on_commit is None:
        return
    try:
        on_commit()
    except Exception:
        log.exception("telling of a commit failed")
