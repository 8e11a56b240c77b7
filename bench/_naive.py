"""The naive reference server of ../shared/bench: the design the stack invites.

strawberry resolvers, an ORM session per request and one GraphQL execution
per subscriber per event. Issue 8's query and mutation targets are ratios
against it, measured in the same run as forgegraph, so `make bench` starts
it right after the forgegraph run it is compared with.
"""

from __future__ import annotations

from _fanout_tool import SHARED_BENCH, FanoutResult, ReferenceServer
from _report import Report
from _server import server_env

NAIVE_MODULE = SHARED_BENCH / "naive_server.py"
# Its own schema (../shared/bench/README.md): the same flat query as ours,
# and a mutation whose event carries `$title` back in `record`.
NAIVE_QUERY = "{ posts(limit: 20) { id title body } }"
NAIVE_SUBSCRIPTION = 'subscription { tableChanged(table: "posts") { type record } }'
NAIVE_MUTATION = "mutation($title: String!) { insertPost(title: $title) { id } }"


def available() -> bool:
    return NAIVE_MODULE.is_file()


class NaiveServer(ReferenceServer):
    """`uvicorn naive_server:app` on a database of its own (it creates and seeds `posts`)."""

    module = "naive_server"
    # Its access log would cost it a share of every request we compare with.
    options = ("--log-level", "warning")

    def env(self) -> dict[str, str]:
        return {**server_env(), "SEED": "1", "DB_URL": self.database_url}


def report_ratio(name: str, ours: float | None, naive: float | None, unit: str, report: Report) -> None:
    """forgegraph's figure over the naive server's, both measured in this run: higher is better."""
    title = f"{name}: forgegraph / naive"
    if not ours or not naive:
        report.add(title, None, "ratio", "not computed: a run failed")
        return
    ratio = ours / naive
    report.add(title, round(ratio, 2), "ratio", f"{ours:,.0f} vs {naive:,.0f} {unit}, back to back")
    report.details.setdefault("naive ratios", {})[name] = round(ratio, 3)
    print(f"    forgegraph / naive, {name}: {ratio:.2f}x", flush=True)


def mutations_of(result: FanoutResult | None) -> float | None:
    if result is None or result.problems():
        return None
    return result.mutations_per_s
