"""The soak's client: one asyncio process holding every subscriber, and the stream.

websockets' sans-I/O protocol under asyncio.Protocol (uvloop when
installed), no task per connection: 5,000 sockets cost the client tens of
MB. Each active subscriber checks that events arrive once and in order;
latency is from the mutation sent to the event received.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import re
import resource
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import orjson
from _roles import ClientFailed, Writer, nearest_rank_ms, now
from _server import HOST
from prometheus_client.parser import text_string_to_metric_families
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

IDLE_SUBSCRIPTION = 'subscription { tableChanged(table: "comments") { type id } }'
ACTIVE_SUBSCRIPTION = 'subscription { tableChanged(table: "posts") { type id record } }'
MUTATION = (
    "mutation($title: String!) { "
    'insert_posts_one(object: {title: $title, body: "x", user_id: 1}) { id } }'
)
INIT = b'{"type":"connection_init","payload":{}}'
PING = b'{"type":"ping"}'
PONG = b'{"type":"pong"}'
SUBPROTOCOL = Subprotocol("graphql-transport-ws")
MARK = re.compile(rb"SOAK(\d+)_")
WARM = b"WARM"
CONNECT_CONCURRENCY = 100
CONNECT_TIMEOUT = 180.0  # all idle connections, on a busy 2-core machine
WARM_UP_TIMEOUT = 30.0
SAMPLE_SECONDS = 5.0
SETTLE_SECONDS = 2.0  # after connecting, before reading RSS: let the server go quiet
DRAIN_IDLE = 5.0
DRAIN_MAX = 30.0


@dataclass(frozen=True)
class SoakPlan:
    idle: int = 5000
    active: int = 200
    rate: float = 20.0
    duration: float = 180.0

    @property
    def warm_up(self) -> float:
        """Seconds into the stream when RSS growth starts being measured."""
        return max(5.0, min(30.0, self.duration * 0.2))

    def describe(self) -> str:
        return (
            f"{self.idle:,} idle + {self.active} active graphql-transport-ws subscribers, "
            f"{self.rate:g} mut/s for {self.duration:g} s"
        )


@dataclass
class SoakResult:
    plan: SoakPlan
    connect_idle_s: float = 0.0
    rss_baseline_kib: int = 0
    rss_idle_kib: int = 0
    rss_warm_kib: int = 0
    rss_end_kib: int = 0
    rss_peak_kib: int = 0
    samples: list[tuple[float, int]] = field(default_factory=list)
    warm_events: int = 0
    events: int = 0
    stream_s: float = 0.0
    delivered: list[int] = field(default_factory=list)  # per active subscriber
    duplicates: int = 0
    out_of_order: int = 0
    idle_events: int = 0
    dropped: int = 0
    errors: int = 0
    first_error: str | None = None
    mutation_errors: int = 0
    first_mutation_error: str | None = None
    latencies: array[float] = field(default_factory=lambda: array("d"))
    server_cpu_s: float | None = None
    client_cpu_s: float = 0.0
    client_peak_rss_kib: int = 0
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def per_idle_kib(self) -> float:
        return (self.rss_idle_kib - self.rss_baseline_kib) / self.plan.idle

    @property
    def growth_kib(self) -> int:
        return self.rss_end_kib - self.rss_warm_kib

    @property
    def expected(self) -> int:
        return self.events * self.plan.active

    @property
    def lost(self) -> int:
        return self.expected - sum(self.delivered)

    def latency_ms(self, percent: float) -> float | None:
        return nearest_rank_ms(sorted(self.latencies), percent)

    def problems(self) -> list[str]:
        found = []
        if self.lost:
            found.append(f"{self.lost:,} of {self.expected:,} deliveries lost")
        if self.duplicates:
            found.append(f"{self.duplicates:,} duplicate deliveries")
        if self.out_of_order:
            found.append(f"{self.out_of_order:,} deliveries out of order")
        if self.idle_events:
            found.append(f"{self.idle_events:,} events reached idle subscribers of an unchanged table")
        if self.dropped:
            found.append(f"{self.dropped:,} connections dropped")
        if self.errors:
            found.append(f"{self.errors} subscriber errors (first: {self.first_error})")
        if self.mutation_errors:
            found.append(f"{self.mutation_errors} mutation errors (first: {self.first_mutation_error})")
        if not self.events:
            found.append("no mutation was sent")
        return found




class Run:
    """Shared bookkeeping of one soak; the hot path is `delivered`."""

    def __init__(self, result: SoakResult) -> None:
        self.result = result
        self.sent_at: list[float] = []
        self.warm_count = 0
        self.warmed = asyncio.Event()
        self.closing = False

    def error(self, text: str) -> None:
        self.result.errors += 1
        if self.result.first_error is None:
            self.result.first_error = text[:500]

    def delivered(self, socket: Socket, seq: int, t: float) -> None:
        result = self.result
        if seq >= len(self.sent_at):
            self.error(f"an event for a mutation not sent: SOAK{seq}_")
        elif seq < socket.expect:
            result.duplicates += 1
        else:
            if seq > socket.expect:
                result.out_of_order += 1
            socket.expect = seq + 1
            socket.received += 1
            result.latencies.append(t - self.sent_at[seq])


class Socket(asyncio.Protocol):
    """One graphql-transport-ws subscriber: connect, init, subscribe, then count what arrives."""

    def __init__(self, run: Run, url: str, subscribe: bytes, *, active: bool) -> None:
        self.run = run
        self.ws = ClientProtocol(parse_uri(url), subprotocols=[SUBPROTOCOL], max_size=None)
        self.subscribe = subscribe
        self.active = active
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.expect = 0
        self.received = 0
        self.warm = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast("asyncio.Transport", transport)
        self.ws.send_request(self.ws.connect())
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.run.closing:
            return
        reason = f"connection lost: {self.ws.close_exc if exc is None else exc}"
        if not self.ready.done():
            self.ready.set_exception(ClientFailed(reason))
        else:
            self.run.result.dropped += 1
            self.run.error(reason)

    def data_received(self, data: bytes) -> None:
        t = now()
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:
                    self._message(bytes(event.data), t)
            elif isinstance(event, Response):
                self._handshake(event)
        self._flush()  # also the pongs websockets queued for the server's pings

    def _flush(self) -> None:
        assert self.transport is not None
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)
            else:
                self.transport.close()

    def _handshake(self, response: Response) -> None:
        if self.ws.handshake_exc is not None:
            self._fail(f"WebSocket handshake failed: {response.status_code} {self.ws.handshake_exc}")
        else:
            self.ws.send_text(INIT)

    def _fail(self, text: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ClientFailed(text))
        self.run.error(text)

    def _message(self, data: bytes, t: float) -> None:
        if not self.active:
            if b'"next"' in data:
                self.run.result.idle_events += 1
                return
        else:
            mark = MARK.search(data)
            if mark is not None:
                self.run.delivered(self, int(mark.group(1)), t)
                return
            if WARM in data:
                if not self.warm:
                    self.warm = True
                    self.run.warm_count += 1
                    if self.run.warm_count == self.run.result.plan.active:
                        self.run.warmed.set()
                return
        try:
            kind = orjson.loads(data).get("type")
        except (orjson.JSONDecodeError, AttributeError):
            kind = None
        if kind == "connection_ack":
            # The server handles a connection's messages in order: the pong
            # proves the subscription was joined.
            self.ws.send_text(self.subscribe)
            self.ws.send_text(PING)
        elif kind == "pong" and not self.ready.done():
            self.ready.set_result(None)
        elif kind == "ping":
            self.ws.send_text(PONG)
        else:
            self._fail(f"unexpected message: {data[:300]!r}")


@dataclass(frozen=True)
class Target:
    port: int
    pid: int
    server_cpu: Callable[[], float | None]


class Connections:
    """The subscribers of one run: opened CONNECT_CONCURRENCY handshakes at a time, aborted at the end."""

    def __init__(self, run: Run, port: int) -> None:
        self.run = run
        self.port = port
        self.url = f"ws://{HOST}:{port}/graphql"
        self.gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        self.sockets: list[Socket] = []

    async def open(self, count: int, query: str, active: bool) -> None:
        """Open `count` subscribers of `query`; each is subscribed when this returns."""
        subscribe = orjson.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}})
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await asyncio.gather(*(self._open_one(subscribe, active) for _ in range(count)))
        except TimeoutError:
            raise ClientFailed(f"not all {count:,} subscribed within {CONNECT_TIMEOUT:.0f} s") from None
        except OSError as exc:
            raise ClientFailed(f"cannot connect: {exc}") from None

    async def _open_one(self, subscribe: bytes, active: bool) -> None:
        async with self.gate:
            socket = Socket(self.run, self.url, subscribe, active=active)
            self.sockets.append(socket)
            loop = asyncio.get_running_loop()
            await loop.create_connection(lambda: socket, HOST, self.port)
            await socket.ready

    def abort(self) -> None:
        self.run.closing = True
        for socket in self.sockets:
            if socket.transport is not None:
                socket.transport.abort()


async def _baseline(target: Target, run: Run, connections: Connections, writer: Writer) -> int:
    """The server's RSS once it has taken a connection and captured a few changes."""
    await connections.open(1, IDLE_SUBSCRIPTION, False)
    for n in range(3):
        await _post(writer, f"BASE{n}_", run)
    await asyncio.sleep(SETTLE_SECONDS)
    return _rss_kib(target.pid, "VmRSS")


