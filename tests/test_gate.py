"""The refusal gate: the dense threshold, and the keyword rescue for questions that score under it
on a small index (bench/gate.py measures both)."""

from __future__ import annotations

import pytest

from rag.config import Settings
from rag.lexical import LexicalIndex
from rag.pipeline import RAG
from rag.retrieval import lexical_evidence, retrieve, threshold_gate
from rag.types import Chunk, Hit


def hit(similarity: float, lexical: float | None = None, ordinal: int = 0) -> Hit:
    return Hit(Chunk("d", "d.md", ordinal, "text", 0, 4), similarity, lexical=lexical)


def test_the_threshold_alone_decides_without_a_floor_or_evidence():
    hits = [hit(0.30), hit(0.41, ordinal=1)]
    assert threshold_gate(hits, 0.40) == (0.41, False)
    assert threshold_gate(hits, 0.42) == (0.41, True)
    assert threshold_gate(hits, 0.41) == (0.41, False)  # reaching the threshold answers
    assert threshold_gate([], 0.40) == (None, True)
    # hybrid off: no evidence, so a floor changes nothing
    assert threshold_gate(hits, 0.42, floor=0.25, evidence=None, min_evidence=0.1)[1]


def test_keywords_lower_the_bar_to_the_floor_and_no_further():
    hits = [hit(0.30, lexical=2.0)]
    rule = {"floor": 0.25, "min_evidence": 0.15}
    assert threshold_gate(hits, 0.40, evidence=0.20, **rule) == (0.30, False)
    assert threshold_gate(hits, 0.40, evidence=0.15, **rule) == (0.30, False)
    assert threshold_gate(hits, 0.40, evidence=0.14, **rule) == (0.30, True)  # too few keywords
    assert threshold_gate([hit(0.24)], 0.40, evidence=0.9, **rule) == (0.24, True)  # under floor
    assert threshold_gate([hit(0.45)], 0.40, evidence=0.0, **rule) == (0.45, False)


def test_evidence_is_the_top_bm25_score_over_the_question_maximum(tmp_path):
    index = LexicalIndex(tmp_path / "bm25")
    index.rebuild([Chunk("a", "a.md", 0, "chunk overlap tokens", 0, 20),
                   Chunk("b", "b.md", 0, "chunk size", 0, 10),
                   Chunk("c", "c.md", 0, "garden roses", 0, 12)])
    weights = dict(index.term_idf("chunk zebra"))
    assert weights["zebra"] > weights["chunk"] > 0  # a term no chunk holds weighs the most
    scores = index.scores("chunk zebra")
    hits = [hit(0.3, lexical=score, ordinal=i) for i, score in enumerate(scores.values())]
    evidence = lexical_evidence("chunk zebra", hits, index)
    assert evidence == pytest.approx(max(scores.values()) / sum(weights.values()))
    assert 0 < evidence < weights["chunk"] / sum(weights.values())  # at most its matched share
    full = lexical_evidence("chunk size", [hit(0.3, lexical=index.scores("chunk size")["b:0"])],
                            index)
    assert evidence < full < 1
    assert lexical_evidence("the of", hits, index) is None  # stopwords only: nothing to weigh


