"""Real language-model fixtures: the packaged SmolLM2 GGUF and llama.cpp's OpenAI-style server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.local_models import smollm2_gguf
from tests.conftest import REPO
from tests.processes import free_port, running_server


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
        sys.executable, "-m", "tests.llama_server", "--model", str(smollm_gguf),
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096",
        # by default the server ends a streaming answer with [DONE] as soon as another request
        # waits: of two users asking at once, the first would get an empty answer
        "--interrupt_requests", "False",
    ]  # fmt: skip
    base_url = f"http://127.0.0.1:{port}/v1"
    with running_server(command, ready_url=f"{base_url}/models", log=log, cwd=REPO):
        yield base_url
