"""Scale-out: several `forgegraph serve` processes on one database, woken through a broker.

Every process reads the shared change log itself and dispatches to its own
subscribers; `--broadcast redis://...` only carries a wake-up so the other
processes read the log at once instead of at their 200 ms poll (see
graph/events/capture.py). Two questions, on a fresh PostgreSQL database
(`fg_bench_<random>`, migrated, user 1 inserted, dropped at the end), or on
SQLite with a note when PostgreSQL cannot be reached:

1. Does a second process add delivery capacity? The same load twice, at
   max rate (one mutation in flight, at most WINDOW events not yet fully
   delivered): 1 process with 1000 subscribers, then 2 processes with 500
   each, both with the Redis broker; in the second case mutations alternate
   between the processes. Deliveries/s across all subscribers, latency from
   mutation sent to event received, losses and duplicates, CPU per process.
2. What does the broker cost, and what does it buy? 100 subscribers at a
   fixed 20 mutations/s with memory:// and with Redis: subscribers and
   mutations on process A (the broker is off the delivery path), then
   subscribers on process B and mutations on A (B learns of a change from
   the broker, or with memory:// only from its poll). Both runs of each
   broker use the same pair of processes, so the topology is the same.
   Part 1 shows less of the broker: a process also reads the log after each
   of its own mutations, which alternate, so B rarely waits for a wake-up.

Each run starts after a pause longer than the poll, so no process still
holds unread events of the previous run for the new subscribers.

Everything is driven by one client: _roles.py's asyncio one (sans-I/O
websockets under asyncio.Protocol, fanout.py's method), here with its
subscribers spread over several processes, so every ratio compares like
with like. Timings are never judged; lost or duplicated events, a failed
mutation or subscriber, a server that died are errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import socket
import sqlite3
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
from _data import (
    PostgresUnavailable,
    _connect,
    create_postgres_database,
    drop_postgres_database,
    postgres_target,
    sqlite_url,
)
from _fanout import MUTATION, SUBSCRIPTION, _scan_log
from _report import Report
from _roles import (
    CONNECT_CONCURRENCY,
    SETUP_TIMEOUT,
    WINDOW,
    WINDOW_TIMEOUT,
    ClientFailed,
    RunResult,
    Subscriber,
    Tally,
    Writer,
    _peak_rss_mib,
    _warm_up,
    drain,
    now,
)
from _server import HOST, Server, ServerError, healthz_ok, run_forgegraph
from sqlalchemy.engine import URL

REDIS = "redis://127.0.0.1:6379"
MEMORY = "memory://"
SUBSCRIBERS = 1000  # part 1: on one process, or split evenly over two
LATENCY_SUBSCRIBERS = 100  # part 2
LATENCY_RATE = 20.0  # mutations/s in part 2
POLL_MS = 200  # graph/events/capture.py's poll_interval: what memory:// leaves process B with
# Before each run: an idle process may still read the previous run's last
# events at its next poll, and would hand them to the new subscribers.
SETTLE_SECONDS = 5 * POLL_MS / 1000
INIT = b'{"type":"connection_init","payload":{}}'
T = TypeVar("T")


class BroadcastServer(Server):
    """`forgegraph serve --broadcast URL`."""

    def __init__(self, url: str, workdir: Path, label: str, broadcast: str) -> None:
        super().__init__(url, workdir, label)
        self.broadcast = broadcast

    def command(self) -> list[str]:
        return [*super().command(), "--broadcast", self.broadcast]


@dataclass(frozen=True)
class Load:
    """One client run: where the subscribers are, where the mutations go, how fast."""

    label: str
    subscribers: int
    subscribe_to: tuple[BroadcastServer, ...]  # subscribers spread evenly, round-robin
    mutate_on: tuple[BroadcastServer, ...]  # mutations cycle through these
    rate: float  # mutations/s; 0 = max rate, one in flight, window WINDOW
    duration: float
    watched: tuple[BroadcastServer, ...]  # CPU measured for each


@dataclass
class Outcome:
    """A run's RunResult plus what one process cannot say: per-process figures."""

    load: Load
    run: RunResult
    window_s: float = 0.0  # first mutation sent -> drain over: the CPU window
    cpu_s: dict[str, float | None] = field(default_factory=dict)
    machine_busy_percent: float | None = None  # all CPUs: servers, client, database, broker
    peak_rss_mib: dict[str, float | None] = field(default_factory=dict)
    subscribers_on: dict[str, int] = field(default_factory=dict)
    mutations_on: dict[str, int] = field(default_factory=dict)

    @property
    def mutations_per_s(self) -> float:
        return self.run.events / self.window_s if self.window_s else 0.0

    def cpu_percent(self, label: str) -> float | None:
        cpu = self.cpu_s.get(label)
        return None if cpu is None or not self.window_s else 100.0 * cpu / self.window_s

    @property
    def cpu_us_per_delivery(self) -> float | None:
        spent = list(self.cpu_s.values())
        if not self.run.received or any(c is None for c in spent):
            return None
        return sum(c for c in spent if c is not None) / self.run.received * 1e6


