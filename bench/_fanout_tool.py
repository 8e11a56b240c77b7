"""Running the shared fan-out load tool and its Python ceiling server.

Both live in ../shared/bench (beside this checkout) and are used from there
as they are: `fanout.py` prints one JSON line per run, `ceiling_server.py`
is the Starlette + uvicorn reference the product's figures are compared to.
"""

from __future__ import annotations

import http.client
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from _server import HOST, Server

SHARED_BENCH = Path(__file__).resolve().parents[2] / "shared" / "bench"
FANOUT_TOOL = SHARED_BENCH / "fanout.py"
CEILING_MODULE = SHARED_BENCH / "ceiling_server.py"
WINDOW = 20
EVENTS = 1_000_000
# Connecting, the warm-up barrier (fanout.py gives it 60 s) and draining
# come on top of the measured duration.
TIMEOUT_SLACK_SECONDS = 150.0


class FanoutFailed(Exception):
    """fanout.py gave no result line: it crashed, timed out or could not set up."""


@dataclass(frozen=True)
class Target:
    """A server for fanout.py to drive: where to subscribe, what to POST."""

    name: str
    port: int
    mutate_path: str
    arguments: tuple[str, ...]

    def command(self, subscribers: int, rate: float, duration: float, pid: int) -> list[str]:
        return [
            sys.executable,
            str(FANOUT_TOOL),
            "--url",
            f"ws://{HOST}:{self.port}/graphql",
            "--mutate-url",
            f"http://{HOST}:{self.port}{self.mutate_path}",
            *self.arguments,
            "-n",
            str(subscribers),
            "-e",
            str(EVENTS),
            *(("--rate", f"{rate:g}") if rate else ()),
            "--duration",
            f"{duration:g}",
            "--window",
            str(WINDOW),
            "--server-pid",
            str(pid),
            "--label",
            self.name,
        ]


@dataclass(frozen=True)
class FanoutResult:
    """One fanout.py run as it reported itself, plus how it exited."""

    target: str
    subscribers: int
    rate: float
    exit_code: int
    raw: dict[str, Any]
    stderr_tail: str
    warnings: tuple[str, ...]

    def _number(self, key: str) -> float:
        value = self.raw.get(key)
        return float(value) if isinstance(value, int | float) else 0.0

    @property
    def deliveries_per_s(self) -> float:
        return self._number("deliveries_per_s")

    @property
    def mutations_per_s(self) -> float:
        return self._number("mutations_per_s")

    def latency_ms(self, which: str) -> float | None:
        value = self.raw.get(f"lat_{which}_ms")
        return float(value) if isinstance(value, int | float) else None

    @property
    def expected(self) -> int:
        return int(self._number("deliveries_expected"))

    @property
    def duplicates(self) -> int:
        return int(self._number("duplicates"))

    @property
    def missing(self) -> int:
        # `deliveries_received` counts duplicates too; they must not hide losses.
        return self.expected - (int(self._number("deliveries_received")) - self.duplicates)

    def _server(self) -> dict[str, Any]:
        # One --server-pid, so one entry: {"<pid>": {"cpu_s": ..., ...}}.
        watched = self.raw.get("server")
        first: object = next(iter(watched.values()), None) if isinstance(watched, dict) else None
        return first if isinstance(first, dict) else {}

    @property
    def server_cpu_s(self) -> float | None:
        value = self._server().get("cpu_s")
        return float(value) if isinstance(value, int | float) else None

    @property
    def server_peak_rss_mib(self) -> float | None:
        value = self._server().get("peak_rss_mib")
        return float(value) if isinstance(value, int | float) else None

    @property
    def cpu_us_per_delivery(self) -> float | None:
        received = self._number("deliveries_received")
        cpu = self.server_cpu_s
        return None if cpu is None or not received else cpu / received * 1e6

    def problems(self) -> list[str]:
        """Everything that makes the run untrustworthy: losses, duplicates, errors."""
        found = []
        if self.missing:
            found.append(f"{self.missing:,} of {self.expected:,} deliveries missing")
        if self.duplicates:
            found.append(f"{self.duplicates:,} duplicate deliveries")
        for key, what in (("sub_errors", "subscriber"), ("mut_errors", "mutation")):
            if self._number(key):
                first = self.raw.get(f"first_{key.split('_')[0]}_error", "")
                found.append(f"{int(self._number(key))} {what} errors (first: {first})")
        if not self.raw.get("events"):
            found.append("no measured mutation was sent")
        if self.exit_code != 0 and not found:
            found.append(f"fanout.py exited with {self.exit_code}")
        return found


def run_fanout(
    target: Target, subscribers: int, rate: float, duration: float, server_pid: int
) -> FanoutResult:
    command = target.command(subscribers, rate, duration, server_pid)
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=duration + TIMEOUT_SLACK_SECONDS,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise FanoutFailed(
            f"fanout.py did not finish within {duration + TIMEOUT_SLACK_SECONDS:.0f} s"
        ) from None
    said = done.stderr.strip().splitlines()
    tail = "\n".join(said[-15:])
    # fanout.py logs window-wait and drain timeouts, and first errors, as it goes.
    warnings = tuple(line for line in said if "timeout" in line or "error" in line)
    lines = done.stdout.strip().splitlines()
    try:
        raw = orjson.loads(lines[-1]) if lines else None
    except orjson.JSONDecodeError:
        raw = None
    if not isinstance(raw, dict):
        raise FanoutFailed(
            f"fanout.py exited with {done.returncode} without a result line; "
            f"stdout: {done.stdout[-500:]!r}; stderr:\n{tail or '(empty)'}"
        )
    return FanoutResult(target.name, subscribers, rate, done.returncode, raw, tail, warnings)


class ReferenceServer(Server):
    """`uvicorn <module>:app` from ../shared/bench, started as its README starts it."""

    module = ""
    options: tuple[str, ...] = ()

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            f"{self.module}:app",
            "--app-dir",
            str(SHARED_BENCH),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--ws",
            "websockets",
            *self.options,
        ]

    def ready(self) -> bool:
        # No /healthz: any HTTP answer (404 for /) means uvicorn is serving.
        conn = http.client.HTTPConnection(HOST, self.port, timeout=1.0)
        try:
            conn.request("GET", "/")
            conn.getresponse().read()
            return True
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()


class CeilingServer(ReferenceServer):
    """The Python ceiling: one orjson frame sent to every socket, no GraphQL."""

    module = "ceiling_server"

    def __init__(self, workdir: Path, label: str) -> None:
        super().__init__("", workdir, label)