# A slice of this repo's README as it stood when the gate was measured: the configuration table
# that real questions about defaults land on with a best cosine under 0.40.
README = """# Chat with your documents

Drop PDFs, Markdown, HTML or text files into the browser, then ask questions. The answer
streams in token by token and cites the passages it used.

## Configuration
Every setting is an environment variable with the `RAG_` prefix, a line in `.env`, or a value
saved on the app's Settings page. The ones people change:

| setting | default | what it does |
|---|---|---|
| `RAG_SIMILARITY_THRESHOLD` | 0.40 | cosine similarity the best passage must reach, or the app declines |
| `RAG_HYBRID`, `RAG_DENSE_WEIGHT`, `RAG_FUSION` | on, 0.65, convex | BM25 + dense fusion |
| `RAG_CHUNK_SIZE` / `RAG_CHUNK_OVERLAP` | 160 / 24 | tokens of the embedding model (max 254) |
| `RAG_CHUNK_STRATEGY` | recursive | `recursive`, `semantic` or `fixed` |
| `RAG_TOP_K` / `RAG_FETCH_MULTIPLIER` | 5 / 10 | passages given to the model / candidates fetched |
| `RAG_CONTEXT_TOKENS` | 800 | retrieved text per prompt |

## Storage
`make run` keeps the index in an embedded Chroma folder (`data/chroma/`). To share one index
between several app processes, start a Chroma server and point the app at it.
"""
ANSWERABLE = "How many passages are given to the model by default?"
NEIGHBOUR = "docs/markdown/rust-book-ch04-01-what-is-ownership.md"  # an index of 63 chunks
OFF_TOPIC = "What is the default size of a pizza in Italy?"  # shares "default" and "size"
RESCUE = {"keyword_floor": 0.25, "keyword_evidence": 0.15}


@pytest.fixture(scope="module")
def engine(tmp_path_factory, embedder, bench_data) -> RAG:
    """The README slice beside a book chapter: enough chunks for BM25's IDF to mean something."""
    rag = RAG(Settings(data_dir=tmp_path_factory.mktemp("data")), embedder=embedder)
    results = rag.ingest([("README.md", README.encode()),
                          ("ownership.md", (bench_data / NEIGHBOUR).read_bytes())])
    assert [r.status for r in results] == ["indexed", "indexed"]
    return rag


def ask(engine: RAG, question: str, **rescue):
    settings = engine.settings
    return retrieve(question, embedder=engine.embedder, store=engine.store,
                    lexical=engine.lexical, reranker=None, top_k=settings.top_k,
                    fetch_multiplier=settings.fetch_multiplier,
                    threshold=settings.similarity_threshold, dense_weight=settings.dense_weight,
                    fusion=settings.fusion, **rescue)


def test_a_question_under_the_threshold_is_answered_on_its_keywords(engine):
    today = ask(engine, ANSWERABLE)
    assert today.hits == [] and today.best_similarity < today.threshold, "refused by cosine alone"
    rescued = ask(engine, ANSWERABLE, **RESCUE)
    assert rescued.best_similarity == today.best_similarity  # still the best cosine
    assert rescued.best_similarity >= RESCUE["keyword_floor"]
    assert rescued.keyword_evidence >= RESCUE["keyword_evidence"] and today.keyword_evidence is None
    assert "RAG_TOP_K" in rescued.hits[0].chunk.text


def test_an_off_topic_question_sharing_keywords_is_still_refused(engine):
    ranked = engine.rank(OFF_TOPIC, depth=50)
    assert any(hit.lexical for hit in ranked), "it matches by keyword"
    retrieval = ask(engine, OFF_TOPIC, **RESCUE)
    assert retrieval.hits == [] and retrieval.best_similarity < RESCUE["keyword_floor"]


def test_without_bm25_the_rescue_is_off(engine):
    settings = engine.settings
    retrieval = retrieve(ANSWERABLE, embedder=engine.embedder, store=engine.store, lexical=None,
                         reranker=None, top_k=settings.top_k,
                         fetch_multiplier=settings.fetch_multiplier,
                         threshold=settings.similarity_threshold, **RESCUE)
    assert retrieval.hits == []


def test_the_setting_reaches_the_chat_and_the_evaluation_alike(engine):
    rescuing = RAG(engine.settings.model_copy(update=RESCUE), embedder=engine.embedder,
                   llm=engine.llm)
    ranked = engine.rank(ANSWERABLE, depth=50)
    assert engine.gate(ANSWERABLE, ranked)[1] and not rescuing.gate(ANSWERABLE, ranked)[1]
    assert rescuing.retrieve(ANSWERABLE).hits and not engine.retrieve(ANSWERABLE).hits
    refused = rescuing.ask(OFF_TOPIC)
    assert refused.refused
    assert "From 0.25 a passage also counts when it holds the question's keywords" in (
        refused.refusal_note)
