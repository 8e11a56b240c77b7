"""Live queries: a query field in a subscription, answered again whenever a commit may change it.

`subscription { posts(where: ..., limit: 10) { id title } }` (any generated
query field: `t`, `t_by_pk`, `t_aggregate`) is answered as the same query
over HTTP is, by the one compiler (`graph.compile.query_plans`): the
document is turned into a query document and answered by `graph.execute`,
with the same row and column rules and the same `--max-limit` clamping.

Subscribers of the same document, operation, role and variables form a
`Group`, which shares one answer (users of the role apart only when its
plan binds their session values). The groups of one document, operation
and role form a `Family`, refreshed together: its dirty groups are answered
by one statement per plan, their variables and session values its
parameter (`QueryPlans.answer_many`). The plan names the tables it reads
(`QueryPlans.tables_read`); a batch of committed changes to one of them
(told by `graph.events.capture.Realtime.watchers`, after the hub has
dispatched it) marks the group dirty. At most one refresh of a family is in
flight: groups dirtied during a refresh are answered again when it ends, so
the last change is never skipped, and changes that arrive meanwhile cost
one refresh between them. A subscriber is sent the new answer only when its
bytes differ from the last it was sent.

A refresh that fails (the database is gone, a table was dropped) ends that
group's subscriptions: each gets the answer with its errors, then `complete`;
other groups carry on. A first answer that fails (a negative `limit`) is the
subscription's error, as any subscription refused at subscribe time.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    NamedTypeNode,
    NameNode,
    OperationDefinitionNode,
    OperationType,
    get_operation_ast,
    print_ast,
)
from graphql.execution.values import get_variable_values

from graph import execute
from graph.compile._query_shape import QUERIES
from graph.root_field import root_field

if TYPE_CHECKING:
    from graphql import GraphQLSchema, SelectionSetNode

    from graph.auth import Session
    from graph.compile.query_plans import Reads
    from graph.events.capture import Realtime
    from graph.execution import Executor
    from graph.generation import Generation
    from graph.runtime import Runtime

log = logging.getLogger("forgegraph.delivery")

READS_KEPT = 10_000
"""Live queries (document, role, variables) whose tables are kept known, beside those subscribed."""

Deliver = Callable[[bytes], None]
"""Send one answer (the whole response body) to a subscriber as its protocol's result message."""
Finish = Callable[[bytes, bool], None]
"""End the subscription with a failed answer and forget it; True: it is its first answer
(told as the subscription's error, as a refused subscribe is), else a refresh's (the answer
with its errors, then `complete`)."""


def live_query(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None) -> str | None:
    """The query document answering a live-query subscription; None when `document` is not one.

    A subscription is a live query when its root field is a generated query
    field of `subscription_root`. The text is the same operation as a query
    (and only it, with its fragments), answered as a query sent over HTTP is.
    """
    operation = get_operation_ast(document, operation_name)
    subscription = schema.subscription_type
    query = schema.query_type
    if (
        operation is None
        or operation.operation is not OperationType.SUBSCRIPTION
        or subscription is None
        or query is None
    ):
        return None
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    names = _root_names(operation.selection_set, fragments, set())
    if not names or "tableChanged" in names:
        return None
    for name in names:
        if name == "__typename":
            continue
        found = subscription.fields.get(name)
        tag = root_field(found) if found is not None else None
        if tag is None or tag.kind not in QUERIES:
            return None
    definitions: list[Any] = [
        OperationDefinitionNode(
            operation=OperationType.QUERY,
            name=operation.name,
            variable_definitions=operation.variable_definitions,
            directives=operation.directives,
            selection_set=operation.selection_set,
        )
    ]
    for fragment in fragments.values():
        if fragment.type_condition.name.value == subscription.name:
            fragment = FragmentDefinitionNode(
                name=fragment.name,
                type_condition=NamedTypeNode(name=NameNode(value=query.name)),
                variable_definitions=fragment.variable_definitions,
                directives=fragment.directives,
                selection_set=fragment.selection_set,
            )
        definitions.append(fragment)
    return print_ast(DocumentNode(definitions=tuple(definitions)))


