"""`POST /admin/reload` and `forgegraph reload`: re-read the schema of a running server on demand.

The command finds the server as a client does, by URL (`--url`, default the
address `serve` listens on by default, or `FORGEGRAPH_HOST`/`FORGEGRAPH_PORT`),
and proves itself with the admin secret when the server has one; a server
without an admin secret takes the request from its own host only. Under
`--workers N` the worker that answers tells the supervisor, which passes a
SIGHUP to every worker. `kill -HUP <pid>` does the same without HTTP.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

from starlette.responses import JSONResponse

from graph import workers
from graph.auth import ADMIN_SECRET_HEADER
from graph.errors import InvalidJWT, StartupError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from starlette.requests import Request

    from graph.runtime import Runtime

RELOAD_PATH = "/admin/reload"
RELOAD_TIMEOUT_SECONDS = 60


def _local(request: Request) -> bool:
    host = request.client.host if request.client is not None else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def reload_endpoint(runtime: Runtime) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def reload(request: Request) -> JSONResponse:
        secret = request.headers.get(ADMIN_SECRET_HEADER)
        if runtime.authenticator.admin_secret:
            try:
                allowed = runtime.authenticator.is_admin_secret(secret)
            except InvalidJWT as error:
                return JSONResponse({"error": error.message}, status_code=403)
            if not allowed:
                return JSONResponse({"error": "send the admin secret in X-Admin-Secret"}, status_code=401)
        elif not _local(request):
            return JSONResponse({"error": "a server without an admin secret reloads for its own host only"},
                                status_code=403)
        try:
            changed = await runtime.reload("forgegraph reload")
        except Exception as error:  # noqa: BLE001 - told to the caller; the previous schema still serves
            return JSONResponse({"error": f"re-reading the schema failed: {error}"}, status_code=500)
        if workers.supervisor is not None:
            os.kill(workers.supervisor, signal.SIGHUP)  # the other workers follow
        generation = runtime.generation
        return JSONResponse({
            "changed": changed,
            "generation": generation.number,
            "tables": len(generation.model.tables),
            "broken_rules": list(generation.broken_rules),
        })

    return reload


def request_reload(url: str, admin_secret: str | None) -> dict[str, object]:
    """Ask the server at `url` to re-read its schema; its answer, or StartupError saying why not."""
    headers = {ADMIN_SECRET_HEADER: admin_secret} if admin_secret else {}
    target = url.rstrip("/") + RELOAD_PATH
    request = urllib.request.Request(target, data=b"", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=RELOAD_TIMEOUT_SECONDS) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as error:
        try:
            reason = json.loads(error.read()).get("error") or error.reason
        except ValueError:
            reason = error.reason
        raise StartupError(f"{target}: {error.code} {reason}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise StartupError(f"cannot reach a server at {url}: {reason}") from None
