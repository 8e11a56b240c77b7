"""The figures of a run: collected, printed as one table, written as JSON."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

Value = float | int | str


@dataclass(frozen=True)
class Figure:
    name: str
    value: Value
    unit: str
    settings: str


@dataclass
class Report:
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, value: Value | None, unit: str, settings: str) -> None:
        self.figures.append(Figure(name, "n/a" if value is None else value, unit, settings))

    def note(self, text: str) -> None:
        print(f"  note: {text}", flush=True)
        self.notes.append(text)

    def error(self, text: str) -> None:
        print(f"  ERROR: {text}", file=sys.stderr, flush=True)
        self.errors.append(text)


def _shown(value: Value) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if value < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return value


def print_table(report: Report) -> None:
    rows = [("figure", "value", "unit", "settings")]
    rows += [(f.name, _shown(f.value), f.unit, f.settings) for f in report.figures]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    print()
    for i, (name, value, unit, settings) in enumerate(rows):
        print(f"{name:<{widths[0]}}  {value:>{widths[1]}}  {unit:<{widths[2]}}  {settings}")
        if i == 0:
            print("  ".join("-" * w for w in widths))


def write_json(report: Report, header: dict[str, Any], path: Path) -> None:
    document = {
        **header,
        "figures": [asdict(f) for f in report.figures],
        "details": report.details,
        "notes": report.notes,
        "errors": report.errors,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