def _root_names(
    selection_set: SelectionSetNode, fragments: dict[str, FragmentDefinitionNode], seen: set[str]
) -> set[str]:
    """The field names a root selection set selects, through fragments (directives not applied)."""
    names: set[str] = set()
    for node in selection_set.selections:
        if isinstance(node, FieldNode):
            names.add(node.name.value)
        elif isinstance(node, InlineFragmentNode):
            names |= _root_names(node.selection_set, fragments, seen)
        elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen:
            seen.add(node.name.value)
            fragment = fragments.get(node.name.value)
            if fragment is not None:
                names |= _root_names(fragment.selection_set, fragments, seen)
    return names


@dataclass(eq=False)
class LiveSubscription:
    """One live query of one connection."""

    deliver: Deliver
    finish: Finish
    group: Group | None = None
    last: bytes | None = None
    """The answer last sent to it: an equal one is not sent again."""


@dataclass(eq=False)
class Group:
    """The subscribers one answer serves: same document, operation, role, session values, variables."""

    key: tuple[Any, ...]
    family: Family
    operation: execute.Operation
    tables: frozenset[str] | None
    """What the answer reads (None: any table)."""
    members: dict[LiveSubscription, None] = field(default_factory=dict)
    dirty: bool = False


@dataclass(eq=False)
class Family:
    """The groups of one document, operation and role: refreshed together, by one statement per plan."""

    key: tuple[Any, ...]
    transport: str
    """Its first subscriber's protocol: each answer counts as one of its operations in /metrics."""
    generation: Generation
    """The schema its document was validated on: its answers stay on it (graph.generation)."""
    groups: dict[tuple[Any, ...], Group] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    """The refresh in flight: at most one."""


