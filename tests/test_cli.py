"""`python -m rag` as users and other tools run it: separate processes, real files, real server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rag.generation import REFUSAL
from rag.user_settings import save_settings
from tests.conftest import REPO
from tests.processes import cli_env


def run_cli(data_dir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rag", "--data-dir", str(data_dir), *args],
        cwd=REPO, env=cli_env(env), capture_output=True, text=True, timeout=600, check=False,
    )


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, bench_data):
    """One data dir indexed through the CLI: a real PDF, the Markdown chapter that
    test_documents_scope_the_question scopes a question to, and a broken file between them;
    plus the ingest output to check. One ingest process for the module: each loads the
    embedder again."""
    data_dir = tmp_path_factory.mktemp("cli-data")
    bad = tmp_path_factory.mktemp("bad") / "broken.pdf"
    bad.write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    pdf = bench_data / "pdfs/pdfjs/tracemonkey.pdf"
    md = bench_data / "docs/markdown/rust-book-ch04-01-what-is-ownership.md"
    result = run_cli(data_dir, "ingest", str(pdf), str(bad), str(md))
    return data_dir, pdf, bad, result


def test_ingest_prints_a_line_per_file_and_fails_on_any_failure(indexed, bench_data):
    data_dir, pdf, bad, result = indexed
    md = bench_data / "docs/markdown/rust-book-ch04-01-what-is-ownership.md"
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert any(line.startswith(f"{pdf}: indexed (") and line.endswith(" chunks)") for line in lines)
    assert any(line.startswith(f"{bad}: failed: broken.pdf: ") for line in lines), lines
    assert any(line.startswith(f"{md}: indexed (") for line in lines), lines  # after a failure

    again = run_cli(data_dir, "ingest", str(pdf))
    assert again.returncode == 0
    assert again.stdout.strip() == f"{pdf}: already indexed"


def assert_timings(output: dict, *, first_token: bool) -> None:
    """`timings` as other tools read it: seconds from the question reaching the engine to the
    end of retrieval, to the first text of the answer (null when no model answered), to its end."""
    timings = output["timings"]
    assert set(timings) == {"retrieval_s", "first_token_s", "total_s"}
    assert type(timings["retrieval_s"]) is float and type(timings["total_s"]) is float
    if first_token:
        assert type(timings["first_token_s"]) is float
        assert 0 <= timings["retrieval_s"] <= timings["first_token_s"] <= timings["total_s"]
    else:
        assert timings["first_token_s"] is None
        assert 0 <= timings["retrieval_s"] <= timings["total_s"]


@pytest.fixture(scope="module")
def answered(indexed, llm_server) -> dict:
    """`ask --json` of a question the indexed PDF answers, through the OpenAI-style server."""
    result = run_cli(
        indexed[0], "ask",
        "How are JavaScript numbers represented as integers in traces?",
        "--json", env={"RAG_LLM_BASE_URL": llm_server, "RAG_LLM_MODEL": "smollm2",
                       "RAG_LLM_MAX_TOKENS": "48"},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_ask_json_streams_from_the_openai_compatible_server(answered):
    output = answered
    assert set(output) == {"answer", "refused", "sources", "searched", "cited", "timings",
                           "prompt_tokens"}
    assert output["searched"] == "How are JavaScript numbers represented as integers in traces?"
    assert all(1 <= number <= len(output["sources"]) for number in output["cited"])
    assert output["refused"] is False
    assert output["answer"].strip() and "language model failed" not in output["answer"]
    top = output["sources"][0]
    assert {"source", "page", "chunk", "similarity", "rerank_score", "text"} <= set(top)
    assert (top["source"], top["page"]) == ("tracemonkey.pdf", 5)
    assert top["similarity"] >= 0.40


def test_ask_json_times_retrieval_first_token_and_the_whole_answer(answered):
    assert_timings(answered, first_token=True)
    # an OpenAI-style endpoint does not report the prompt's size at the first token
    assert answered["prompt_tokens"] is None or type(answered["prompt_tokens"]) is int


QUESTION = "How are JavaScript numbers represented as integers in traces?"


@pytest.fixture(scope="module")
def embedded_env(smollm_gguf) -> dict:
    """The embedded llama.cpp model, which counts the prompt's tokens."""
    return {"RAG_LLM_GGUF": str(smollm_gguf), "RAG_LLM_MAX_TOKENS": "16"}