@dataclass(frozen=True)
class IdleStep:
    connections: int
    rss_kib: int
    per_connection_kib: float
    """(RSS - the baseline with one connection) / the connections opened since"""
    connect_s: float


async def measure_idle(target: Target, steps: tuple[int, ...]) -> tuple[list[IdleStep], SoakResult]:
    """The server's RSS with 1 idle subscriber, then with each of `steps` (ascending) idle subscribers.

    The result holds the baseline and what went wrong (errors, drops, events
    that reached an idle subscriber); its plan is the largest step.
    """
    result = SoakResult(SoakPlan(idle=steps[-1], active=0))
    run = Run(result)
    connections = Connections(run, target.port)
    writer = Writer(target.port, None, MUTATION)
    measured: list[IdleStep] = []
    try:
        result.rss_baseline_kib = base = await _baseline(target, run, connections, writer)
        for count in steps:
            started = now()
            await connections.open(count - len(connections.sockets), IDLE_SUBSCRIPTION, False)
            connect_s = now() - started
            await asyncio.sleep(SETTLE_SECONDS)
            rss = _rss_kib(target.pid, "VmRSS")
            measured.append(IdleStep(count, rss, (rss - base) / (count - 1), connect_s))
            print(f"  {count:,} idle connections: server RSS {mib(base)} -> {mib(rss)} MiB "
                  f"({measured[-1].per_connection_kib:.1f} KiB each)", flush=True)
        result.rss_idle_kib = measured[-1].rss_kib if measured else 0
        result.rss_peak_kib = _rss_kib(target.pid, "VmHWM")
        result.metrics = _scrape(target.port)
    finally:
        writer.close()
        connections.abort()
    return measured, result


