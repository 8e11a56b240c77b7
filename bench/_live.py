"""Live queries at scale: 10,000 subscribers over 1,000 variable sets, 20 commits/s; and idle memory.

Issue 16's row: every subscriber asks
`subscription($uid: Int!) { posts(where: {user_id: {_eq: $uid}}, order_by: {id: desc}, limit: 10) { id title } }`
with `$uid` its connection's index mod 1,000, so one document and role
(one family) holds 1,000 groups of 10 subscribers. Each commit inserts a
post of user `seq mod 1,000`: the family is refreshed, one batched statement
answering the 1,000 groups, and the new answer goes to the 10 subscribers
whose result changed. Driven by ../shared/bench/native's `fanout-go`
(`--distinct 1000`, `{i}` in the subscription's variables, `{g}` in the
mutation's), 20 mutations/s open loop, on a fresh `forgegraph serve` per
round, over SQLite and PostgreSQL. Each user starts with one post titled
`WARM0_seed`, so every first answer passes fanout-go's warm-up barrier;
then the newest post of a refreshed answer (order_by id desc) carries the
`BENCH<seq>_` marker fanout-go times.

Figures, medians over the rounds:
- latency p50 / p99 from the mutation's send to the refreshed result at the
  subscriber (an upper bound of commit -> result: it includes the mutation's
  own round trip; goal p99 under 200 ms, Hasura refreshes each second);
- server CPU per refresh: the server's CPU over the measured phase (fanout-go's
  reading) / the family refreshes in it (`forgegraph_live_query_refreshes`
  scraped as the phase starts and after it ends).
Lost, duplicated or misrouted results are errors.

Idle memory: the server's VmRSS with one live-query subscriber, then with
1,000 and 10,000, each on its own graphql-transport-ws connection with one
live query over 1,000 variable sets, once each has its first answer and the
server is quiet: (RSS - baseline) / the subscribers added, as
bench/_idle.py reads it for `tableChanged` (goal: under 30 KiB).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
from _data import (
    PostgresUnavailable,
    _connect,
    create_postgres_database,
    drop_postgres_database,
    postgres_target,
    sqlite_url,
)
from _distinct import Run, fanout_go
from _fanout import _scan_log
from _fanout_tool import TIMEOUT_SLACK_SECONDS
from _report import Report
from _roles import ClientFailed
from _scaleout import run_async
from _server import HOST, Server, healthz_ok, run_forgegraph
from _soak import FD_SLACK, raise_file_limit
from _soak_client import Run as SoakRun
from _soak_client import SoakPlan, SoakResult, Socket, _rss_kib, _scrape, mib

USERS = 1_000
SUBSCRIBERS = 10_000
RATE = 20.0
SEED_TITLE = "WARM0_seed"
SUBSCRIPTION = (
    "subscription($uid: Int!) { posts(where: {user_id: {_eq: $uid}}, order_by: {id: desc}, limit: 10) "
    "{ id title } }"
)
MUTATION = (
    "mutation($title: String!, $uid: Int) { "
    'insert_posts_one(object: {title: $title, body: "x", user_id: $uid}) { id } }'
)
REFRESHES = "forgegraph_live_query_refreshes_total"
IDLE_STEPS = (1_000, 10_000)
IDLE_POSTS_PER_USER = 10
CONNECT_CONCURRENCY = 100
CONNECT_TIMEOUT = 240.0
SETTLE_SECONDS = 3.0


@dataclass(frozen=True)
class Database:
    kind: str
    url: str
    reset: Callable[[], None]
    """Back to the seeded rows: each round starts from the same answers."""


# -- databases -------------------------------------------------------------------


@contextmanager
def live_database(kind: str, workdir: Path, postgres: str, posts_per_user: int = 1) -> Iterator[Database]:
    """A migrated database with users 0..999 and `posts_per_user` seed posts each (PostgreSQL: dropped after)."""
    seed = [(f"{SEED_TITLE}{n}" if n else SEED_TITLE, "x", user) for user in range(USERS) for n in range(posts_per_user)]
    users = [(i, f"User {i}", f"user{i}@example.com") for i in range(USERS)]
    if kind == "sqlite":
        path = workdir / f"live-{posts_per_user}.db"
        path.unlink(missing_ok=True)
        url = sqlite_url(path)
        run_forgegraph("migrate", "--database", url, cwd=workdir)

        def reset_sqlite() -> None:
            conn = sqlite3.connect(path)
            try:
                conn.execute("DELETE FROM posts")
                conn.executemany("INSERT INTO users (id, name, email) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", users)
                conn.executemany("INSERT INTO posts (title, body, user_id) VALUES (?, ?, ?)", seed)
                conn.commit()
            finally:
                conn.close()

        reset_sqlite()
        yield Database(kind, url, reset_sqlite)
        return
    database = create_postgres_database(postgres_target(postgres))
    try:
        url = database.render_as_string(hide_password=False)
        run_forgegraph("migrate", "--database", url, cwd=workdir)

        async def reset_postgres() -> None:
            conn = await _connect(database, database.database or "postgres")
            try:
                await conn.execute("DELETE FROM posts")
                await conn.executemany(
                    "INSERT INTO users (id, name, email) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", users
                )
                await conn.executemany("INSERT INTO posts (title, body, user_id) VALUES ($1, $2, $3)", seed)
            finally:
                await conn.close()

        def reset() -> None:
            asyncio.run(reset_postgres())

        reset()
        yield Database(kind, url, reset)
    finally:
        drop_postgres_database(database)


def _kinds(args: argparse.Namespace) -> list[str]:
    return ["sqlite"] if args.skip_postgres else ["sqlite", "postgres"]


# -- refresh latency ---------------------------------------------------------------


@dataclass(frozen=True)
class LiveRun:
    run: Run
    refreshes: float | None
    """Family refreshes during fanout-go's measured phase."""

    @property
    def cpu_ms_per_refresh(self) -> float | None:
        watched = self.run.raw.get("server")
        server = next(iter(watched.values()), None) if isinstance(watched, dict) and watched else None
        cpu = server.get("cpu_s") if isinstance(server, dict) else None
        return cpu / self.refreshes * 1e3 if isinstance(cpu, int | float) and self.refreshes else None


