"""Queries and mutations of two checkouts, alternating: median requests/s per database and operation.

    python bench/compare_requests.py --before ../base --after . --rounds 5
    python bench/compare_requests.py --before ../base --operations insert --rounds 9

Each run migrates a fresh database (a seeded SQLite file, then a scratch
PostgreSQL database) with the checkout first on PYTHONPATH, so both run in
this project's virtualenv, serves it with `forgegraph serve` and loads, one
after the other, the two queries of bench/run.py, an `insert_posts_one` and an
`update_posts_by_pk` (bench/_load.py: wrk when on PATH, else raw asyncio).
Runs alternate between the checkouts, in the order before/after then
after/before, so that a drifting machine weighs on both alike. Prints a table
of medians and ratios and writes bench/results/compare_requests.json; figures
are never judged, but it exits 1 when a server or a request failed.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from _data import (
    DEFAULT_POSTGRES,
    PostgresUnavailable,
    create_postgres_database,
    drop_postgres_database,
    postgres_target,
    seed_postgres,
    seed_sqlite,
    sqlite_url,
)
from _load import LoadResult
from _server import HOST, Server, ServerError, forgegraph_command, server_env
from run import QUERIES as ALL_QUERIES
from run import _answer_problem, _load, _terminate, data_of, load_average, post_graphql

RESULTS = Path(__file__).resolve().parent / "results" / "compare_requests.json"
INSERT = "mutation($object: posts_insert_input!) { insert_posts_one(object: $object) { id } }"
UPDATE = (
    "mutation($id: Int!, $title: String!) "
    "{ update_posts_by_pk(pk_columns: {id: $id}, _set: {title: $title}) { id title } }"
)
FIRST_ROWS = (
    "{ users(limit: 1, order_by: {id: asc}) { id } posts(limit: 1, order_by: {id: asc}) { id } }"
)
POST_COUNT = "{ posts_aggregate { aggregate { count } } }"
# The queries every checkout since the first round answers: a checkout from
# before aggregates existed would fail the newer rows, which make bench reports.
QUERIES = {name: ALL_QUERIES[name] for name in ("nested", "flat")}
OPERATIONS = (*QUERIES, "insert", "update")


class CheckoutServer(Server):
    """A server whose `graph` package comes from one checkout."""

    def __init__(self, tree: Path, database_url: str, workdir: Path, label: str) -> None:
        super().__init__(database_url, workdir, label)
        self.tree = tree

    def env(self) -> dict[str, str]:
        return checkout_env(self.tree)


def checkout_env(tree: Path) -> dict[str, str]:
    return {**server_env(), "PYTHONPATH": str(tree)}


@dataclass
class Run:
    round: int
    checkout: str
    database: str
    operation: str
    requests_per_second: float | None  # None unless every response succeeded
    failures: int
    checked: int
    p50_ms: float | None
    p99_ms: float | None
    # Near 100 the server was the bottleneck; well below, the generator or the machine.
    server_cpu_percent: float | None
    load_average: str
    # The server's CPU per answered request: less swayed than req/s by what else
    # runs on a shared machine (the load generator included).
    cpu_us_per_request: float | None = None


def post(port: int, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The `data` of one POST /graphql, None for any failure."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request(
            "POST", "/graphql", body_of(query, variables), {"Content-Type": "application/json"}
        )
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        return data_of(response.status, orjson.loads(raw))
    except orjson.JSONDecodeError:
        return None


def body_of(query: str, variables: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps({"query": query, **({"variables": variables} if variables else {})})


def post_count(port: int) -> int | None:
    data = post(port, POST_COUNT)
    return data["posts_aggregate"]["aggregate"]["count"] if data else None


def migrate(tree: Path, url: str, workdir: Path) -> None:
    # Each checkout migrates its own database: the two may differ in their DDL.
    done = subprocess.run(
        [*forgegraph_command(), "migrate", "--database", url],
        cwd=workdir,
        env=checkout_env(tree),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise ServerError(
            f"{tree}: forgegraph migrate exited with {done.returncode}: {done.stderr.strip()}"
        )


def measure(
    tree: Path, url: str, workdir: Path, label: str, args: argparse.Namespace, errors: list[str]
) -> dict[str, LoadResult | None]:
    """Every operation against one server; None for an operation whose check failed."""
    results: dict[str, LoadResult | None] = {}
    with CheckoutServer(tree, url, workdir, label) as server:
        server.start()
        first = post(server.port, FIRST_ROWS)
        if not first or not first["users"] or not first["posts"]:
            raise ServerError(
                f"{label}: no seeded user or post: {first}; stderr:\n{server.stderr_tail()}"
            )
        user_id, post_id = first["users"][0]["id"], first["posts"][0]["id"]
        bodies = {name: body_of(query) for name, query in QUERIES.items()}
        bodies["insert"] = body_of(
            INSERT, {"object": {"title": "bench", "body": "x", "user_id": user_id}}
        )
        bodies["update"] = body_of(UPDATE, {"id": post_id, "title": "bench"})
        for name, body in bodies.items():
            if name not in args.operations:
                continue
            problem = check(name, server.port, user_id, post_id)
            if problem:
                # Loading an operation that fails would only measure error paths.
                errors.append(
                    f"{label} {name}: {problem}; not loaded. stderr:\n{server.stderr_tail()}"
                )
                results[name] = None
                continue
            count_before = post_count(server.port) if name == "insert" else None
            result = _load(args, server, body, workdir)
            results[name] = result
            if not server.alive():
                errors.append(
                    f"{label} {name}: the server died under load; stderr:\n{server.stderr_tail()}"
                )
                break
            if result.failures:
                errors.append(
                    f"{label} {name}: {result.failures} of {result.checked} failed; first: "
                    f"{result.first_failure}; stderr:\n{server.stderr_tail(20)}"
                )
            if count_before is not None:
                # A response whose insert_posts_one is null passes the generators' check.
                count_after = post_count(server.port)
                succeeded = result.checked - result.failures
                if count_after is None or count_after - count_before < succeeded:
                    errors.append(
                        f"{label} insert: {succeeded} inserts answered, posts went {count_before} -> {count_after}"
                    )
    return results


def check(name: str, port: int, user_id: int, post_id: int) -> str | None:
    """What is wrong with one request of an operation, if anything."""
    if name in QUERIES:
        return _answer_problem(name, *post_graphql(port, QUERIES[name]))
    if name == "insert":
        data = post(port, INSERT, {"object": {"title": "check", "body": "x", "user_id": user_id}})
        row = data and data.get("insert_posts_one")
        return None if row and row.get("id") is not None else f"insert_posts_one -> {data}"
    data = post(port, UPDATE, {"id": post_id, "title": "check"})
    row = data and data.get("update_posts_by_pk")
    return (
        None
        if row and row.get("id") == post_id and row.get("title") == "check"
        else f"update_posts_by_pk -> {data}"
    )


def one_run(
    tree: Path,
    database: str,
    workdir: Path,
    label: str,
    args: argparse.Namespace,
    errors: list[str],
) -> dict[str, LoadResult | None]:
    if database == "sqlite":
        path = workdir / f"{label}.db"
        migrate(tree, sqlite_url(path), workdir)
        seed_sqlite(path)
        try:
            return measure(tree, sqlite_url(path), workdir, label, args, errors)
        finally:
            path.unlink(missing_ok=True)
    scratch = create_postgres_database(postgres_target(args.postgres))
    try:
        url = scratch.render_as_string(hide_password=False)
        migrate(tree, url, workdir)
        seed_postgres(scratch)
        return measure(tree, url, workdir, label, args, errors)
    finally:
        drop_postgres_database(scratch)


def record(
    round_: int,
    checkout: str,
    database: str,
    operation: str,
    result: LoadResult | None,
    average: str,
) -> Run:
    if result is None:
        return Run(round_, checkout, database, operation, None, 0, 0, None, None, None, average)
    return Run(
        round_,
        checkout,
        database,
        operation,
        None if result.failures else result.requests_per_second,
        result.failures,
        result.checked,
        result.p50_ms,
        result.p99_ms,
        result.cpu_percent(result.server_cpu_seconds),
        average,
        None
        if result.failures or not result.requests or result.server_cpu_seconds is None
        else result.server_cpu_seconds / result.requests * 1e6,
    )


def paired_ratios(runs: list[Run], database: str, operation: str) -> list[float]:
    """after / before of each round: the machine drifts between rounds more than within one."""
    by_round: dict[int, dict[str, float]] = {}
    for r in runs:
        if r.database == database and r.operation == operation and r.requests_per_second:
            by_round.setdefault(r.round, {})[r.checkout] = r.requests_per_second
    return [pair["after"] / pair["before"] for pair in by_round.values() if len(pair) == 2]


def geometric_mean(ratios: list[float]) -> float | None:
    return math.exp(statistics.fmean(math.log(r) for r in ratios)) if ratios else None


def standard_error(ratios: list[float]) -> float | None:
    """Of the ratios' mean: how far from 1.00 a figure must be before it says more than the noise."""
    return statistics.stdev(ratios) / math.sqrt(len(ratios)) if len(ratios) > 1 else None


