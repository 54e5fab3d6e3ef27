"""Real language-model fixtures: the packaged SmolLM2 GGUF and llama.cpp's OpenAI-style server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.local_models import smollm2_gguf

SERVER_START_TIMEOUT_S = 60


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it, so parallel runs don't collide)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def unused_port() -> int:
    """For an endpoint that must be unreachable."""
    return free_port()


@pytest.fixture(scope="session")
def smollm_gguf() -> Path:
    return smollm2_gguf()


@pytest.fixture(scope="session")
def llm_server(smollm_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m llama_cpp.server` on SmolLM2; yields its OpenAI base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("llm_server") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(smollm_gguf),
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096",
    ]  # fmt: skip
    base_url = f"http://127.0.0.1:{port}/v1"
    # A file, not a pipe: nobody reads the pipe, it fills, and the server blocks on a log write.
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {server.returncode}:\n{_log_tail(log)}")
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2):
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"llama_cpp.server did not answer within {SERVER_START_TIMEOUT_S} s:\n"
                        f"{_log_tail(log)}"
                    )
                time.sleep(0.25)
        yield base_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
