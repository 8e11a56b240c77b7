"""`python -m graph` is the `forgegraph` command."""

from __future__ import annotations

from graph.cli import main

raise SystemExit(main())
