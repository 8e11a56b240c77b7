"""The `forgegraph` command: serve, migrate, export-schema, export-types, reload, uninstall, capture.

Each flag falls back to `FORGEGRAPH_<FLAG>` in the environment, then to the
defaults in `graph.config.Settings`. User errors (bad URL, unreachable
database, unreadable file, port in use) end the process with one line on
stderr and exit code 2; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import math
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from graph.config import ENV_PREFIX, Settings, parse_origins
from graph.errors import StartupError

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.types import ASGIApp, Receive, Scope, Send

T = TypeVar("T")

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# uvicorn waits for open responses (SSE streams) this long on shutdown before
# cancelling them; the conformance runner SIGKILLs after 5 s.
GRACEFUL_SHUTDOWN_SECONDS = 3
OPEN_API_WARNING = "warning: no --permissions file: the API is open to every role"


@dataclass(frozen=True)
class Option:
    flag: str
    metavar: str
    help: str
    kind: Callable[[str], Any] = str
    expected: str = ""
    """What a valid value is, told with the error for an invalid one."""
    switch: bool = False
    """A flag without a value (`--no-capture`); its variable takes 1/true/yes/on or 0/false/no/off."""
    setting: bool = True
    """A field of graph.config.Settings; else an argument of its command alone (export-types --role)."""

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.dest.upper()


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError(f"port out of range: {value}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"must be at least 1: {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"must not be negative: {value}")
    return value


def _language(text: str) -> str:
    if text not in TYPE_LANGUAGES:
        raise ValueError(f"not a supported language: {text!r}")
    return text


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value < math.inf:  # also refuses nan
        raise ValueError(f"must be a non-negative number of seconds: {value}")
    return value


SWITCH_VALUES = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _switch(text: str) -> bool:
    try:
        return SWITCH_VALUES[text.strip().lower()]
    except KeyError:
        raise ValueError(text) from None


DATABASE = Option("--database", "URL", "SQLAlchemy async URL (default: the embedded demo SQLite)")
TYPE_LANGUAGES = ("ts",)
SERVE_OPTIONS = (
    DATABASE,
    Option("--host", "HOST", "interface to listen on (default 127.0.0.1)"),
    Option("--port", "PORT", "port to listen on (default 8000)", _port),
    Option("--broadcast", "URL", "broadcaster URL shared by server processes (default memory://)"),
    Option("--permissions", "FILE", "YAML/JSON permission rules (default: open to every role)"),
    Option("--jwt-secret", "SECRET", "HS256 secret for verifying JWTs"),
    Option("--admin-secret", "SECRET", "X-Admin-Secret value that grants the admin role, the only way past the rules"),
    Option(
        "--websocket-port", "PORT", "also serve the raw realtime protocol on ws://HOST:PORT/", _port
    ),
    Option("--workers", "N", "number of server processes (default 1)", _positive),
    Option(
        "--pool-size",
        "N",
        "PostgreSQL connections per server process, at least 1 (default 10; plus one to LISTEN "
        "with a postgres:// broadcast)",
        _positive,
        expected="a whole number of connections, at least 1",
    ),
    Option("--extend", "MODULE:ATTR", "a strawberry.Schema whose root fields join the API (e.g. app.api:schema)"),
    Option("--metadata", "FILE", "YAML names for tables, root fields, columns and relationships, and the inflection"),
    Option(
        "--schema-poll",
        "SECONDS",
        "how often to check the database's schema for changes (default 0.5; 0: only on SIGHUP and "
        "forgegraph reload)",
        _seconds,
    ),
    Option(
        "--cors-origins",
        "ORIGINS",
        "comma-separated origins whose pages may use the API, or * (default: none)",
        parse_origins,
    ),
    Option(
        "--no-capture",
        "",
        "add no triggers or tables to the database: events only for writes made through the API",
        _switch,
        expected="1, true, yes, on, 0, false, no or off",
        switch=True,
    ),
)
# The fields of graph.config.Limits, each under its own name; 0 turns a limit off.
LIMIT_OPTIONS = (
    Option("--max-depth", "N", "deepest nesting of fields in a query (default 12; 0: off)",
           _non_negative),
    Option("--max-complexity", "N", "highest estimated query cost (default 10000; 0: off)",
           _non_negative),
    Option("--max-limit", "N", "most rows a list field returns (default 0: no cap)",
           _non_negative),
    Option("--max-aliases", "N", "aliased fields in one operation (default 100; 0: off)",
           _non_negative),
    Option("--document-cache-bytes", "BYTES",
           "memory for parsed documents, and as much for query plans (default 33554432; 0: none)",
           _non_negative),
    Option("--max-body-bytes", "BYTES", "largest HTTP request body (default 1048576)",
           _positive),
    Option("--max-message-bytes", "BYTES", "largest WebSocket message (default 65536)",
           _positive),
    Option("--max-connections-per-ip", "N",
           "WebSockets plus SSE streams open from one client IP (default 0: no limit)",
           _non_negative),
    Option("--max-subscriptions-per-connection", "N",
           "subscriptions on one WebSocket or SSE stream (default 100; 0: no limit)",
           _non_negative),
    Option("--max-messages-per-second", "N",
           "client messages per WebSocket connection (default 100; 0: no limit)",
           _non_negative),
    Option("--send-queue-size", "FRAMES",
           "frames queued for one connection before it is closed as too slow (default 1000)",
           _positive),
    Option("--connection-init-timeout", "SECONDS",
           "time a graphql-ws client has to send connection_init (default 10; 0: no limit)",
           _seconds),
)
COMMANDS: dict[str, tuple[str, tuple[Option, ...]]] = {
    "serve": ("serve the GraphQL API and its realtime events", SERVE_OPTIONS + LIMIT_OPTIONS),
    "migrate": ("apply the bundled migrations (the demo schema)", (DATABASE,)),
    "export-schema": (
        "print the GraphQL SDL to stdout",
        (
            DATABASE,
            Option("--extend", "MODULE:ATTR", "a strawberry.Schema whose root fields join the API"),
            Option("--metadata", "FILE", "YAML names for tables, root fields, columns and relationships"),
        ),
    ),
    "uninstall": (
        "remove every trigger, function and table change capture added (and restore SQLite's journal mode)",
        (DATABASE,),
    ),
    "capture": (
        "pause (remove the triggers; writes are not events) or resume change capture",
        (DATABASE,),
    ),
    "export-types": (
        "print the types of every table's rows, inserts and updates as a role sees them",
        (
            Option("--lang", "LANG", "the language of the types: ts (TypeScript)", _language,
                   expected="ts", setting=False),
            Option("--role", "ROLE",
                   "the role whose view to print, as the permissions file names it "
                   "(default: the admin secret's, every table and column)", setting=False),
            DATABASE,
            Option("--permissions", "FILE", "YAML/JSON permission rules the role's view follows"),
            Option("--extend", "MODULE:ATTR",
                   "the strawberry.Schema serve is given, if the rules grant its fields"),
            Option("--metadata", "FILE", "YAML names for tables, root fields, columns and relationships"),
        ),
    ),
    "reload": (
        "re-read the schema of a running server",
        (
            Option("--url", "URL", "the server (default http://HOST:PORT of FORGEGRAPH_HOST and FORGEGRAPH_PORT, "
                   "else http://127.0.0.1:8000)"),
            Option("--admin-secret", "SECRET", "the server's admin secret, when it has one"),
        ),
    ),
}
CAPTURE_ACTIONS = ("pause", "resume")


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    # argparse prints usage plus the error on two lines; we promise one.
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see forgegraph --help)")


def build_parser() -> Parser:
    parser = Parser(
        prog="forgegraph", description="A Hasura-dialect GraphQL API for a SQL database."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, (help_text, options) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if name == "capture":
            sub.add_argument("action", choices=CAPTURE_ACTIONS, help="pause or resume")
        for option in options:
            # Values stay strings here so flags and environment variables go
            # through the same conversion and the same error message.
            if option.switch:
                sub.add_argument(
                    option.flag, action="store_const", const="1", help=f"{option.help} [env {option.env}]"
                )
                continue
            sub.add_argument(
                option.flag, metavar=option.metavar, help=f"{option.help} [env {option.env}]"
            )
    return parser


def resolve_settings(
    command: str, namespace: argparse.Namespace, environ: Mapping[str, str]
) -> Settings:
    values = _values(command, namespace, environ, settings=True)
    return Settings().with_overrides(**values)


def resolve_arguments(
    command: str, namespace: argparse.Namespace, environ: Mapping[str, str]
) -> dict[str, Any]:
    """The command's flags that are not settings (`export-types --role`) by name, given ones only."""
    return _values(command, namespace, environ, settings=False)


