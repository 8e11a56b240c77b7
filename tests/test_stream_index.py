"""The hub's stream index (graph.events.index): an event reaches exactly the streams a scan would.

Units on the hub with many streams, each checked against a brute-force scan
of every stream (`Stream.view` on each, in join order), then a property test
over random filters, rows, joins and leaves, then one end-to-end run over
real sockets with a subscriber per `user_id`.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graph.access import EventView
from graph.delivery.changes import combine
from graph.events.change import ChangeEvent, ChangeType
from graph.events.hub import Hub, Stream, StreamKey, Subscription
from graph.model import Column, DatabaseModel, Kind, Table
from graph.rules.bool_exp import (
    And,
    BoolExp,
    ColumnExp,
    Compare,
    Not,
    Or,
    SessionVariable,
    canonical,
)
from graph.rules.lookup import NULL, required_keys
from graph.rules.matcher import compile_matcher, equality_key
from graph.rules.parse import parse_stream_where
from graph.rules.session import resolve
from tests.conftest import Api
from tests.test_realtime import subscribe

POSTS = Table(
    "posts",
    (
        Column("id", Kind.INTEGER, False),
        Column("user_id", Kind.INTEGER, True),
        Column("status", Kind.STRING, True),
        Column("score", Kind.FLOAT, True),
        Column("flag", Kind.BOOLEAN, True),
    ),
    ("id",),
)
USERS = Table("users", (Column("id", Kind.INTEGER, False), Column("user_id", Kind.INTEGER, True)), ("id",))
TABLES = {"posts": POSTS, "users": USERS}


class Sink:
    """A connection that takes everything at once and remembers it."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.closed = False
        self.accepted = 0
        self.held = 0
        self.limit = 1_000_000
        self.replay_page = 100
        self.received: list[str] = []

    def push(self, messages: Sequence[Any]) -> None:
        self.received.extend(messages)
        self.accepted += len(messages)

    def let_go(self, held: int) -> None:
        self.held -= held

    def __repr__(self) -> str:
        return f"Sink({self.name})"


class Raw:
    """The payload itself as the message."""

    key: Hashable = "raw"

    def __call__(self, payload: str, cursor: int) -> str:
        return payload


ORIGINAL_VIEW = Stream.view


class Rig:
    """A hub, its subscriptions, and what a scan of every stream would deliver."""

    def __init__(self, sinks: int = 1) -> None:
        self.hub = Hub()
        self.sinks = [Sink(str(i)) for i in range(sinks)]
        self.subscriptions: list[Subscription] = []
        self.cursor = 0

    def join(self, where: BoolExp | dict[str, Any] | None, table: Table = POSTS, sink: int = 0) -> Subscription:
        if isinstance(where, dict):
            where = parse_stream_where(table, where)
        label = canonical(where)

        def render(event: ChangeEvent, change: ChangeType) -> str:
            return f"{table.name} {label} {change} {event.cursor}"

        key = StreamKey("test", table.name, label)
        subscription = self.hub.join(key, table, where, render, self.sinks[sink], Raw())
        self.subscriptions.append(subscription)
        return subscription

    def leave(self, subscription: Subscription) -> None:
        self.hub.leave(subscription)
        self.subscriptions.remove(subscription)

    def event(self, old: dict[str, Any] | None, new: dict[str, Any] | None, table: str = "posts") -> ChangeEvent:
        self.cursor += 1
        kind: ChangeType = "create" if old is None else "delete" if new is None else "update"
        return ChangeEvent(self.cursor, table, kind, old, new)

    def scan(self, events: list[ChangeEvent]) -> dict[Sink, list[str]]:
        """What the hub delivered before it had an index: every stream of the table, in join order."""
        expected: dict[Sink, list[str]] = defaultdict(list)
        view = ORIGINAL_VIEW  # not counted (`counting_views`)
        for event in events:
            for stream in self.hub.streams.values():  # created in join order, as the scan visited them
                if stream.table.name != event.table:
                    continue
                change = view(stream, event)
                if change is None:
                    continue
                payload = stream.render(event, change)
                for sub in stream.members:
                    expected[sub.sink].append(payload)  # type: ignore[index]
        return expected

    def dispatch(self, *events: ChangeEvent) -> dict[Sink, list[str]]:
        """Dispatch, check the deliveries equal the scan's, and return them."""
        expected = self.scan(list(events))
        before = {sink: len(sink.received) for sink in self.sinks}
        self.hub.dispatch(list(events))
        got = {sink: sink.received[before[sink]:] for sink in self.sinks}
        assert got == {sink: expected.get(sink, []) for sink in self.sinks}
        return got