async def drive(target: Target, plan: SoakPlan) -> SoakResult:
    """Connect, measure, stream, drain; always closes every connection."""
    result = SoakResult(plan)
    run = Run(result)
    connections = Connections(run, target.port)
    sockets = connections.sockets
    writer = Writer(target.port, None, MUTATION)
    open_many = connections.open

    try:
        result.rss_baseline_kib = await _baseline(target, run, connections, writer)
        started = now()
        await open_many(plan.idle - 1, IDLE_SUBSCRIPTION, False)
        result.connect_idle_s = now() - started
        await asyncio.sleep(SETTLE_SECONDS)
        result.rss_idle_kib = _rss_kib(target.pid, "VmRSS")
        print(
            f"  {plan.idle:,} idle connections up in {result.connect_idle_s:.1f} s; server RSS "
            f"{mib(result.rss_baseline_kib)} -> {mib(result.rss_idle_kib)} MiB "
            f"({result.per_idle_kib:.1f} KiB each)",
            flush=True,
        )
        await open_many(plan.active, ACTIVE_SUBSCRIPTION, True)
        await _warm_up(run, writer)
        await _stream(run, writer, target)
        await _drain(run, sockets)
        result.rss_end_kib = _rss_kib(target.pid, "VmRSS")
        result.rss_peak_kib = _rss_kib(target.pid, "VmHWM")
        result.metrics = _scrape(target.port)
    finally:
        writer.close()
        connections.abort()
    result.delivered = [s.received for s in sockets if s.active]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result.client_cpu_s = round(usage.ru_utime + usage.ru_stime, 1)
    result.client_peak_rss_kib = usage.ru_maxrss
    return result


