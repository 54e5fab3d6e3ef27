"""A real Chroma server (`chroma run`) on 127.0.0.1 for the tests of server mode."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.processes import free_port, running_server

CHROMA = Path(sys.executable).with_name("chroma")  # the CLI the chromadb package installs


@dataclass(frozen=True)
class ChromaServer:
    host: str
    port: int
    path: Path  # where the server keeps its data
    pid: int


@contextmanager
def chroma_server_at(path: Path) -> Iterator[ChromaServer]:
    """`chroma run` on 127.0.0.1, a free port and a fresh folder, until the block ends."""
    path.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [str(CHROMA), "run", "--path", str(path / "data"), "--host", "127.0.0.1",
               "--port", str(port)]
    with running_server(command, ready_url=f"http://127.0.0.1:{port}/api/v2/heartbeat",
                        log=path / "server.log") as process:
        yield ChromaServer("127.0.0.1", port, path / "data", process.pid)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory) -> Iterator[ChromaServer]:
    """One server per test run for store-level tests, which keep apart by generation. A test
    through RAG on a fresh data_dir uses generation 0's names like every fresh index, so it
    takes a server of its own (`chroma_server_at`, about a second) instead."""
    with chroma_server_at(tmp_path_factory.mktemp("chroma-server")) as server:
        yield server
