"""Run a parser in another process under a time limit, so a pathological file cannot hang the app.

One worker process, started on first use and reused for every file after; on a timeout (or a
crash) it is killed and the next file gets a fresh one. The worker is a fresh interpreter that
imports only the loaders: a forked child would inherit the parent's torch threads mid-lock, and
multiprocessing's "spawn" re-runs the parent's main script in the child, which under Streamlit
is the whole app. signal.alarm is no option either: Streamlit runs scripts outside the main
thread.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

import rag
from rag.loaders.errors import LoaderError

T = TypeVar("T")

_START_TIMEOUT_S = 120.0  # a fresh interpreter importing pypdf on a busy machine; not the file's
_ROOT = str(Path(rag.__file__).resolve().parent.parent)  # where the worker finds `rag`
_lock = threading.Lock()  # one worker: threads (Streamlit sessions) take turns
_worker: _Worker | None = None


def run_limited(fn: Callable[..., T], args: tuple, source: str, timeout_s: float) -> T:
    """`fn(*args)` in the worker: its result, or the exception it raised. A LoaderError naming
    `source` when it runs longer than `timeout_s` or the worker dies (a crash, the OS's OOM kill).
    Starting a worker does not count against the limit."""
    global _worker
    with _lock:
        if _worker is None:
            _worker = _Worker(source)
        try:
            outcome, value = _worker.run(fn, args, timeout_s)
        except BaseException as exc:  # even ^C: a worker left mid-job would answer the next call
            exitcode = _worker.stop()
            _worker = None
            if isinstance(exc, TimeoutError):
                raise LoaderError(
                    source, f"parsing took longer than the {timeout_s:g} s time limit"
                ) from None
            if isinstance(exc, (EOFError, OSError)):
                raise LoaderError(
                    source, f"the parser process died (exit code {exitcode})"
                ) from exc
            raise
    if outcome == "raised":
        raise value
    return value


class _Worker:
    def __init__(self, source: str) -> None:
        from_parent, to_worker = os.pipe()  # (read end, write end)
        from_worker, to_parent = os.pipe()
        self._outbox = Connection(to_worker, readable=False)
        self._inbox = Connection(from_worker, writable=False)
        code = (f"import sys; sys.path.insert(0, {_ROOT!r}); "
                f"from rag.loaders.worker import serve; serve({from_parent}, {to_parent})")
        try:
            # its own session: ^C in a terminal reaches the parent, which then stops the worker
            self._process = subprocess.Popen(
                [sys.executable, "-c", code], pass_fds=(from_parent, to_parent),
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        except BaseException:
            self._outbox.close()
            self._inbox.close()
            raise
        finally:  # the worker's ends live in the worker only, so its death reads as EOF here
            os.close(from_parent)
            os.close(to_parent)
        try:
            ready = self._inbox.poll(_START_TIMEOUT_S) and self._inbox.recv() == "ready"
        except EOFError:
            ready = False
        if not ready:
            exitcode = self.stop()
            raise LoaderError(source, f"the parser process did not start (exit code {exitcode})")

    def run(self, fn: Callable[..., Any], args: tuple, timeout_s: float) -> tuple[str, Any]:
        self._outbox.send((fn, args))
        if not self._inbox.poll(timeout_s):
            raise TimeoutError
        return self._inbox.recv()

    def stop(self) -> int | None:
        self._process.kill()
        self._process.wait()
        self._outbox.close()
        self._inbox.close()
        return self._process.returncode


def serve(from_parent: int, to_parent: int) -> None:
    """The worker's loop: a call in, its outcome out, until the parent closes its end."""
    inbox = Connection(from_parent, writable=False)
    outbox = Connection(to_parent, readable=False)
    outbox.send("ready")
    while True:
        try:
            fn, args = inbox.recv()
        except EOFError:
            return
        try:
            outbox.send(("returned", fn(*args)))
        except Exception as exc:
            outbox.send(("raised", exc))