@pytest.fixture(scope="module")
def answered_embedded(indexed, embedded_env) -> dict:
    result = run_cli(indexed[0], "ask", QUESTION, "--json", env=embedded_env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_ask_json_times_the_embedded_model_after_loading_it(answered_embedded):
    output = answered_embedded
    assert not output["refused"] and output["answer"].strip()
    assert "language model failed" not in output["answer"]
    assert_timings(output, first_token=True)


def test_ask_json_counts_the_prompt_in_the_models_tokens(answered_embedded, indexed,
                                                          embedded_env):
    assert type(answered_embedded["prompt_tokens"]) is int
    assert answered_embedded["prompt_tokens"] > 0
    # the same from the conversation's worker
    result = run_cli(indexed[0], "ask", QUESTION, "--json", "--conversation", "embedded",
                     env=embedded_env)
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert not output["refused"]
    assert_timings(output, first_token=True)
    assert type(output["prompt_tokens"]) is int and output["prompt_tokens"] > 0


def test_unrelated_question_is_refused_and_never_reaches_the_llm(indexed, unused_port):
    # The only LLM configured is a port where nothing listens: a call would put its failure
    # message into the answer, so the exact refusal proves that no call was made.
    result = run_cli(indexed[0], "ask", "What is a good recipe for chocolate chip cookies?",
                     "--json", env={"RAG_LLM_BASE_URL": f"http://127.0.0.1:{unused_port}/v1"})
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert_timings(output, first_token=False)
    assert output["prompt_tokens"] is None  # no prompt was sent
    del output["timings"], output["prompt_tokens"]
    assert output == {"answer": REFUSAL, "refused": True, "sources": [], "cited": [],
                      "searched": "What is a good recipe for chocolate chip cookies?"}


def test_plain_ask_streams_text_then_lists_sources(indexed, llm_server):
    result = run_cli(indexed[0], "ask", "How are JavaScript numbers represented as integers in traces?",
                     env={"RAG_LLM_BASE_URL": llm_server, "RAG_LLM_MAX_TOKENS": "8"})
    assert result.returncode == 0, result.stderr
    assert "[1] tracemonkey.pdf p. 5 (similarity " in result.stdout
    assert "retrieval_s" not in result.stdout and "prompt_tokens" not in result.stdout


@pytest.fixture(scope="module")
def strings_indexed(tmp_path_factory, bench_data) -> tuple[Path, str]:
    """A data dir with one Markdown chapter ingested through the CLI, and that ingest's output:
    a template each test below copies, so the chapter is embedded once, not once per test."""
    data_dir = tmp_path_factory.mktemp("strings-data")
    result = run_cli(data_dir, "ingest",
                     str(bench_data / "docs/markdown/rust-book-ch08-02-strings.md"))
    assert result.returncode == 0, result.stdout + result.stderr
    return data_dir, result.stdout


def copy_of(template: Path, tmp_path: Path) -> Path:
    """The ingest process has ended: its folder (Chroma files included) copies whole."""
    return Path(shutil.copytree(template, tmp_path / "data"))


def test_ingest_password_opens_an_encrypted_pdf(tmp_path, bench_data):
    locked = bench_data / "pdfs/pypdf-resources/encryption/r4-user-password.pdf"
    refused = run_cli(tmp_path, "ingest", str(locked))
    assert refused.returncode == 1
    assert f"{locked}: failed: {locked.name}: encrypted PDF, no password given" in refused.stdout
    opened = run_cli(tmp_path, "ingest", str(locked), "--password", "asdfzxcv")
    assert opened.returncode == 0, opened.stdout + opened.stderr
    assert opened.stdout.startswith(f"{locked}: indexed (")


def test_list_and_delete(tmp_path, strings_indexed):
    data_dir = copy_of(strings_indexed[0], tmp_path)
    listing = run_cli(data_dir, "list").stdout
    assert "rust-book-ch08-02-strings.md" in listing
    doc_id = listing.split()[0]
    deleted = run_cli(data_dir, "delete", doc_id)
    assert deleted.returncode == 0 and "deleted rust-book-ch08-02-strings.md" in deleted.stdout
    assert run_cli(data_dir, "list").stdout.strip() == ""
    assert run_cli(data_dir, "delete", doc_id).returncode == 1


def test_invalid_settings_are_reported_without_a_traceback(tmp_path):
    result = run_cli(tmp_path, "list", env={"RAG_CHUNK_OVERLAP": "500",
                                            "OPENAI_API_KEY": "sk-never-print-me"})
    assert result.returncode == 2
    assert "chunk_overlap (500) must be smaller than chunk_size" in result.stderr
    assert "Traceback" not in result.stderr and "sk-never-print-me" not in result.stderr


def test_saved_settings_apply_and_reindex_rebuilds(tmp_path, strings_indexed):
    data_dir = copy_of(strings_indexed[0], tmp_path)
    before = int(strings_indexed[1].split("indexed (")[1].split()[0])
    save_settings(data_dir, {"chunk_size": 64, "chunk_overlap": 8})
    result = run_cli(data_dir, "reindex")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "index differs: chunk size: index 160, settings 64"
    [rebuilt] = [line for line in lines if ": indexed (" in line]
    after = int(rebuilt.split("indexed (")[1].split()[0])
    assert rebuilt.startswith("rust-book-ch08-02-strings.md: indexed (") and after > 2 * before
    assert lines[-1] == "re-index complete: generation 1 is live"


def test_a_follow_up_in_a_second_process_is_searched_with_the_first_question(indexed, llm_server):
    """Each ask is its own process: the conversation's context can only come from its store.
    (Alone, the follow-up is refused, and an off-topic one still is: tests/test_followups.py.)"""
    data_dir = indexed[0]
    # a few tokens: what is checked is the search, the refusal decision and the stored exchange
    env = {"RAG_LLM_BASE_URL": llm_server, "RAG_LLM_MODEL": "smollm2", "RAG_LLM_MAX_TOKENS": "8"}
    first_question = "What machine were the TraceMonkey benchmark experiments run on?"
    first = run_cli(data_dir, "ask", first_question, "--json", "--conversation", "bench machine",
                    env=env)
    assert first.returncode == 0, first.stderr
    first_output = json.loads(first.stdout)
    assert first_output["sources"][0]["page"] == 10
    assert_timings(first_output, first_token=not first_output["refused"])

    follow_up = run_cli(data_dir, "ask", "How much RAM did it have?", "--json",
                        "--conversation", "bench machine", env=env)
    assert follow_up.returncode == 0, follow_up.stderr
    output = json.loads(follow_up.stdout)
    assert not output["refused"]
    assert output["searched"] == f"How much RAM did it have? {first_question}"
    assert 10 in [source["page"] for source in output["sources"]]
    assert set(output) == {"answer", "refused", "sources", "searched", "cited", "conversation",
                           "timings", "prompt_tokens"}
    assert_timings(output, first_token=True)
    assert output["prompt_tokens"] is None or type(output["prompt_tokens"]) is int

    listing = run_cli(data_dir, "conversations")
    assert listing.returncode == 0 and "2 questions  bench machine" in listing.stdout
    exported = run_cli(data_dir, "export", "bench machine")
    assert exported.returncode == 0
    assert "How much RAM did it have?" in exported.stdout and "tracemonkey.pdf" in exported.stdout
    assert exported.stdout.index(first_question) < exported.stdout.index("How much RAM")
    assert run_cli(data_dir, "export", "no such chat").returncode == 1


def test_a_refused_question_in_a_conversation_has_no_first_token(indexed, unused_port):
    result = run_cli(indexed[0], "ask", "What is a good recipe for chocolate chip cookies?",
                     "--json", "--conversation", "cookies",
                     env={"RAG_LLM_BASE_URL": f"http://127.0.0.1:{unused_port}/v1"})
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["refused"] and output["answer"] == REFUSAL
    assert set(output) == {"answer", "refused", "sources", "searched", "cited", "conversation",
                           "timings", "prompt_tokens"}
    assert_timings(output, first_token=False)


def test_documents_scope_the_question(indexed, bench_data, unused_port):
    data_dir = indexed[0]
    md = bench_data / "docs/markdown/rust-book-ch04-01-what-is-ownership.md"  # indexed with it
    question = "How are JavaScript numbers represented as integers in traces?"
    env = {"RAG_LLM_BASE_URL": f"http://127.0.0.1:{unused_port}/v1"}
    elsewhere = run_cli(data_dir, "ask", question, "--json", "--documents", md.name, env=env)
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert json.loads(elsewhere.stdout)["refused"], "the answer's page is outside the scope"
    unknown = run_cli(data_dir, "ask", question, "--documents", "nope.pdf")
    assert unknown.returncode == 2 and "no document named or with id nope.pdf" in unknown.stderr
