"""Role fan-out: what a per-user row rule costs against a rule shared by a role.

Subscribers whose resolved rules are identical share one stream in the hub,
so an event is matched and encoded once per stream. Two cases, each on a
fresh `forgegraph serve --permissions --jwt-secret --admin-secret` over the
same migrated SQLite database with users 1..10, each with 1000 subscribers
of `tableChanged(table: "posts")`, 100 for each of the 10 users:
- A: role `reader`, rule `published = true`: the same for all, 1 stream;
- B: role `user`, rule `published = true OR user_id = X-User-Id`: 10 streams;
- C: role `related`, the same rule through the post's `user` relationship
  (`published = true OR user.id = X-User-Id`): 10 streams whose relationship
  part is decided with SQL once per batch (graph.events.decide); its p99 and
  CPU per delivery are reported as ratios to B's (issue 16: p99 at most 2x).
The admin inserts only published posts, so every subscriber sees every event.
Case B is also run at the fan-out section's fixed rates (N=100 @20 mut/s,
N=1000 @2 mut/s) for its latency, and with --with-references the ceiling
server at the same N and rate, driven by this same client, back to back,
for the ratio of their p99s.

../shared/bench/fanout.py sends one connection_init payload to every
subscriber, so both cases are driven by the client below: asyncio (uvloop
when installed) with the sans-I/O protocol of `websockets` under an
asyncio.Protocol (no task switch per message), one keep-alive HTTP/1.1
connection for the writer, and fanout.py's method: a warm-up event seen by
every subscriber, then one mutation in flight and at most WINDOW events not
yet fully delivered, latency from mutation sent to event received, every
(subscriber, event) pair checked for loss and duplication. Case A is also
run with fanout.py as a cross-check of this client. Timings are never
judged; lost or duplicated events and errors are.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import re
import resource
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import jwt
import orjson
from _data import sqlite_url
from _fanout import FIXED_RATES, SUBSCRIPTION, _add_figures, _scan_log, report_latency_ratio
from _fanout_tool import (
    CEILING_MODULE,
    FANOUT_TOOL,
    CeilingServer,
    FanoutFailed,
    Target,
    run_fanout,
)
from _fanout_tool import WINDOW as FANOUT_WINDOW
from _report import Report
from _server import HOST, Server, ServerError, run_forgegraph
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

SUBSCRIBERS = 1000
USERS = 10
WINDOW = FANOUT_WINDOW
CONNECT_CONCURRENCY = 50
SETUP_TIMEOUT = 30.0  # connecting all subscribers, then again for the warm-up
WINDOW_TIMEOUT = 5.0  # a window wait longer than this is logged and given up
DRAIN_IDLE = 5.0  # the drain ends after this long without a delivery
DRAIN_MAX = 15.0
MUTATION_TIMEOUT = 10.0
IDLE_RECONNECT = 4.0  # uvicorn closes keep-alive connections idle for 5 s
MUTATION = (
    "mutation($title: String!) { insert_posts_one(object: "
    '{title: $title, body: "x", user_id: 1, published: true}) { id } }'
)
PERMISSIONS = """\
tables:
  posts:
    select:
      reader: {filter: {published: {_eq: true}}, columns: "*"}
      user: {filter: {_or: [{published: {_eq: true}}, {user_id: {_eq: X-User-Id}}]}, columns: "*"}
      related: {filter: {_or: [{published: {_eq: true}}, {user: {id: {_eq: X-User-Id}}}]}, columns: "*"}
"""
DENIED_QUERY = "{ users { id } }"  # not granted to any role: proves the rules apply
MARK = re.compile(rb"BENCH(\d+)_")
WARM = b"WARM"
SUBPROTOCOL = Subprotocol("graphql-transport-ws")
now = time.perf_counter


def nearest_rank_ms(ordered: list[float], percent: float) -> float | None:
    """fanout.py's nearest-rank percentile of sorted seconds, in ms, so the figures compare."""
    if not ordered:
        return None
    i = min(len(ordered) - 1, max(0, round(percent / 100.0 * len(ordered) + 0.5) - 1))
    return ordered[i] * 1000


