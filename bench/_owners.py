"""Owners-only rule through a relationship vs the same rule on the row's own column (issue 16).

Issue 16's line: "`tableChanged` with a relationship rule, 1,000 subscribers
over 100 users: p99 at most 2x the same run without the rule". Posts are
visible to the owner of their user only, two ways:
- column: role `owner`, `{user_id: {_eq: X-User-Id}}` (the row's own column,
  matched in memory and looked up by value, graph.events.index);
- related: role `owner_related`, `{user: {id: {_eq: X-User-Id}}}` (through the
  post's `user`: decided with SQL once per batch and shape, graph.events.decide).
1,000 subscribers of `tableChanged(table: "posts")`, 10 per user with that
user's token, over users 1..100 on a fresh `forgegraph serve` over one migrated
SQLite database; event k is a post of user k mod 100 + 1, owed to that user's
10 subscribers alone (one mutation in flight, at most WINDOW events not fully
delivered). ../shared/bench/native's fanout-go sends one connection_init to
every subscriber (no token per subscriber), so _roles.py's asyncio client
drives it. The two cases alternate round by round (a noisy shared machine
weighs on both alike); the medians of p99 and of server CPU per delivery are
reported with their ratios. Timings are never judged; lost, duplicated or
misrouted deliveries are errors.
"""

from __future__ import annotations

import argparse
import secrets
import sqlite3
import statistics
from dataclasses import dataclass
from pathlib import Path

from _data import sqlite_url
from _report import Report
from _roles import (
    Auth,
    ClientFailed,
    Plan,
    RoleServer,
    RunResult,
    _init_message,
    _ms,
    _us,
    run_client,
)
from _server import run_forgegraph

SUBSCRIBERS = 1000
USERS = 100
MUTATION = (
    "mutation($title: String!, $uid: Int!) { insert_posts_one(object: "
    '{title: $title, body: "x", user_id: $uid, published: true}) { id } }'
)
PERMISSIONS = """\
tables:
  posts:
    select:
      owner: {filter: {user_id: {_eq: X-User-Id}}, columns: "*"}
      owner_related: {filter: {user: {id: {_eq: X-User-Id}}}, columns: "*"}
"""


@dataclass(frozen=True)
class Case:
    name: str
    role: str
    rule: str


CASES = (
    Case("column", "owner", "{user_id: {_eq: X-User-Id}}"),
    Case("related", "owner_related", "{user: {id: {_eq: X-User-Id}}}"),
)


def bench_owners(workdir: Path, args: argparse.Namespace, report: Report) -> None:
    rounds: int = args.owners_rounds
    duration: float = args.owners_duration
    print(f"owners: {SUBSCRIBERS} subscribers over {USERS} users, owners-only rule on the row vs through "
          f"`user`, {rounds} rounds of {duration:g} s per case", flush=True)
    path = workdir / "owners.db"
    url = sqlite_url(path)
    run_forgegraph("migrate", "--database", url, cwd=workdir)
    _insert_users(path)
    auth = Auth(workdir / "owners-permissions.yaml", secrets.token_urlsafe(32), secrets.token_hex(16))
    auth.permissions.write_text(PERMISSIONS)
    runs: dict[str, list[RunResult]] = {case.name: [] for case in CASES}
    for round_ in range(rounds):
        for case in CASES if round_ % 2 == 0 else reversed(CASES):
            result = _run(case, url, workdir, auth, duration, report, round_)
            if result is not None:
                runs[case.name].append(result)
    _report(runs, report)


def _run(
    case: Case, url: str, workdir: Path, auth: Auth, duration: float, report: Report, round_: int
) -> RunResult | None:
    label = f"owners {case.name} round {round_ + 1}"
    server = RoleServer(url, workdir, f"owners-{case.name}-{round_}", auth)
    with server:
        server.start()
        print(f"  {label}: role {case.role} {case.rule} (port {server.port})", flush=True)
        payloads = tuple(_init_message(auth.jwt_secret, case.role, i % USERS + 1) for i in range(SUBSCRIBERS))
        plan = Plan(server.port, server.pid, auth.admin_secret, payloads, duration, server.cpu_seconds,
                    groups=USERS, mutation=MUTATION)
        try:
            result = run_client(plan)
        except (ClientFailed, OSError) as exc:
            report.error(f"{label}: {exc}; server stderr:\n{server.stderr_tail()}")
            return None
    print(f"    {result.events} events, {result.deliveries_per_s:,.0f} deliveries/s, "
          f"p50 {_ms(result.latency_ms(50))} p99 {_ms(result.latency_ms(99))} ms, "
          f"server CPU {result.server_cpu_s} s ({_us(result.cpu_us_per_delivery)} us/delivery), "
          f"{result.duplicates} duplicates, {result.missing} missing", flush=True)
    problems = result.problems()
    if problems:
        report.error(f"{label}: {'; '.join(problems)}")
        return None
    return result


def _report(runs: dict[str, list[RunResult]], report: Report) -> None:
    medians: dict[str, tuple[float, float]] = {}
    for case in CASES:
        results = runs[case.name]
        p99s = [r.latency_ms(99) for r in results]
        cpus = [r.cpu_us_per_delivery for r in results]
        if not results or None in p99s or None in cpus:
            report.add(f"owners {case.name}: latency p99", None, "ms", "not computed: a run failed")
            continue
        p99 = statistics.median(p for p in p99s if p is not None)
        cpu = statistics.median(c for c in cpus if c is not None)
        medians[case.name] = (p99, cpu)
        settings = (f"role {case.role} {case.rule}; {SUBSCRIBERS} subscribers, {USERS} users x "
                    f"{SUBSCRIBERS // USERS}; median of {len(results)} rounds: "
                    f"{', '.join(_ms(p) for p in p99s)} ms")
        report.add(f"owners {case.name}: latency p99", round(p99, 2), "ms", settings)
        report.add(f"owners {case.name}: server CPU per delivery", round(cpu, 1), "us",
                   f"median of {', '.join(_us(c) for c in cpus)} us")
    if len(medians) < len(CASES):
        report.add("owners related / column: latency p99", None, "ratio", "not computed: a run failed")
        return
    (column_p99, column_cpu), (related_p99, related_cpu) = medians["column"], medians["related"]
    p99_ratio, cpu_ratio = related_p99 / column_p99, related_cpu / column_cpu
    report.add("owners related / column: latency p99", round(p99_ratio, 3), "ratio",
               f"{related_p99:.2f} vs {column_p99:.2f} ms (medians); issue 16's goal: at most 2")
    report.add("owners related / column: server CPU per delivery", round(cpu_ratio, 3), "ratio",
               f"{related_cpu:.1f} vs {column_cpu:.1f} us (medians)")
    report.details["owners ratios"] = {"lat_p99": round(p99_ratio, 4), "cpu_per_delivery": round(cpu_ratio, 4)}
    print(f"    related / column: p99 {p99_ratio:.3f} ({related_p99:.2f} vs {column_p99:.2f} ms), "
          f"server CPU per delivery {cpu_ratio:.3f} ({related_cpu:.1f} vs {column_cpu:.1f} us)", flush=True)


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
