"""Real servers for tests: start a process, wait until it answers, always stop it."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

PORTS_START, PORTS_END = 20000, 32768  # below Linux's default ephemeral ports
_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on right now, for a server a test is about to start. Taken below
    the kernel's ephemeral range (32768 and up), so no client socket can take it before the
    server binds it, and from a block of its own for each pytest-xdist worker, so two workers
    never pick the same one; never the same twice in one process."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    span = (PORTS_END - PORTS_START) // workers
    low = PORTS_START + worker * span
    while True:
        port = random.randrange(low, low + span)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:  # taken by something else on the machine
                continue
        _handed_out.add(port)
        return port


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without the RAG_/OPENAI_ settings of whoever runs the tests, so a child
    process sees only what the test sets; unbuffered, so its lines arrive as they are printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_"))}
    env.update(HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", **(extra or {}))
    return env


def clear_settings_env(patch: pytest.MonkeyPatch) -> None:
    """The same for an engine in this process: none of the runner's RAG_/OPENAI_ settings."""
    for name in list(os.environ):
        if name.startswith(("RAG_", "OPENAI_")):
            patch.delenv(name)


def log_tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def streamlit_command(port: int | str) -> list[str]:
    """`streamlit run` of the app on 127.0.0.1:`port`, headless, as the browser tests start it."""
    return [
        sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
        "--server.port", str(port), "--server.address", "127.0.0.1",
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",  # watching the repo (and .venv) floods inotify
    ]  # fmt: skip


@contextmanager
def running_server(
    command: Sequence[str],
    *,
    ready_url: str,
    log: Path,
    timeout_s: float = 60,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[subprocess.Popen]:
    """Until `ready_url` answers 200; a process that dies or stays silent fails the test with
    its log tail. Output goes to a file: an unread pipe fills and blocks the server."""
    name = Path(command[0]).name if len(command) < 3 else " ".join(command[1:3])
    with log.open("wb") as out:
        server = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if server.poll() is not None:
                pytest.fail(f"{name} exited with {server.returncode}:\n{log_tail(log)}")
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{name} did not answer within {timeout_s:g} s:\n{log_tail(log)}")
            time.sleep(0.25)
        yield server
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


class HeldFile:
    """A named pipe in place of a real file, for a process that reads its files one after
    another (as `python -m rag ingest` does): the process stops at this file until `release`
    writes the original's bytes into the pipe, so the test, not the scheduler, decides when it
    goes on. Same name and bytes as the original, so the same document is indexed."""

    def __init__(self, original: Path, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.original = original
        self.path = folder / original.name
        os.mkfifo(self.path)
        self._writer: threading.Thread | None = None

    @property
    def released(self) -> bool:
        return self._writer is not None

    def release(self) -> None:
        """In a thread: opening a pipe waits for its reader, and a large file fills the pipe."""

        def write() -> None:
            try:
                with self.path.open("wb") as pipe:
                    pipe.write(self.original.read_bytes())
            except OSError:  # the reader died: its exit code and log fail the test
                pass

        self._writer = threading.Thread(target=write, name=f"feed {self.path.name}", daemon=True)
        self._writer.start()

    def close(self) -> None:
        """Unblock a writer whose reader never came or went away (a process that failed)."""
        if self._writer is None:
            return
        if self._writer.is_alive():
            try:  # a reader that opens and leaves: the writer's open returns, its write fails
                os.close(os.open(self.path, os.O_RDONLY | os.O_NONBLOCK))
            except OSError:
                pass
        self._writer.join(10)