# -- the client ------------------------------------------------------------------------


async def drive(load: Load) -> Outcome:
    """Subscribe everyone over every process, warm up, measure; always closes every connection."""
    tally = Tally(load.subscribers)
    outcome = Outcome(load, tally.result)
    subscribe = orjson.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}})
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    subscribers: list[Subscriber] = []
    writers = [Writer(server.port, None, MUTATION) for server in load.mutate_on]

    async def open_one(server: BroadcastServer) -> None:
        async with gate:
            url = f"ws://{HOST}:{server.port}/graphql"
            sub = Subscriber(tally, url, INIT, subscribe)
            subscribers.append(sub)
            await loop.create_connection(lambda: sub, HOST, server.port)
            await sub.subscribed

    targets = [load.subscribe_to[i % len(load.subscribe_to)] for i in range(load.subscribers)]
    for server in targets:
        outcome.subscribers_on[server.label] = outcome.subscribers_on.get(server.label, 0) + 1
    try:
        started = now()
        try:
            async with asyncio.timeout(SETUP_TIMEOUT):
                await asyncio.gather(*(open_one(server) for server in targets))
        except TimeoutError:
            raise ClientFailed(f"not all subscribed within {SETUP_TIMEOUT:.0f} s") from None
        except OSError as exc:
            raise ClientFailed(f"cannot connect: {exc}") from None
        tally.result.connect_s = now() - started
        # The warm-up goes to the first writer's process only, so in the
        # two-process runs it also proves the other process hears of it.
        await _warm_up(tally, writers[0])
        await asyncio.sleep(0.5)  # let warm-up stragglers drain
        await _measure(tally, writers, outcome)
    finally:
        tally.closing = True
        for writer in writers:
            writer.close()
        for sub in subscribers:
            if sub.transport is not None:
                sub.transport.abort()
    tally.result.latencies.sort()
    return outcome


async def _measure(tally: Tally, writers: list[Writer], outcome: Outcome) -> None:
    load, result = outcome.load, tally.result
    n = result.subscribers
    cpu0 = {server.label: server.cpu_seconds() for server in load.watched}
    machine0 = _machine_ticks()
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    started = now()
    deadline = started + load.duration
    period = 1.0 / load.rate if load.rate else 0.0

    def sent() -> None:
        t = now()
        tally.sent_at.append(t)
        if tally.first_send is None:
            tally.first_send = t

    seq = 0
    while now() < deadline:
        if period:
            # On schedule; one connection per process, so a late answer
            # delays the next mutation (the achieved rate is reported).
            delay = started + seq * period - now()
            if delay > 0:
                await asyncio.sleep(delay)
                if now() >= deadline:
                    break
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
        writer = writers[seq % len(writers)]
        label = load.mutate_on[seq % len(writers)].label
        outcome.mutations_on[label] = outcome.mutations_on.get(label, 0) + 1
        problem = await writer.post(f"BENCH{seq}_", sent)
        if problem:
            result.mutation_errors += 1
            result.first_mutation_error = result.first_mutation_error or problem
        seq += 1
    result.events = seq
    await drain(result)
    outcome.window_s = now() - (tally.first_send or started)
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    machine1 = _machine_ticks()
    if machine0 is not None and machine1 is not None and machine1[1] > machine0[1]:
        busy = (machine1[0] - machine0[0]) / (machine1[1] - machine0[1])
        outcome.machine_busy_percent = round(100.0 * busy, 1)
    for server in load.watched:
        before, after = cpu0[server.label], server.cpu_seconds()
        spent = None if before is None or after is None else round(after - before, 2)
        outcome.cpu_s[server.label] = spent
        outcome.peak_rss_mib[server.label] = _peak_rss_mib(server.pid)
    client = usage1.ru_utime - usage0.ru_utime + usage1.ru_stime - usage0.ru_stime
    result.client_cpu_s = round(client, 2)
    if tally.first_send is not None and tally.last_receive is not None:
        result.span_s = tally.last_receive - tally.first_send