def bench_live(workdir: Path, args: argparse.Namespace, report: Report) -> None:
    client = fanout_go(args)
    subscribers: int = args.live_subscribers
    try:
        raise_file_limit(subscribers + FD_SLACK)  # fanout-go and the server each hold one end
    except ClientFailed as exc:
        report.error(f"live queries: {exc}")
        return
    if client is None:
        report.note(
            "live-query refresh latency skipped: fanout-go not found (build it with "
            "../shared/bench/native/build.sh, then pass --fanout-go PATH or set FANOUT_GO)"
        )
    else:
        for kind in _kinds(args):
            _bench_latency(client, kind, workdir, args, report)
    _bench_idle(workdir, args, report)


def _bench_latency(client: Path, kind: str, workdir: Path, args: argparse.Namespace, report: Report) -> None:
    rounds: int = args.live_rounds
    duration: float = args.live_duration
    subscribers: int = args.live_subscribers
    print(f"live queries, {kind}: {subscribers:,} subscribers over {USERS:,} variable sets, {RATE:g} mutations/s, "
          f"{rounds} rounds of {duration:g} s", flush=True)
    try:
        with live_database(kind, workdir, args.postgres) as db:
            done: list[LiveRun] = []
            for round_ in range(rounds):
                if round_:
                    db.reset()
                found = _run(client, db, workdir, duration, subscribers, f"live-{kind}-{round_}", report)
                if found is not None:
                    done.append(found)
    except PostgresUnavailable as exc:
        report.note(f"live queries, {kind} skipped: {exc}")
        return
    _report_latency(kind, done, duration, subscribers, report)


