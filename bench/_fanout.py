"""Fan-out: one `tableChanged` event per insert, delivered to N subscribers.

Each run starts a fresh `forgegraph serve` on a migrated SQLite database
(one user, id 1, for the mutation to reference) and drives it with the
shared ../shared/bench/fanout.py. Max-rate runs keep one mutation in flight;
fixed-rate runs measure latency at a modest load. With --with-references
the Python ceiling server is run alternately with forgegraph, at each N and
at each fixed rate, and the ratios of their deliveries/s and of their p99
latencies are reported. Timings are never judged; a
run that lost or duplicated events, or errored, is an error.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
from pathlib import Path

from _data import sqlite_url
from _fanout_tool import (
    CEILING_MODULE,
    FANOUT_TOOL,
    WINDOW,
    CeilingServer,
    FanoutFailed,
    FanoutResult,
    Target,
    run_fanout,
)
from _naive import NAIVE_MUTATION, NAIVE_SUBSCRIPTION, NaiveServer, mutations_of
from _naive import available as naive_available
from _naive import report_ratio as report_naive_ratio
from _report import Report
from _server import Server, ServerError, healthz_ok, run_forgegraph

SUBSCRIPTION = 'subscription { tableChanged(table: "posts") { type id record } }'
MUTATION = (
    "mutation($title: String!) { "
    'insert_posts_one(object: {title: $title, body: "x", user_id: 1}) { id } }'
)
CEILING_VARIABLES = '{"body":"x","user_id":1}'
# Latency at a load every design should sustain; run when N is benchmarked.
FIXED_RATES = {100: 20.0, 1000: 2.0}
LOG_TROUBLE = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b|Exception|exception")


def bench_fanout(workdir: Path, args: argparse.Namespace, report: Report) -> None:
    if not FANOUT_TOOL.is_file():
        report.note(f"fan-out skipped: {FANOUT_TOOL} not found")
        return
    sizes: list[int] = args.fanout_subscribers
    duration: float = args.fanout_duration
    print(f"fan-out: N = {', '.join(map(str, sizes))}, {duration:g} s per run", flush=True)
    path = workdir / "fanout.db"
    url = sqlite_url(path)
    run_forgegraph("migrate", "--database", url, cwd=workdir)
    _insert_user(path)
    references = args.with_references and CEILING_MODULE.is_file()
    if args.with_references and not references:
        report.note(f"fan-out references skipped: {CEILING_MODULE} not found")
    for n in sizes:
        ours = _forgegraph_run(url, workdir, n, 0.0, duration, report)
        if references:
            ceiling = ceiling_run(workdir, n, duration, report)
            _report_ratio(n, ours, ceiling, report)
            if n == 1 and naive_available():
                naive = _naive_run(workdir, duration, report)
                report_naive_ratio(
                    "mutations/s at N=1", mutations_of(ours), mutations_of(naive), "mut/s", report
                )
    for n in sizes:
        if n in FIXED_RATES:
            rate = FIXED_RATES[n]
            ours = _forgegraph_run(url, workdir, n, rate, duration, report)
            if references:
                ceiling = ceiling_run(workdir, n, duration, report, rate)
                name = f"fan-out N={n} @{rate:g} mut/s"
                report_latency_ratio(name, p99_of(ours), p99_of(ceiling), report)


def _insert_user(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("INSERT INTO users (id, name, email) VALUES (1, 'Bench', 'bench@example.com')")
        conn.commit()
    finally:
        conn.close()


def _label(n: int, rate: float) -> str:
    return f"fan-out N={n} " + (f"@{rate:g} mut/s" if rate else "max rate")


def _forgegraph_run(
    url: str, workdir: Path, n: int, rate: float, duration: float, report: Report
) -> FanoutResult | None:
    label = _label(n, rate)
    arguments = ("--query", SUBSCRIPTION, "--mutation", MUTATION)
    with Server(url, workdir, f"fanout-{n}-{rate:g}") as server:
        server.start()
        target = Target("forgegraph", server.port, "/graphql", arguments)
        result = _measure(label, target, server, n, rate, duration, report, strict=True)
        if not server.alive():
            report.error(
                f"{label}: the server died (exit code {server.returncode}); "
                f"stderr:\n{server.stderr_tail()}"
            )
        elif not healthz_ok(server.port, timeout=5.0):
            report.error(f"{label}: /healthz not 200 after the run")
    _scan_log(label, server, report)
    return result


def ceiling_run(
    workdir: Path, n: int, duration: float, report: Report, rate: float = 0.0
) -> FanoutResult | None:
    label = f"fan-out N={n} ceiling" + (f" @{rate:g} mut/s" if rate else "")
    arguments = ("--mutation-variables", CEILING_VARIABLES)
    try:
        with CeilingServer(workdir, f"fanout-ceiling-{n}-{rate:g}") as server:
            server.start()
            target = Target("ceiling", server.port, "/publish", arguments)
            return _measure(label, target, server, n, rate, duration, report, strict=False)
    except ServerError as exc:
        report.note(f"{label}: reference server did not start: {exc}")
        return None


def _naive_run(workdir: Path, duration: float, report: Report) -> FanoutResult | None:
    """The naive server at N=1, max rate: its mutations/s with one subscriber listening."""
    label = "fan-out N=1 naive"
    arguments = ("--query", NAIVE_SUBSCRIPTION, "--mutation", NAIVE_MUTATION)
    try:
        url = sqlite_url(workdir / "fanout-naive.db")
        with NaiveServer(url, workdir, "fanout-naive-1") as server:
            server.start()
            target = Target("naive", server.port, "/graphql", arguments)
            return _measure(label, target, server, 1, 0.0, duration, report, strict=False)
    except ServerError as exc:
        report.note(f"{label}: reference server did not start: {exc}")
        return None


def _measure(
    label: str,
    target: Target,
    server: Server,
    n: int,
    rate: float,
    duration: float,
    report: Report,
    *,
    strict: bool,
) -> FanoutResult | None:
    """One fanout.py run, reported; `strict` makes its problems errors, not notes."""
    complain = report.error if strict else report.note
    print(f"  {label} ({target.name}, port {server.port})", flush=True)
    try:
        result = run_fanout(target, n, rate, duration, server.pid)
    except FanoutFailed as exc:
        complain(f"{label}: {exc}; server stderr:\n{server.stderr_tail()}")
        return None
    report.details[f"{label} ({target.name})"] = {
        **result.raw,
        "exit_code": result.exit_code,
        "missing": result.missing,
        "tool_warnings": list(result.warnings[:20]),
    }
    print(
        f"    {result.deliveries_per_s:,.0f} deliveries/s, {result.mutations_per_s:,.1f} mut/s, "
        f"p50 {_ms(result.latency_ms('p50'))} p99 {_ms(result.latency_ms('p99'))} ms, "
        f"{result.duplicates} duplicates, {result.missing} missing, "
        f"server CPU {result.server_cpu_s} s, peak RSS {result.server_peak_rss_mib} MiB",
        flush=True,
    )
    _add_figures(label if strict else f"{label} (reference)", result, report)
    problems = result.problems()
    if problems:
        complain(f"{label} ({target.name}): {'; '.join(problems)}\n{result.stderr_tail}")
    elif result.warnings:
        report.note(f"{label} ({target.name}): fanout.py said: {' | '.join(result.warnings[:5])}")
    return result


def _add_figures(prefix: str, result: FanoutResult, report: Report) -> None:
    raw = result.raw
    mode = f"{result.rate:g} mut/s" if result.rate else "one mutation in flight"
    settings = f"{raw.get('events')} mutations, {mode}, window {WINDOW}, span {raw.get('span_s')} s"
    if not result.rate:
        report.add(f"{prefix}: deliveries", result.deliveries_per_s, "deliveries/s", settings)
        report.add(f"{prefix}: mutations", result.mutations_per_s, "mut/s", settings)
    latency = " / ".join(_ms(result.latency_ms(w)) for w in ("p50", "p99", "max"))
    report.add(f"{prefix}: latency p50 / p99 / max", latency, "ms", settings)
    if result.target != "forgegraph":
        return
    counts = f"{result.duplicates} / {result.missing}"
    report.add(f"{prefix}: duplicates / missing", counts, f"of {result.expected:,}", settings)
    usage = f"{result.server_cpu_s} / {result.server_peak_rss_mib}"
    per = result.cpu_us_per_delivery
    cost = "n/a" if per is None else f"{per:.0f} us CPU per delivery"
    report.add(f"{prefix}: server CPU / peak RSS", usage, "s / MiB", f"measured window; {cost}")


def _report_ratio(
    n: int, ours: FanoutResult | None, ceiling: FanoutResult | None, report: Report
) -> None:
    name = f"fan-out N={n}: forgegraph / ceiling"
    if ours is None or ceiling is None or ours.problems() or ceiling.problems():
        report.add(name, None, "ratio", "not computed: a run failed")
        return
    if not ceiling.deliveries_per_s:
        report.add(name, None, "ratio", "not computed: the ceiling delivered nothing")
        return
    ratio = ours.deliveries_per_s / ceiling.deliveries_per_s
    settings = (
        f"deliveries/s {ours.deliveries_per_s:,.0f} vs {ceiling.deliveries_per_s:,.0f}, "
        "max rate, run back to back"
    )
    report.add(name, round(ratio, 3), "ratio", settings)
    report.details.setdefault("fan-out ratios", {})[str(n)] = round(ratio, 4)
    print(f"    forgegraph / ceiling at N={n}: {ratio:.3f}", flush=True)


def p99_of(result: FanoutResult | None) -> float | None:
    """The run's p99 latency, None when the run failed (lost events, errors)."""
    if result is None or result.problems():
        return None
    return result.latency_ms("p99")


def report_latency_ratio(name: str, ours: float | None, ceiling: float | None, report: Report) -> None:
    """p99 latency at a fixed rate over the ceiling's, measured back to back: lower is better."""
    title = f"{name}: p99 latency forgegraph / ceiling"
    if ours is None or not ceiling:
        report.add(title, None, "ratio", "not computed: a run failed or measured no latency")
        return
    ratio = ours / ceiling
    report.add(title, round(ratio, 3), "ratio", f"p99 {ours:.1f} vs {ceiling:.1f} ms, run back to back")
    report.details.setdefault("fan-out p99 ratios", {})[name] = round(ratio, 4)
    print(f"    {title}: {ratio:.3f}", flush=True)


def _scan_log(label: str, server: Server, report: Report) -> None:
    """Note tracebacks and errors the server logged, even when no event was lost."""
    lines: list[str] = []
    for path in (server.stdout_path, server.stderr_path):
        try:
            lines += path.read_text(errors="replace").splitlines()
        except OSError:
            continue
    trouble = [line for line in lines if LOG_TROUBLE.search(line)]
    if trouble:
        shown = "\n".join(trouble[:5])
        report.note(f"{label}: the server logged {len(trouble)} error lines, first:\n{shown}")


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"
