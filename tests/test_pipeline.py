"""The engine end to end in-process: real loaders, chunker, embedder, Chroma folder and LLM."""

from __future__ import annotations

import pytest

from rag.config import Settings
from rag.generation import REFUSAL, create_llm
from rag.pipeline import RAG

TRACEMONKEY = "pdfs/pdfjs/tracemonkey.pdf"
QUESTION = "How are JavaScript numbers represented as integers in traces?"
ANSWER_PAGE = 5
OFF_TOPIC = "What is a good recipe for chocolate chip cookies?"


class RecordingLLM:
    """A real LLM that also counts how often it was asked."""

    def __init__(self, inner) -> None:
        self.inner, self.calls, self.name = inner, 0, inner.name
        self.count_tokens = inner.count_tokens
        self.prompts: list[list[dict]] = []

    def stream(self, messages, max_tokens=None, on_first_token=None):
        self.calls += 1
        self.prompts.append(messages)
        yield from self.inner.stream(messages, max_tokens, on_first_token)


@pytest.fixture(scope="module")
def llm(smollm_gguf):
    return RecordingLLM(create_llm(Settings(llm_gguf=smollm_gguf, llm_max_tokens=24)))


@pytest.fixture(scope="module")
def engine(tmp_path_factory, embedder, llm, bench_data) -> RAG:
    rag = RAG(Settings(data_dir=tmp_path_factory.mktemp("data")), embedder=embedder, llm=llm)
    [result] = rag.ingest([("tracemonkey.pdf", (bench_data / TRACEMONKEY).read_bytes())])
    assert result.status == "indexed" and result.chunks > 14
    return rag


def test_answer_cites_the_page_that_holds_it_and_streams(engine, llm):
    calls = llm.calls
    answer = engine.ask(QUESTION)
    assert not answer.refused
    assert answer.hits, "sources are known before the first token"
    assert answer.hits[0].chunk.source == "tracemonkey.pdf"
    assert answer.hits[0].chunk.page == ANSWER_PAGE
    assert answer.best_similarity >= engine.settings.similarity_threshold
    assert all(hit.fused is not None for hit in answer.hits)
    deltas = list(answer.deltas)
    assert len(deltas) > 1 and "".join(deltas).strip()
    assert llm.calls == calls + 1


def test_unrelated_question_is_refused_without_calling_the_llm(engine, llm):
    calls = llm.calls
    answer = engine.ask(OFF_TOPIC)
    assert answer.refused
    assert list(answer.deltas) == [REFUSAL]
    assert answer.hits == []
    assert answer.best_similarity is not None and answer.best_similarity < answer.threshold
    assert llm.calls == calls


def test_threshold_of_one_refuses_everything(engine, llm):
    strict = RAG(engine.settings.model_copy(update={"similarity_threshold": 1.0}),
                 embedder=engine.embedder, llm=llm)
    calls = llm.calls
    assert strict.ask(QUESTION).refused
    assert llm.calls == calls


def test_the_same_file_twice_is_indexed_once(engine, bench_data):
    data = (bench_data / TRACEMONKEY).read_bytes()
    [again] = engine.ingest([("renamed-copy.pdf", data)])
    assert again.status == "already indexed"
    assert [info.source for info in engine.documents()].count("tracemonkey.pdf") == 1
    assert len(engine.documents()) == 1


def test_bad_files_fail_one_by_one_and_good_files_are_indexed(tmp_path, embedder, llm, bench_data):
    pdfs = bench_data / "pdfs"
    good_md = bench_data / "docs/markdown/rust-book-ch04-01-what-is-ownership.md"
    batch = [
        ("corrupt.pdf", (pdfs / "pdfjs/poppler-85140-0.pdf").read_bytes()),
        ("truncated.pdf", (pdfs / "pdfjs/tracemonkey.pdf").read_bytes()[:5000]),
        ("locked.pdf", (pdfs / "pypdf-resources/encryption/r4-aes-user-password.pdf").read_bytes()),
        ("scan.pdf", (pdfs / "pypdf-resources/git.pdf").read_bytes()),
        ("empty.txt", b""),
        ("setup.exe", b"MZ\x90\x00" + bytes(200)),
        ("ownership.md", good_md.read_bytes()),
        ("rfc1945.txt", (bench_data / "docs/text/rfc1945.txt").read_bytes()),
    ]
    rag = RAG(Settings(data_dir=tmp_path), embedder=embedder, llm=llm)
    results = {result.source: result for result in rag.ingest(batch)}
    failed = {name: r.error for name, r in results.items() if r.status == "failed"}
    assert set(failed) == {"corrupt.pdf", "truncated.pdf", "locked.pdf", "scan.pdf", "empty.txt",
                           "setup.exe"}
    for name, error in failed.items():
        assert error.startswith(name), error
    assert "encrypted" in failed["locked.pdf"]
    assert "OCR" in failed["scan.pdf"]
    assert "unsupported" in failed["setup.exe"]
    assert {info.source for info in rag.documents()} == {"ownership.md", "rfc1945.txt"}
    headings = {hit.chunk.heading for hit in rag.retrieve("What are the ownership rules?").hits}
    assert any(heading and "Ownership Rules" in heading for heading in headings), headings


