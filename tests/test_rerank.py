"""Re-rankers reorder hits by their own score; the cross-encoder path runs on a tiny local model."""

from __future__ import annotations

import pytest

from rag.config import Settings
from rag.rerank import CrossEncoderReranker, TermOverlapReranker, create_reranker, query_terms
from rag.types import Chunk, Hit


def hit(text: str, similarity: float, ordinal: int = 0) -> Hit:
    return Hit(Chunk("d", "doc.txt", ordinal, text, 0, len(text)), similarity)


def test_query_terms_drop_stopwords_and_case():
    assert query_terms("What is the Capital of France?") == {"capital", "france"}


def test_term_overlap_promotes_the_chunk_that_names_the_question_terms():
    hits = [hit("Paris has many museums and cafes.", 0.62, 0),
            hit("The capital of France is Paris.", 0.58, 1)]
    ranked = TermOverlapReranker().rerank("What is the capital of France?", hits)
    assert [h.chunk.ordinal for h in ranked] == [1, 0]
    assert ranked[0].rerank_score == pytest.approx(0.7 * 0.58 + 0.3 * 1.0)
    assert ranked[1].rerank_score == pytest.approx(0.7 * 0.62 + 0.3 * 0.0)
    assert ranked[0].similarity == 0.58  # the dense score is kept for display


def test_term_overlap_keeps_every_hit():
    hits = [hit(f"text {i}", 0.5 + i / 100, i) for i in range(5)]
    assert sorted(h.chunk.ordinal for h in TermOverlapReranker().rerank("text", hits)) == list(range(5))


def test_factory_follows_settings():
    assert create_reranker(Settings(rerank=False)) is None
    assert isinstance(create_reranker(Settings(rerank=True)), TermOverlapReranker)


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory, embedder):
    """A two-layer BERT cross-encoder built here from the packaged model's tokenizer: an untrained
    head scores arbitrarily, which is enough to test the plumbing without any download."""
    from transformers import BertConfig, BertForSequenceClassification

    path = tmp_path_factory.mktemp("cross-encoder")
    tokenizer = embedder._tokenizer
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def test_cross_encoder_scores_and_orders_every_hit(tiny_cross_encoder):
    reranker = create_reranker(Settings(rerank=True, reranker="cross-encoder",
                                        reranker_model=tiny_cross_encoder))
    assert isinstance(reranker, CrossEncoderReranker)
    hits = [hit("alpha beta", 0.5, 0), hit("gamma delta", 0.6, 1), hit("epsilon", 0.7, 2)]
    ranked = reranker.rerank("alpha?", hits)
    assert sorted(h.chunk.ordinal for h in ranked) == [0, 1, 2]
    scores = [h.rerank_score for h in ranked]
    assert all(isinstance(s, float) for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert reranker.rerank("alpha?", []) == []