def _machine_ticks() -> tuple[int, int] | None:
    """Busy and total CPU ticks of the whole machine so far (Linux /proc/stat)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(make())


# -- the phase -------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    url: str  # with password: for the servers
    shown: str  # without: for the report
    kind: str


def bench_scaleout(workdir: Path, args: argparse.Namespace, report: Report) -> None:
    duration: float = args.scaleout_duration
    print(
        f"scale-out: {SUBSCRIBERS} subscribers on 1 vs 2 processes (Redis wake-ups), "
        f"then N={LATENCY_SUBSCRIBERS} @{LATENCY_RATE:g} mut/s, Redis vs memory://; "
        f"{duration:g} s per run",
        flush=True,
    )
    broker = _redis_problem()
    if broker:
        report.note(f"scale-out skipped: {broker}")
        return
    with _database(workdir, args, report) as database:
        outcomes = _run_all(database, workdir, duration, report)
    _report_ratios(outcomes, report)


def _redis_problem() -> str | None:
    """Why the Redis at REDIS cannot be used, None when it answers PING."""
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            answer = sock.recv(64)
    except OSError as exc:
        return f"Redis at {REDIS} unreachable: {exc}"
    return None if answer.startswith(b"+PONG") else f"Redis at {REDIS} answered {answer!r}"


@contextlib.contextmanager
def _database(workdir: Path, args: argparse.Namespace, report: Report) -> Iterator[Database]:
    """A migrated database with user 1: a scratch PostgreSQL one (dropped after), else SQLite."""
    try:
        target = create_postgres_database(postgres_target(args.postgres))
    except PostgresUnavailable as exc:
        report.note(f"scale-out on SQLite: PostgreSQL unavailable ({exc})")
        path = workdir / "scaleout.db"
        url = sqlite_url(path)
        run_forgegraph("migrate", "--database", url, cwd=workdir)
        conn = sqlite3.connect(path)
        try:
            conn.execute(
                "INSERT INTO users (id, name, email) VALUES (1, 'Bench', 'bench@example.com')"
            )
            conn.commit()
        finally:
            conn.close()
        yield Database(url, "SQLite file in a temp dir", "SQLite")
        return
    try:
        url = target.render_as_string(hide_password=False)
        run_forgegraph("migrate", "--database", url, cwd=workdir)
        run_async(lambda: _insert_postgres_user(target))
        yield Database(url, target.render_as_string(hide_password=True), "PostgreSQL")
    finally:
        drop_postgres_database(target)
        print(f"  dropped database {target.database}", flush=True)


async def _insert_postgres_user(url: URL) -> None:
    conn = await _connect(url, url.database or "postgres")
    try:
        await conn.execute(
            "INSERT INTO users (id, name, email) VALUES (1, 'Bench', 'bench@example.com')"
        )
    finally:
        await conn.close()


def _run_all(
    database: Database, workdir: Path, duration: float, report: Report
) -> dict[str, Outcome | None]:
    """Every run, servers started as needed and all stopped on the way out.

    A server that does not start is an error that skips the runs of its broker only.
    """
    outcomes: dict[str, Outcome | None] = {}
    try:
        _redis_runs(database, workdir, duration, report, outcomes)
    except ServerError as exc:
        report.error(f"scale-out, Redis runs: {exc}")
    try:
        _memory_runs(database, workdir, duration, report, outcomes)
    except ServerError as exc:
        report.error(f"scale-out, memory:// runs: {exc}")
    return outcomes


def _redis_runs(
    database: Database,
    workdir: Path,
    duration: float,
    report: Report,
    outcomes: dict[str, Outcome | None],
) -> None:
    a = BroadcastServer(database.url, workdir, "scaleout-redis-A", REDIS)
    b = BroadcastServer(database.url, workdir, "scaleout-redis-B", REDIS)
    with a, b:
        # Case 1 runs before B exists, so the lone process is really alone.
        a.start()
        one = Load(f"scale-out 1 process ({database.kind}, Redis)", SUBSCRIBERS,
                   (a,), (a,), 0.0, duration, (a,))
        outcomes["1"] = _client_run(one, database, report)
        b.start()
        two = Load(f"scale-out 2 processes ({database.kind}, Redis)", SUBSCRIBERS,
                   (a, b), (a, b), 0.0, duration, (a, b))
        outcomes["2"] = _client_run(two, database, report)
        outcomes.update(_latency_runs("Redis", a, b, database, duration, report))
        _after((a, b), report)


def _memory_runs(
    database: Database,
    workdir: Path,
    duration: float,
    report: Report,
    outcomes: dict[str, Outcome | None],
) -> None:
    a = BroadcastServer(database.url, workdir, "scaleout-memory-A", MEMORY)
    b = BroadcastServer(database.url, workdir, "scaleout-memory-B", MEMORY)
    with a, b:
        a.start()
        b.start()
        outcomes.update(_latency_runs("memory", a, b, database, duration, report))
        _after((a, b), report)


def _latency_runs(
    broker: str,
    a: BroadcastServer,
    b: BroadcastServer,
    database: Database,
    duration: float,
    report: Report,
) -> dict[str, Outcome | None]:
    n, rate = LATENCY_SUBSCRIBERS, LATENCY_RATE
    shown = "memory://" if broker == "memory" else "Redis"
    local = Load(f"scale-out latency {shown}, subscribers on A, mutations to A", n,
                 (a,), (a,), rate, duration, (a, b))
    cross = Load(f"scale-out latency {shown}, subscribers on B, mutations to A", n,
                 (b,), (a,), rate, duration, (a, b))
    return {
        f"{broker} local": _client_run(local, database, report),
        f"{broker} cross": _client_run(cross, database, report),
    }


def _client_run(load: Load, database: Database, report: Report) -> Outcome | None:
    ports = ", ".join(f"{s.label.rsplit('-', 1)[1]} :{s.port}" for s in load.watched)
    print(f"  {load.label} ({ports})", flush=True)
    for server in load.watched:
        if not server.alive():
            report.error(f"{load.label}: {server.label} is not running; not measured")
            return None
    time.sleep(SETTLE_SECONDS)
    try:
        outcome = run_async(lambda: drive(load))
    except (ClientFailed, OSError, asyncio.IncompleteReadError) as exc:
        tails = "\n".join(f"{s.label} stderr:\n{s.stderr_tail()}" for s in load.watched)
        report.error(f"{load.label}: {exc}\n{tails}")
        return None
    _report_run(outcome, database, report)
    return outcome


def _after(servers: tuple[BroadcastServer, ...], report: Report) -> None:
    for server in servers:
        if server.process is None:
            continue
        if not server.alive():
            report.error(
                f"{server.label}: the server died (exit code {server.returncode}); "
                f"stderr:\n{server.stderr_tail()}"
            )
        elif not healthz_ok(server.port, timeout=5.0):
            report.error(f"{server.label}: /healthz not 200 after its runs")
    for server in servers:
        if server.process is not None:
            server.stop()
            _scan_log(server.label, server, report)


def _short(label: str) -> str:
    return label.rsplit("-", 1)[1]  # scaleout-redis-A -> A


def _report_run(outcome: Outcome, database: Database, report: Report) -> None:
    load, result = outcome.load, outcome.run
    p50, p99, top = (_ms(result.latency_ms(p)) for p in (50, 99, 100))
    cpu = " / ".join(
        f"{_short(label)} {_num(outcome.cpu_s[label])} s ({_num(outcome.cpu_percent(label), 0)}%)"
        for label in outcome.cpu_s
    )
    per = outcome.cpu_us_per_delivery
    print(
        f"    {result.deliveries_per_s:,.0f} deliveries/s, {result.events} mutations "
        f"({outcome.mutations_per_s:.1f}/s), p50 {p50} p99 {p99} max {top} ms, "
        f"{result.duplicates} duplicates, {result.missing} missing, server CPU {cpu} "
        f"({_num(per)} us/delivery), client CPU {result.client_cpu_s} s, "
        f"machine {_num(outcome.machine_busy_percent, 0)}% busy",
        flush=True,
    )
    spread = " + ".join(f"{count} on {_short(s)}" for s, count in outcome.subscribers_on.items())
    sent = " + ".join(f"{count} to {_short(s)}" for s, count in outcome.mutations_on.items())
    mode = f"{load.rate:g} mut/s" if load.rate else f"one mutation in flight, window {WINDOW}"
    span = f"{result.span_s:.2f}" if result.span_s else "n/a"
    settings = f"{database.kind}; subscribers {spread}; mutations {sent}; {mode}; span {span} s"
    prefix = load.label
    if not load.rate:
        report.add(f"{prefix}: deliveries", round(result.deliveries_per_s, 1), "deliveries/s",
                   settings)
    report.add(f"{prefix}: latency p50 / p99 / max", f"{p50} / {p99} / {top}", "ms", settings)
    report.add(f"{prefix}: duplicates / missing", f"{result.duplicates} / {result.missing}",
               f"of {result.expected:,}", settings)
    window = f"{outcome.window_s:.1f}"
    report.add(f"{prefix}: server CPU per process", cpu, "s (% of a core)",
               f"first mutation -> drained, {window} s; {_num(per)} us CPU per delivery, all "
               f"processes; client {result.client_cpu_s} s; all {os.cpu_count()} CPUs "
               f"{_num(outcome.machine_busy_percent, 0)}% busy")
    report.details[prefix] = {
        "database": database.shown,
        "subscribers": result.subscribers,
        "subscribers_on": outcome.subscribers_on,
        "mutations_on": outcome.mutations_on,
        "rate_target": load.rate,
        "window": WINDOW,
        "events": result.events,
        "mutations_per_s": round(outcome.mutations_per_s, 1),
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
        "cpu_window_s": round(outcome.window_s, 2),
        "server_cpu_s": outcome.cpu_s,
        "server_cpu_percent": {k: _rounded(outcome.cpu_percent(k)) for k in outcome.cpu_s},
        "server_cpu_us_per_delivery": _rounded(per),
        "server_peak_rss_mib": outcome.peak_rss_mib,
        "client_cpu_s": result.client_cpu_s,
        "machine_cpus": os.cpu_count(),
        "machine_busy_percent": outcome.machine_busy_percent,
        "window_timeouts": result.window_timeouts,
        "sub_errors": result.errors,
        "mut_errors": result.mutation_errors,
    }
    problems = result.problems()
    if problems:
        report.error(f"{prefix}: {'; '.join(problems)}")
    if result.window_timeouts:
        report.note(f"{prefix}: {result.window_timeouts} window waits over {WINDOW_TIMEOUT:g} s")
    if load.rate and outcome.mutations_per_s < 0.9 * load.rate:
        report.note(
            f"{prefix}: {outcome.mutations_per_s:.1f} mutations/s sent of {load.rate:g} "
            "targeted (mutations answered late)"
        )


def _report_ratios(outcomes: dict[str, Outcome | None], report: Report) -> None:
    one, two = outcomes.get("1"), outcomes.get("2")
    name = "scale-out 2 / 1 processes: deliveries/s"
    if _usable(one) and _usable(two) and one and two and one.run.deliveries_per_s:
        ratio = two.run.deliveries_per_s / one.run.deliveries_per_s
        settings = (
            f"{two.run.deliveries_per_s:,.0f} vs {one.run.deliveries_per_s:,.0f} deliveries/s; "
            f"{SUBSCRIBERS} subscribers, max rate, same client; CPU us/delivery "
            f"{_num(two.cpu_us_per_delivery)} vs {_num(one.cpu_us_per_delivery)}; all "
            f"{os.cpu_count()} CPUs {_num(two.machine_busy_percent, 0)}% vs "
            f"{_num(one.machine_busy_percent, 0)}% busy"
        )
        report.add(name, round(ratio, 3), "ratio", settings)
        report.details.setdefault("scale-out ratios", {})["two_over_one_deliveries"] = round(
            ratio, 4
        )
        print(f"    2 / 1 processes: deliveries/s {ratio:.3f}", flush=True)
    else:
        report.add(name, None, "ratio", "not computed: a run failed")
    for where, what in (("local", "subscribers and mutations on A"),
                        ("cross", "subscribers on B, mutations to A")):
        redis, memory = outcomes.get(f"Redis {where}"), outcomes.get(f"memory {where}")
        name = f"scale-out latency Redis / memory://, {what}: p50 / p99"
        if not (_usable(redis) and _usable(memory) and redis and memory):
            report.add(name, None, "ratio", "not computed: a run failed")
            continue
        ratios = [_ratio(redis.run.latency_ms(p), memory.run.latency_ms(p)) for p in (50, 99)]
        shown = " / ".join(_num(r, 3) for r in ratios)
        settings = (
            f"p50 {_ms(redis.run.latency_ms(50))} vs {_ms(memory.run.latency_ms(50))} ms, "
            f"p99 {_ms(redis.run.latency_ms(99))} vs {_ms(memory.run.latency_ms(99))} ms; "
            f"N={LATENCY_SUBSCRIBERS} @{LATENCY_RATE:g} mut/s"
            + (f"; memory:// leaves B its {POLL_MS} ms poll" if where == "cross" else "")
        )
        report.add(name, shown, "ratio", settings)
        report.details.setdefault("scale-out ratios", {})[f"latency_redis_over_memory_{where}"] = {
            "p50": _rounded(ratios[0], 4),
            "p99": _rounded(ratios[1], 4),
        }
        print(f"    latency Redis / memory://, {what}: p50 / p99 {shown}", flush=True)


def _usable(outcome: Outcome | None) -> bool:
    return outcome is not None and not outcome.run.problems()


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or not b else a / b


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)