@dataclass(frozen=True)
class Case:
    name: str
    role: str
    streams: str

    @property
    def label(self) -> str:
        return f"roles {self.name} ({self.role}, {self.streams})"


CASES = (
    Case("A", "reader", "1 stream"),
    Case("B", "user", "10 streams"),
    Case("C", "related", "10 streams, rule through a relationship"),
)


@dataclass(frozen=True)
class Auth:
    permissions: Path
    jwt_secret: str
    admin_secret: str


class RoleServer(Server):
    """`forgegraph serve` with a permissions file, a JWT secret and an admin secret."""

    def __init__(self, url: str, workdir: Path, label: str, auth: Auth) -> None:
        super().__init__(url, workdir, label)
        self.auth = auth

    def command(self) -> list[str]:
        auth = self.auth
        return [
            *super().command(),
            *("--permissions", str(auth.permissions)),
            *("--jwt-secret", auth.jwt_secret, "--admin-secret", auth.admin_secret),
        ]


# -- the client ----------------------------------------------------------------------


class ClientFailed(Exception):
    """The client could not set up (connect, subscribe, warm up)."""


@dataclass
class RunResult:
    subscribers: int
    per_event: int = 0
    """Deliveries each event is owed: every subscriber (0) or its group's (owners-only rules, `Plan.groups`)."""
    connect_s: float = 0.0
    warm_events: int = 0
    events: int = 0
    received: int = 0  # distinct (subscriber, event) pairs
    duplicates: int = 0
    errors: int = 0
    first_error: str | None = None
    mutation_errors: int = 0
    first_mutation_error: str | None = None
    window_timeouts: int = 0
    span_s: float | None = None
    latencies: list[float] = field(default_factory=list, repr=False)
    server_cpu_s: float | None = None
    client_cpu_s: float | None = None
    server_peak_rss_mib: float | None = None

    @property
    def expected(self) -> int:
        return self.events * (self.per_event or self.subscribers)

    @property
    def missing(self) -> int:
        return self.expected - self.received

    @property
    def deliveries_per_s(self) -> float:
        return self.received / self.span_s if self.span_s else 0.0

    @property
    def cpu_us_per_delivery(self) -> float | None:
        if self.server_cpu_s is None or not self.received:
            return None
        return self.server_cpu_s / self.received * 1e6

    def latency_ms(self, percent: float) -> float | None:
        return nearest_rank_ms(self.latencies, percent)

    def problems(self) -> list[str]:
        found = []
        if self.missing:
            found.append(f"{self.missing:,} of {self.expected:,} deliveries missing")
        if self.duplicates:
            found.append(f"{self.duplicates:,} duplicate deliveries")
        if self.errors:
            found.append(f"{self.errors} subscriber errors (first: {self.first_error})")
        if self.mutation_errors:
            first = self.first_mutation_error
            found.append(f"{self.mutation_errors} mutation errors (first: {first})")
        if not self.events:
            found.append("no measured mutation was sent")
        return found


class Tally:
    """Shared bookkeeping of one run; the hot path is `delivered`."""

    def __init__(self, subscribers: int, per_event: int = 0) -> None:
        self.result = RunResult(subscribers, per_event)
        self.sent_at: list[float] = []
        self.first_send: float | None = None
        self.last_receive: float | None = None
        self.warm_count = 0
        self.warmed = asyncio.Event()
        self.progress = asyncio.Event()
        self.wait_until: int | None = None
        self.closing = False

    def error(self, text: str) -> None:
        self.result.errors += 1
        if self.result.first_error is None:
            self.result.first_error = text[:500]

    def delivered(self, seen: bytearray, seq: int, t: float) -> None:
        result = self.result
        if seq >= len(self.sent_at):
            self.error(f"event for a mutation not sent: BENCH{seq}_")
            return
        if seen[seq]:
            result.duplicates += 1
            return
        seen[seq] = 1
        result.received += 1
        result.latencies.append(t - self.sent_at[seq])
        self.last_receive = t
        if self.wait_until is not None and result.received >= self.wait_until:
            self.progress.set()


