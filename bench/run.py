"""forgegraph benchmarks: start-up time, query throughput and subscription fan-out.

Fan-out is measured for open subscribers (_fanout.py), for subscribers
under per-role and per-user permission rules (_roles.py), owners-only
rules through a relationship against the same on the row (_owners.py), for 1,000
subscribers with 1,000 distinct `user_id` filters (_distinct.py, with
../shared/bench/native's fanout-go), for 10,000 live-query subscribers
over 1,000 variable sets and their idle memory (_live.py), and over several
server processes sharing one database, woken through Redis (_scaleout.py).
A shortened soak (_soak.py; `make soak` runs it for 3 minutes) reports the
memory per idle connection and the RSS growth under a steady stream;
_idle.py the memory per idle connection at 1,000 and at 10,000 of them.

Run as `make bench` (or `.venv/bin/python bench/run.py --help`). Prints a
table of figures and writes them to bench/results/latest.json; it never
judges them, but exits 1 when the server misbehaved (errors, a crash).
Every server it starts is its own process group on a free port of
127.0.0.1 and is killed on the way out, however the run ends.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import os
import platform
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson
from _data import (
    DEFAULT_POSTGRES,
    DEMO_POSTS,
    DEMO_USERS,
    PostgresUnavailable,
    create_postgres_database,
    create_wide_sqlite,
    drop_postgres_database,
    postgres_target,
    seed_postgres,
    seed_sqlite,
    sqlite_url,
)
from _distinct import bench_distinct
from _fanout import bench_fanout
from _idle import STEPS as IDLE_STEPS
from _idle import bench_idle
from _live import SUBSCRIBERS as LIVE_SUBSCRIBERS
from _live import bench_live
from _load import GENERATORS, LoadResult, run_asyncio_load, run_wrk
from _naive import NAIVE_QUERY, NaiveServer
from _naive import available as naive_available
from _naive import report_ratio as report_naive_ratio
from _owners import bench_owners
from _report import Report, print_table, write_json
from _roles import bench_roles
from _scaleout import bench_scaleout
from _server import HOST, Server, ServerError, run_forgegraph
from _soak import BENCH_DURATION, bench_soak

WIDE_TABLES = 200
STARTUP_RUNS = 3
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
# The nested query is the shape a UI asks for; the flat one is the query of
# the reference table in ../shared/bench/README.md; "aggregates" is 20 users
# with their post count and newest post: aggregates on an array relationship,
# still one statement, measured beside the plain 20-row query of the same run.
QUERIES = {
    "nested": "{ posts(limit: 20, order_by: {id: asc}) { id title user { id name } } }",
    "flat": "{ posts(limit: 20) { id title body } }",
    "aggregates": (
        "{ users(limit: 20, order_by: {id: asc}) { id name"
        " posts_aggregate { aggregate { count } }"
        " posts(order_by: {id: desc}, limit: 1) { id title } } }"
    ),
}
# The plain 20-row query each of the others is shown as a fraction of.
PLAIN_QUERY = "nested"
# The naive reference server answers only the flat query.
NAIVE_COMPARED = ("nested", "flat")
QUERY_ROOT_FIELDS = "{ __schema { queryType { fields { name } } } }"
LAST_TABLE = f"t{WIDE_TABLES - 1}"
LAST_TABLE_ROW = f"{{ {LAST_TABLE}(limit: 1) {{ id name payload parent {{ id name }} }} }}"


def post_graphql(port: int, query: str) -> tuple[int, Any]:
    """One POST /graphql: the status and the decoded body (text if not JSON)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        body = orjson.dumps({"query": query})
        conn.request("POST", "/graphql", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        return response.status, orjson.loads(raw)
    except orjson.JSONDecodeError:
        return response.status, raw.decode(errors="replace")


def data_of(status: int, body: Any) -> dict[str, Any] | None:
    """The `data` of a successful answer, None for any kind of failure."""
    if status != 200 or not isinstance(body, dict) or body.get("errors"):
        return None
    data = body.get("data")
    return data if isinstance(data, dict) else None


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


# -- start-up ------------------------------------------------------------------


def bench_startup(workdir: Path, args: argparse.Namespace, report: Report) -> None:
    print(f"start-up: {WIDE_TABLES}-table SQLite schema, {STARTUP_RUNS} runs", flush=True)
    wide = workdir / "wide.db"
    create_wide_sqlite(wide, WIDE_TABLES)
    settings = f"SQLite, {WIDE_TABLES} tables x 6-7 columns, FK chain, same file each run; spawn -> /healthz 200"
    times = _startup_runs(sqlite_url(wide), workdir, "startup-wide", report)
    report.add(
        f"start-up, {WIDE_TABLES} tables (median)",
        round(statistics.median(times), 4),
        "s",
        settings,
    )
    each = " / ".join(f"{t:.3f}" for t in times)
    report.add(f"start-up, {WIDE_TABLES} tables (each run)", each, "s", settings)

    # The demo schema's start-up separates interpreter and import cost from
    # the per-table cost of reflecting the database and building the schema.
    demo = workdir / "startup-demo.db"
    run_forgegraph("migrate", "--database", sqlite_url(demo), cwd=workdir)
    times = _startup_runs(sqlite_url(demo), workdir, "startup-demo", report)
    settings = "SQLite demo schema, migrated, no rows; same measure"
    report.add("start-up, 3 tables (median)", round(statistics.median(times), 4), "s", settings)


def _startup_runs(url: str, workdir: Path, label: str, report: Report) -> list[float]:
    times: list[float] = []
    for run in range(STARTUP_RUNS):
        with Server(url, workdir, f"{label}-{run}") as server:
            times.append(server.start())
            print(f"  {label} run {run + 1}: {times[-1]:.3f} s", flush=True)
            if label == "startup-wide" and run == 0:
                _check_wide_schema(server, report)
    report.details[label] = {"seconds": [round(t, 4) for t in times]}
    return times


def _check_wide_schema(server: Server, report: Report) -> None:
    """Say whether every generated table (and a relationship) is really served."""
    data = data_of(*post_graphql(server.port, QUERY_ROOT_FIELDS))
    names = [f["name"] for f in data["__schema"]["queryType"]["fields"]] if data else []
    tables = [name for name in names if re.fullmatch(r"t\d+", name)]
    status, body = post_graphql(server.port, LAST_TABLE_ROW)
    rows: list[dict[str, Any]] = (data_of(status, body) or {}).get(LAST_TABLE) or []
    related = bool(rows) and isinstance(rows[0].get("parent"), dict)
    outcome = "a row with its parent" if related else f"HTTP {status}: {str(body)[:300]}"
    summary = (
        f"query_root has {len(tables)}/{WIDE_TABLES} table fields ({len(names)} fields in all); "
        f"{LAST_TABLE_ROW} -> {outcome}"
    )
    report.details["schema_check"] = summary
    if len(tables) == WIDE_TABLES and related:
        report.note(f"schema check passed: {summary}")
    else:
        report.error(f"schema check failed: {summary}; server stderr:\n{server.stderr_tail()}")


# -- query throughput ------------------------------------------------------------


def bench_sqlite_queries(workdir: Path, args: argparse.Namespace, report: Report) -> None:
    print(f"queries: SQLite, {DEMO_USERS} users, {DEMO_POSTS} posts", flush=True)
    path = workdir / "demo.db"
    url = sqlite_url(path)
    run_forgegraph("migrate", "--database", url, cwd=workdir)
    seed_sqlite(path)
    ours = _bench_queries("sqlite", url, "SQLite file in a temp dir", workdir, args, report)
    if _with_naive(args, report):
        naive = _bench_naive("sqlite", sqlite_url(workdir / "naive.db"), workdir, args, report)
        _report_naive_ratios("sqlite", ours, naive, report)


def bench_postgres_queries(workdir: Path, args: argparse.Namespace, report: Report) -> None:
    print(f"queries: PostgreSQL, {DEMO_USERS} users, {DEMO_POSTS} posts", flush=True)
    try:
        database = create_postgres_database(postgres_target(args.postgres))
    except PostgresUnavailable as exc:
        report.note(f"PostgreSQL skipped: {exc}")
        return
    shown = database.render_as_string(hide_password=True)
    try:
        url = database.render_as_string(hide_password=False)
        run_forgegraph("migrate", "--database", url, cwd=workdir)
        seed_postgres(database)
        ours = _bench_queries("postgres", url, shown, workdir, args, report)
    finally:
        drop_postgres_database(database)
        print(f"  dropped database {database.database}", flush=True)
    if not _with_naive(args, report):
        return
    naive_database = create_postgres_database(postgres_target(args.postgres))
    try:
        naive_url = naive_database.render_as_string(hide_password=False)
        naive = _bench_naive("postgres", naive_url, workdir, args, report)
        _report_naive_ratios("postgres", ours, naive, report)
    finally:
        drop_postgres_database(naive_database)


def _with_naive(args: argparse.Namespace, report: Report) -> bool:
    if args.with_references and not naive_available():
        report.note("naive reference skipped: ../shared/bench/naive_server.py not found")
    return bool(args.with_references) and naive_available()


def _bench_naive(
    label: str, database_url: str, workdir: Path, args: argparse.Namespace, report: Report
) -> float | None:
    """The naive server's flat 20-post query under the same load, right after ours."""
    prefix = f"{label} naive"
    try:
        with NaiveServer(database_url, workdir, f"queries-naive-{label}") as server:
            server.start()
            problem = _answer_problem("flat", *post_graphql(server.port, NAIVE_QUERY))
            if problem:
                report.note(f"{prefix}: {NAIVE_QUERY} -> {problem}; not loaded")
                return None
            print(f"  {prefix}: {args.generator}, {args.concurrency} connections", flush=True)
            result = _load(args, server, orjson.dumps({"query": NAIVE_QUERY}), workdir)
            _report_load(prefix, NAIVE_QUERY, database_url, result, report)
            return result.requests_per_second if not result.failures else None
    except ServerError as exc:
        report.note(f"{prefix}: the naive server did not start: {exc}")
        return None


def _report_naive_ratios(
    label: str, ours: dict[str, float], naive: float | None, report: Report
) -> None:
    # The naive server has only the flat query; the nested one is compared
    # with it too, as the target reads "20 posts, and with their user".
    for name in NAIVE_COMPARED:
        report_naive_ratio(f"{label} {name} queries", ours.get(name), naive, "req/s", report)


def _bench_queries(
    label: str,
    database_url: str,
    shown_url: str,
    workdir: Path,
    args: argparse.Namespace,
    report: Report,
) -> dict[str, float]:
    """Load each of QUERIES; returns requests/s by query name for those that ran clean."""
    throughput: dict[str, float] = {}
    with Server(database_url, workdir, f"queries-{label}") as server:
        server.start()
        for name, query in QUERIES.items():
            prefix = f"{label} {name}"
            status, body = post_graphql(server.port, query)
            problem = _answer_problem(name, status, body)
            if problem:
                # Loading a query that fails would only measure error paths.
                stderr = server.stderr_tail()
                report.error(
                    f"{prefix}: {query} -> {problem}; not loaded. Server stderr:\n{stderr}"
                )
                continue
            print(
                f"  {prefix}: {args.generator}, {args.concurrency} connections, "
                f"{args.warmup:g} s warm-up + {args.duration:g} s",
                flush=True,
            )
            result = _load(args, server, orjson.dumps({"query": query}), workdir)
            if not server.alive():
                report.error(
                    f"{prefix}: the server died under load (exit code {server.returncode}); "
                    f"stderr:\n{server.stderr_tail()}"
                )
            _report_load(prefix, query, shown_url, result, report)
            if not result.failures:
                throughput[name] = result.requests_per_second
            if not server.alive():
                break
    _report_beside_plain(label, throughput, report)
    return throughput


def _report_beside_plain(label: str, throughput: dict[str, float], report: Report) -> None:
    """The aggregate query's throughput as a fraction of the plain 20-row query's, same server."""
    plain, aggregates = throughput.get(PLAIN_QUERY), throughput.get("aggregates")
    if plain and aggregates:
        report.add(
            f"{label} aggregates / {PLAIN_QUERY}",
            round(aggregates / plain, 3),
            "ratio",
            "req/s of 20 users with post count and newest post over 20 posts with their user",
        )


def _answer_problem(name: str, status: int, body: Any) -> str | None:
    """What is wrong with one answer to a benchmark query, if anything."""
    data = data_of(status, body)
    if data is None:
        return f"HTTP {status}: {str(body)[:500]}"
    if name == "aggregates":
        return _aggregates_problem(data)
    posts = data.get("posts")
    if not isinstance(posts, list) or len(posts) != 20:
        return f"expected 20 posts, got {str(posts)[:300]}"
    if name == "nested" and not all(isinstance(p.get("user"), dict) for p in posts):
        return f"a post without its user: {str(posts)[:300]}"
    return None


def _aggregates_problem(data: dict[str, Any]) -> str | None:
    users = data.get("users")
    if not isinstance(users, list) or len(users) != 20:
        return f"expected 20 users, got {str(users)[:300]}"
    for user in users:
        aggregate = (user.get("posts_aggregate") or {}).get("aggregate") or {}
        newest = user.get("posts")
        if not isinstance(aggregate.get("count"), int) or not isinstance(newest, list):
            return f"a user without its post count or newest post: {str(user)[:300]}"
        if len(newest) != min(aggregate["count"], 1):
            return f"newest post does not agree with the count: {str(user)[:300]}"
    return None


def _load(args: argparse.Namespace, server: Server, body: bytes, workdir: Path) -> LoadResult:
    if args.generator == "wrk":
        return run_wrk(
            args.wrk,
            server.port,
            body,
            concurrency=args.concurrency,
            warmup=args.warmup,
            duration=args.duration,
            server_cpu=server.cpu_seconds,
            workdir=workdir,
        )
    return run_asyncio_load(
        args.generator,
        server.port,
        body,
        concurrency=args.concurrency,
        warmup=args.warmup,
        duration=args.duration,
        server_cpu=server.cpu_seconds,
    )


def _report_load(
    prefix: str, query: str, shown_url: str, result: LoadResult, report: Report
) -> None:
    rps = result.requests_per_second
    server_cpu = result.cpu_percent(result.server_cpu_seconds)
    client_cpu = result.cpu_percent(result.client_cpu_seconds)
    cpu = f"{_percent(server_cpu)} / {_percent(client_cpu)}"
    settings = f"{result.generator}, {result.concurrency} connections, {result.duration:.1f} s"
    report.add(f"{prefix}: throughput", round(rps, 1), "req/s", settings)
    report.add(f"{prefix}: latency p50", _round(result.p50_ms), "ms", settings)
    report.add(f"{prefix}: latency p99", _round(result.p99_ms), "ms", settings)
    checked = f"of {result.checked:,}"
    report.add(f"{prefix}: failed responses", result.failures, checked, "warm-up included")
    report.add(f"{prefix}: server / client CPU", cpu, "% of a core", "measured window")
    report.details[prefix] = {
        "query": query,
        "database": shown_url,
        **asdict(result),
        "requests_per_second": round(rps, 1),
        "server_cpu_percent": server_cpu,
        "client_cpu_percent": client_cpu,
    }
    print(
        f"    {rps:,.0f} req/s, p50 {result.p50_ms or 0:.1f} ms, p99 {result.p99_ms or 0:.1f} ms, "
        f"{result.failures} failed of {result.checked:,}, CPU server {_percent(server_cpu)}% "
        f"client {_percent(client_cpu)}%",
        flush=True,
    )
    if result.failures:
        report.error(
            f"{prefix}: {result.failures} of {result.checked} responses failed; "
            f"first: {result.first_failure}"
        )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def write_results(report: Report, args: argparse.Namespace, elapsed: float) -> None:
    options = dict(vars(args))
    try:
        options["postgres"] = postgres_target(args.postgres).render_as_string(hide_password=True)
    except PostgresUnavailable as exc:
        options["postgres"] = f"({exc})"
    header = {
        "generated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "elapsed_seconds": round(elapsed, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "options": options,
    }
    write_json(report, header, RESULTS)
    print(f"\nwrote {RESULTS}")


# -- entry point -------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add = parser.add_argument
    add("--duration", type=float, default=10.0, help="measured seconds per query (default 10)")
    add("--warmup", type=float, default=2.0, help="unmeasured seconds before each (default 2)")
    add("--concurrency", type=int, default=32, help="connections, one request each (default 32)")
    add(
        "--generator",
        choices=("auto", *GENERATORS),
        default="auto",
        help="load generator (default auto: wrk when on PATH, else raw)",
    )
    add("--skip-startup", action="store_true", help="skip the start-up figures")
    add("--skip-queries", action="store_true", help="skip all query throughput figures")
    add("--skip-postgres", action="store_true", help="skip the PostgreSQL figures (query throughput, live queries)")
    add(
        "--postgres",
        metavar="URL",
        default=os.environ.get("FORGEGRAPH_TEST_POSTGRES") or DEFAULT_POSTGRES,
        help="PostgreSQL server for a scratch database, 127.0.0.1 only "
        "(default $FORGEGRAPH_TEST_POSTGRES or %(default)s)",
    )
    add("--skip-fanout", action="store_true", help="skip the subscription fan-out figures")
    add(
        "--fanout-duration",
        type=float,
        default=8.0,
        metavar="SECONDS",
        help="measured seconds per fan-out run (default 8)",
    )
    add(
        "--fanout-subscribers",
        type=_sizes,
        default=_sizes("1,100,1000"),
        metavar="N,N,...",
        help="subscriber counts of the max-rate runs (default 1,100,1000); "
        "the fixed-rate runs (N=100 @20/s, N=1000 @2/s) follow the N listed",
    )
    add("--skip-distinct", action="store_true", help="skip the per-user filter figures (1,000 distinct filters)")
    add(
        "--distinct-duration",
        type=float,
        default=8.0,
        metavar="SECONDS",
        help="measured seconds per per-user filter run, 3 runs per round (default 8)",
    )
    add("--distinct-rounds", type=int, default=3, metavar="N", help="rounds of per-user filter runs (default 3)")
    add(
        "--fanout-go",
        metavar="PATH",
        default=None,
        help="../shared/bench/native's fanout-go, built by its build.sh (default $FANOUT_GO, "
        "then ../shared/bench/native/bin/fanout-go, ~/.cache/forgegraph-bench-native/fanout-go)",
    )
    add("--skip-live", action="store_true", help="skip the live-query figures (refresh latency, idle memory)")
    add(
        "--live-duration",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="measured seconds per live-query run at 20 mutations/s (default 20)",
    )
    add("--live-rounds", type=int, default=3, metavar="N", help="live-query runs per database (default 3)")
    add(
        "--live-subscribers",
        type=int,
        default=LIVE_SUBSCRIBERS,
        metavar="N",
        help=f"live-query subscribers over 1,000 variable sets, one connection each (default {LIVE_SUBSCRIBERS:,})",
    )
    add("--skip-roles", action="store_true", help="skip the per-user rule fan-out figures")
    add(
        "--roles-duration",
        type=float,
        default=8.0,
        metavar="SECONDS",
        help="measured seconds per role fan-out run (default 8)",
    )
    add("--skip-owners", action="store_true", help="skip the owners-only rule through a relationship figures")
    add("--owners-rounds", type=int, default=3, metavar="N", help="rounds per owners case (default 3)")
    add(
        "--owners-duration",
        type=float,
        default=8.0,
        metavar="SECONDS",
        help="measured seconds per owners run (default 8)",
    )
    add("--skip-scaleout", action="store_true", help="skip the multi-process figures")
    add(
        "--scaleout-duration",
        type=float,
        default=8.0,
        metavar="SECONDS",
        help="measured seconds per multi-process run, 6 runs (default 8)",
    )
    add("--skip-idle", action="store_true", help="skip the idle-connection memory figures")
    add(
        "--idle-subscribers",
        type=_sizes,
        default=IDLE_STEPS,
        metavar="N,N,...",
        help="idle connection counts to read the server's memory at, ascending "
        f"(default {','.join(map(str, IDLE_STEPS))})",
    )
    add("--skip-soak", action="store_true", help="skip the soak (idle-connection memory, RSS growth)")
    add(
        "--soak-duration",
        type=float,
        default=BENCH_DURATION,
        metavar="SECONDS",
        help="seconds of the soak's mutation stream, after connecting 5,000 idle subscribers "
        "(default %(default)g; `make soak` runs bench/soak.py for 180)",
    )
    add(
        "--with-references",
        action="store_true",
        help="also run ../shared/bench/ceiling_server.py (fan-out) and naive_server.py (queries, "
        "mutations at N=1) right after each forgegraph run, for ratios",
    )
    args = parser.parse_args(argv)
    durations = (args.fanout_duration, args.distinct_duration, args.live_duration, args.roles_duration,
                 args.scaleout_duration, args.soak_duration)
    if min(durations) <= 0:
        parser.error(
            "--fanout-duration, --distinct-duration, --live-duration, --roles-duration, --scaleout-duration and "
            "--soak-duration "
            "must be positive"
        )
    idle = list(args.idle_subscribers)
    if idle != sorted(set(idle)) or idle[0] < 2:
        parser.error("--idle-subscribers must be ascending counts of at least 2")
    if args.distinct_rounds < 1:
        parser.error("--distinct-rounds must be at least 1")
    if args.live_rounds < 1 or args.live_subscribers < 2:
        parser.error("--live-rounds must be at least 1, --live-subscribers at least 2")
    if args.concurrency < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("--concurrency and --duration must be positive, --warmup not negative")
    args.wrk = shutil.which("wrk")
    if args.generator == "auto":
        args.generator = "wrk" if args.wrk else "raw"
    elif args.generator == "wrk" and not args.wrk:
        parser.error("--generator wrk: wrk is not on PATH (Debian package wrk)")
    return args


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"subscriber counts must be positive: {text!r}")
    return sizes


