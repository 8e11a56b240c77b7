"""A `forgegraph serve` process owned by the benchmark: spawned, watched, killed.

The server runs in its own process group so that stopping it also ends
anything it spawned; only 127.0.0.1 is ever targeted.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

HOST = "127.0.0.1"
READY_TIMEOUT_SECONDS = 60.0
# Fine enough for start-up times of a second or more, coarse enough that the
# polling itself does not steal a visible share of the server's CPU.
POLL_INTERVAL_SECONDS = 0.01
STOP_TIMEOUT_SECONDS = 5.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class ServerError(Exception):
    """The server did not start or died; the message carries its stderr."""


def forgegraph_command() -> list[str]:
    # `make bench` runs the venv's python, whose bin/ holds the console script.
    beside = Path(sys.executable).with_name("forgegraph")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("forgegraph")
    if found:
        return [found]
    return [sys.executable, "-m", "graph"]


def server_env() -> dict[str, str]:
    # FORGEGRAPH_* settings from the caller's shell (permissions, secrets)
    # would change what is measured; the command line says everything.
    return {k: v for k, v in os.environ.items() if not k.startswith("FORGEGRAPH_")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def run_forgegraph(*args: str, cwd: Path) -> str:
    """Run a short forgegraph command (migrate) and return its stdout."""
    result = subprocess.run(
        [*forgegraph_command(), *args],
        cwd=cwd,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise ServerError(
            f"forgegraph {' '.join(args)} exited with {result.returncode}: {result.stderr.strip()}"
        )
    return result.stdout


def healthz_ok(port: int, timeout: float = 1.0) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


class Server:
    """`forgegraph serve --database URL --port P`, stopped on exit of the `with`."""

    def __init__(self, database_url: str, workdir: Path, label: str) -> None:
        self.database_url = database_url
        self.workdir = workdir
        self.label = label
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.stdout_path = workdir / f"{label}.stdout"
        self.stderr_path = workdir / f"{label}.stderr"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def command(self) -> list[str]:
        return [
            *forgegraph_command(),
            "serve",
            "--database",
            self.database_url,
            "--host",
            HOST,
            "--port",
            str(self.port),
        ]

    def start(self) -> float:
        """Spawn the server and return the seconds until it was ready (/healthz 200)."""
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            started = time.perf_counter()
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.workdir,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        deadline = started + READY_TIMEOUT_SECONDS
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise ServerError(
                    f"{self.label}: server exited with {self.process.returncode} before "
                    f"it was ready; stderr:\n{self.stderr_tail()}"
                )
            if self.ready():
                return time.perf_counter() - started
            time.sleep(POLL_INTERVAL_SECONDS)
        raise ServerError(
            f"{self.label}: not ready after {READY_TIMEOUT_SECONDS:.0f} s; "
            f"stderr:\n{self.stderr_tail()}"
        )

    def env(self) -> dict[str, str]:
        return server_env()

    def ready(self) -> bool:
        """Whether the spawned server answers yet; subclasses serving other apps override it."""
        return healthz_ok(self.port)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def cpu_seconds(self) -> float | None:
        """User + system CPU of the server process so far (Linux /proc only)."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return None
        # Fields after the parenthesised command name, which may hold spaces.
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def stderr_tail(self, lines: int = 40) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            return "(no stderr captured)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty)"

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        # start_new_session made the server the leader of its own group.
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_SECONDS), (signal.SIGKILL, None)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