def median(values: list[float | None]) -> float | None:
    clean = [v for v in values if v is not None]
    return statistics.median(clean) if clean else None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--before", type=Path, required=True, help="checkout measured first in even rounds")
    add("--after", type=Path, default=Path("."), help="the other checkout (default .)")
    add("--rounds", type=int, default=5)
    add("--duration", type=float, default=5.0, help="measured seconds per operation (default 5)")
    add("--warmup", type=float, default=1.0, help="unmeasured seconds before each (default 1)")
    add("--concurrency", type=int, default=32, help="connections (default 32, as bench/run.py)")
    add("--skip-postgres", action="store_true", help="measure SQLite only")
    add("--skip-sqlite", action="store_true", help="measure PostgreSQL only")
    add(
        "--operations",
        default=",".join(OPERATIONS),
        help=f"comma-separated subset of {','.join(OPERATIONS)} (default all): more rounds of fewer",
    )
    add(
        "--postgres",
        metavar="URL",
        default=os.environ.get("FORGEGRAPH_TEST_POSTGRES") or DEFAULT_POSTGRES,
        help="PostgreSQL server for scratch databases, 127.0.0.1 only (default %(default)s)",
    )
    args = parser.parse_args()
    asked = {op.strip() for op in args.operations.split(",") if op.strip()}
    if not asked or asked - set(OPERATIONS):
        parser.error(f"--operations: choose among {','.join(OPERATIONS)}")
    args.operations = tuple(op for op in OPERATIONS if op in asked)
    if args.rounds < 1 or args.duration <= 0 or args.warmup < 0 or args.concurrency < 1:
        parser.error(
            "--rounds, --duration and --concurrency must be positive, --warmup not negative"
        )
    # The attributes bench/run.py's _load reads.
    args.wrk = shutil.which("wrk")
    args.generator = "wrk" if args.wrk else "raw"
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    for tree in trees.values():
        if not (tree / "graph" / "__init__.py").is_file():
            parser.error(f"{tree} is not a forgegraph checkout (no graph/__init__.py)")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)

    if args.skip_sqlite and args.skip_postgres:
        parser.error("--skip-sqlite and --skip-postgres leave nothing to measure")
    databases = [] if args.skip_sqlite else ["sqlite"]
    if not args.skip_postgres:
        try:
            drop_postgres_database(create_postgres_database(postgres_target(args.postgres)))
            databases.append("postgres")
        except PostgresUnavailable as exc:
            print(f"note: PostgreSQL skipped: {exc}", flush=True)
    load_before = load_average()
    print(
        f"load generator: {args.generator}, {args.concurrency} connections, {args.warmup:g} s warm-up + "
        f"{args.duration:g} s; {os.cpu_count()} CPUs, load average {load_before}",
        flush=True,
    )
    runs: list[Run] = []
    errors: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="forgegraph-compare-") as tmp:
            for round_ in range(args.rounds):
                order = list(trees.items()) if round_ % 2 == 0 else list(trees.items())[::-1]
                for database in databases:
                    for name, tree in order:
                        label = f"r{round_}-{database}-{name}"
                        try:
                            results = one_run(tree, database, Path(tmp), label, args, errors)
                        except ServerError as exc:
                            errors.append(str(exc))
                            results = {}
                        average = load_average()
                        runs += [
                            record(round_, name, database, op, results.get(op), average)
                            for op in args.operations
                        ]
                        shown = ", ".join(
                            f"{r.operation} {r.requests_per_second or 0:,.0f} (CPU {r.server_cpu_percent or 0:.0f}%)"
                            for r in runs[-len(args.operations) :]
                        )
                        print(
                            f"  round {round_ + 1} {database} {name}: {shown} req/s (load {average})",
                            flush=True,
                        )
    except KeyboardInterrupt:
        print("interrupted: servers stopped, scratch databases dropped", file=sys.stderr)
        return 130

    summary = []
    for database in databases:
        for operation in args.operations:
            medians = {
                name: median(
                    [
                        r.requests_per_second
                        for r in runs
                        if r.checkout == name
                        and r.database == database
                        and r.operation == operation
                    ]
                )
                for name in trees
            }
            cpu = {
                name: median(
                    [
                        r.cpu_us_per_request
                        for r in runs
                        if r.checkout == name
                        and r.database == database
                        and r.operation == operation
                    ]
                )
                for name in trees
            }
            before, after = medians["before"], medians["after"]
            ratio = after / before if before and after is not None else None
            pairs = paired_ratios(runs, database, operation)
            summary.append(
                {
                    "database": database,
                    "operation": operation,
                    **medians,
                    "ratio": ratio,
                    "pair_ratios": pairs,
                    "pair_geomean": geometric_mean(pairs),
                    "pair_standard_error": standard_error(pairs),
                    "cpu_us_before": cpu["before"],
                    "cpu_us_after": cpu["after"],
                }
            )
    load_after = load_average()
    print(
        f"\n{'database':<9} {'operation':<9} {'before':>9} {'after':>9} {'ratio':>6}   (median req/s)"
        "   per-round ratio: geomean ± s.e.   server CPU us/request before / after"
    )
    for row in summary:
        cells = [
            f"{row[k]:>9,.0f}" if row[k] is not None else f"{'n/a':>9}" for k in ("before", "after")
        ]
        ratio = f"{row['ratio']:>6.2f}" if row["ratio"] is not None else f"{'n/a':>6}"
        cpu = " / ".join(
            f"{row[k]:.0f}" if row[k] is not None else "n/a" for k in ("cpu_us_before", "cpu_us_after")
        )
        geomean, error = row["pair_geomean"], row["pair_standard_error"]
        per_round = (
            f"{geomean:.3f} ± {error:.3f} ({len(row['pair_ratios'])})"
            if geomean is not None and error is not None
            else "n/a"
        )
        print(
            f"{row['database']:<9} {row['operation']:<9} {cells[0]} {cells[1]} {ratio}   {per_round:<28}   {cpu}"
        )
    print(
        f"load average before / after: {load_before} / {load_after} (other processes skew every figure)"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "generated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                "checkouts": {name: str(tree) for name, tree in trees.items()},
                "generator": args.generator,
                "concurrency": args.concurrency,
                "duration": args.duration,
                "cpus": os.cpu_count(),
                "load_average_before": load_before,
                "load_average_after": load_after,
                "summary": summary,
                "runs": [vars(run) for run in runs],
                "errors": errors,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")
    for text in errors:
        print(f"ERROR: {text}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
