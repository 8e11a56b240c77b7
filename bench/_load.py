"""Load generators: POST one GraphQL body over N keep-alive connections.

Three interchangeable generators, fastest first:
- `wrk` (C, with a Lua script that checks every response), used when on PATH;
- `raw`: asyncio streams writing one pre-encoded HTTP/1.1 request and parsing
  only what is needed of the answer (status, Content-Length, the JSON);
- `httpx`: httpx.AsyncClient. Measured here it spends ~3 ms of client CPU
  per request (raw: ~0.09 ms) and cannot drive 300 req/s; kept only to
  show how much a slow client distorts the figures.
Every response is checked (status 200, a `data` member, no `errors`) and
failures counted, warm-up included. Server and client CPU over the measured
window tell whether the server or the generator was the bottleneck.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    import httpx

HOST = "127.0.0.1"
GENERATORS = ("wrk", "raw", "httpx")
BROKEN_CONNECTION_PAUSE = 0.05
CpuProbe = Callable[[], float | None]


@dataclass(frozen=True)
class LoadResult:
    generator: str
    concurrency: int
    duration: float
    requests: int  # successful responses completed within the measured window
    checked: int  # every response checked, warm-up included
    failures: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    server_cpu_seconds: float | None
    client_cpu_seconds: float | None
    first_failure: str | None

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.duration if self.duration else 0.0

    def cpu_percent(self, seconds: float | None) -> float | None:
        return None if seconds is None or not self.duration else 100 * seconds / self.duration


def response_failure(status: int, body: bytes) -> str | None:
    """Why a response does not count as a success, or None when it does."""
    if status != 200:
        return f"HTTP {status}: {body[:300]!r}"
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return f"invalid JSON: {body[:300]!r}"
    if not isinstance(document, dict) or document.get("errors") or document.get("data") is None:
        return f"GraphQL errors: {body[:300]!r}"
    return None


def percentile(ordered: list[float], fraction: float) -> float | None:
    # Nearest rank: a figure some request actually took.
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def _client_cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


# -- asyncio generators --------------------------------------------------------


class _Tally:
    """Responses seen by all workers; latencies only for the measured window."""

    def __init__(self, measure_from: float, end: float) -> None:
        self.measure_from = measure_from
        self.end = end
        self.latencies: list[float] = []
        self.checked = 0
        self.failures = 0
        self.first_failure: str | None = None

    def record(self, started: float, finished: float, failure: str | None) -> None:
        self.checked += 1
        if failure is not None:
            self.failures += 1
            self.first_failure = self.first_failure or failure
        elif self.measure_from <= finished <= self.end:
            self.latencies.append(finished - started)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body and whether the connection stays open."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length: int | None = None
    chunked = False
    keep_alive = True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            keep_alive = b"close" not in value.lower()
    if chunked:
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await reader.readexactly(size + 2))
        await reader.readuntil(b"\r\n")  # the trailer section ends with an empty line
        return status, b"".join(part[:-2] for part in parts), keep_alive
    if length is None:
        return status, await reader.read(), False
    return status, await reader.readexactly(length), keep_alive


async def _raw_worker(port: int, request: bytes, tally: _Tally) -> None:
    writer: asyncio.StreamWriter | None = None
    try:
        while (started := time.perf_counter()) < tally.end:
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(HOST, port)
                writer.write(request)
                status, body, keep_alive = await _read_response(reader)
                failure = response_failure(status, body)
            except (
                OSError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                ValueError,
            ) as exc:
                tally.record(started, time.perf_counter(), f"connection error: {exc!r}")
                if writer is not None:
                    writer.close()
                    writer = None
                # A dead server would otherwise be hammered in a tight loop.
                await asyncio.sleep(BROKEN_CONNECTION_PAUSE)
                continue
            tally.record(started, time.perf_counter(), failure)
            if not keep_alive:
                writer.close()
                writer = None
    finally:
        if writer is not None:
            writer.close()


async def _httpx_worker(client: httpx.AsyncClient, body: bytes, tally: _Tally) -> None:
    # Imported late: httpx is a dev dependency, needed only for this generator.
    import httpx

    headers = {"content-type": "application/json"}
    while (started := time.perf_counter()) < tally.end:
        try:
            response = await client.post("/graphql", content=body, headers=headers)
        except httpx.HTTPError as exc:
            tally.record(started, time.perf_counter(), f"connection error: {exc!r}")
            await asyncio.sleep(BROKEN_CONNECTION_PAUSE)
            continue
        failure = response_failure(response.status_code, response.content)
        tally.record(started, time.perf_counter(), failure)


async def _asyncio_load(
    generator: str,
    port: int,
    body: bytes,
    concurrency: int,
    warmup: float,
    duration: float,
    server_cpu: CpuProbe,
) -> LoadResult:
    start = time.perf_counter()
    tally = _Tally(start + warmup, start + warmup + duration)
    samples: dict[str, tuple[float | None, float]] = {}

    async def sample_at(moment: float, key: str) -> None:
        await asyncio.sleep(max(0.0, moment - time.perf_counter()))
        samples[key] = (server_cpu(), _client_cpu_seconds())

    probes = [
        asyncio.create_task(sample_at(tally.measure_from, "from")),
        asyncio.create_task(sample_at(tally.end, "to")),
    ]
    if generator == "raw":
        request = (
            f"POST /graphql HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        await asyncio.gather(*(_raw_worker(port, request, tally) for _ in range(concurrency)))
    else:
        import httpx

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", limits=limits) as client:
            await asyncio.gather(*(_httpx_worker(client, body, tally) for _ in range(concurrency)))
    await asyncio.gather(*probes)

    (server_from, client_from), (server_to, client_to) = samples["from"], samples["to"]
    ordered = sorted(latency * 1000 for latency in tally.latencies)
    return LoadResult(
        generator=generator,
        concurrency=concurrency,
        duration=duration,
        requests=len(ordered),
        checked=tally.checked,
        failures=tally.failures,
        p50_ms=percentile(ordered, 0.50),
        p99_ms=percentile(ordered, 0.99),
        max_ms=ordered[-1] if ordered else None,
        server_cpu_seconds=None
        if server_from is None or server_to is None
        else server_to - server_from,
        client_cpu_seconds=client_to - client_from,
        first_failure=tally.first_failure,
    )


def run_asyncio_load(
    generator: str,
    port: int,
    body: bytes,
    *,
    concurrency: int,
    warmup: float,
    duration: float,
    server_cpu: CpuProbe,
) -> LoadResult:
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(
            _asyncio_load(generator, port, body, concurrency, warmup, duration, server_cpu)
        )


# -- wrk -------------------------------------------------------------------------

_WRK_SCRIPT = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%(body)s]==]

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  failures = 0
  first_failure = ""
end

function response(status, headers, body)
  if status ~= 200 or body:find('"errors"', 1, true) or not body:find('"data"', 1, true) then
    failures = failures + 1
    if first_failure == "" then
      first_failure = "HTTP " .. status .. ": " .. body:sub(1, 300):gsub("%%s+", " ")
    end
  end
end

function done(summary, latency, requests)
  local failed, sample = 0, ""
  for _, thread in ipairs(threads) do
    failed = failed + thread:get("failures")
    if sample == "" then sample = thread:get("first_failure") end
  end
  local e = summary.errors
  io.write(string.format("FG_RESULT %%.0f %%.0f %%.0f %%.0f %%.0f %%.0f %%.0f\\n",
    summary.requests, failed, latency:percentile(50), latency:percentile(99), latency.max,
    summary.duration, e.connect + e.read + e.write + e.timeout))
  io.write("FG_FIRST_FAILURE " .. sample .. "\\n")
end
"""
_WRK_RESULT = re.compile(r"^FG_RESULT " + " ".join([r"(\d+)"] * 7) + "$", re.MULTILINE)
_WRK_FAILURE = re.compile(r"^FG_FIRST_FAILURE ?(.*)$", re.MULTILINE)