def counting_views(monkeypatch: pytest.MonkeyPatch) -> list[Stream]:
    """Record each stream whose filter the hub asks (`Stream.view`)."""
    seen: list[Stream] = []
    view = Stream.view

    def counted(self: Stream, event: ChangeEvent) -> ChangeType | None:
        seen.append(self)
        return view(self, event)

    monkeypatch.setattr(Stream, "view", counted)
    return seen


def row(post_id: int = 1, **values: Any) -> dict[str, Any]:
    return {"id": post_id, "user_id": None, "status": None, "score": None, "flag": None, **values}


# -- units ----------------------------------------------------------------------------


def test_an_event_asks_only_the_streams_filed_under_its_values(monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(sinks=1000)
    for uid in range(1000):
        rig.join({"user_id": {"_eq": uid}}, sink=uid)
    seen = counting_views(monkeypatch)
    got = rig.dispatch(rig.event(None, row(user_id=7)))
    assert len(seen) == 1 and seen[0].where == {"user_id": {"_eq": 7}}
    assert got[rig.sinks[7]] == ['posts {"user_id":{"_eq":7}} create 1']
    assert sum(map(len, got.values())) == 1


def test_a_row_moving_between_values_leaves_one_stream_and_enters_the_other(monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(sinks=3)
    for uid in range(3):
        rig.join({"user_id": {"_eq": uid}}, sink=uid)
    seen = counting_views(monkeypatch)
    got = rig.dispatch(rig.event(row(user_id=1), row(user_id=2)))
    assert len(seen) == 2
    assert got[rig.sinks[1]] == ['posts {"user_id":{"_eq":1}} delete 1']
    assert got[rig.sinks[2]] == ['posts {"user_id":{"_eq":2}} create 1']
    assert got[rig.sinks[0]] == []
    rig.dispatch(rig.event(row(user_id=2), row(user_id=2, status="x")), rig.event(row(user_id=2), None))
    assert rig.sinks[2].received[1:] == ['posts {"user_id":{"_eq":2}} update 2', 'posts {"user_id":{"_eq":2}} delete 3']


def test_in_lists_and_is_null_are_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(sinks=4)
    rig.join({"status": {"_in": ["a", "b"]}}, sink=0)
    rig.join({"status": {"_in": ["b", "c"]}}, sink=1)
    rig.join({"status": {"_is_null": True}}, sink=2)
    rig.join({"status": {"_in": []}}, sink=3)
    seen = counting_views(monkeypatch)
    got = rig.dispatch(rig.event(None, row(status="b")))
    assert (len(got[rig.sinks[0]]), len(got[rig.sinks[1]]), len(got[rig.sinks[2]])) == (1, 1, 0)
    assert len(seen) == 2
    got = rig.dispatch(rig.event(row(status="b"), row(status=None)))
    assert [len(got[s]) for s in rig.sinks] == [1, 1, 1, 0]
    assert got[rig.sinks[2]] == ['posts {"status":{"_is_null":true}} create 2']
    got = rig.dispatch(rig.event(None, {"id": 9}))  # a column the image lacks reads as null
    assert [len(got[s]) for s in rig.sinks] == [0, 0, 1, 0]


def test_the_other_conditions_are_decided_on_the_candidates() -> None:
    rig = Rig(sinks=3)
    rig.join({"user_id": {"_eq": 1}, "score": {"_gt": 2}}, sink=0)
    rig.join({"_and": [{"user_id": {"_in": [1, 2]}}, {"status": {"_like": "a%"}}]}, sink=1)
    rig.join({"user_id": {"_eq": 1}, "_or": [{"flag": {"_eq": True}}, {"status": {"_is_null": True}}]}, sink=2)
    got = rig.dispatch(
        rig.event(None, row(user_id=1, score=3.0, status="abc")),
        rig.event(None, row(user_id=1, score=1.0, status="b", flag=True)),
        rig.event(row(user_id=1, score=3.0, status="abc"), row(user_id=1, score=1.0, status="abc")),
    )
    assert [len(got[s]) for s in rig.sinks] == [2, 2, 1]


def test_streams_that_pin_no_value_see_every_event(monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(sinks=5)
    rig.join(None, sink=0)
    rig.join({"_or": [{"user_id": {"_eq": 1}}, {"user_id": {"_eq": 2}}]}, sink=1)
    rig.join({"user_id": {"_gt": 1}}, sink=2)
    rig.join({"_not": {"user_id": {"_eq": 1}}}, sink=3)
    rig.join({"user_id": {"_is_null": False}}, sink=4)
    for uid in range(100):
        rig.join({"user_id": {"_eq": uid}}, sink=uid % 5)
    seen = counting_views(monkeypatch)
    rig.dispatch(rig.event(None, row(user_id=2)))
    assert len(seen) == 6  # the five that pin no value, and user 2's stream


def test_one_connection_gets_the_frames_of_an_event_in_join_order() -> None:
    rig = Rig(sinks=1)
    rig.join({"user_id": {"_eq": 2}})
    rig.join(None)
    rig.join({"user_id": {"_in": [1, 2]}})
    rig.join({"score": {"_gt": 0}})
    rig.join({"user_id": {"_eq": 1}})
    got = rig.dispatch(rig.event(row(user_id=1, score=1.0), row(user_id=2, score=1.0)))
    assert [message.split()[1] for message in got[rig.sinks[0]]] == [
        '{"user_id":{"_eq":2}}', "null", '{"user_id":{"_in":[1,2]}}', '{"score":{"_gt":0}}', '{"user_id":{"_eq":1}}'
    ]


def test_joining_and_leaving_update_the_index(monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(sinks=2)
    first = rig.join({"user_id": {"_eq": 1}}, sink=0)
    second = rig.join({"user_id": {"_eq": 1}}, sink=1)  # the same stream
    assert len(rig.hub.streams) == 1
    rig.leave(first)
    assert len(rig.dispatch(rig.event(None, row(user_id=1)))[rig.sinks[1]]) == 1
    rig.leave(second)
    assert rig.hub.streams == {} and rig.hub._by_table == {}
    seen = counting_views(monkeypatch)
    rig.dispatch(rig.event(None, row(user_id=1)))
    assert seen == []
    rig.join({"user_id": {"_eq": 1}}, sink=0)
    assert len(rig.dispatch(rig.event(None, row(user_id=1)))[rig.sinks[0]]) == 1


def test_values_compare_as_the_matcher_compares_them() -> None:
    rig = Rig(sinks=5)
    rig.join(BoolExp((ColumnExp("user_id", (Compare("_eq", 1),)),)), sink=0)
    rig.join(BoolExp((ColumnExp("user_id", (Compare("_eq", "1"),)),)), sink=1)
    rig.join(BoolExp((ColumnExp("user_id", (Compare("_eq", {"a": 1}),)),)), sink=2)
    rig.join(BoolExp((ColumnExp("user_id", (Compare("_in", (1.0, float("nan"), None)),)),)), sink=3)
    rig.join(BoolExp((ColumnExp("user_id", (Compare("_eq", float("nan")),)),)), sink=4)
    # 1, 1.0 and true are one number; "1" is text (another program's write in SQLite).
    for value in (1, 1.0, True, "1", {"a": 1}, 2**63, float("nan"), -0.0, None):
        rig.dispatch(rig.event(None, row(user_id=value)))
    # NaN: `_eq` finds it equal to every number, `_in` to none.
    assert [len(s.received) for s in rig.sinks] == [4, 1, 1, 3, 6]


def test_a_failing_stream_misses_its_event_only() -> None:
    failures: list[tuple[int, str]] = []
    rig = Rig(sinks=2)
    rig.hub.failed = lambda event, error: failures.append((event.cursor, str(error)))
    rig.join({"user_id": {"_eq": 1}}, sink=0)
    broken = rig.join({"user_id": {"_eq": 1}, "status": {"_eq": "x"}}, sink=1)

    def render(event: ChangeEvent, change: ChangeType) -> str:
        raise RuntimeError("cannot render")

    broken.stream.render = render
    rig.hub.dispatch([rig.event(None, row(user_id=1, status="x")), rig.event(None, row(user_id=2, status="x"))])
    assert len(rig.sinks[0].received) == 1 and rig.sinks[1].received == []
    assert failures == [(1, "cannot render")]


def test_a_per_user_rule_with_the_session_value_filled_in_is_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    # As graph.access builds a stream's filter: the role's rule resolved for the
    # session (the text "7" becomes the integer 7), then the client's `where` with it.
    rule = BoolExp((ColumnExp("user_id", (Compare("_eq", SessionVariable("X-User-Id")),)),))
    model = DatabaseModel("sqlite", {"posts": POSTS})
    rig = Rig(sinks=100)
    for uid in range(100):
        view = EventView(resolve(rule, POSTS, model, {"X-User-Id": str(uid)}), POSTS.column_names)
        where = combine(view, parse_stream_where(POSTS, {"score": {"_gt": 1}}))
        assert where is not None and required_keys(where) == {"user_id": frozenset({uid})}
        rig.join(where, sink=uid)
    seen = counting_views(monkeypatch)
    got = rig.dispatch(rig.event(row(user_id=7, score=0.5), row(user_id=7, score=2.0)))
    assert len(seen) == 1 and sum(map(len, got.values())) == 1 and len(got[rig.sinks[7]]) == 1


def test_required_keys_read_only_what_every_row_must_meet() -> None:
    assert required_keys(parse_stream_where(POSTS, {"user_id": {"_eq": 1, "_in": [1, 2]}})) == {
        "user_id": frozenset({1})
    }
    assert required_keys(parse_stream_where(POSTS, {"_and": [{"user_id": {"_in": [1, 2]}}, {"status": {"_is_null": True}}]})) == {
        "user_id": frozenset({1, 2}), "status": frozenset({NULL})
    }
    assert required_keys(parse_stream_where(POSTS, {"user_id": {"_eq": 1, "_neq": 3}, "_not": {"status": {"_eq": "a"}}})) == {
        "user_id": frozenset({1})
    }
    for unpinned in ({"user_id": {"_gt": 1}}, {"_or": [{"user_id": {"_eq": 1}}]}, {"status": {"_is_null": False}}, {}):
        assert required_keys(parse_stream_where(POSTS, unpinned)) == {}


# -- against the scan, at random -------------------------------------------------------

VALUES = [None, 0, 1, 2, 1.0, 2.5, True, False, -0.0, "1", "a", "ab", "b", {"k": 1}, [1], 2**63, float("nan")]
COLUMNS = ["user_id", "status", "score", "flag"]
values = st.sampled_from(VALUES)


def _compare() -> st.SearchStrategy[Compare]:
    return st.one_of(
        st.builds(Compare, st.sampled_from(["_eq", "_neq", "_gt", "_lte"]), values),
        st.builds(Compare, st.sampled_from(["_in", "_nin"]), st.lists(values, max_size=3).map(tuple)),
        st.builds(Compare, st.just("_is_null"), st.sampled_from([True, False, None])),
        st.builds(Compare, st.sampled_from(["_like", "_nilike"]), st.sampled_from(["a%", "%b", "1"])),
    )


def _column_exp() -> st.SearchStrategy[ColumnExp]:
    return st.builds(ColumnExp, st.sampled_from(COLUMNS), st.lists(_compare(), min_size=1, max_size=2).map(tuple))


def _bool_exp(inner: st.SearchStrategy[BoolExp]) -> st.SearchStrategy[BoolExp]:
    field = st.one_of(
        _column_exp(),
        _column_exp(),
        st.lists(inner, max_size=2).map(lambda exps: And(tuple(exps))),
        st.lists(inner, max_size=2).map(lambda exps: Or(tuple(exps))),
        inner.map(Not),
    )
    # One field per key, as a written object has.
    return st.lists(field, max_size=3, unique_by=lambda f: f.key).map(lambda fields: BoolExp(tuple(fields)))


filters = st.one_of(st.none(), st.recursive(st.builds(BoolExp, st.lists(_column_exp(), max_size=2, unique_by=lambda f: f.key).map(tuple)), _bool_exp, max_leaves=6))
rows = st.fixed_dictionaries({"id": st.just(1), **{c: values for c in COLUMNS}})
events = st.tuples(st.sampled_from(["posts", "posts", "users"]), st.one_of(st.none(), rows), st.one_of(st.none(), rows)).filter(
    lambda e: e[1] is not None or e[2] is not None
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("join"), filters, st.integers(0, 3), st.booleans()),
        st.tuples(st.just("leave"), st.integers(0, 50)),
        st.tuples(st.just("events"), st.lists(events, min_size=1, max_size=4)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_deliveries_equal_a_scan_of_every_stream(script: list[tuple[Any, ...]]) -> None:
    rig = Rig(sinks=4)
    for step in script:
        if step[0] == "join":
            _, where, sink, on_users = step
            rig.join(where, USERS if on_users and where is None else POSTS, sink)
        elif step[0] == "leave":
            if rig.subscriptions:
                rig.leave(rig.subscriptions[step[1] % len(rig.subscriptions)])
        else:
            rig.dispatch(*(rig.event(old, new, table) for table, old, new in step[1]))
    # Everything left: every event reaches the same streams once more.
    rig.dispatch(*(rig.event(None, row(user_id=v, status=v, score=v, flag=v)) for v in VALUES))


@given(values, values)
def test_equality_keys_agree_with_eq_and_in(a: Any, b: Any) -> None:
    """Two values share a key exactly when `_eq` holds between them (but NaN, which has none)."""
    if a is None or b is None:
        return  # a null row value meets neither; a null operand drops the comparison
    ka, kb = equality_key(a), equality_key(b)
    eq = compile_matcher(BoolExp((ColumnExp("c", (Compare("_eq", b),)),)))({"c": a}) is True
    in_ = compile_matcher(BoolExp((ColumnExp("c", (Compare("_in", (b,)),)),)))({"c": a}) is True
    if ka is not None and kb is not None:
        assert eq == (ka == kb)
    assert in_ == (ka is not None and ka == kb)
    assert (ka is None) == (isinstance(a, float) and math.isnan(a))


# -- end to end -------------------------------------------------------------------------


async def test_subscribers_with_their_own_user_id_get_their_rows_only(api: Api) -> None:
    async with api.ws() as a, api.ws() as b, api.ws() as c, api.ws() as everyone:
        for uid, ws in ((1, a), (2, b), (3, c)):
            await subscribe(ws, "mine", "posts", where={"user_id": {"_eq": uid}})
            await subscribe(ws, "pair", "posts", where={"user_id": {"_in": [uid, 3]}, "published": {"_eq": True}})
        await subscribe(everyone, "all", "posts")
        inserted = await api('mutation { insert_posts_one(object: {title: "i16", user_id: 1, published: true}) { id } }')
        post_id = inserted["insert_posts_one"]["id"]
        for uid in (2, 3):  # the row moves from user 1 to 2, then to 3
            await api(f"mutation {{ update_posts_by_pk(pk_columns: {{id: {post_id}}}, _set: {{user_id: {uid}}}) {{ id }} }}")
        await api(f"mutation {{ delete_posts_by_pk(id: {post_id}) {{ id }} }}")
        # A row every socket sees, last: nothing else may come before it.
        await api('mutation { insert_posts_one(object: {title: "marker", user_id: 3, published: true}) { id } }')

        async def received(ws: Any) -> list[tuple[str, str, Any]]:
            out = []
            while True:
                message = await ws.receive()
                assert message["type"] == "next", message
                event = message["payload"]["data"]["tableChanged"]
                if event["record"] and event["record"]["title"] == "marker":  # SQLite may reuse the id
                    return out
                out.append((message["id"], event["type"], event["record"] and event["record"]["user_id"]))

        got = await asyncio.gather(*(received(ws) for ws in (a, b, c, everyone)))
    assert got[0] == [("mine", "create", 1), ("pair", "create", 1), ("mine", "delete", None),
                      ("pair", "delete", None), ("pair", "create", 3), ("pair", "delete", None)]
    assert got[1] == [("mine", "create", 2), ("pair", "create", 2), ("mine", "delete", None),
                      ("pair", "update", 3), ("pair", "delete", None)]
    assert got[2] == [("mine", "create", 3), ("pair", "create", 3), ("mine", "delete", None), ("pair", "delete", None)]
    assert [t for _, t, _ in got[3]] == ["create", "update", "update", "delete"]


EVENTS = Table(
    "events",
    (Column("id", Kind.INTEGER, False), Column("at", Kind.DATETIME, True, db_type="TIMESTAMP WITH TIME ZONE")),
    ("id",),
)


def test_a_date_filter_reaches_a_row_that_writes_the_same_instant_another_way() -> None:
    # The matcher compares dates as instants (graph.temporal): a key of the
    # filter's text would miss a row written with another offset or separator.
    rig = Rig(sinks=2)
    rig.join({"at": {"_eq": "2024-01-02T03:04:05+00:00"}}, table=EVENTS, sink=0)
    rig.join({"at": {"_in": ["2024-01-02T05:04:05+02:00"]}}, table=EVENTS, sink=1)
    assert required_keys(rig.hub.streams[next(iter(rig.hub.streams))].where, EVENTS) == {}
    got = rig.dispatch(rig.event(None, {"id": 1, "at": "2024-01-02 03:04:05"}, table="events"))
    assert got[rig.sinks[0]] == ['events {"at":{"_eq":"2024-01-02T03:04:05+00:00"}} create 1']
    assert len(got[rig.sinks[1]]) == 1