async def _post(writer: Writer, title: str, run: Run, on_sent: Callable[[], None] | None = None) -> None:
    problem = await writer.post(title, on_sent)
    if problem:
        run.result.mutation_errors += 1
        run.result.first_mutation_error = run.result.first_mutation_error or problem


async def _warm_up(run: Run, writer: Writer) -> None:
    deadline = now() + WARM_UP_TIMEOUT
    while not run.warmed.is_set():
        if now() > deadline:
            raise ClientFailed(
                f"warm-up: only {run.warm_count}/{run.result.plan.active} active subscribers "
                f"received an event in {WARM_UP_TIMEOUT:.0f} s; first error: {run.result.first_error}"
            )
        run.result.warm_events += 1
        await _post(writer, f"WARM{run.result.warm_events}_", run)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.warmed.wait(), 0.5)
    await asyncio.sleep(0.5)  # let warm-up stragglers arrive


async def _stream(run: Run, writer: Writer, target: Target) -> None:
    """One mutation every 1/rate s (never two in flight), sampling the server's RSS."""
    result, plan = run.result, run.result.plan
    cpu0 = target.server_cpu()
    start = now()
    next_sample, warm_at = start, start + plan.warm_up
    seq = 0
    while True:
        due = start + seq / plan.rate
        if due >= start + plan.duration:
            break
        t = now()
        if t >= next_sample:
            result.samples.append((round(t - start, 1), _rss_kib(target.pid, "VmRSS")))
            next_sample += SAMPLE_SECONDS
        if not result.rss_warm_kib and t >= warm_at:
            result.rss_warm_kib = _rss_kib(target.pid, "VmRSS")
        if due > t:
            await asyncio.sleep(due - t)
        await _post(writer, f"SOAK{seq}_", run, lambda: run.sent_at.append(now()))
        seq += 1
        if seq % max(1, int(plan.rate * 30)) == 0:
            print(f"    {now() - start:5.0f} s: {seq:,} events sent", flush=True)
    result.events = seq
    result.stream_s = now() - start
    result.rss_warm_kib = result.rss_warm_kib or _rss_kib(target.pid, "VmRSS")
    cpu1 = target.server_cpu()
    if cpu0 is not None and cpu1 is not None:
        result.server_cpu_s = round(cpu1 - cpu0, 1)


async def _drain(run: Run, sockets: list[Socket]) -> None:
    """Wait until every active subscriber has every event, or deliveries stop, or DRAIN_MAX passes."""
    expected = run.result.expected
    end = now() + DRAIN_MAX
    last, idle_since = -1, now()
    while now() < end:
        received = sum(s.received for s in sockets if s.active)
        if received >= expected:
            return
        if received != last:
            last, idle_since = received, now()
        elif now() - idle_since > DRAIN_IDLE:
            return
        await asyncio.sleep(0.1)


def _rss_kib(pid: int, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _scrape(port: int) -> dict[str, float]:
    """The server's /metrics, as `name{label="value"}` -> value (empty when it does not answer)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        text = response.read().decode()
    except OSError:
        return {}
    finally:
        conn.close()
    if response.status != 200:
        return {}
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"
