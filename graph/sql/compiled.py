"""SQLAlchemy statements as the database driver runs them: SQL text and positional arguments.

SQLAlchemy still builds and compiles every statement, so the SQL is the same
as on the execution layer's path; what this skips is that layer itself
(connection wrappers, result processing, the greenlet bridge), which costs
more than the statement on a fast database. A statement is compiled once per
shape, found again by SQLAlchemy's own cache key, whose extracted bind values
are the arguments of this execution.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.sql.compiler import SQLCompiler

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect
    from sqlalchemy.sql import ClauseElement

CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement in the driver's paramstyle (`?` for sqlite3, `$1` for asyncpg)."""

    sql: str
    args: tuple[Any, ...]


class Compiled:
    """One compiled statement; `bind(params)` gives the statement for a set of values."""

    def __init__(self, compiled: SQLCompiler) -> None:
        self.compiled = compiled
        self.sql = compiled.string
        self.names: Sequence[str] = compiled.positiontup or ()
        # A processor per name (the sequences are for tuple-valued IN, which we do not bind).
        self.processors: Mapping[str, Callable[[Any], Any]] = compiled._bind_processors  # type: ignore[assignment]
        # `IN` lists of client filters render their elements at execution time.
        self.expanding = bool(compiled.post_compile_params or compiled.literal_execute_params)
        self._constants: dict[str, Any] | None = None
        """The values of the parameters `bind_given` is not given (the statement's own literals)."""

    def bind(
        self, params: Mapping[str, Any] | None = None, extracted: Sequence[Any] | None = None
    ) -> Statement:
        """The statement with `params` (by bind name) and `extracted` (from a cache key) bound."""
        compiled = self.compiled
        if self.expanding:
            named = compiled.construct_params(params, extracted_parameters=extracted, escape_names=False)
            state = compiled.construct_expanded_state(named)
            return Statement(state.statement, _args(state.positiontup or (), state.parameters, state.processors))
        values = compiled.construct_params(params, extracted_parameters=extracted)
        return Statement(self.sql, _args(self.names, values, self.processors))

    def bind_given(self, params: dict[str, Any]) -> Statement:
        """`bind(params)` for a statement whose parameters `params` names, but for the statement's
        own constants: the arguments straight from `params` (which this extends with the
        constants), without SQLAlchemy's merging of every parameter (graph.events.decide).
        A statement with IN lists rendered at execution goes through `bind`."""
        if self.expanding:
            return self.bind(params)
        constants = self._constants
        if constants is None:
            binds = self.compiled.binds
            constants = self._constants = {
                name: binds[name].effective_value for name in self.names if name not in params
            }
        params.update(constants)
        return Statement(self.sql, _args(self.names, params, self.processors))


def _args(
    names: Sequence[str], values: Mapping[str, Any], processors: Mapping[str, Callable[[Any], Any]]
) -> tuple[Any, ...]:
    if not processors:
        return tuple(values[name] for name in names)
    return tuple(
        processors[name](values[name]) if name in processors else values[name] for name in names
    )


class Statements:
    """Compiles statements for one dialect, each shape once (an LRU of `CACHE_SIZE`).

    Used from the event loop and from a driver's worker thread alike, hence the lock.
    """

    def __init__(self, dialect: Dialect, size: int = CACHE_SIZE) -> None:
        self.dialect = dialect
        self.size = size
        self._cache: OrderedDict[Any, Compiled] = OrderedDict()
        self._lock = threading.Lock()

    def prepare(self, statement: ClauseElement, column_keys: Sequence[str] = ()) -> Compiled:
        """Compile a statement whose values are given to `Compiled.bind` (an INSERT's columns)."""
        return Compiled(_compile(statement, self.dialect, column_keys=list(column_keys)))

    def bind(self, statement: ClauseElement, params: Mapping[str, Any] | None = None) -> Statement:
        """A statement built with its values in it, compiled once per shape.

        `params` gives values by bind key over the statement's own (a session's
        values of a role's rules, graph.rules.to_sql.SessionParameters).
        """
        key = statement._generate_cache_key()
        if key is None:  # an element SQLAlchemy cannot cache: compile it every time
            return Compiled(_compile(statement, self.dialect)).bind(params)
        with self._lock:
            compiled = self._cache.get(key.key)
            if compiled is not None:
                self._cache.move_to_end(key.key)
        if compiled is None:
            compiled = Compiled(_compile(statement, self.dialect, cache_key=key))
            with self._lock:
                self._cache[key.key] = compiled
                if len(self._cache) > self.size:
                    self._cache.popitem(last=False)
        return compiled.bind(params, extracted=key.bindparams)


def _compile(statement: ClauseElement, dialect: Dialect, **options: Any) -> SQLCompiler:
    compiled = statement.compile(dialect=dialect, **options)
    assert isinstance(compiled, SQLCompiler)
    return compiled
