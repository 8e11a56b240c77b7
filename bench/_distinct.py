"""Per-user filters at scale: 1,000 subscribers, each with its own `user_id` filter.

A notification feed or chat inbox: every subscriber asks
`tableChanged(table: "posts", where: {user_id: {_eq: <own id>}})`, so there
are 1,000 distinct streams and each insert reaches one subscriber. The hub
files streams by the values their filters require (graph.events.index), so
an event should cost what it costs with one subscriber. Three cases, each
on a fresh `forgegraph serve` over one migrated SQLite database with users
0..999, driven by ../shared/bench/native's `fanout-go` (max rate: one
mutation in flight), alternated round by round so that a noisy machine
weighs on all alike, medians reported:
- N=1: one subscriber, no filter: the mutation path's own rate;
- shared: 1,000 subscribers of one stream (no filter), every event to all;
- distinct: 1,000 subscribers with 1,000 distinct `user_id` filters
  (`--distinct 1000 --query-template`), event k to user k mod 1,000.
Figures: events/s and server CPU per event of each, and the distinct case
as ratios to N=1 and to shared (issue 16's goals: events/s at least 0.8 of
N=1, CPU per event at most 2x the single-stream case). Timings are never
judged; lost, duplicated or misrouted deliveries are errors.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from _data import sqlite_url
from _fanout_tool import SHARED_BENCH, TIMEOUT_SLACK_SECONDS, WINDOW
from _report import Report
from _server import HOST, Server, run_forgegraph

USERS = 1000
SHARED = 'subscription { tableChanged(table: "posts") { type id record } }'
DISTINCT = 'subscription { tableChanged(table: "posts", where: {user_id: {_eq: {i}}}) { type id record } }'
MUTATION = (
    "mutation($title: String!, $uid: Int) { "
    'insert_posts_one(object: {title: $title, body: "x", user_id: $uid}) { id } }'
)
FANOUT_GO_PLACES = (
    SHARED_BENCH / "native" / "bin" / "fanout-go",
    Path.home() / ".cache" / "forgegraph-bench-native" / "fanout-go",
)


@dataclass(frozen=True)
class Case:
    name: str
    subscribers: int
    distinct: bool

    def arguments(self) -> list[str]:
        if self.distinct:
            return ["--distinct", str(USERS), "--query-template", DISTINCT,
                    "--mutation-variables", '{"uid":{g}}']
        return ["--query", SHARED, "--mutation-variables", '{"uid":0}']


CASES = (
    Case("N=1", 1, distinct=False),
    Case(f"shared N={USERS}", USERS, distinct=False),
    Case(f"distinct N={USERS}", USERS, distinct=True),
)


@dataclass(frozen=True)
class Run:
    raw: dict[str, Any]

    def number(self, key: str) -> float:
        value = self.raw.get(key)
        return float(value) if isinstance(value, int | float) else 0.0

    @property
    def events_per_s(self) -> float:
        return self.number("mutations_per_s")

    @property
    def cpu_us_per_event(self) -> float | None:
        watched = self.raw.get("server")
        server = next(iter(watched.values()), None) if isinstance(watched, dict) and watched else None
        cpu = server.get("cpu_s") if isinstance(server, dict) else None
        events = self.number("events")
        return cpu / events * 1e6 if isinstance(cpu, int | float) and events else None

    def problems(self) -> list[str]:
        found = [f"{int(self.number(k))} {k}" for k in ("missing", "duplicates", "misrouted", "sub_errors", "mut_errors")
                 if self.number(k)]
        if not self.number("events"):
            found.append("no measured mutation")
        return found


def fanout_go(args: argparse.Namespace) -> Path | None:
    given = args.fanout_go or os.environ.get("FANOUT_GO")
    places = (Path(given),) if given else FANOUT_GO_PLACES
    return next((p for p in places if p.is_file() and os.access(p, os.X_OK)), None)


def bench_distinct(workdir: Path, args: argparse.Namespace, report: Report) -> None:
    client = fanout_go(args)
    if client is None:
        report.note(
            "per-user filter fan-out skipped: fanout-go not found (build it with "
            "../shared/bench/native/build.sh, then pass --fanout-go PATH or set FANOUT_GO)"
        )
        return
    duration: float = args.distinct_duration
    rounds: int = args.distinct_rounds
    print(f"per-user filters: {rounds} rounds of {', '.join(c.name for c in CASES)}, {duration:g} s each", flush=True)
    path = workdir / "distinct.db"
    url = sqlite_url(path)
    run_forgegraph("migrate", "--database", url, cwd=workdir)
    _insert_users(path)
    rounds_done: list[dict[str, Run]] = []
    for round_ in range(rounds):
        done: dict[str, Run] = {}
        for case in CASES:
            label = f"distinct-{round_}-{case.subscribers}-{case.distinct}"
            run = _run(client, case, url, workdir, duration, label, report)
            if run is not None:
                done[case.name] = run
        rounds_done.append(done)
    _report(rounds_done, duration, report)


def _insert_users(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.executemany(
            "INSERT INTO users (id, name, email) VALUES (?, ?, ?)",
            [(i, f"User {i}", f"user{i}@example.com") for i in range(USERS)],
        )
        conn.commit()
    finally:
        conn.close()


def _run(client: Path, case: Case, url: str, workdir: Path, duration: float, label: str, report: Report) -> Run | None:
    with Server(url, workdir, label) as server:
        server.start()
        command = [
            str(client), "--url", f"ws://{HOST}:{server.port}/graphql",
            "--mutate-url", f"http://{HOST}:{server.port}/graphql",
            "--mutation", MUTATION, *case.arguments(),
            "-n", str(case.subscribers), "-e", "1000000", "--duration", f"{duration:g}",
            "--window", str(WINDOW), "--server-pid", str(server.pid), "--label", case.name,
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                  timeout=duration + TIMEOUT_SLACK_SECONDS)
        except subprocess.TimeoutExpired:
            report.error(f"per-user filters, {case.name}: fanout-go did not finish")
            return None
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        report.error(f"per-user filters, {case.name}: no result line; stderr: {done.stderr[-500:]}"
                     f"\nserver stderr:\n{server.stderr_tail()}")
        return None
    run = Run(orjson.loads(lines[-1]))
    cpu = run.cpu_us_per_event
    print(f"  {case.name}: {run.events_per_s:,.0f} events/s, {run.number('deliveries_per_s'):,.0f} deliveries/s, "
          f"{'n/a' if cpu is None else f'{cpu:,.0f}'} us server CPU per event", flush=True)
    problems = run.problems()
    if problems:
        report.error(f"per-user filters, {case.name}: {'; '.join(problems)}")
        return None
    return run


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 3) if known else None


def _report(rounds: list[dict[str, Run]], duration: float, report: Report) -> None:
    """Medians per case; ratios within each round (runs back to back), then their median."""
    settings = f"fanout-go, max rate, window {WINDOW}, {duration:g} s, median of {{}} runs"
    for case in CASES:
        done = [r[case.name] for r in rounds if case.name in r]
        count = settings.format(len(done))
        rate = _median([r.events_per_s for r in done])
        cost = _median([r.cpu_us_per_event for r in done])
        report.add(f"per-user filters, {case.name}: events", rate, "events/s", count)
        report.add(f"per-user filters, {case.name}: server CPU per event", cost, "us", count)
    report.details["per-user filters"] = [{name: run.raw for name, run in r.items()} for r in rounds]
    n1, shared, distinct = (case.name for case in CASES)
    title = "1,000 subscribers with 1,000 distinct user_id filters"
    for other, what, goals in ((n1, "N=1", (">= 0.8", "<= 2")), (shared, "one shared stream", ("", ""))):
        pairs = [(r[distinct], r[other]) for r in rounds if distinct in r and other in r]
        rate = _median([_ratio(d.events_per_s, o.events_per_s) for d, o in pairs])
        cost = _median([_ratio(d.cpu_us_per_event, o.cpu_us_per_event) for d, o in pairs])
        within = f"median of {len(pairs)} rounds' ratios"
        report.add(f"{title}: events/s / {what}", rate, "ratio", f"{within}; goal {goals[0]}" if goals[0] else within)
        report.add(f"{title}: CPU per event / {what}", cost, "ratio", f"{within}; goal {goals[1]}" if goals[1] else within)
        print(f"  {distinct} / {what}: events/s {_shown(rate)}, CPU per event {_shown(cost)}", flush=True)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _shown(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