class Subscriber(asyncio.Protocol):
    """One graphql-transport-ws subscriber: websockets' sans-I/O protocol, no tasks."""

    def __init__(
        self, tally: Tally, url: str, init: bytes, subscribe: bytes, group: int = 0, groups: int = 0
    ) -> None:
        self.tally = tally
        self.group = group
        self.groups = groups
        """With groups, event k is owed to group k mod groups only (`Plan.groups`)."""
        self.ws = ClientProtocol(parse_uri(url), subprotocols=[SUBPROTOCOL], max_size=None)
        self.init = init
        self.subscribe = subscribe
        self.transport: asyncio.Transport | None = None
        self.subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.seen = bytearray()
        self.warm = False
        self.partial = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast("asyncio.Transport", transport)
        self.ws.send_request(self.ws.connect())
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.tally.closing:
            return
        reason = f"connection lost: {self.ws.close_exc if exc is None else exc}"
        if not self.subscribed.done():
            self.subscribed.set_exception(ClientFailed(reason))
        else:
            self.tally.error(reason)

    def data_received(self, data: bytes) -> None:
        t = now()
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Frame):
                if event.opcode in (Opcode.TEXT, Opcode.CONT):
                    self._message(bytes(event.data), event.fin, t)
            elif isinstance(event, Response):
                self._handshake(event)
        self._flush()

    def _flush(self) -> None:
        assert self.transport is not None
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)
            else:
                self.transport.close()  # the protocol's EOF: the closing handshake is over

    def _handshake(self, response: Response) -> None:
        if self.ws.handshake_exc is not None:
            status = response.status_code
            self._fail(f"WebSocket handshake failed: {status} {self.ws.handshake_exc}")
            return
        self.ws.send_text(self.init)

    def _fail(self, text: str) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(ClientFailed(text))
        self.tally.error(text)

    def _message(self, data: bytes, fin: bool, t: float) -> None:
        if not fin or self.partial:
            self.partial += data
            if not fin:
                return
            data, self.partial = self.partial, b""
        mark = MARK.search(data)
        if mark is not None:
            seq = int(mark.group(1))
            if self.groups and seq % self.groups != self.group:
                self.tally.error(f"misrouted: BENCH{seq}_ reached a subscriber of group {self.group}")
                return
            if seq >= len(self.seen):
                self.seen.extend(bytes(seq + 1024 - len(self.seen)))
            self.tally.delivered(self.seen, seq, t)
        elif WARM in data:
            if not self.warm:
                self.warm = True
                self.tally.warm_count += 1
                if self.tally.warm_count == self.tally.result.subscribers:
                    self.tally.warmed.set()
        else:
            self._control(data)

    def _control(self, data: bytes) -> None:
        try:
            kind = orjson.loads(data).get("type")
        except (orjson.JSONDecodeError, AttributeError):
            kind = None
        if kind == "connection_ack" and not self.subscribed.done():
            self.ws.send_text(self.subscribe)
            self.subscribed.set_result(None)
        elif kind == "ping":
            self.ws.send_text(b'{"type":"pong"}')
        elif kind != "pong":
            self._fail(f"unexpected message: {data[:300]!r}")


