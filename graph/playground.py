"""`GET /playground`: the GraphiQL page built from playground/ into `playground_dist/`.

The build output ships inside the package (so `pip install` needs no Node);
`make playground` rebuilds it.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

DIST = Path(__file__).with_name("playground_dist")
NOT_BUILT = (
    "The playground is not built: graph/playground_dist/index.html is missing. "
    "Run `make playground` (needs Node and npm) and restart the server.\n"
)


class _Assets(StaticFiles):
    # Vite names every asset after its content, so a browser may keep it for good.
    def file_response(self, full_path: PathLike, stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


async def page(_request: Request) -> Response:
    index = DIST / "index.html"
    if not index.is_file():
        return PlainTextResponse(NOT_BUILT, status_code=503)
    # Revalidated on every load, so a rebuilt playground shows up at once.
    return FileResponse(index, headers={"Cache-Control": "no-cache"})


def playground_routes() -> list[BaseRoute]:
    """The page at /playground and /playground/, its assets under /playground/assets/."""
    routes: list[BaseRoute] = [Route("/playground", page), Route("/playground/", page)]
    if (DIST / "assets").is_dir():  # else asset requests get a plain 404
        routes.append(Mount("/playground/assets", app=_Assets(directory=DIST / "assets")))
    return routes
