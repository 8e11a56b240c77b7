"""Data flows one way: a module imports nothing from a later layer (pure, reads the sources).

Every import counts, whatever runs it: module level, inside a function, and
under `if TYPE_CHECKING:` (a type-only import of a later layer is the same
dependency, postponed). `LAYERS` is the one table of the order; a module of
graph/ that no entry names is not checked yet.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

GRAPH = Path(__file__).resolve().parent.parent / "graph"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("graph.config", "graph.errors", "graph._seams"),
    # To come, in this order (STYLE.md, habit 2): catalog/ before rules/, then
    # schema/, between rules/ and dialect/.
    ("graph.rules",),
    # The user's strawberry schema merged into the generated ones: shapes only, no connection.
    ("graph.extend",),
    # The one owner of the connections: nothing before it opens one.
    ("graph.dialect",),
    # It runs its statements on the dialect's connections (reads, driver, SQL functions).
    ("graph.compile",),
    ("graph.execute",),
    ("graph.events",),
    # It builds the event side, and delivery's handlers are given it.
    ("graph.runtime", "graph.generation", "graph.schema_watch"),
    ("graph.delivery",),
    ("graph.http", "graph.cors", "graph.playground", "graph.app", "graph.cli", "graph.workers", "graph.__main__", "graph.gc_pace",
     "graph.reload"),
)
"""Earliest first. A module may import its own layer and earlier ones; an entry covers its submodules."""


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (length of the entry, layer): the longest entry wins
    for index, layer in enumerate(LAYERS):
        for entry in layer:
            if (module == entry or module.startswith(entry + ".")) and (best is None or len(entry) > best[0]):
                best = (len(entry), index)
    return None if best is None else best[1]


def module_name(path: Path) -> str:
    parts = path.relative_to(GRAPH.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(module: str, source: str, *, package: bool = False) -> set[str]:
    """Every module of graph that `source` (the text of `module`) imports, wherever the import is."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if package else 0)]
                base = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                base = node.module or ""
            names.add(base)
            # `from graph import app` imports the module graph.app.
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in names if name == "graph" or name.startswith("graph.")}


def later_imports(module: str, source: str, *, package: bool = False) -> list[str]:
    """The imports in `source` of a layer after `module`'s own."""
    own = layer_of(module)
    if own is None:
        return []
    return sorted(
        name
        for name in imported(module, source, package=package)
        if (other := layer_of(name)) is not None and other > own
    )


def sources() -> list[Path]:
    return sorted(path for path in GRAPH.rglob("*.py") if "playground_dist" not in path.parts)


def test_no_module_imports_a_later_layer() -> None:
    found = {
        module_name(path): names
        for path in sources()
        if (names := later_imports(module_name(path), path.read_text(), package=path.name == "__init__.py"))
    }
    assert found == {}


def test_every_entry_of_the_table_is_a_module_of_graph() -> None:
    """A renamed or moved module must not leave the table checking nothing."""
    modules = {module_name(path) for path in sources()}
    entries = [entry for layer in LAYERS for entry in layer]
    assert len(entries) == len(set(entries))
    assert [entry for entry in entries if entry not in modules] == []


@pytest.mark.parametrize(
    "source",
    [
        "from graph.delivery.outbox import Outbox\n",
        "import graph.delivery.message\n",
        "from graph import app\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from graph.delivery.outbox import Outbox\n",
        "def later() -> None:\n    from graph.cli import main\n",
        "from ..delivery import wire\n",
    ],
)
def test_an_import_of_a_later_layer_is_found_however_it_is_written(source: str) -> None:
    assert later_imports("graph.events.hub", source) != []


@pytest.mark.parametrize(
    "source",
    [
        "from graph.events.change import ChangeEvent\n",
        "from graph.config import Capture\n",
        "from . import change\n",
        "from graph.model import Table\n",  # not placed yet
        "import graphql\n",
    ],
)
def test_an_import_of_the_same_or_an_earlier_layer_is_allowed(source: str) -> None:
    assert later_imports("graph.events.hub", source) == []

