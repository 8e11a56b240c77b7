"""`serve --workers N`: N server processes sharing the listening sockets.

The parent binds the sockets and checks the configuration once (so user
errors are one line, before anything forks), then forks the workers and
supervises them: SIGINT/SIGTERM/SIGHUP go to every worker, and a worker that dies
unexpectedly is replaced. Each worker is a complete server reading the
shared change log (graph/events/capture.py), so every subscriber gets every event
whichever worker took the mutation.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable

# A worker that dies this soon after starting is not restarted in a loop.
RESTART_BACKOFF_SECONDS = 1.0

supervisor: int | None = None
"""In a worker, the supervising process's pid: a SIGHUP to it re-reads every worker's schema."""


def supervise(count: int, work: Callable[[], int]) -> int:
    """Run `work` in `count` forked processes until a signal ends them; the worst exit code."""
    stopping = False
    children: dict[int, float] = {}

    def fork() -> None:
        global supervisor
        pid = os.fork()
        if pid == 0:
            supervisor = os.getppid()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            # Until the worker's loop takes it (a reload): a SIGHUP while starting must not end it.
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            code = 1
            try:
                code = work()
            finally:
                os._exit(code)
        children[pid] = time.monotonic()

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM if signum == signal.SIGTERM else signal.SIGINT)
            except ProcessLookupError:
                pass

    def reload(_signum: int, _frame: object) -> None:
        for pid in children:
            try:
                os.kill(pid, signal.SIGHUP)
            except ProcessLookupError:
                pass

    hangup = signal.signal(signal.SIGHUP, reload)
    for _ in range(count):
        fork()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous[signal.SIGHUP] = hangup
    worst = 0
    try:
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            started = children.pop(pid, None)
            if started is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            if stopping:
                worst = max(worst, code if code > 0 else 0)
                continue
            print(f"forgegraph: worker {pid} exited with {code}; starting another", file=sys.stderr)
            time.sleep(max(0.0, RESTART_BACKOFF_SECONDS - (time.monotonic() - started)))
            fork()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return worst
