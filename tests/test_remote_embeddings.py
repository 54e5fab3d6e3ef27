"""Embedding through a real OpenAI-compatible server: `python -m llama_cpp.server --embedding true`
on the packaged SmolLM2, mean-pooled. SmolLM2 is not an embedding model (every pair of texts
scores about 0.99), so these tests check the plumbing, never that similar texts score higher."""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from rag import remote_embeddings
from rag.config import DEFAULT_EMBEDDING_MODEL, Settings
from rag.embeddings import Embedder, create_embedder, embedding_identity
from rag.remote_embeddings import EmbeddingEndpointError, RemoteEmbedder
from tests.conftest import REPO
from tests.processes import cli_env, free_port, running_server

KEY = "sk-test-embedding-key-0123456789"
SMOLLM2_WIDTH = 576  # SmolLM2-135M's hidden size: the vector a mean-pooled server returns
TEXTS = [f"Passage {n}: the committee met on day {n} to review budget line {n * 7}."
         for n in range(10)]


@contextmanager
def embedding_server(gguf: Path, port: int, log: Path, *, pooling: bool = True) -> Iterator[str]:
    """Yields the base URL. Its access log (one line per request) is in `log`."""
    command = [
        sys.executable, "-m", "tests.llama_server", "--model", str(gguf),
        "--host", "127.0.0.1", "--port", str(port), "--embedding", "true",
        "--api_key", KEY, "--verbose", "False",
    ]  # fmt: skip
    if pooling:  # SmolLM2's GGUF names none, and then the server answers a vector per token
        command += ["--kv_overrides", "llama.pooling_type=int:1"]  # 1: mean
    # /openapi.json needs no key: the readiness check must not hold one
    with running_server(command, ready_url=f"http://127.0.0.1:{port}/openapi.json", log=log,
                        cwd=REPO, env=cli_env()):
        yield f"http://127.0.0.1:{port}/v1"