def _terminate(_signum: int, _frame: object) -> None:
    # Treated as Ctrl-C: asyncio.Runner turns SIGINT into a clean cancel of
    # the load (an exception raised here would land in a transport callback),
    # and elsewhere KeyboardInterrupt unwinds through every `finally`.
    signal.raise_signal(signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A shell starts background jobs with SIGINT ignored, which would make
    # SIGTERM (turned into SIGINT) a no-op: Ctrl-C semantics in every case.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    report = Report()
    started = time.perf_counter()
    generator = f"wrk ({args.wrk})" if args.generator == "wrk" else args.generator
    report.details["generator"] = generator
    report.details["load_average_before"] = load_average()
    print(
        f"load generator: {generator} (wrk on PATH: {'yes' if args.wrk else 'no'}); "
        f"{os.cpu_count()} CPUs, load average {report.details['load_average_before']}",
        flush=True,
    )
    phases: list[Callable[[Path, argparse.Namespace, Report], None]] = []
    if not args.skip_startup:
        phases.append(bench_startup)
    if not args.skip_queries:
        phases.append(bench_sqlite_queries)
        if not args.skip_postgres:
            phases.append(bench_postgres_queries)
    if not args.skip_fanout:
        phases.append(bench_fanout)
    if not args.skip_distinct:
        phases.append(bench_distinct)
    if not args.skip_live:
        phases.append(bench_live)
    if not args.skip_roles:
        phases.append(bench_roles)
    if not args.skip_owners:
        phases.append(bench_owners)
    if not args.skip_scaleout:
        phases.append(bench_scaleout)
    if not args.skip_idle:
        phases.append(bench_idle)
    if not args.skip_soak:
        phases.append(bench_soak)
    try:
        with tempfile.TemporaryDirectory(prefix="forgegraph-bench-") as tmp:
            for phase in phases:
                try:
                    phase(Path(tmp), args, report)
                except ServerError as exc:
                    report.error(str(exc))
    except KeyboardInterrupt:
        print("interrupted: servers stopped, scratch database dropped", file=sys.stderr)
        return 130
    report.details["load_average_after"] = load_average()
    print_table(report)
    print(
        f"\nload average before / after: {report.details['load_average_before']} / "
        f"{report.details['load_average_after']} (other processes skew every figure)"
    )
    for text in report.notes:
        print(f"note: {text}")
    for text in report.errors:
        print(f"ERROR: {text}", file=sys.stderr)
    write_results(report, args, time.perf_counter() - started)
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