class Writer:
    """POST /graphql (as the admin, given its secret) over one keep-alive HTTP/1.1 connection."""

    def __init__(
        self, port: int, admin_secret: str | None, mutation: str = MUTATION, path: str = "/graphql"
    ) -> None:
        self.port = port
        self.mutation = mutation
        admin = f"X-Admin-Secret: {admin_secret}\r\n" if admin_secret else ""
        self.head = (
            f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"Content-Type: application/json\r\n{admin}"
            "Content-Length: "
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.used = 0.0

    async def post(
        self, title: str, on_sent: Callable[[], None] | None = None, uid: int | None = None
    ) -> str | None:
        """Send one mutation (`uid`: its `$uid`); the problem with its answer, None when it succeeded."""
        try:
            async with asyncio.timeout(MUTATION_TIMEOUT):
                return await self._post(title, on_sent, uid)
        except TimeoutError:
            raise ClientFailed(f"no answer to a mutation in {MUTATION_TIMEOUT:g} s") from None

    async def _post(self, title: str, on_sent: Callable[[], None] | None, uid: int | None) -> str | None:
        if self.writer is not None and now() - self.used > IDLE_RECONNECT:
            self.close()
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        variables: dict[str, object] = {"title": title} if uid is None else {"title": title, "uid": uid}
        body = orjson.dumps({"query": self.mutation, "variables": variables})
        self.writer.write(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
        if on_sent is not None:
            on_sent()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length: int | None = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            self.close()  # the body's end is unknown: start over on a new connection
            return f"HTTP {status} without Content-Length"
        data = await self.reader.readexactly(length)
        self.used = now()
        if status != 200 or b'"errors"' in data:
            return f"HTTP {status}: {data[:300]!r}"
        return None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass(frozen=True)
class Plan:
    port: int
    pid: int
    admin_secret: str
    init_messages: tuple[bytes, ...]  # connection_init, one per subscriber
    duration: float
    server_cpu: Callable[[], float | None]
    rate: float = 0.0  # mutations per second on a fixed schedule; 0: one in flight, windowed
    mutate_path: str = "/graphql"  # the ceiling server's is /publish (it takes any JSON body)
    groups: int = 0
    """Owners-only: subscriber i is in group i mod groups, event k is posted with `$uid`
    k mod groups + 1 and owed to that group alone (0: every event to everyone)."""
    mutation: str = MUTATION



async def drain(result: RunResult) -> None:
    """Wait until every expected delivery arrived, or deliveries stop, or DRAIN_MAX passes."""
    drain_end = now() + DRAIN_MAX
    last, idle_since = -1, now()
    while result.received < result.expected and now() < drain_end:
        if result.received != last:
            last, idle_since = result.received, now()
        elif now() - idle_since > DRAIN_IDLE:
            break
        await asyncio.sleep(0.05)


async def drive(plan: Plan) -> RunResult:
    """Subscribe everyone, warm up, measure; always closes every connection."""
    n = len(plan.init_messages)
    tally = Tally(n, n // plan.groups if plan.groups else 0)
    result = tally.result
    url = f"ws://{HOST}:{plan.port}/graphql"
    subscribe = orjson.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}})
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    subscribers: list[Subscriber] = []
    writer = Writer(plan.port, plan.admin_secret, plan.mutation, path=plan.mutate_path)

    async def open_one(index: int, init: bytes) -> None:
        async with gate:
            groups = plan.groups
            sub = Subscriber(tally, url, init, subscribe, index % groups if groups else 0, groups)
            subscribers.append(sub)
            await loop.create_connection(lambda: sub, HOST, plan.port)
            await sub.subscribed

    try:
        started = now()
        try:
            async with asyncio.timeout(SETUP_TIMEOUT):
                await asyncio.gather(*(open_one(i, p) for i, p in enumerate(plan.init_messages)))
        except TimeoutError:
            raise ClientFailed(f"not all subscribed within {SETUP_TIMEOUT:.0f} s") from None
        except OSError as exc:
            raise ClientFailed(f"cannot connect: {exc}") from None
        result.connect_s = now() - started
        await _warm_up(tally, writer, subscribers, plan.groups)
        await asyncio.sleep(0.5)  # let warm-up stragglers drain
        await _measure(tally, writer, plan)
    finally:
        tally.closing = True
        writer.close()
        for sub in subscribers:
            if sub.transport is not None:
                sub.transport.abort()
    result.latencies.sort()
    return result


async def _warm_up(tally: Tally, writer: Writer, subscribers: list[Subscriber], groups: int = 0) -> None:
    """Warm events until every subscriber saw one; with groups, one to each group still cold."""
    deadline = now() + SETUP_TIMEOUT
    while not tally.warmed.is_set():
        if tally.result.errors:
            raise ClientFailed(f"warm-up: {tally.result.first_error}")
        if now() > deadline:
            raise ClientFailed(
                f"warm-up: only {tally.warm_count}/{tally.result.subscribers} subscribers "
                f"received an event in {SETUP_TIMEOUT:.0f} s; first error: {tally.result.first_error}"
            )
        cold = sorted({s.group for s in subscribers if not s.warm}) if groups else [None]
        for group in cold:
            tally.result.warm_events += 1
            uid = None if group is None else group + 1
            problem = await writer.post(f"WARM{tally.result.warm_events}_", uid=uid)
            if problem:
                raise ClientFailed(f"warm-up mutation failed: {problem}")
        try:
            await asyncio.wait_for(tally.warmed.wait(), 0.3)
        except TimeoutError:
            pass


