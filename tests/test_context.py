"""The prompt's share of the passages, as a pure function: hand-made vectors stand in for the
embedder (the real one is used in tests/test_pipeline.py)."""

from __future__ import annotations

import numpy as np

from rag.context import GAP, select
from rag.types import Chunk, Hit

TOPIC = np.array([1.0, 0.0])


def hit(ordinal: int, text: str) -> Hit:
    chunk = Chunk(doc_id="doc", source="guide.md", ordinal=ordinal, text=text, start=0,
                  end=len(text))
    return Hit(chunk=chunk, similarity=0.5)


def embed(sentences: list[str]) -> np.ndarray:
    """On topic when the sentence names the topic word, off topic otherwise."""
    return np.array([[1.0, 0.0] if "Rhine" in s else [0.0, 1.0] for s in sentences])


def words(text: str) -> int:
    return len(text.split())


FIRST = hit(0, "Cats sleep a lot. Dogs bark. The Rhine is 1,230 km long. Birds sing. Fish swim.")
SECOND = hit(1, "Apples are red. The Rhine flows into the North Sea. Pears are green.")


def test_sentences_keep_the_best_with_neighbours_in_document_order():
    # the second best sentence's neighbours would overflow the budget: it comes alone
    context = select(TOPIC, [FIRST, SECOND], embed, words, budget=17, mode="sentences")
    assert context.hits == [FIRST, SECOND]
    assert context.texts[0] == "Dogs bark. The Rhine is 1,230 km long. Birds sing."
    assert context.texts[1] == "The Rhine flows into the North Sea."


def test_left_out_sentences_leave_a_gap_and_unused_passages_are_dropped():
    third = hit(2, "Nothing here. Or here.")
    context = select(TOPIC, [FIRST, third], embed, words, budget=6, mode="sentences",
                     neighbours=0)
    assert context.hits == [FIRST]
    assert context.texts == ["The Rhine is 1,230 km long."]
    both = select(TOPIC, [hit(0, "The Rhine. Cats sleep. The Rhine again.")], embed, words,
                  budget=5, mode="sentences", neighbours=0)
    assert both.texts == [f"The Rhine.{GAP}The Rhine again."]


def test_the_best_sentence_is_kept_even_over_budget():
    context = select(TOPIC, [FIRST, SECOND], embed, words, budget=1, mode="sentences")
    assert len(context.hits) == 1 and "Rhine" in context.texts[0]


def test_whole_chunks_fill_the_budget_best_first_and_the_preview_marks_source_one():
    context = select(TOPIC, [FIRST, SECOND], embed, words, budget=16, mode="chunks")
    assert context.hits == [FIRST] and context.texts == [FIRST.chunk.text]
    preview = context.preview
    start, end = preview.spans[0]
    assert preview.source == 1 and preview.text[start:end] == "The Rhine is 1,230 km long."


def test_the_preview_quotes_the_first_source_that_reached_the_prompt():
    context = select(TOPIC, [hit(0, "Cats sleep. Dogs bark."), SECOND], embed, words, budget=7,
                     mode="sentences", neighbours=0)
    assert context.hits == [SECOND]
    start, end = context.preview.spans[0]
    assert context.preview.text[start:end] == "The Rhine flows into the North Sea."
