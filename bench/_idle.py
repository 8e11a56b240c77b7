"""Idle subscribers: the server's memory per connection at 1,000 and at 10,000 of them.

One `forgegraph serve` over a migrated SQLite database; the soak's client
(_soak_client.py) opens graphql-transport-ws connections, each acknowledged
and holding one `tableChanged(table: "comments")` subscription that nothing
writes to, first up to 1,000, then up to 10,000. The server's VmRSS is read
with one connection open and a few changes captured (the baseline), then at
each step once the connections are up and the server has gone quiet: the
memory per idle connection is the difference over the connections opened.
A dropped connection, an error, an event reaching an idle subscriber or a
/metrics count that disagrees is an error. RSS is what the kernel reports:
allocator pools and fragmentation included, figures vary by a few KiB.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _data import PostgresUnavailable
from _fanout import _scan_log
from _report import Report
from _roles import ClientFailed
from _scaleout import run_async
from _server import Server, healthz_ok
from _soak import FD_SLACK, raise_file_limit, soak_database
from _soak_client import IdleStep, SoakResult, Target, measure_idle, mib

STEPS = (1_000, 10_000)
TRANSPORT = 'transport="graphql-transport-ws"'


def bench_idle(workdir: Path, args: argparse.Namespace, report: Report) -> None:
    steps: tuple[int, ...] = tuple(args.idle_subscribers)
    print(f"idle memory: {', '.join(f'{n:,}' for n in steps)} idle subscribers", flush=True)
    try:
        raise_file_limit(steps[-1] + FD_SLACK)  # each process, client and server, holds one end
    except ClientFailed as exc:
        report.error(f"idle memory: {exc}")
        return
    try:
        with soak_database(workdir, "sqlite", "", name="idle") as db, Server(db.url, workdir, "idle") as server:
            server.start()
            target = Target(server.port, server.pid, server.cpu_seconds)
            try:
                measured, result = run_async(lambda: measure_idle(target, steps))
            except ClientFailed as exc:
                report.error(f"idle memory: {exc}; server stderr:\n{server.stderr_tail()}")
                return
            if not server.alive():
                report.error(f"idle memory: the server died (exit code {server.returncode}); "
                             f"stderr:\n{server.stderr_tail()}")
            elif not healthz_ok(server.port, timeout=5.0):
                report.error("idle memory: /healthz not 200 after the run")
        _scan_log("idle memory", server, report)
    except PostgresUnavailable as exc:  # not with SQLite; soak_database's signature has it
        report.error(f"idle memory: {exc}")
        return
    _report(measured, result, report)


def _report(measured: list[IdleStep], result: SoakResult, report: Report) -> None:
    base = result.rss_baseline_kib
    for step in measured:
        report.add(
            f"idle memory: per connection at {step.connections:,}", round(step.per_connection_kib, 1), "KiB",
            f"server VmRSS {mib(base)} MiB with 1 subscriber -> {mib(step.rss_kib)} MiB with "
            f"{step.connections:,}, / {step.connections - 1:,}; connected in {step.connect_s:.1f} s",
        )
    report.details["idle memory"] = {
        "rss_baseline_kib": base,
        "rss_peak_kib": result.rss_peak_kib,
        "steps": [
            {"connections": s.connections, "rss_kib": s.rss_kib,
             "per_connection_kib": round(s.per_connection_kib, 2), "connect_s": round(s.connect_s, 1)}
            for s in measured
        ],
    }
    problems = [p for p in result.problems() if p != "no mutation was sent"]
    for problem in problems:
        report.error(f"idle memory: {problem}")
    largest = measured[-1].connections if measured else 0
    expected = {
        f"forgegraph_connections{{{TRANSPORT}}}": largest,
        f"forgegraph_subscriptions{{{TRANSPORT}}}": largest,
    }
    wrong = [f"{name} = {result.metrics.get(name)}, expected {value}" for name, value in expected.items()
             if result.metrics.get(name) != value]
    if wrong:
        report.error("idle memory: /metrics disagrees with the client: " + "; ".join(wrong))