async def _measure(tally: Tally, writer: Writer, plan: Plan) -> None:
    result = tally.result
    n = result.per_event or result.subscribers
    cpu0 = plan.server_cpu()
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    deadline = now() + plan.duration

    def sent() -> None:
        t = now()
        tally.sent_at.append(t)
        if tally.first_send is None:
            tally.first_send = t

    seq = 0
    start = now()
    while now() < deadline:
        if plan.rate:
            # Open loop, as fanout.py --rate: the next mutation at its time, whatever was delivered.
            await asyncio.sleep(max(0.0, start + seq / plan.rate - now()))
        # At most WINDOW events not yet delivered to everyone, as fanout.py.
        while (seq - WINDOW) * n > result.received:
            tally.wait_until = (seq - WINDOW) * n
            tally.progress.clear()
            try:
                await asyncio.wait_for(tally.progress.wait(), WINDOW_TIMEOUT)
            except TimeoutError:
                result.window_timeouts += 1
                break
        tally.wait_until = None
        uid = seq % plan.groups + 1 if plan.groups else None
        problem = await writer.post(f"BENCH{seq}_", sent, uid)
        if problem:
            result.mutation_errors += 1
            result.first_mutation_error = result.first_mutation_error or problem
        seq += 1
    result.events = seq
    await drain(result)
    cpu1 = plan.server_cpu()
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    if cpu0 is not None and cpu1 is not None:
        result.server_cpu_s = round(cpu1 - cpu0, 2)
    client = usage1.ru_utime - usage0.ru_utime + usage1.ru_stime - usage0.ru_stime
    result.client_cpu_s = round(client, 2)
    result.server_peak_rss_mib = _peak_rss_mib(plan.pid)
    if tally.first_send is not None and tally.last_receive is not None:
        result.span_s = tally.last_receive - tally.first_send


def _peak_rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def run_client(plan: Plan) -> RunResult:
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(drive(plan))


# -- the phase -------------------------------------------------------------------------


def bench_roles(workdir: Path, args: argparse.Namespace, report: Report) -> None:
    duration: float = args.roles_duration
    print(
        f"roles: {SUBSCRIBERS} subscribers over {USERS} users, 1 shared rule vs "
        f"{USERS} per-user rules, {duration:g} s per run",
        flush=True,
    )
    path = workdir / "roles.db"
    url = sqlite_url(path)
    run_forgegraph("migrate", "--database", url, cwd=workdir)
    _insert_users(path)
    auth = Auth(workdir / "roles-permissions.yaml", secrets.token_urlsafe(32), secrets.token_hex(16))
    auth.permissions.write_text(PERMISSIONS)
    results: dict[str, RunResult | None] = {}
    for case in CASES:
        server = RoleServer(url, workdir, f"roles-{case.name}", auth)
        with server:
            server.start()
            if case is CASES[0] and not _rules_apply(server, report):
                return
            results[case.name] = _client_run(case, server, duration, report)
            _after(case.label, server, report)
        _scan_log(case.label, server, report)
    _report_ratio(results.get("A"), results.get("B"), report)
    _report_relationship_ratio(results.get("B"), results.get("C"), report)
    _cross_check(url, workdir, auth, duration, report)
    _fixed_rates(url, workdir, auth, args, report)


def _fixed_rates(url: str, workdir: Path, auth: Auth, args: argparse.Namespace, report: Report) -> None:
    """Latency of case B (per-user rules) at the fan-out section's fixed rates, vs the ceiling's.

    The ceiling server is driven by this same client (it answers connection_init
    and subscribe, and publishes any JSON POSTed to /publish), so the two p99s
    are measured alike.
    """
    case = CASES[1]
    for n, rate in FIXED_RATES.items():
        label = f"{case.label} N={n} @{rate:g} mut/s"
        server = RoleServer(url, workdir, f"roles-{case.name}-{n}-{rate:g}", auth)
        with server:
            server.start()
            ours = _client_run(case, server, args.roles_duration, report, subscribers=n, rate=rate)
            _after(label, server, report)
        _scan_log(label, server, report)
        if args.with_references and CEILING_MODULE.is_file():
            ceiling = _ceiling_run(workdir, auth, n, rate, args.roles_duration, report)
            report_latency_ratio(label, _p99(ours), _p99(ceiling), report)