def test_delete_removes_a_document_from_answers(tmp_path, embedder, llm, bench_data):
    rag = RAG(Settings(data_dir=tmp_path), embedder=embedder, llm=llm)
    [result] = rag.ingest([("tracemonkey.pdf", (bench_data / TRACEMONKEY).read_bytes())])
    assert rag.delete(result.doc_id)
    assert rag.documents() == [] and rag.store.count() == 0
    assert rag.ask(QUESTION).refused
    assert not rag.delete(result.doc_id)


def test_the_index_survives_a_restart(tmp_path, embedder, llm, bench_data):
    settings = Settings(data_dir=tmp_path)
    RAG(settings, embedder=embedder, llm=llm).ingest(
        [("tracemonkey.pdf", (bench_data / TRACEMONKEY).read_bytes())])
    reopened = RAG(settings, embedder=embedder, llm=llm)
    assert [info.source for info in reopened.documents()] == ["tracemonkey.pdf"]
    assert reopened.retrieve(QUESTION).hits[0].chunk.page == ANSWER_PAGE


def test_context_budget_keeps_the_best_hits(engine):
    tight = RAG(engine.settings.model_copy(update={"context_tokens": 64, "top_k": 5,
                                                    "context_mode": "chunks"}),
                embedder=engine.embedder, llm=engine.llm)
    answer = tight.ask(QUESTION)
    assert len(answer.hits) == 1  # one chunk already fills 64 tokens; the best is always kept
    assert answer.hits[0].chunk.page == ANSWER_PAGE
    answer.deltas.close()


def test_sentence_context_fits_the_budget_in_the_models_tokens(engine, llm):
    budget = 120
    sentences = RAG(engine.settings.model_copy(update={"context_tokens": budget}),
                    embedder=engine.embedder, llm=llm)
    whole = RAG(engine.settings.model_copy(update={"context_mode": "chunks"}),
                embedder=engine.embedder, llm=llm)
    short, full = sentences.ask(QUESTION), whole.ask(QUESTION)
    list(short.deltas), list(full.deltas)
    system = llm.prompts[-2][0]["content"]
    sources = system.split("Sources:", 1)[1]
    # the budget counts the passages' sentences; each source adds its "[n] label" line and gaps
    assert llm.count_tokens(sources) <= budget + 15 * len(short.hits)
    assert short.prompt_tokens < full.prompt_tokens
    assert short.prompt_tokens == pytest.approx(
        llm.count_tokens(system) + llm.count_tokens(QUESTION), abs=30)  # + the chat template
    # the preview quotes source 1 at its sentence closest to the question, and so does the prompt
    preview = short.preview
    assert preview is not None and preview.source == 1 and preview.spans
    assert preview.text == short.hits[0].chunk.text
    start, end = preview.spans[0]
    assert preview.text[start:end] in sources


def test_the_model_declines_at_the_first_token_over_the_cut_off(engine, llm):
    calls = llm.calls
    eager = RAG(engine.settings.model_copy(update={"decline_probability": 0.0}),
                embedder=engine.embedder, llm=llm)
    answer = eager.ask(QUESTION)
    assert not answer.refused and answer.hits  # the gate let it through; the model declined
    assert "".join(answer.deltas) == REFUSAL
    assert llm.calls == calls + 1
    assert answer.declined and "do not state this" in answer.refusal_note
    assert 0.0 <= answer.refusal_probability <= 1.0 and answer.prompt_tokens > 0
    never = RAG(engine.settings.model_copy(update={"decline_probability": 1.0}),
                embedder=engine.embedder, llm=llm)
    kept = never.ask(QUESTION)
    text = "".join(kept.deltas)
    assert text.strip() and text != REFUSAL and kept.declined is None
