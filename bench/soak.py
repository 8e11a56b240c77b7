"""forgegraph soak: 5,000 idle WebSocket subscribers, 200 active ones, a steady mutation stream.

Run as `make soak` (or `.venv/bin/python bench/soak.py --help`); bench/_soak.py
says what is measured. Prints the figures, writes bench/results/soak.json, and
exits 1 when an event was lost, duplicated or reordered, a connection dropped,
or the server misbehaved. `make bench` runs the same soak, shorter.
"""

from __future__ import annotations

import argparse
import datetime
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from _data import DEFAULT_POSTGRES
from _report import Report, print_table, write_json
from _soak import SoakPlan, run_soak

RESULTS = Path(__file__).resolve().parent / "results" / "soak.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = SoakPlan()
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add = parser.add_argument
    add("--duration", type=float, default=defaults.duration,
        help="seconds of the mutation stream (default %(default)g)")
    add("--idle", type=int, default=defaults.idle, help="idle subscribers (default %(default)s)")
    add("--active", type=int, default=defaults.active, help="active subscribers (default %(default)s)")
    add("--rate", type=float, default=defaults.rate, help="mutations per second (default %(default)g)")
    add("--database", choices=("sqlite", "postgres"), default="sqlite",
        help="a SQLite file, or a scratch database on --postgres (default sqlite)")
    add("--postgres", metavar="URL",
        default=os.environ.get("FORGEGRAPH_TEST_POSTGRES") or DEFAULT_POSTGRES,
        help="PostgreSQL server for --database postgres, 127.0.0.1 only (default %(default)s)")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.rate <= 0 or args.idle < 1 or args.active < 1:
        parser.error("--duration, --rate, --idle and --active must be positive")
    return args


def _terminate(_signum: int, _frame: object) -> None:
    signal.raise_signal(signal.SIGINT)  # as bench/run.py: Ctrl-C semantics for SIGTERM too


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    plan = SoakPlan(idle=args.idle, active=args.active, rate=args.rate, duration=args.duration)
    report = Report()
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="forgegraph-soak-") as tmp:
            run_soak(Path(tmp), plan, report, database=args.database, postgres=args.postgres)
    except KeyboardInterrupt:
        print("interrupted: server stopped, scratch database dropped", file=sys.stderr)
        return 130
    print_table(report)
    for text in report.notes:
        print(f"note: {text}")
    for text in report.errors:
        print(f"ERROR: {text}", file=sys.stderr)
    header = {
        "generated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "elapsed_seconds": round(time.perf_counter() - started, 1),
        "options": {k: v for k, v in vars(args).items() if k != "postgres"},
    }
    write_json(report, header, RESULTS)
    print(f"\nwrote {RESULTS}")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