@dataclass(frozen=True)
class _WrkRun:
    requests: int
    checked: int
    failures: int
    p50_us: int
    p99_us: int
    max_us: int
    duration_us: int
    first_failure: str | None


def _wrk(command: list[str], seconds: int) -> _WrkRun:
    done = subprocess.run(
        [*command, "--duration", f"{seconds}s"],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        stdin=subprocess.DEVNULL,
    )
    found = _WRK_RESULT.search(done.stdout)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}".strip())
    responses, failures, p50, p99, most, duration, socket_errors = map(int, found.groups())
    sample = _WRK_FAILURE.search(done.stdout)
    first = sample.group(1).strip() if sample else ""
    if socket_errors and not first:
        first = f"{socket_errors} socket errors (connect/read/write/timeout)"
    # wrk counts every response as a request; socket errors are not responses.
    return _WrkRun(
        requests=responses - failures,
        checked=responses + socket_errors,
        failures=failures + socket_errors,
        p50_us=p50,
        p99_us=p99,
        max_us=most,
        duration_us=duration,
        first_failure=first or None,
    )


def run_wrk(
    wrk: str,
    port: int,
    body: bytes,
    *,
    concurrency: int,
    warmup: float,
    duration: float,
    server_cpu: CpuProbe,
    workdir: Path,
) -> LoadResult:
    script = workdir / "graphql_post.lua"
    script.write_text(_WRK_SCRIPT % {"body": body.decode()})
    # Half the cores for wrk leaves the rest to the server it measures.
    threads = max(1, min(concurrency, (os.cpu_count() or 2) // 2))
    command = [wrk, "--threads", str(threads), "--connections", str(concurrency)]
    command += ["--timeout", "10s", "--script", str(script), f"http://{HOST}:{port}/graphql"]
    # wrk takes whole seconds.
    warm = _wrk(command, max(1, round(warmup))) if warmup > 0 else None
    seconds = max(1, round(duration))
    server_from, client_from = server_cpu(), _client_cpu_seconds(resource.RUSAGE_CHILDREN)
    run = _wrk(command, seconds)
    server_to, client_to = server_cpu(), _client_cpu_seconds(resource.RUSAGE_CHILDREN)
    measured = run.duration_us / 1e6
    return LoadResult(
        generator="wrk",
        concurrency=concurrency,
        duration=measured,
        requests=run.requests,
        checked=run.checked + (warm.checked if warm else 0),
        failures=run.failures + (warm.failures if warm else 0),
        p50_ms=run.p50_us / 1000,
        p99_ms=run.p99_us / 1000,
        max_ms=run.max_us / 1000,
        server_cpu_seconds=None
        if server_from is None or server_to is None
        else server_to - server_from,
        client_cpu_seconds=client_to - client_from,
        first_failure=run.first_failure or (warm.first_failure if warm else None),
    )