def _values(
    command: str, namespace: argparse.Namespace, environ: Mapping[str, str], *, settings: bool
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for option in COMMANDS[command][1]:
        if option.setting is not settings:
            continue
        raw = getattr(namespace, option.dest, None)
        source = option.flag
        if raw is None:
            raw = environ.get(option.env) or None
            source = option.env
        if raw is None:
            continue
        try:
            values[option.dest] = option.kind(raw)
        except ValueError:
            expected = f" (expected {option.expected})" if option.expected else ""
            raise UsageError(f"invalid value for {source}: {raw!r}{expected}") from None
    return values


def check_settings(settings: Settings) -> None:
    if settings.websocket_port is not None and settings.websocket_port == settings.port != 0:
        raise UsageError(f"--websocket-port must differ from --port ({settings.port})")
    if settings.permissions is not None:
        try:
            with open(settings.permissions, "rb"):
                pass
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise StartupError(
                f"cannot read permissions file {settings.permissions}: {reason}"
            ) from None


# -- commands ----------------------------------------------------------------


async def _started_app(settings: Settings, *, realtime: bool = True) -> Starlette:
    # Imported late: migrate must not need the server stack loaded.
    from graph.app import create_app

    # runtime.start() also creates the demo database when no --database is given.
    app = create_app(settings)
    await app.state.runtime.start(realtime=realtime)
    return app


def bind_sockets(settings: Settings) -> list[socket.socket]:
    # Bind before touching the database: a port in use should fail fast and
    # leave no demo database behind.
    sockets = [bind_socket(settings.host, settings.port)]
    try:
        if settings.websocket_port is not None:
            sockets.append(bind_socket(settings.host, settings.websocket_port))
    except BaseException:
        sockets[0].close()
        raise
    return sockets


async def serve(settings: Settings) -> None:
    sockets = bind_sockets(settings)
    try:
        await serve_on(settings, sockets, announce=True)
    finally:
        for sock in sockets:
            sock.close()


def serve_workers(settings: Settings) -> int:
    from graph.workers import supervise

    sockets = bind_sockets(settings)
    try:
        # Check everything once, here, so a user error is one line before any fork.
        _run(_check_startup(settings))
        _announce(settings, sockets)
        if settings.broadcast.startswith("memory://"):
            print(
                "warning: --workers with memory:// broadcast: workers see each other's "
                "changes by polling (up to 200 ms); use --broadcast redis://...",
                file=sys.stderr,
            )

        def work() -> int:
            _run(serve_on(settings, sockets, announce=False))
            return 0

        return supervise(settings.workers, work)
    finally:
        for sock in sockets:
            sock.close()


async def _check_startup(settings: Settings) -> None:
    app = await _started_app(settings)
    await app.state.runtime.stop()


async def serve_on(settings: Settings, sockets: list[socket.socket], *, announce: bool) -> None:
    import uvicorn

    from graph.delivery.wire import PROTOCOL
    from graph.gc_pace import pace_for_serving

    # A SIGHUP while starting (another worker already serves) is kept for when we do.
    hangups: list[int] = []
    previous = signal.signal(signal.SIGHUP, lambda signum, _frame: hangups.append(signum))
    try:
        app = await _started_app(settings)
    except BaseException:
        signal.signal(signal.SIGHUP, previous)
        raise
    pace_for_serving()
    try:
        if announce:
            _announce(settings, sockets)
        asgi = app if len(sockets) == 1 else websocket_port_app(app, _port_of(sockets[1]))
        config = uvicorn.Config(
            asgi,
            lifespan="on",
            log_level="warning",
            access_log=False,
            ws=PROTOCOL,  # uvicorn's websockets-sansio, writable by the fan-out directly
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            ws_max_size=settings.limits.max_message_bytes,
        )
        with _signals_end_serving(), _sighup_reloads(app.state.runtime, bool(hangups)):
            await uvicorn.Server(config).serve(sockets=sockets)
    finally:
        await app.state.runtime.stop()


async def export_schema(settings: Settings) -> None:
    # Printing the schema must not install change capture into the database.
    app = await _started_app(settings, realtime=False)
    try:
        sdl = app.state.runtime.schema_sdl()
    finally:
        await app.state.runtime.stop()
    sys.stdout.write(sdl if sdl.endswith("\n") else sdl + "\n")


async def export_types(settings: Settings, *, lang: str | None = None, role: str | None = None) -> None:
    """Print the types of the role's view (None: the admin secret's), read from its GraphQL schema."""
    from graph.export_types import export_types as render

    if lang is None:
        raise UsageError(f"export-types needs --lang ({', '.join(TYPE_LANGUAGES)})")
    check_settings(settings)
    app = await _started_app(settings, realtime=False)
    try:
        runtime = app.state.runtime
        if role is not None and settings.permissions is None:
            print(f"warning: no --permissions file: role {role!r} sees every table", file=sys.stderr)
        elif role is not None and role not in runtime.permissions.roles():
            print(
                f"warning: {settings.permissions} names no role {role!r}: it sees no table",
                file=sys.stderr,
            )
        text = render(runtime.schemas.executor(role).schema, runtime.model)
    finally:
        await app.state.runtime.stop()
    sys.stdout.write(text)


async def migrate(settings: Settings) -> None:
    from graph.migrate import display_url
    from graph.migrate import migrate as run_migrations

    url = display_url(settings.database_url)
    revisions = await run_migrations(settings.database_url)
    if revisions.changed:
        before = revisions.before or "an empty schema"
        print(f"migrated {url} from {before} to revision {revisions.after}")
    else:
        print(f"{url} is already at the latest revision ({revisions.after})")


async def uninstall(settings: Settings) -> None:
    from graph.events.admin import uninstall as remove_capture

    print(await remove_capture(settings.database_url))


async def capture(settings: Settings, action: str) -> None:
    from graph.events.admin import pause, resume

    print(await (pause if action == "pause" else resume)(settings.database_url))


def _port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def _announce(settings: Settings, sockets: list[socket.socket]) -> None:
    host, port = settings.host, _port_of(sockets[0])
    lines = [
        endpoint_url("http", host, port, "/graphql"),
        endpoint_url("ws", host, port, "/graphql"),
        endpoint_url("ws", host, port, "/realtime"),
        endpoint_url("http", host, port, "/realtime/sse"),
        endpoint_url("http", host, port, "/healthz"),
        endpoint_url("http", host, port, "/playground"),
    ]
    if len(sockets) > 1:
        lines.append(endpoint_url("ws", host, _port_of(sockets[1]), "/"))
    print("\n".join(lines), flush=True)
    if settings.permissions is None:
        print(OPEN_API_WARNING, file=sys.stderr, flush=True)


@contextmanager
def _sighup_reloads(runtime: Any, pending: bool) -> Iterator[None]:
    """SIGHUP re-reads the schema (graph.runtime.Runtime.request_reload), as `forgegraph reload` does.

    `pending`: one arrived while the server was starting, perhaps after it reflected.
    """
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, runtime.request_reload)
    if pending:
        runtime.request_reload()
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)


