"""Follow-ups searched with their conversation, scoped search, whole-document questions: the
pure planning functions, then the real engine (embedder, Chroma folder, BM25) on real files."""

from __future__ import annotations

import pytest

from rag.answering import OVERVIEW_TOKENS
from rag.config import Settings
from rag.followups import Turn, condense_messages, plan_search
from rag.overview import is_whole_document_question, target_document
from rag.pipeline import RAG
from rag.types import DocumentInfo

MACHINE = "What machine were the TraceMonkey benchmark experiments run on?"
RAM = "How much RAM did it have?"
FRANCE = "And what is the capital of France?"
EARLIER = (Turn("first question?", "first answer", ("a:1",)),
           Turn("second question?", "second answer", ("b:2", "b:3")))


def test_a_first_question_is_searched_as_typed_whatever_the_method():
    for method in ("latest", "previous-questions", "questions-and-sources"):
        plan = plan_search("  What is X?  ", (), method)
        assert (plan.text, plan.latest, plan.carry, plan.rewritten) == (
            "What is X?", "What is X?", (), False)


def test_methods_search_a_follow_up_with_what_came_before():
    assert plan_search("and it?", EARLIER, "latest").text == "and it?"
    questions = plan_search("and it?", EARLIER, "previous-questions")
    assert questions.text == "and it? first question? second question?"
    assert questions.latest == "and it?" and questions.carry == ()
    assert plan_search("and it?", EARLIER, "previous-sources").carry == ("b:2", "b:3")
    both = plan_search("and it?", EARLIER, "questions-and-sources")
    assert both.carry == ("b:2", "b:3") and both.rewritten


def test_condense_uses_the_model_reply_and_falls_back_to_the_question():
    seen = []

    def model(messages):
        seen.append(messages)
        return '"Standalone question: How much RAM did the MacBook Pro have?"\nextra'

    plan = plan_search(RAM, EARLIER, "condense", model)
    assert plan.text == "How much RAM did the MacBook Pro have?" and plan.latest == RAM
    assert "second answer" in seen[0][1]["content"] and RAM in seen[0][1]["content"]
    assert plan_search(RAM, EARLIER, "condense", lambda m: "").text == RAM
    assert condense_messages(RAM, EARLIER)[0]["role"] == "system"
    with pytest.raises(ValueError):
        plan_search(RAM, EARLIER, "condense")


def _info(doc_id: str, source: str) -> DocumentInfo:
    return DocumentInfo(doc_id, source, 1, 3, 10, "2026-01-01T00:00:00+00:00")


def test_whole_document_questions_find_their_document():
    docs = [_info("a", "tracemonkey.pdf"), _info("b", "rfc6265.html")]
    for question in ("Summarise tracemonkey.pdf", "Give me an overview of tracemonkey",
                     "What is this document about?", "List its sections",
                     "What are the main points of this paper?"):
        assert is_whole_document_question(question), question
    assert not is_whole_document_question("How much RAM did it have?")
    assert target_document("Summarise tracemonkey.pdf", docs).doc_id == "a"
    assert target_document("What is this document about?", docs, scope=["b"]).doc_id == "b"
    assert target_document("What is this document about?", docs) is None  # which one?
    assert target_document("How are cookies stored in rfc6265.html?", docs) is None


@pytest.fixture(scope="module")
def engine(tmp_path_factory, embedder, bench_data, smollm_gguf) -> RAG:
    # the small model's tokenizer budgets the prompts (nothing here reads an answer)
    rag = RAG(Settings(data_dir=tmp_path_factory.mktemp("data"), llm_gguf=smollm_gguf),
              embedder=embedder)
    results = rag.ingest([
        ("tracemonkey.pdf", (bench_data / "pdfs/pdfjs/tracemonkey.pdf").read_bytes()),
        ("ownership.md", (bench_data / "docs/markdown/rust-book-ch04-01-what-is-ownership.md")
         .read_bytes()),
    ])
    assert [result.status for result in results] == ["indexed", "indexed"]
    return rag


def _with(rag: RAG, **changes) -> RAG:
    rag.update_settings(Settings(**{**rag.settings.model_dump(), **changes}))
    return rag


def test_a_follow_up_finds_the_page_its_conversation_is_about(engine):
    _with(engine, followup_method="previous-questions")
    first = engine.ask(MACHINE)
    assert first.hits[0].chunk.page == 10
    earlier = [Turn(MACHINE, "", tuple(hit.chunk.chunk_id for hit in first.hits))]
    assert engine.ask(RAM).refused, "alone, the follow-up matches nothing: the test's premise"
    follow_up = engine.ask(RAM, earlier)
    assert not follow_up.refused and follow_up.searched == f"{RAM} {MACHINE}"
    assert 10 in [hit.chunk.page for hit in follow_up.hits]


def test_an_off_topic_follow_up_is_still_refused(engine):
    _with(engine, followup_method="questions-and-sources")
    first = engine.ask(MACHINE)
    earlier = [Turn(MACHINE, "", tuple(hit.chunk.chunk_id for hit in first.hits))]
    answer = engine.ask(FRANCE, earlier)
    assert answer.refused and answer.hits == []
    assert answer.best_similarity >= answer.threshold, "the context alone would have passed"
    assert "the question alone matched none of them" in answer.refusal_note
    loose = _with(engine, followup_threshold=-1.0).ask(FRANCE, earlier)
    assert not loose.refused, "without the follow-up gate the context carries it through"
    _with(engine, followup_threshold=Settings().followup_threshold)


def test_a_scoped_search_looks_only_in_the_chosen_documents(engine):
    ownership = next(i for i in engine.documents() if i.source == "ownership.md")
    question = "How are JavaScript numbers represented as integers in traces?"
    assert engine.retrieve(question).hits[0].chunk.source == "tracemonkey.pdf"
    assert engine.retrieve(question, documents=[ownership.doc_id]).hits == []
    scoped = engine.retrieve("What are the ownership rules?", documents=[ownership.doc_id]).hits
    assert scoped and {hit.chunk.source for hit in scoped} == {"ownership.md"}
    assert engine.retrieve(question, documents=["no-such-document"]).hits == []


def test_a_whole_document_question_is_answered_from_a_spread_of_it(engine):
    info = next(i for i in engine.documents() if i.source == "tracemonkey.pdf")
    answer = engine.ask("Summarise tracemonkey.pdf")
    assert not answer.refused and answer.overview == len(answer.hits) >= 3
    ordinals = [hit.chunk.ordinal for hit in answer.hits]
    assert ordinals == sorted(ordinals) and ordinals[0] == 0, "document order, opening first"
    assert {ordinal * 3 // info.chunks for ordinal in ordinals} == {0, 1, 2}, ordinals
    tokens = sum(engine.count_llm_tokens(hit.chunk.text) for hit in answer.hits)
    assert tokens <= max(engine.settings.context_tokens, OVERVIEW_TOKENS)
    scoped = engine.ask("What is this document about?", documents=[info.doc_id])
    assert scoped.overview and {hit.chunk.source for hit in scoped.hits} == {"tracemonkey.pdf"}
