"""Soak: thousands of idle subscribers, a few hundred busy ones, a steady stream, minutes long.

One `forgegraph serve` on 127.0.0.1 over a migrated database (SQLite by
default, a scratch PostgreSQL one with `--database postgres`), driven by one
asyncio client process (_soak_client.py):

1. `idle` graphql-transport-ws connections, each acknowledged and holding one
   `tableChanged(table: "comments")` subscription: a table nothing writes,
   so they only cost memory (and answer the server's WebSocket pings);
2. `active` connections subscribed to `tableChanged(table: "posts")`;
3. one insert into posts every 1/rate s, for `duration` s, over one
   keep-alive HTTP connection.

The server's VmRSS (/proc/<pid>/status) is read when it is ready and has
answered a few requests (the baseline), once the idle connections are up
(memory per idle connection = the difference / idle), and every few seconds
during the stream; RSS growth is from the sample `warm-up` seconds into the
stream (caches and allocator pools filled) to the end. Every active
subscriber must receive every event, in order, once: a loss, duplicate or
reordering, an idle subscriber receiving anything or being dropped, a failed
mutation or a /metrics figure that disagrees is an error. Timings are never
judged. RLIMIT_NOFILE is raised to its hard limit before the server is
spawned, so the server inherits it.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import sqlite3
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from _data import (
    PostgresUnavailable,
    create_postgres_database,
    drop_postgres_database,
    postgres_target,
    sqlite_url,
)
from _fanout import _scan_log
from _report import Report
from _roles import ClientFailed
from _scaleout import _insert_postgres_user, run_async
from _server import Server, healthz_ok, run_forgegraph
from _soak_client import CONNECT_CONCURRENCY, SoakPlan, SoakResult, Target, drive, mib

FD_SLACK = 100  # files beyond the sockets: the database, logs, pipes


def raise_file_limit(needed: int) -> None:
    """Raise RLIMIT_NOFILE to the hard limit (servers spawned later inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        raise ClientFailed(
            f"RLIMIT_NOFILE hard limit is {hard}, below the {needed:,} files this soak needs "
            "(raise it with `ulimit -Hn` as root, or lower --idle)"
        )


# -- the phase -------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    url: str  # with password: for the server
    shown: str  # without: for the report


@contextlib.contextmanager
def soak_database(
    workdir: Path, kind: str, postgres: str, name: str = "soak"
) -> Iterator[Database]:
    """A migrated database with user 1: `name`.db in `workdir`, or a scratch PostgreSQL one (dropped after)."""
    if kind == "sqlite":
        path = workdir / f"{name}.db"
        url = sqlite_url(path)
        run_forgegraph("migrate", "--database", url, cwd=workdir)
        conn = sqlite3.connect(path)
        try:
            conn.execute("INSERT INTO users (id, name, email) VALUES (1, 'Soak', 'soak@example.com')")
            conn.commit()
        finally:
            conn.close()
        yield Database(url, "SQLite file in a temp dir")
        return
    target = create_postgres_database(postgres_target(postgres))
    try:
        url = target.render_as_string(hide_password=False)
        run_forgegraph("migrate", "--database", url, cwd=workdir)
        run_async(lambda: _insert_postgres_user(target))
        yield Database(url, target.render_as_string(hide_password=True))
    finally:
        drop_postgres_database(target)
        print(f"  dropped database {target.database}", flush=True)


def run_soak(
    workdir: Path, plan: SoakPlan, report: Report, *, database: str = "sqlite", postgres: str = ""
) -> SoakResult | None:
    """Run one soak and add its figures to `report`; None when it could not run to the end."""
    print(f"soak: {plan.describe()}, on {database}", flush=True)
    try:
        raise_file_limit(2 * (plan.idle + plan.active) + FD_SLACK)  # client and server share it
    except ClientFailed as exc:
        report.error(f"soak: {exc}")
        return None
    try:
        with soak_database(workdir, database, postgres) as db, Server(db.url, workdir, "soak") as server:
            server.start()
            target = Target(server.port, server.pid, server.cpu_seconds)
            try:
                result = run_async(lambda: drive(target, plan))
            except ClientFailed as exc:
                report.error(f"soak: {exc}; server stderr:\n{server.stderr_tail()}")
                return None
            if not server.alive():
                report.error(f"soak: the server died (exit code {server.returncode}); stderr:\n{server.stderr_tail()}")
            elif not healthz_ok(server.port, timeout=5.0):
                report.error("soak: /healthz not 200 after the run")
        _scan_log("soak", server, report)
    except PostgresUnavailable as exc:
        report.error(f"soak: {exc}")
        return None
    _report(result, db.shown, report)
    return result


def _report(result: SoakResult, shown: str, report: Report) -> None:
    plan = result.plan
    rate = result.events / result.stream_s if result.stream_s else 0.0
    growth = result.growth_kib
    rss = " / ".join(
        mib(v) for v in (result.rss_baseline_kib, result.rss_idle_kib, result.rss_warm_kib, result.rss_end_kib)
    )
    latency = " / ".join(_ms(result.latency_ms(p)) for p in (50, 99, 100))
    delivered = result.delivered or [0]
    report.add("soak: memory per idle connection", round(result.per_idle_kib, 1), "KiB",
               f"server VmRSS with {plan.idle:,} idle subscribers minus before, / {plan.idle:,}")
    report.add("soak: RSS growth over the run", round(growth / 1024, 1), "MiB",
               f"from {plan.warm_up:g} s into the stream to the end ({mib(result.rss_warm_kib)} -> "
               f"{mib(result.rss_end_kib)} MiB)")
    report.add("soak: server RSS base / idle up / warm / end", rss, "MiB",
               f"peak (VmHWM) {mib(result.rss_peak_kib)} MiB")
    report.add("soak: events per active subscriber", f"{min(delivered):,} .. {max(delivered):,}",
               f"of {result.events:,}", f"{rate:.1f} mut/s achieved over {result.stream_s:.0f} s; {shown}")
    report.add("soak: lost / duplicate / out of order", f"{result.lost} / {result.duplicates} / {result.out_of_order}",
               f"of {result.expected:,}", "every active subscriber, every event, in order")
    report.add("soak: latency p50 / p99 / max", latency, "ms", "mutation sent -> event received")
    report.add("soak: idle connections up", round(result.connect_idle_s, 1), "s",
               f"{CONNECT_CONCURRENCY} handshakes at a time; {result.dropped} dropped during the run")
    report.add("soak: server CPU / client CPU, peak client RSS",
               f"{_num(result.server_cpu_s)} / {result.client_cpu_s} s, {mib(result.client_peak_rss_kib)} MiB",
               "", "server: the stream only; client: the whole soak")
    report.details["soak"] = {
        "plan": {"idle": plan.idle, "active": plan.active, "rate": plan.rate, "duration": plan.duration,
                 "warm_up": plan.warm_up},
        "database": shown,
        "rss_kib": {"baseline": result.rss_baseline_kib, "idle": result.rss_idle_kib,
                    "warm": result.rss_warm_kib, "end": result.rss_end_kib, "peak": result.rss_peak_kib},
        "rss_samples": result.samples,
        "per_idle_kib": round(result.per_idle_kib, 2),
        "growth_kib": growth,
        "events": result.events, "warm_events": result.warm_events,
        "delivered_min": min(delivered), "delivered_max": max(delivered),
        "delivered_median": statistics.median(delivered),
        "lost": result.lost, "duplicates": result.duplicates, "out_of_order": result.out_of_order,
        "idle_events": result.idle_events, "dropped": result.dropped,
        "latency_ms": {f"p{p}": result.latency_ms(p) for p in (50, 99, 100)},
        "metrics": result.metrics,
    }
    for problem in result.problems():
        report.error(f"soak: {problem}")
    _check_metrics(result, report)
    print(
        f"    lost {result.lost}, duplicates {result.duplicates}, out of order {result.out_of_order}; "
        f"{result.per_idle_kib:.1f} KiB per idle connection, RSS growth {growth / 1024:+.1f} MiB; "
        f"p50 {_ms(result.latency_ms(50))} p99 {_ms(result.latency_ms(99))} ms",
        flush=True,
    )


def _check_metrics(result: SoakResult, report: Report) -> None:
    """The server's own counts (/metrics) must agree with what the client saw."""
    metrics, plan = result.metrics, result.plan
    if not metrics:
        report.error("soak: GET /metrics did not answer")
        return
    transport = 'transport="graphql-transport-ws"'
    # Every event (base, warm-up, measured) reached every subscriber of posts then connected.
    base = 3  # BASE events, sent before any posts subscriber
    expected = {
        f"forgegraph_connections{{{transport}}}": plan.idle + plan.active,
        f"forgegraph_subscriptions{{{transport}}}": plan.idle + plan.active,
        "forgegraph_events_captured_total": base + result.warm_events + result.events,
        f"forgegraph_events_delivered_total{{{transport}}}": plan.active * (result.warm_events + result.events),
        f"forgegraph_slow_consumers_closed_total{{{transport}}}": 0,
    }
    wrong = [f"{name} = {metrics.get(name)}, expected {value}" for name, value in expected.items()
             if metrics.get(name) != value]
    if wrong:
        report.error("soak: /metrics disagrees with the client: " + "; ".join(wrong))
    else:
        report.note("soak: /metrics agrees (connections, subscriptions, events captured and delivered)")


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


BENCH_DURATION = 60.0  # `make bench` runs the soak this long; `make soak` the default 180 s


def bench_soak(workdir: Path, args: argparse.Namespace, report: Report) -> None:
    """bench/run.py's soak phase: the full connection counts, a shorter stream."""
    run_soak(workdir, SoakPlan(duration=args.soak_duration), report)