def _ceiling_run(
    workdir: Path, auth: Auth, n: int, rate: float, duration: float, report: Report
) -> RunResult | None:
    label = f"roles ceiling N={n} @{rate:g} mut/s"
    print(f"  {label}", flush=True)
    payloads = tuple(_init_message(auth.jwt_secret, "user", i % USERS + 1) for i in range(n))
    try:
        with CeilingServer(workdir, f"roles-ceiling-{n}-{rate:g}") as server:
            server.start()
            plan = Plan(server.port, server.pid, "", payloads, duration, server.cpu_seconds, rate, "/publish")
            result = run_client(plan)
    except (ServerError, ClientFailed, OSError, asyncio.IncompleteReadError) as exc:
        report.note(f"{label}: {exc}")
        return None
    p50, p99, top = (_ms(result.latency_ms(p)) for p in (50, 99, 100))
    print(f"    {result.events} mutations, p50 {p50} p99 {p99} ms, {result.duplicates} duplicates, "
          f"{result.missing} missing, server CPU {result.server_cpu_s} s", flush=True)
    report.add(f"{label} (reference): latency p50 / p99 / max", f"{p50} / {p99} / {top}", "ms",
               f"{n} subscribers, {result.events} mutations, {rate:g} mut/s, this client")
    if result.problems():
        report.note(f"{label}: {'; '.join(result.problems())}")
    return result


def _p99(result: RunResult | None) -> float | None:
    return None if result is None or result.problems() else result.latency_ms(99)