def _run(
    client: Path, db: Database, workdir: Path, duration: float, subscribers: int, label: str, report: Report
) -> LiveRun | None:
    with Server(db.url, workdir, label) as server:
        server.start()
        command = [
            str(client), "--url", f"ws://{HOST}:{server.port}/graphql",
            "--mutate-url", f"http://{HOST}:{server.port}/graphql",
            "--query", SUBSCRIPTION, "--variables", '{"uid":{i}}', "--distinct", str(USERS),
            "--mutation", MUTATION, "--mutation-variables", '{"uid":{g}}',
            "-n", str(subscribers), "-e", "1000000", "-r", f"{RATE:g}", "--duration", f"{duration:g}",
            "--connect-concurrency", "100", "--server-pid", str(server.pid), "--label", label,
        ]
        before: list[float | None] = []
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   stdin=subprocess.DEVNULL)
        stderr: list[str] = []

        def follow() -> None:
            # The refresh count is read as fanout-go starts measuring (after connecting and warming up).
            assert process.stderr is not None
            for line in process.stderr:
                stderr.append(line)
                if "measuring" in line and not before:
                    before.append(_scrape(server.port).get(REFRESHES))

        # stderr is the follower's alone (communicate() would read it too, and take the line).
        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        timer = threading.Timer(duration + TIMEOUT_SLACK_SECONDS + 60, process.kill)
        timer.start()
        try:
            assert process.stdout is not None
            stdout = process.stdout.read()
            process.wait()
        finally:
            timer.cancel()
        reader.join(timeout=5)
        if process.returncode < 0:
            report.error(f"live queries, {label}: fanout-go did not finish")
            return None
        after = _scrape(server.port).get(REFRESHES)
        alive = server.alive() and healthz_ok(server.port, timeout=5.0)
        if not alive:
            report.error(f"live queries, {label}: the server died or stopped answering; "
                         f"stderr:\n{server.stderr_tail()}")
    _scan_log(f"live queries, {label}", server, report)
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        report.error(f"live queries, {label}: no result line; stderr: {''.join(stderr)[-500:]}"
                     f"\nserver stderr:\n{server.stderr_tail()}")
        return None
    run = Run(orjson.loads(lines[-1]))
    start = before[0] if before else None
    refreshes = after - start if after is not None and start is not None else None
    found = LiveRun(run, refreshes)
    cost = found.cpu_ms_per_refresh
    print(f"  {label}: {run.events_per_s:.1f} commits/s, p50 {run.number('lat_p50_ms'):.1f} ms, "
          f"p99 {run.number('lat_p99_ms'):.1f} ms, {refreshes} refreshes, "
          f"{'n/a' if cost is None else f'{cost:.2f}'} ms server CPU per refresh", flush=True)
    problems = run.problems()
    if problems:
        report.error(f"live queries, {label}: {'; '.join(problems)}")
        return None
    return found


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 2) if known else None


def _report_latency(kind: str, done: list[LiveRun], duration: float, subscribers: int, report: Report) -> None:
    title = f"live queries, {kind}, {subscribers:,} subscribers / {USERS:,} variable sets @{RATE:g}/s"
    settings = (f"fanout-go, {duration:g} s, median of {len(done)} rounds; from the mutation sent to the "
                "refreshed result")
    report.add(f"{title}: latency p50", _median([r.run.number("lat_p50_ms") for r in done]), "ms", settings)
    report.add(f"{title}: latency p99", _median([r.run.number("lat_p99_ms") for r in done]), "ms",
               f"{settings}; goal < 200 (Hasura refreshes each 1 s)")
    report.add(
        f"{title}: server CPU per refresh", _median([r.cpu_ms_per_refresh for r in done]), "ms",
        f"server CPU over the measured phase / family refreshes in it (one batched statement for the "
        f"{USERS:,} groups each); median of {len(done)} rounds",
    )
    report.add(f"{title}: refreshes per commit",
               _median([r.refreshes / r.run.number("events") if r.refreshes and r.run.number("events") else None
                        for r in done]),
               "ratio", "below 1 when commits were coalesced")
    report.details[f"live queries {kind}"] = [{"refreshes": r.refreshes, **r.run.raw} for r in done]


# -- idle memory -------------------------------------------------------------------


class LiveSocket(Socket):
    """A live-query subscriber: ready with its first answer; any later answer is an event where none should be."""

    answered = False

    def _message(self, data: bytes, t: float) -> None:
        if b'"next"' in data and not self.answered:
            self.answered = True
            if not self.ready.done():
                self.ready.set_result(None)
            return
        if b'"pong"' in data:
            return  # ready with the first answer, not with the pong
        super()._message(data, t)


