"""Generation with real components: llama.cpp in-process and behind its server, real sockets."""

from __future__ import annotations

import functools
import json
import os
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rag import local_models
from rag.config import Settings
from rag.generation import (
    FAILURE_PREFIX,
    REFUSAL,
    FirstToken,
    LlamaCppChat,
    OpenAIChat,
    build_messages,
    create_llm,
    failure_message,
)
from rag.types import Chunk, Hit
from tests.processes import free_port

QUESTION = [{"role": "user", "content": "Name three primary colours."}]


def openai_chat(base_url: str, api_key: str | None = None, timeout: float = 30) -> OpenAIChat:
    return OpenAIChat(
        base_url=base_url, model="smollm2", api_key=api_key, timeout=timeout,
        max_tokens=24, temperature=0.0,
    )  # fmt: skip


def hit(ordinal: int, text: str, page: int | None = None, heading: str | None = None) -> Hit:
    source = "report.pdf" if page is not None else "guide.md"
    chunk = Chunk(
        doc_id=f"doc-{source}", source=source, ordinal=ordinal, text=text,
        start=0, end=len(text), page=page, heading=heading,
    )  # fmt: skip
    return Hit(chunk=chunk, similarity=0.8)


def test_openai_client_streams_from_llama_server(llm_server: str) -> None:
    deltas = list(openai_chat(llm_server).stream(QUESTION))
    assert len(deltas) >= 3
    assert not any(d.startswith(FAILURE_PREFIX) for d in deltas), deltas
    assert "".join(deltas).strip()


def test_embedded_llama_cpp_streams(smollm_gguf: Path) -> None:
    llm = LlamaCppChat(
        smollm_gguf, n_ctx=4096, n_threads=os.cpu_count() or 1, max_tokens=24, temperature=0.0
    )
    assert not llm.loaded
    deltas = list(llm.stream(QUESTION))
    assert llm.loaded
    assert len(deltas) >= 3
    assert not any(d.startswith(FAILURE_PREFIX) for d in deltas), deltas
    assert "".join(deltas).strip()


# Sources that do not hold the answer, and an instruction to refuse with the app's sentence.
UNANSWERABLE = build_messages("Who was the first mayor of Paris?", [hit(0, "Tomatoes are red.")])


def _record(seen: list[FirstToken], first: FirstToken) -> bool:
    seen.append(first)
    return False


def test_first_token_hook_reads_the_refusal_probability_and_can_stop(
    llm_server: str, smollm_gguf: Path
) -> None:
    embedded = LlamaCppChat(smollm_gguf, n_ctx=4096, n_threads=os.cpu_count() or 1,
                            max_tokens=24, temperature=0.0)
    for llm in (embedded, openai_chat(llm_server)):
        seen: list[FirstToken] = []
        answered = list(llm.stream(UNANSWERABLE, on_first_token=functools.partial(_record, seen)))
        assert "".join(answered).strip() and len(seen) == 1, llm.name
        assert 0.0 <= seen[0].refusal_probability <= 1.0, llm.name
        if "".join(answered).startswith("I"):  # the model chose the refusal's first word
            assert seen[0].refusal_probability > 0.0, llm.name
        stopped = list(llm.stream(UNANSWERABLE, on_first_token=lambda f: True))
        assert stopped == [], llm.name  # declined: not one token of text
    assert seen[0].prompt_tokens is None  # the endpoint does not say before the end
    local: list[FirstToken] = []
    list(embedded.stream(UNANSWERABLE, on_first_token=lambda f: local.append(f) or False))
    prompt = "".join(m["content"] for m in UNANSWERABLE)
    assert embedded.count_tokens(prompt) < local[0].prompt_tokens < embedded.count_tokens(prompt) + 40


def test_count_tokens_needs_no_loaded_model(smollm_gguf: Path) -> None:
    llm = LlamaCppChat(smollm_gguf, n_ctx=4096, n_threads=1, max_tokens=8, temperature=0.0)
    counted = llm.count_tokens("The quick brown fox jumps over the lazy dog.")
    assert not llm.loaded and 8 <= counted <= 14
    assert llm.load().tokenize(b"The quick brown fox jumps over the lazy dog.", add_bos=False,
                               special=False).__len__() == counted