def _insert_users(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.executemany(
            "INSERT INTO users (id, name, email) VALUES (?, ?, ?)",
            [(u, f"User {u}", f"user{u}@example.com") for u in range(1, USERS + 1)],
        )
        conn.commit()
    finally:
        conn.close()


def _token(secret: str, role: str, user: int) -> str:
    return jwt.encode({"sub": str(user), "role": role}, secret, algorithm="HS256")


def _init_payload(secret: str, role: str, user: int) -> bytes:
    bearer = f"Bearer {_token(secret, role, user)}"
    return orjson.dumps({"headers": {"Authorization": bearer}})


def _init_message(secret: str, role: str, user: int) -> bytes:
    payload = orjson.Fragment(_init_payload(secret, role, user))
    return orjson.dumps({"type": "connection_init", "payload": payload})


def _rules_apply(server: RoleServer, report: Report) -> bool:
    """Whether the permissions file is in force: `users` is granted to no role."""
    token = _token(server.auth.jwt_secret, "reader", 1)
    conn = http.client.HTTPConnection(HOST, server.port, timeout=10)
    try:
        body = orjson.dumps({"query": DENIED_QUERY})
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        conn.request("POST", "/graphql", body, headers)
        response = conn.getresponse()
        status, raw = response.status, response.read()
    finally:
        conn.close()
    if b'"errors"' in raw:
        return True
    report.error(
        f"roles: {DENIED_QUERY} as `reader` answered HTTP {status} {raw[:300]!r} "
        "without an error: the permissions file is not in force, nothing to measure"
    )
    return False


def _client_run(
    case: Case,
    server: RoleServer,
    duration: float,
    report: Report,
    *,
    subscribers: int = SUBSCRIBERS,
    rate: float = 0.0,
) -> RunResult | None:
    label = case.label if not rate else f"{case.label} N={subscribers} @{rate:g} mut/s"
    print(f"  {label} (port {server.port})", flush=True)
    payloads = tuple(
        _init_message(server.auth.jwt_secret, case.role, i % USERS + 1) for i in range(subscribers)
    )
    admin = server.auth.admin_secret
    plan = Plan(server.port, server.pid, admin, payloads, duration, server.cpu_seconds, rate)
    try:
        result = run_client(plan)
    except (ClientFailed, OSError, asyncio.IncompleteReadError) as exc:
        report.error(f"{label}: {exc}; server stderr:\n{server.stderr_tail()}")
        return None
    _report_run(case, result, report, label, rate)
    return result


def _after(label: str, server: Server, report: Report) -> None:
    if not server.alive():
        report.error(
            f"{label}: the server died (exit code {server.returncode}); "
            f"stderr:\n{server.stderr_tail()}"
        )


def _report_run(case: Case, result: RunResult, report: Report, prefix: str, rate: float) -> None:
    per = result.cpu_us_per_delivery
    p50, p99, top = (_ms(result.latency_ms(p)) for p in (50, 99, 100))
    print(
        f"    {result.deliveries_per_s:,.0f} deliveries/s, {result.events} mutations, "
        f"p50 {p50} p99 {p99} ms, {result.duplicates} duplicates, {result.missing} missing, "
        f"server CPU {result.server_cpu_s} s ({_us(per)} us/delivery), "
        f"client CPU {result.client_cpu_s} s",
        flush=True,
    )
    span = f"{result.span_s:.3f}" if result.span_s else "n/a"
    n = result.subscribers
    mode = f"{rate:g} mut/s" if rate else "one in flight"
    settings = (
        f"{n} subscribers, {USERS} users x {n // USERS}, role {case.role}: "
        f"{case.streams}; {result.events} mutations, {mode}, window {WINDOW}, span {span} s"
    )
    if not rate:
        report.add(f"{prefix}: deliveries", round(result.deliveries_per_s, 1), "deliveries/s", settings)
    report.add(f"{prefix}: latency p50 / p99 / max", f"{p50} / {p99} / {top}", "ms", settings)
    counts = f"{result.duplicates} / {result.missing}"
    report.add(f"{prefix}: duplicates / missing", counts, f"of {result.expected:,}", settings)
    cpu = "n/a" if per is None else round(per, 1)
    usage = (
        f"measured window: server {result.server_cpu_s} s, client {result.client_cpu_s} s, "
        f"server peak RSS {result.server_peak_rss_mib} MiB"
    )
    report.add(f"{prefix}: server CPU per delivery", cpu, "us", usage)
    report.details[prefix] = {
        "subscribers": result.subscribers,
        "users": USERS,
        "role": case.role,
        "streams": case.streams,
        "rate": rate,
        "events": result.events,
        "warm_events": result.warm_events,
        "connect_s": round(result.connect_s, 2),
        "deliveries_expected": result.expected,
        "deliveries_received": result.received,
        "duplicates": result.duplicates,
        "span_s": None if result.span_s is None else round(result.span_s, 3),
        "deliveries_per_s": round(result.deliveries_per_s, 1),
        "lat_p50_ms": p50,
        "lat_p99_ms": p99,
        "lat_max_ms": top,
        "server_cpu_s": result.server_cpu_s,
        "server_cpu_us_per_delivery": None if per is None else round(per, 1),
        "client_cpu_s": result.client_cpu_s,
        "server_peak_rss_mib": result.server_peak_rss_mib,
        "window_timeouts": result.window_timeouts,
        "sub_errors": result.errors,
        "mut_errors": result.mutation_errors,
    }
    problems = result.problems()
    if problems:
        report.error(f"{prefix}: {'; '.join(problems)}")
    if result.window_timeouts:
        report.note(f"{prefix}: {result.window_timeouts} window waits over {WINDOW_TIMEOUT:g} s")


def _report_ratio(a: RunResult | None, b: RunResult | None, report: Report) -> None:
    name = "roles B / A"
    if a is None or b is None or a.problems() or b.problems() or not a.deliveries_per_s:
        report.add(f"{name}: deliveries/s", None, "ratio", "not computed: a run failed")
        return
    rate = b.deliveries_per_s / a.deliveries_per_s
    settings = (
        f"{b.deliveries_per_s:,.0f} vs {a.deliveries_per_s:,.0f} deliveries/s; "
        f"10 streams vs 1 stream, {SUBSCRIBERS} subscribers each, run back to back"
    )
    report.add(f"{name}: deliveries/s", round(rate, 3), "ratio", settings)
    a_cpu, b_cpu = a.cpu_us_per_delivery, b.cpu_us_per_delivery
    cpu = None if a_cpu is None or b_cpu is None or not a_cpu else b_cpu / a_cpu
    shown = "n/a" if cpu is None else f"{_us(b_cpu)} vs {_us(a_cpu)} us"
    report.add(f"{name}: server CPU per delivery", None if cpu is None else round(cpu, 3), "ratio",
               f"{shown}; 10 streams vs 1 stream")
    report.details["roles ratios"] = {"deliveries_per_s": round(rate, 4),
                                      "cpu_per_delivery": None if cpu is None else round(cpu, 4)}
    print(f"    B / A: deliveries/s {rate:.3f}, server CPU per delivery "
          f"{'n/a' if cpu is None else f'{cpu:.3f}'}", flush=True)


def _report_relationship_ratio(b: RunResult | None, c: RunResult | None, report: Report) -> None:
    """Case C (the rule through a relationship) against B (the same rule on the row's own column)."""
    name = "roles C / B"
    b_p99, c_p99 = _p99(b), _p99(c)
    if b is None or c is None or b_p99 is None or c_p99 is None or not b_p99:
        report.add(f"{name}: latency p99", None, "ratio", "not computed: a run failed")
        return
    settings = f"{c_p99:.2f} vs {b_p99:.2f} ms; rule through a relationship vs on the row, run back to back"
    report.add(f"{name}: latency p99", round(c_p99 / b_p99, 3), "ratio", settings)
    b_cpu, c_cpu = b.cpu_us_per_delivery, c.cpu_us_per_delivery
    cpu = None if b_cpu is None or c_cpu is None or not b_cpu else c_cpu / b_cpu
    report.add(f"{name}: server CPU per delivery", None if cpu is None else round(cpu, 3), "ratio",
               f"{_us(c_cpu)} vs {_us(b_cpu)} us")
    report.details["roles relationship ratios"] = {"lat_p99": round(c_p99 / b_p99, 4),
                                                   "cpu_per_delivery": None if cpu is None else round(cpu, 4)}
    print(f"    C / B: p99 {c_p99 / b_p99:.3f}, server CPU per delivery "
          f"{'n/a' if cpu is None else f'{cpu:.3f}'}", flush=True)


def _cross_check(url: str, workdir: Path, auth: Auth, duration: float, report: Report) -> None:
    """Case A again with ../shared/bench/fanout.py: how far this client is from the tool."""
    label = "roles A via fanout.py"
    if not FANOUT_TOOL.is_file():
        report.note(f"{label} skipped: {FANOUT_TOOL} not found")
        return
    server = RoleServer(url, workdir, "roles-A-fanout", auth)
    with server:
        server.start()
        print(f"  {label} (port {server.port})", flush=True)
        init = _init_payload(auth.jwt_secret, "reader", 1).decode()
        arguments = (
            *("--query", SUBSCRIPTION, "--mutation", MUTATION),
            *("--header", f"X-Admin-Secret: {auth.admin_secret}"),
            *("--connection-init-payload", init),
        )
        target = Target("forgegraph", server.port, "/graphql", arguments)
        try:
            result = run_fanout(target, SUBSCRIBERS, 0.0, duration, server.pid)
        except FanoutFailed as exc:
            report.error(f"{label}: {exc}; server stderr:\n{server.stderr_tail()}")
            return
        _after(label, server, report)
    _scan_log(label, server, report)
    print(
        f"    {result.deliveries_per_s:,.0f} deliveries/s, p50 {_ms(result.latency_ms('p50'))} "
        f"p99 {_ms(result.latency_ms('p99'))} ms, {result.duplicates} duplicates, "
        f"{result.missing} missing, server CPU {result.server_cpu_s} s "
        f"({_us(result.cpu_us_per_delivery)} us/delivery)",
        flush=True,
    )
    _add_figures(label, result, report)
    report.details[label] = {**result.raw, "exit_code": result.exit_code}
    problems = result.problems()
    if problems:
        report.error(f"{label}: {'; '.join(problems)}\n{result.stderr_tail}")


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"
