"""Print `make mutate`'s outcome per module: how many mutants each status has.

Reads `mutmut results --all true` (one `    graph.module.x_function__mutmut_N: status`
line per mutant), so it shows what the last run (or the part of it that got
done) left in mutants/. The survivors themselves: `mutmut results`, and
`mutmut show NAME` for the diff of one.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

# A mutant's name is the module, then `.x_` + function or `.xǁClassǁ` + method.
MUTANT = re.compile(r"^\s*(?P<module>[\w.]+?)\.x[_ǁ]\S*__mutmut_\d+: (?P<status>.+)$")
COLUMNS = ("killed", "survived", "timeout", "no tests", "not checked")


def results(mutmut: str) -> dict[str, Counter[str]]:
    out = subprocess.run(
        [mutmut, "results", "--all", "true"], capture_output=True, text=True, check=True
    ).stdout
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    for line in out.splitlines():
        match = MUTANT.match(line)
        if match:
            by_module[match["module"]][match["status"].strip()] += 1
    return by_module


def main() -> int:
    # mutmut sits next to the Python running this script (the project's venv).
    mutmut = str(Path(sys.executable).with_name("mutmut"))
    by_module = results(mutmut)
    if not by_module:
        print("mutate: no results in mutants/ (run `make mutate` first)")
        return 1
    others = sorted({s for c in by_module.values() for s in c} - set(COLUMNS))
    header = ("module", "mutants", *COLUMNS, *others)
    rows = [
        (module, str(sum(c.values())), *(str(c[s]) for s in (*COLUMNS, *others)))
        for module, c in sorted(by_module.items())
    ]
    total: Counter[str] = sum(by_module.values(), Counter())
    rows.append(("total", str(sum(total.values())), *(str(total[s]) for s in (*COLUMNS, *others))))
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))))
    print("survivors: `.venv/bin/mutmut results`; one diff: `.venv/bin/mutmut show NAME`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
