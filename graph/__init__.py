"""forgegraph: a Hasura-dialect GraphQL API, with real-time changes, over any SQL database."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from starlette.applications import Starlette


def create_app(*args: Any, **kwargs: Any) -> Starlette:
    from graph.app import create_app as _create_app

    return _create_app(*args, **kwargs)


__all__ = ["__version__", "create_app"]
