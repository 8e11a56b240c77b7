"""Fan-out of two checkouts, alternating, with the native Go load client; medians per N.

    python bench/compare_fanout.py --before ../base --after . --rounds 5 -n 1000,100

Each run starts `forgegraph serve` on a fresh demo SQLite file with the
checkout first on PYTHONPATH (so both run in this project's virtualenv) and
drives it with ../shared/bench/native's `fanout-go` (build it with its
build.sh). Runs alternate between the two checkouts so that a noisy machine
weighs on both alike. Figures are printed, never judged.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

FORGEGRAPH = Path(sys.executable).with_name("forgegraph")
SUBSCRIPTION = 'subscription { tableChanged(table: "posts") { type id record } }'
MUTATION = (
    'mutation($title: String!) { insert_posts_one(object: {title: $title, body: "x", user_id: 1}) { id } }'
)


def _serve(tree: Path, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    url = f"sqlite+aiosqlite:///{workdir / 'fanout.db'}"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run([FORGEGRAPH, "migrate", "--database", url], env=env, cwd=workdir, check=True, capture_output=True)
    with sqlite3.connect(workdir / "fanout.db") as conn:
        conn.execute("INSERT INTO users (id, name, email) VALUES (1, 'Bench', 'bench@example.com')")
    server = subprocess.Popen(
        [FORGEGRAPH, "serve", "--database", url, "--port", str(port), "--max-messages-per-second", "0"],
        env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"forgegraph from {tree} did not start")


def run(client: Path, tree: Path, subscribers: int, port: int, duration: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as workdir:
        server = _serve(tree, port, Path(workdir))
        try:
            command = [
                str(client), "--url", f"ws://127.0.0.1:{port}/graphql",
                "--mutate-url", f"http://127.0.0.1:{port}/graphql",
                "--query", SUBSCRIPTION, "--mutation", MUTATION, "-n", str(subscribers),
                "-e", "1000000", "--duration", str(duration), "--window", "20", "--server-pid", str(server.pid),
            ]
            out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120)
            lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
            return json.loads(lines[-1]) if lines else {"error": out.stderr[-300:]}
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="checkout measured first in each pair")
    parser.add_argument("--after", type=Path, default=Path("."), help="checkout measured second (default .)")
    parser.add_argument("--client", type=Path, default=Path("../shared/bench/native/bin/fanout-go"))
    parser.add_argument("-n", "--subscribers", default="1000,100", help="comma-separated N (default 1000,100)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per run")
    parser.add_argument("--port", type=int, default=18600, help="first port; each run takes the next")
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    sizes = [int(n) for n in args.subscribers.split(",")]
    rates: dict[tuple[str, int], list[float]] = {}
    p99s: dict[tuple[str, int], list[float]] = {}
    port = args.port
    for _ in range(args.rounds):
        for n in sizes:
            for name, tree in trees.items():
                port += 1
                result = run(args.client, tree, n, port, args.duration)
                print(name, n, {k: result.get(k) for k in ("deliveries_per_s", "lat_p99_ms", "missing", "duplicates", "error")}, flush=True)
                rates.setdefault((name, n), []).append(float(result.get("deliveries_per_s") or 0))  # type: ignore[arg-type]
                p99s.setdefault((name, n), []).append(float(result.get("lat_p99_ms") or 0))  # type: ignore[arg-type]
    for n in sizes:
        before, after = statistics.median(rates["before", n]), statistics.median(rates["after", n])
        print(
            f"N={n}: before {before:,.0f} del/s (p99 {statistics.median(p99s['before', n]):.1f} ms), "
            f"after {after:,.0f} del/s (p99 {statistics.median(p99s['after', n]):.1f} ms), "
            f"ratio {after / before if before else float('nan'):.2f}"
        )


if __name__ == "__main__":
    main()
