"""`GET /metrics`: what a realtime server is doing, in the Prometheus text format.

Each app owns a `CollectorRegistry` (not prometheus_client's global one, so
that many apps in one process, as in the tests, count apart). The hot paths
only add to plain integers (`TransportMeter`, `CaptureMeter`), once per burst
rather than per frame; gauges (connections, subscriptions, send queues) are
computed from the live connections when scraped, so they cost nothing between
scrapes and can never drift. Labels are transports and operation kinds: a
fixed handful, never a subscriber, table or user.

With `--workers N` every worker process has its own registry: a scrape
reaches one worker (whichever accepts the connection) and reports that
worker's figures. The endpoint exposes counts and timings only, no row data,
so it is served without authentication, like /healthz.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.responses import Response

if TYPE_CHECKING:
    from starlette.requests import Request

# The text format every Prometheus server reads (prometheus_client's default
# content type is now the 1.0.0 one, which older scrapers do not all accept).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TRANSPORTS = ("graphql-transport-ws", "graphql-ws", "forgebase", "sse")
OPERATION_TRANSPORTS = ("http", "graphql-transport-ws", "graphql-ws")
"""Where queries and mutations are sent (the raw protocol and SSE only deliver events)."""
OPERATIONS = ("query", "mutation")
PATHS = ("compiled",)
"""What answered an operation: always the compiled path now; the label stays for dashboards that read it."""


class Queue(Protocol):
    @property
    def waiting(self) -> int: ...


class Observed(Protocol):
    """What a scrape reads from each live connection (WebSocket or SSE stream)."""

    @property
    def transport(self) -> str: ...

    @property
    def subscribed(self) -> int:
        """Its subscriptions of every kind: events, live queries, streams."""
        ...

    @property
    def outbox(self) -> Queue: ...


@dataclass
class TransportMeter:
    """Counts added by one transport's send queues."""

    delivered: int = 0
    """Event frames written to subscribers' sockets (protocol messages are not counted)."""
    slow_consumers_closed: int = 0


@dataclass
class CaptureMeter:
    """Counts added by the change-capture loop."""

    captured: int = 0
    """Events read from the change log."""
    published: int = 0
    """Wake-ups published to the broadcast backend (at most one per batch read: coalesced)."""
    failed: int = 0
    """Changes that could not be turned into events (skipped, so the log moves on)."""
    unconvertible_values: int = 0
    """Values delivered as stored because they do not fit their column's declared type."""


@dataclass
class LiveMeter:
    """Counts added by the live queries (graph.delivery.live)."""

    refreshes: int = 0
    """Refreshes of a family (document and role): one batched answer of its dirty groups."""
    answers: int = 0
    """Group answers those refreshes computed (one per variable set and session values)."""


class Metrics:
    def __init__(self, connections: Collection[Observed]) -> None:
        self.registry = CollectorRegistry()
        self.capture = CaptureMeter()
        self.live = LiveMeter()
        self.transports = {name: TransportMeter() for name in TRANSPORTS}
        # Every combination from the start, so that a rate over any of them starts at 0.
        self.operations: dict[tuple[str, str, str], int] = {
            (operation, path, transport): 0
            for operation in OPERATIONS
            for path in PATHS
            for transport in OPERATION_TRANSPORTS
        }
        self.request_duration = Histogram(
            "forgegraph_http_request_duration_seconds",
            "Time to answer POST/GET /graphql, by operation kind and HTTP status.",
            ("operation", "status"),
            registry=self.registry,
        )
        # Each (operation, status) child once: `labels` validates and locks on every call.
        self._durations: dict[tuple[str, int], Histogram] = {}
        self.registry.register(_Live(self, connections))
        ProcessCollector(registry=self.registry)

    def transport(self, name: str) -> TransportMeter:
        return self.transports[name]

    def count_operation(self, operation: str, transport: str) -> None:
        """One query or mutation answered (graph.execute), whatever its outcome."""
        self.operations[(operation, PATHS[0], transport)] += 1

    def observe_request(self, operation: str, status: int, started: float) -> None:
        """Record one /graphql request that began at `started` (time.perf_counter())."""
        elapsed = time.perf_counter() - started
        child = self._durations.get((operation, status))
        if child is None:
            child = self._durations[(operation, status)] = self.request_duration.labels(operation, str(status))
        child.observe(elapsed)

    async def handle(self, _request: Request) -> Response:
        # Async on purpose: the scrape reads the connections on the event loop
        # thread that changes them, never from a thread pool.
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE)


