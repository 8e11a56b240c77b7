"""The collector's pace for serving (graph.gc_pace), checked in a process of its own: it is process-wide."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHECK = """
import gc
from graph.gc_pace import YOUNG, pace_for_serving
kept = [[n] for n in range(1000)]  # built before serving: frozen, never walked by a full collection
pace_for_serving()
assert gc.get_threshold()[0] == YOUNG, gc.get_threshold()
assert gc.get_freeze_count() >= len(kept), gc.get_freeze_count()
print("ok")
"""


def test_serving_freezes_what_start_up_built_and_widens_the_young_generation() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"