@contextmanager
def _signals_end_serving() -> Iterator[None]:
    # uvicorn handles SIGINT/SIGTERM while serving, then restores the previous
    # handlers and re-raises the signal it caught. With the default handlers
    # that re-raise would kill us (SIGTERM) or raise KeyboardInterrupt (SIGINT)
    # before the runtime is stopped; a no-op handler absorbs it.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# -- sockets -----------------------------------------------------------------


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves, so a busy port is a one-line error."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise StartupError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(f"port {port} on {host} is already in use") from None
        if exc.errno == errno.EACCES:
            raise StartupError(f"no permission to listen on port {port} on {host}") from None
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def endpoint_url(scheme: str, host: str, port: int, path: str) -> str:
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}{path}"


def websocket_port_app(app: ASGIApp, websocket_port: int) -> ASGIApp:
    """Serve the raw realtime protocol at `/` of --websocket-port, as ForgeBase does.

    Both ports are served by one uvicorn server (one lifespan, one set of
    signal handlers); a WebSocket to `/` on the extra port is routed to
    `/realtime`, keeping its query string (`?token=`).
    """

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "websocket"
            and scope.get("path") == "/"
            and (scope.get("server") or (None, None))[1] == websocket_port
        ):
            scope = {**scope, "path": "/realtime", "raw_path": b"/realtime"}
        await app(scope, receive, send)

    return dispatch