@pytest.fixture(scope="module")
def server(smollm_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    log = tmp_path_factory.mktemp("embedding_server") / "server.log"
    with embedding_server(smollm_gguf, free_port(), log) as base_url:
        yield base_url, log


def settings_for(base_url: str, key: str = KEY, **values) -> Settings:
    return Settings(embedding_base_url=base_url, embedding_api_key=key,
                    embedding_model="smollm2", **values)


def remote(base_url: str, **values) -> RemoteEmbedder:
    settings = settings_for(base_url, **values)
    embedder = create_embedder(settings, embedding_identity(settings))
    assert isinstance(embedder, RemoteEmbedder)
    return embedder


def requests_logged(log: Path) -> int:
    return log.read_text(errors="replace").count('"POST /v1/embeddings ')


def wait_for_requests(log: Path, count: int, timeout_s: float = 120) -> int:
    """The access line is written as the answer goes out: it can trail the client a moment."""
    deadline = time.monotonic() + timeout_s
    while requests_logged(log) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return requests_logged(log)


def full_text(error: BaseException) -> str:
    """All a log of the error would show, chained exceptions included."""
    return "".join(traceback.format_exception(error))


def test_vectors_are_unit_length_float32_of_the_served_dimension(server):
    embedder = remote(server[0])
    vectors = embedder.embed(TEXTS[:3])
    assert embedder.dimension == SMOLLM2_WIDTH  # learned from the answer
    assert vectors.shape == (3, SMOLLM2_WIDTH)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed_query(TEXTS[0]).shape == (SMOLLM2_WIDTH,)


def test_dimension_before_any_text_costs_one_probe(server):
    base_url, log = server
    before = requests_logged(log)
    assert remote(base_url).dimension == SMOLLM2_WIDTH
    assert wait_for_requests(log, before + 1) == before + 1


def test_large_inputs_are_sent_in_batches_and_come_back_in_order(server):
    base_url, log = server
    embedder = remote(base_url, embedding_batch_size=4)
    before = requests_logged(log)
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (10, SMOLLM2_WIDTH)
    assert wait_for_requests(log, before + 3) == before + 3  # 4 + 4 + 2
    # each row is its own text's, whichever batch carried it
    np.testing.assert_allclose(vectors[[9, 0]], embedder.embed([TEXTS[9], TEXTS[0]]), atol=1e-5)


def test_the_same_text_gets_the_same_vector_and_others_differ(server):
    embedder = remote(server[0])
    first, again = embedder.embed(TEXTS[:2]), embedder.embed(TEXTS[:2])
    np.testing.assert_allclose(first, again, atol=1e-6)
    assert float(first[0] @ first[1]) < 0.9999


def test_token_counts_are_the_local_tokenizers_and_chunks_stay_under_the_setting(server):
    embedder = remote(server[0], embedding_max_tokens=200)
    assert embedder.max_tokens == 200
    spans = embedder.token_spans("Budget review, day one.")
    assert [("Budget review, day one."[a:b]) for a, b in spans] == [
        "Budget", "review", ",", "day", "one", "."]
    assert embedder.count_tokens("Budget review, day one.") == 6


def test_an_unreachable_endpoint_is_named_after_bounded_retries(unused_port, monkeypatch, caplog):
    monkeypatch.setattr(remote_embeddings, "BACKOFF_S", 0.0)  # the waits are not under test
    url = f"http://127.0.0.1:{unused_port}/v1"
    embedder = remote(url)
    with caplog.at_level(logging.WARNING, logger="rag.remote_embeddings"), \
            pytest.raises(EmbeddingEndpointError) as raised:
        embedder.embed(["anything"])
    message = str(raised.value)
    assert f"{url}/embeddings" in message
    assert "unreachable (connection refused)" in message
    assert len(caplog.records) == remote_embeddings.RETRIES
    assert KEY not in full_text(raised.value) + caplog.text


def test_a_refused_key_is_reported_once_and_never_shown(server, caplog):
    wrong = "sk-wrong-key-abcdef0123456789"
    embedder = remote(server[0], key=wrong)
    with caplog.at_level(logging.WARNING, logger="rag.remote_embeddings"), \
            pytest.raises(EmbeddingEndpointError) as raised:
        embedder.embed(["anything"])
    assert f"{server[0]}/embeddings: HTTP 401: the API key was refused" in str(raised.value)
    assert not caplog.records  # a bad key is not retried
    assert wrong not in full_text(raised.value) + repr(embedder.__dict__)


def test_a_missing_route_or_model_is_a_404_naming_the_model(server):
    base_url = server[0].removesuffix("/v1")
    with pytest.raises(EmbeddingEndpointError, match="HTTP 404: model 'smollm2' not found"):
        remote(base_url).embed(["anything"])


def test_vectors_of_another_dimension_than_the_index_are_refused(server):
    settings = settings_for(server[0])
    embedder = create_embedder(settings, embedding_identity(settings), dimension=384)
    with pytest.raises(EmbeddingEndpointError,
                       match=f"answered {SMOLLM2_WIDTH}-dimensional vectors where 384"):
        embedder.embed(["anything"])


def test_a_server_without_pooling_is_told_to_pool(smollm_gguf, tmp_path):
    log = tmp_path / "server.log"
    with embedding_server(smollm_gguf, free_port(), log, pooling=False) as base_url:
        embedder = remote(base_url)
        with pytest.raises(EmbeddingEndpointError, match="one vector per token.*--pooling mean"):
            embedder.embed(["two words", "and three words"])


def test_the_key_goes_only_to_the_endpoint_the_settings_name(server, unused_port):
    """An index built on another endpoint keeps being searched there, without this key."""
    settings = settings_for(f"http://127.0.0.1:{unused_port}/v1")
    embedder = create_embedder(settings, f"smollm2@{server[0]}")
    with pytest.raises(EmbeddingEndpointError, match="HTTP 401"):
        embedder.embed(["anything"])


def test_the_identity_names_model_and_endpoint_but_no_secret():
    settings = settings_for("https://user:password@embed.example:8443/v1/")
    identity = embedding_identity(settings)
    assert identity == "smollm2@https://embed.example:8443/v1"
    assert embedding_identity(settings_for("https://other.example/v1")) != identity
    assert embedding_identity(Settings()) == DEFAULT_EMBEDDING_MODEL
    assert KEY not in repr(settings) + settings.model_dump_json()


def test_an_index_built_locally_keeps_the_local_model_under_remote_settings(unused_port):
    settings = settings_for(f"http://127.0.0.1:{unused_port}/v1")
    assert isinstance(create_embedder(settings, DEFAULT_EMBEDDING_MODEL), Embedder)


class _HoldFirstRetry(logging.Handler):
    """Pauses the embedding thread at its first retry until the test has started the server."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.failed = threading.Event()
        self.resume = threading.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        if not self.failed.is_set():
            self.failed.set()
            self.resume.wait(timeout=120)


def test_a_retry_succeeds_once_the_server_comes_up(smollm_gguf, tmp_path):
    port = free_port()
    embedder = remote(f"http://127.0.0.1:{port}/v1")
    hold = _HoldFirstRetry()
    logger = logging.getLogger("rag.remote_embeddings")
    logger.addHandler(hold)
    try:
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(embedder.embed, ["back online"])
            try:
                assert hold.failed.wait(timeout=30), "the first attempt did not fail"
                with embedding_server(smollm_gguf, port, tmp_path / "server.log"):
                    hold.resume.set()
                    vectors = future.result(timeout=60)
            finally:
                hold.resume.set()
    finally:
        logger.removeHandler(hold)
    assert vectors.shape == (1, SMOLLM2_WIDTH)
    assert hold.messages[0].startswith(f"http://127.0.0.1:{port}/v1/embeddings: unreachable")
    assert len(hold.messages) == 1  # the first retry found the server up


def test_an_index_built_through_the_endpoint_records_it_and_notices_another(server, tmp_path):
    """The whole engine on the endpoint: ingest, search, and the manifest's identity, so pointing
    the settings at another endpoint asks for a re-index like another model does."""
    from rag.pipeline import RAG

    base_url, _ = server
    settings = settings_for(base_url, data_dir=tmp_path)
    engine = RAG(settings)
    [result] = engine.ingest([("budget.txt", "\n\n".join(TEXTS[:3]).encode())])
    assert result.status == "indexed", result.error
    assert engine.index_model == embedding_identity(settings) == f"smollm2@{base_url}"
    assert engine.rank("budget line 7", 1)[0].chunk.source == "budget.txt"
    assert engine.index_mismatch() == []
    engine.update_settings(settings.model_copy(
        update={"embedding_base_url": "http://127.0.0.1:9/v1"}))
    assert engine.index_mismatch() == [
        f"embedding model: index smollm2@{base_url}, settings smollm2@http://127.0.0.1:9/v1"]