class LiveQueries:
    """This process's live queries, refreshed after each batch of committed changes."""

    def __init__(self, runtime: Runtime, realtime: Realtime) -> None:
        self.runtime = runtime
        self.families: dict[tuple[Any, ...], Family] = {}
        self._by_table: dict[str, set[Group]] = {}
        self._any_table: set[Group] = set()
        self._reads: dict[tuple[Any, ...], Reads] = {}
        """What each live query's answer depends on, as its plan says (the oldest dropped first)."""
        self._shared_reads: dict[Reads, Reads] = {}
        """Each distinct Reads once (a handful: the tables of each document)."""
        self.refreshes = 0
        """Statements' worth of refreshes so far: one per family refresh (tests check they are shared)."""
        realtime.watchers.append(self.changed)

    @property
    def groups(self) -> dict[tuple[Any, ...], Group]:
        """Every group, by key."""
        return {key: group for family in self.families.values() for key, group in family.groups.items()}

    def subscribe(
        self,
        generation: Generation,
        executor: Executor,
        session: Session,
        query: str,
        operation_name: str | None,
        variables: dict[str, Any] | None,
        deliver: Deliver,
        finish: Finish,
        transport: str,
    ) -> LiveSubscription:
        """Join (or start) the group of this live query; its answer comes at once, from the family's task.

        `query` is `live_query`'s text. Raises GraphQLError when the
        variables do not coerce, as the subscription's own error.
        """
        prepared = executor.prepare(query)
        document = prepared.document
        if document is None:
            raise prepared.errors[0]
        operation = get_operation_ast(document, operation_name)
        assert operation is not None
        coerced = get_variable_values(executor.schema, operation.variable_definitions or (), variables or {})
        if isinstance(coerced, list):
            raise coerced[0]
        family_key = (executor, query, operation_name, session.rules_role)
        family = self.families.get(family_key)
        if family is not None:
            # Each subscribe prints its own copy of the text: the family's is kept, once.
            family_key = family.key
            query = family_key[1]
        query_key = (*family_key, _json_key(variables))
        reads = self._reads.get(query_key)
        if reads is None:
            found = generation.query_plans.tables_read(executor, session, query, operation_name, variables, prepared)
            # Most variable sets of a document read the same tables: one Reads for them all.
            reads = self._reads[query_key] = self._shared_reads.setdefault(found, found)
            if len(self._reads) > READS_KEPT:
                del self._reads[next(iter(self._reads))]
        # Sessions of one role share the answer unless its plan binds their values.
        key = (*query_key, tuple(sorted(session.variables.items())) if reads.session else None)
        if family is None:
            family = self.families[family_key] = Family(family_key, transport, generation)
        group = family.groups.get(key)
        if group is None:
            once = execute.Operation(
                executor, prepared, document, OperationType.QUERY, query, variables, operation_name, session
            )
            group = family.groups[key] = Group(key, family, once, reads.tables)
            if reads.tables is None:
                self._any_table.add(group)
            else:
                for table in reads.tables:
                    self._by_table.setdefault(table, set()).add(group)
        subscription = LiveSubscription(deliver, finish, group)
        group.members[subscription] = None
        # Answered by a refresh (not from the group's last answer, which may
        # predate a commit whose events are still on their way).
        self._mark(group)
        return subscription

    def unsubscribe(self, subscription: LiveSubscription) -> None:
        group, subscription.group = subscription.group, None
        if group is None:
            return
        group.members.pop(subscription, None)
        if not group.members:
            self._drop(group)

    def changed(self, tables: frozenset[str]) -> None:
        """Committed changes to `tables` were read from the log: their live queries are dirty."""
        dirty: set[Group] = set(self._any_table)
        for table in tables:
            dirty.update(self._by_table.get(table, ()))
        for group in dirty:
            self._mark(group)

    def _drop(self, group: Group) -> None:
        family = group.family
        if family.groups.get(group.key) is not group:
            return
        del family.groups[group.key]
        self._any_table.discard(group)
        for table in group.tables or ():
            members = self._by_table.get(table)
            if members is not None:
                members.discard(group)
                if not members:
                    del self._by_table[table]
        if not family.groups and self.families.get(family.key) is family:
            del self.families[family.key]
            if family.task is not None and family.task is not asyncio.current_task():
                family.task.cancel()

    def _mark(self, group: Group) -> None:
        group.dirty = True
        family = group.family
        if family.task is None:
            family.task = asyncio.create_task(self._refresh(family), name="forgegraph-live-query")

    async def _refresh(self, family: Family) -> None:
        """Answer the family's dirty groups again until none was dirtied during the last answers."""
        try:
            while True:
                dirty = [g for g in family.groups.values() if g.dirty and g.members]
                if not dirty:
                    return
                for group in dirty:
                    group.dirty = False
                self.refreshes += 1
                meter = self.runtime.metrics.live
                meter.refreshes += 1
                meter.answers += len(dirty)
                answers = await execute.answer_many(
                    family.generation, [g.operation for g in dirty], family.transport
                )
                for group, answer in zip(dirty, answers, strict=True):
                    self._send(group, answer.body)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("refreshing a live query failed")
        finally:
            family.task = None

    def _send(self, group: Group, body: bytes) -> None:
        """Send a group's answer to each subscriber it changed for; a failed one ends the group."""
        if body.startswith(b'{"errors"'):
            # The group's subscriptions end with their error; the others carry on.
            self._drop(group)
            for subscription in list(group.members):
                subscription.group = None
                try:
                    subscription.finish(body, subscription.last is None)
                except Exception:
                    log.exception("ending a failed live query")
            group.members.clear()
            return
        for subscription in list(group.members):
            if subscription.last != body:
                subscription.last = body
                subscription.deliver(body)


def _json_key(variables: dict[str, Any] | None) -> str:
    try:
        # As text: orjson's bytes keep the capacity of its write buffer (4 KiB a group, kept for its life).
        return orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS).decode()
    except (orjson.JSONEncodeError, TypeError):
        return repr(sorted((variables or {}).items()))


_live: weakref.WeakKeyDictionary[Realtime, LiveQueries] = weakref.WeakKeyDictionary()


def live_queries(runtime: Runtime) -> LiveQueries:
    """The runtime's live queries, made when the first one subscribes (one per change capture)."""
    realtime = runtime.realtime
    found = _live.get(realtime)
    if found is None:
        found = _live[realtime] = LiveQueries(runtime, realtime)
    return found