# -- entry point -------------------------------------------------------------


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coroutine)


def _fail(message: str) -> int:
    print(f"forgegraph: error: {' '.join(message.split())}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def reload(namespace: argparse.Namespace, environ: Mapping[str, str]) -> None:
    from graph.reload import request_reload

    url = namespace.url or environ.get(ENV_PREFIX + "URL")
    if not url:
        host = environ.get(ENV_PREFIX + "HOST") or Settings.host
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        raw_port = environ.get(ENV_PREFIX + "PORT") or str(Settings.port)
        try:
            port = _port(raw_port)
        except ValueError:
            raise UsageError(f"invalid value for {ENV_PREFIX}PORT: {raw_port!r}") from None
        url = endpoint_url("http", host, port, "")
    secret = namespace.admin_secret or environ.get(ENV_PREFIX + "ADMIN_SECRET") or None
    answer = request_reload(url, secret)
    changed = "changed" if answer.get("changed") else "unchanged"
    print(f"reloaded {url}: schema {changed}, {answer.get('tables')} tables")
    for rule in answer.get("broken_rules") or ():  # type: ignore[attr-defined]
        print(f"denied after a schema change: {rule}", file=sys.stderr)


COMMAND_FUNCTIONS: dict[str, Callable[[Settings], Coroutine[Any, Any, None]]] = {
    "serve": serve,
    "migrate": migrate,
    "export-schema": export_schema,
    "uninstall": uninstall,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        namespace = parser.parse_args(argv)
        if namespace.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        if namespace.command == "reload":
            reload(namespace, os.environ)
            return 0
        settings = resolve_settings(namespace.command, namespace, os.environ)
        if namespace.command == "serve":
            check_settings(settings)
            if settings.workers > 1:
                return serve_workers(settings)
        if namespace.command == "export-types":
            _run(export_types(settings, **resolve_arguments(namespace.command, namespace, os.environ)))
            return 0
        if namespace.command == "capture":
            _run(capture(settings, namespace.action))
        else:
            _run(COMMAND_FUNCTIONS[namespace.command](settings))
    except (UsageError, StartupError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return 0