async def _open(run: SoakRun, port: int, sockets: list[Socket], first: int, count: int) -> None:
    """Subscribers first..first+count-1, subscriber i with `$uid` = i mod USERS, each with its first answer."""
    url = f"ws://{HOST}:{port}/graphql"
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    loop = asyncio.get_running_loop()

    async def one(index: int) -> None:
        subscribe = orjson.dumps({"id": "1", "type": "subscribe", "payload": {
            "query": SUBSCRIPTION, "variables": {"uid": index % USERS}}})
        async with gate:
            socket = LiveSocket(run, url, subscribe, active=False)
            sockets.append(socket)
            await loop.create_connection(lambda: socket, HOST, port)
            await socket.ready

    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await asyncio.gather(*(one(i) for i in range(first, first + count)))
    except TimeoutError:
        raise ClientFailed(f"not all {count:,} live queries answered within {CONNECT_TIMEOUT:.0f} s") from None
    except OSError as exc:
        raise ClientFailed(f"cannot connect: {exc}") from None


@dataclass(frozen=True)
class IdleStep:
    subscribers: int
    rss_kib: int
    per_subscriber_kib: float
    connect_s: float


async def _measure_idle(port: int, pid: int, steps: tuple[int, ...]) -> tuple[int, list[IdleStep], SoakResult]:
    result = SoakResult(SoakPlan(idle=steps[-1], active=0))
    run = SoakRun(result)
    sockets: list[Socket] = []
    measured: list[IdleStep] = []
    try:
        await _open(run, port, sockets, 0, 1)
        await asyncio.sleep(SETTLE_SECONDS)
        base = _rss_kib(pid, "VmRSS")
        for count in steps:
            started = time.perf_counter()
            await _open(run, port, sockets, len(sockets), count - len(sockets))
            connect_s = time.perf_counter() - started
            await asyncio.sleep(SETTLE_SECONDS)
            rss = _rss_kib(pid, "VmRSS")
            measured.append(IdleStep(count, rss, (rss - base) / (count - 1), connect_s))
            print(f"  {count:,} idle live queries: server RSS {mib(base)} -> {mib(rss)} MiB "
                  f"({measured[-1].per_subscriber_kib:.1f} KiB each)", flush=True)
        result.metrics = _scrape(port)
    finally:
        run.closing = True
        for socket in sockets:
            if socket.transport is not None:
                socket.transport.abort()
    return base, measured, result


def _bench_idle(workdir: Path, args: argparse.Namespace, report: Report) -> None:
    steps = tuple(s for s in IDLE_STEPS if s <= args.live_subscribers) or (args.live_subscribers,)
    print(f"live queries, idle memory: {', '.join(f'{n:,}' for n in steps)} subscribers over {USERS:,} variable sets, "
          f"{IDLE_POSTS_PER_USER} posts each", flush=True)
    with live_database("sqlite", workdir, args.postgres, IDLE_POSTS_PER_USER) as db, \
            Server(db.url, workdir, "live-idle") as server:
        server.start()
        try:
            base, measured, result = run_async(lambda: _measure_idle(server.port, server.pid, steps))
        except ClientFailed as exc:
            report.error(f"live queries, idle memory: {exc}; server stderr:\n{server.stderr_tail()}")
            return
        if not server.alive():
            report.error(f"live queries, idle memory: the server died; stderr:\n{server.stderr_tail()}")
    _scan_log("live queries, idle memory", server, report)
    for step in measured:
        report.add(
            f"live queries, idle memory: per subscriber at {step.subscribers:,}", round(step.per_subscriber_kib, 1),
            "KiB",
            f"one connection each, {USERS:,} variable sets; server VmRSS {mib(base)} MiB with 1 -> "
            f"{mib(step.rss_kib)} MiB, / {step.subscribers - 1:,}; goal < 30",
        )
    report.details["live queries idle memory"] = {
        "rss_baseline_kib": base,
        "steps": [{"subscribers": s.subscribers, "rss_kib": s.rss_kib,
                   "per_subscriber_kib": round(s.per_subscriber_kib, 2), "connect_s": round(s.connect_s, 1)}
                  for s in measured],
    }
    problems = [p for p in result.problems() if p != "no mutation was sent"]
    for problem in problems:
        report.error(f"live queries, idle memory: {problem}")
    largest = measured[-1].subscribers if measured else 0
    gauge = 'forgegraph_subscriptions{transport="graphql-transport-ws"}'
    if result.metrics.get(gauge) != largest:
        report.error(f"live queries, idle memory: {gauge} = {result.metrics.get(gauge)}, expected {largest}")