def test_create_llm_picks_backend_from_settings(
    monkeypatch: pytest.MonkeyPatch, smollm_gguf: Path
) -> None:
    for name in ("RAG_LLM_BASE_URL", "RAG_LLM_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAG_LLM_GGUF", str(smollm_gguf))
    embedded = create_llm(Settings(_env_file=None))
    assert isinstance(embedded, LlamaCppChat)
    assert embedded.gguf_path == smollm_gguf
    assert not embedded.loaded  # choosing a backend must not load weights

    monkeypatch.setenv("RAG_LLM_BASE_URL", "http://127.0.0.1:8000/v1")
    monkeypatch.setenv("RAG_LLM_API_KEY", "sk-test-secret-0123456789")
    remote = create_llm(Settings(_env_file=None))
    assert isinstance(remote, OpenAIChat)
    assert "127.0.0.1:8000/v1" in remote.name
    assert "sk-test-secret" not in remote.name + repr(vars(remote))


def test_unreachable_endpoint_yields_failure_and_does_not_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    base_url = f"http://127.0.0.1:{free_port()}/v1"
    secret = "sk-test-secret-0123456789"
    deltas = list(openai_chat(base_url, api_key=secret, timeout=5).stream(QUESTION))
    assert deltas == [failure_message(f"could not connect to {base_url} (connection refused)")]
    assert "could not connect" in caplog.text
    assert secret not in caplog.text


class _DropsMidStream(BaseHTTPRequestHandler):
    """Sends one SSE chunk of a promised long body, then hangs up: a server dying mid-answer."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        chunk = {
            "id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Red"},
                         "finish_reason": None}],
        }  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def dropping_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DropsMidStream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()


def test_mid_stream_failure_keeps_streamed_text(dropping_server: str) -> None:
    deltas = list(openai_chat(dropping_server, timeout=5).stream(QUESTION))
    assert deltas[0] == "Red"
    assert len(deltas) == 2
    assert deltas[1].startswith(f"{FAILURE_PREFIX}the connection to {dropping_server} broke off")


def test_build_messages_numbers_and_labels_sources() -> None:
    pdf = hit(0, "The warranty lasts two years.", page=3)
    md = hit(4, "Press the red button to reset.", heading="Setup > Reset")
    history = [
        {"role": "user", "content": "oldest question"},
        {"role": "assistant", "content": "oldest answer"},
        {"role": "user", "content": "Is there a warranty?"},
        {"role": "assistant", "content": "Yes [1]."},
        {"role": "user", "content": "For how long?"},
        {"role": "assistant", "content": "Two years [1]."},
    ]
    messages = build_messages("How do I reset it?", [pdf, md, pdf], history)

    system = messages[0]
    assert system["role"] == "system"
    assert "[1] report.pdf, page 3\nThe warranty lasts two years." in system["content"]
    assert "[2] guide.md, section Setup > Reset\nPress the red button" in system["content"]
    assert "[3]" not in system["content"]
    assert system["content"].count("The warranty lasts two years.") == 1
    assert REFUSAL in system["content"]

    assert messages[-1] == {"role": "user", "content": "How do I reset it?"}
    turns = messages[1:-1]
    assert turns[-1] == {"role": "assistant", "content": "Two years [1]."}
    assert {"role": "user", "content": "Is there a warranty?"} in turns
    assert all("oldest" not in turn["content"] for turn in turns)


def test_join_refuses_a_checksum_mismatch(tmp_path: Path) -> None:
    parts = []
    for number, data in ((1, b"GGUF"), (2, b"-rest")):
        parts.append(tmp_path / f"part{number:02d}.bin")
        parts[-1].write_bytes(data)
    target = tmp_path / "joined.gguf"
    with pytest.raises(local_models.ModelFileError, match="checksum mismatch"):
        local_models._join_verified(parts, target, "0" * 64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part01.bin", "part02.bin"]


def test_missing_part_package_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(local_models, "QWEN_PARTS_PACKAGE", "rag_absent_model_part{}")
    with pytest.raises(local_models.ModelFileError, match="rag-absent-model-part1 is not instal"):
        local_models.default_gguf(tmp_path)


def test_default_gguf_joins_once_with_pinned_checksum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        path = local_models.default_gguf(tmp_path)  # 1.1 GB copied and hashed: the only full join
        assert path == tmp_path / "models" / local_models.QWEN_FILE
        assert path.stat().st_size == local_models.QWEN_SIZE
        with path.open("rb") as gguf:
            assert gguf.read(4) == b"GGUF"
        assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left

        before = path.stat()

        def again(*args: object) -> None:
            raise AssertionError("joined or hashed again")

        monkeypatch.setattr(local_models, "_join_verified", again)
        monkeypatch.setattr(local_models, "_qwen_parts", again)
        assert local_models.default_gguf(tmp_path) == path  # reused, not re-joined or re-hashed
        after = path.stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    finally:
        # pytest keeps the last few tmp dirs: don't leave 1.1 GB behind in each.
        shutil.rmtree(tmp_path / "models", ignore_errors=True)