class _Live:
    """The figures read at scrape time: counters from the meters, gauges from the connections."""

    def __init__(self, metrics: Metrics, connections: Collection[Observed]) -> None:
        self.metrics = metrics
        self.connections = connections

    def describe(self) -> Iterator[Metric]:
        return self._families()

    def collect(self) -> Iterator[Metric]:
        return self._families(list(self.connections))

    def _families(self, connections: list[Observed] | None = None) -> Iterator[Metric]:
        capture = self.metrics.capture
        yield CounterMetricFamily(
            "forgegraph_events_captured", "Change events read from the change log.",
            value=capture.captured,
        )
        yield CounterMetricFamily(
            "forgegraph_events_published",
            "Wake-ups published to the --broadcast backend, one per batch of events read "
            "(none with memory://, which reaches only this process).",
            value=capture.published,
        )
        yield CounterMetricFamily(
            "forgegraph_events_failed",
            "Changes that could not be turned into events (a corrupt log row, a filter or renderer "
            "that raised): logged with their cursor and skipped, so later ones still flow.",
            value=capture.failed,
        )
        yield CounterMetricFamily(
            "forgegraph_events_unconvertible_values",
            "Values delivered as stored because they do not fit their column's declared type.",
            value=capture.unconvertible_values,
        )
        live = self.metrics.live
        yield CounterMetricFamily(
            "forgegraph_live_query_refreshes",
            "Live-query refreshes: one per document and role whose answers a commit may change, "
            "each one batched statement per plan, whatever the number of its subscribers.",
            value=live.refreshes,
        )
        yield CounterMetricFamily(
            "forgegraph_live_query_answers",
            "Answers those refreshes computed: one per distinct variables and session values.",
            value=live.answers,
        )
        operations = CounterMetricFamily(
            "forgegraph_operations",
            "Queries and mutations answered, by operation kind, by what answered them "
            "(always compiled: the compiled path) and by transport.",
            labels=("operation", "path", "transport"),
        )
        for labels, value in self.metrics.operations.items():
            operations.add_metric(labels, value)
        yield operations
        counts = dict.fromkeys(TRANSPORTS, 0)
        subscriptions = dict.fromkeys(TRANSPORTS, 0)
        queued = dict.fromkeys(TRANSPORTS, 0)
        deepest = dict.fromkeys(TRANSPORTS, 0)
        for connection in connections or ():
            name = connection.transport
            depth = connection.outbox.waiting  # held back by a replay too
            counts[name] += 1
            subscriptions[name] += connection.subscribed
            queued[name] += depth
            deepest[name] = max(deepest[name], depth)
        meters = self.metrics.transports
        yield _by_transport(
            CounterMetricFamily, "forgegraph_events_delivered",
            "Event frames written to subscribers, by transport.",
            {name: meter.delivered for name, meter in meters.items()},
        )
        yield _by_transport(
            CounterMetricFamily, "forgegraph_slow_consumers_closed",
            "Connections closed because their send queue filled up (1013 on WebSockets).",
            {name: meter.slow_consumers_closed for name, meter in meters.items()},
        )
        yield _by_transport(
            GaugeMetricFamily, "forgegraph_connections",
            "Open WebSocket connections and SSE streams, by transport.", counts,
        )
        yield _by_transport(
            GaugeMetricFamily, "forgegraph_subscriptions",
            "Live subscriptions (tableChanged, live queries, t_stream), by transport (an SSE stream has one per table).",
            subscriptions,
        )
        yield _by_transport(
            GaugeMetricFamily, "forgegraph_send_queue_depth",
            "Frames waiting in send queues (or held back by a replay), summed over the connections of a transport.", queued,
        )
        yield _by_transport(
            GaugeMetricFamily, "forgegraph_send_queue_depth_max",
            "Frames waiting in the fullest send queue of a transport.", deepest,
        )


def _by_transport(
    kind: type[CounterMetricFamily] | type[GaugeMetricFamily],
    name: str,
    documentation: str,
    values: dict[str, int],
) -> Metric:
    family = kind(name, documentation, labels=("transport",))
    for transport, value in values.items():
        family.add_metric((transport,), value)
    return family
