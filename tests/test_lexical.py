"""BM25 and hybrid retrieval with the real bm25s, embedder and Chroma folder."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from rag.config import Settings
from rag.lexical import LexicalIndex, indexed_text
from rag.pipeline import RAG
from rag.retrieval import _fuse
from rag.types import Chunk

PUMP_MANUAL = """# Pump manual

## Installation

Mount the pump on a level surface and connect the inlet hose before switching it on.

## Maintenance

Clean the filter every month. Replace the seals once a year or when water leaks.

## Fault codes

Code E1742 means the motor overheated; let it cool for an hour before restarting.
Code E0007 means the inlet is blocked.
"""
GARDEN_NOTES = """# Garden notes

Tomatoes need full sun and regular watering. Prune the side shoots every week.
Roses prefer a sheltered spot; mulch them in autumn.
"""


def chunk(doc: str, ordinal: int, text: str, heading: str | None = None) -> Chunk:
    return Chunk(doc, f"{doc}.md", ordinal, text, 0, len(text), heading=heading)


def test_scores_match_stems_and_survive_a_reload(tmp_path):
    index = LexicalIndex(tmp_path / "bm25")
    index.rebuild([chunk("a", 0, "The cells divide quickly"),
                   chunk("b", 0, "Mitochondria power the cell"),
                   chunk("c", 0, "Nothing related here")])
    scores = index.scores("Which cell is dividing?")
    assert set(scores) == {"a:0", "b:0"}  # "dividing"/"divide" and "cell"/"cells" share stems
    assert scores["a:0"] > scores["b:0"]
    assert index.scores("zebra") == {}

    reloaded = LexicalIndex(tmp_path / "bm25")
    assert reloaded.doc_ids == {"a", "b", "c"}
    assert reloaded.scores("Which cell is dividing?") == pytest.approx(scores)
    leftovers = [*tmp_path.glob("bm25.*.tmp"), *tmp_path.glob("bm25.*.old")]
    assert leftovers == [], "no temporary folder is left behind"


def test_a_rebuild_after_each_file_scores_as_one_rebuild_from_scratch(tmp_path):
    """Terms are kept between rebuilds: what one more file changes must be all that changes,
    and a document indexed again under the same ids with other text gets the new terms."""
    growing = LexicalIndex(tmp_path / "growing")
    first = [chunk("a", 0, "The cells divide quickly"), chunk("a", 1, "Seals leak water")]
    growing.rebuild(first)
    second = [*first, chunk("b", 0, "Mitochondria power the cell", heading="Biology")]
    growing.rebuild(second)
    rechunked = [chunk("a", 0, "Zebras graze the savanna"), *second[1:]]
    growing.rebuild(rechunked)

    scratch = LexicalIndex(tmp_path / "scratch")
    scratch.rebuild(rechunked)
    for question in ("Which cell is dividing?", "zebra grazing", "biology seals"):
        assert growing.scores(question) == pytest.approx(scratch.scores(question)), question
    assert "a:0" in growing.scores("zebra")
    assert "a:0" not in growing.scores("dividing cells")


def test_an_empty_index_answers_nothing(tmp_path):
    index = LexicalIndex(tmp_path / "bm25")
    index.rebuild([])
    assert index.scores("anything") == {}
    assert LexicalIndex(tmp_path / "bm25").doc_ids == frozenset()


def test_heading_is_indexed_with_chunks_that_do_not_repeat_it():
    deep = chunk("a", 3, "Let it cool for an hour.", heading="Pump manual > Fault codes")
    assert indexed_text(deep) == "Pump manual > Fault codes\nLet it cool for an hour."
    first = chunk("a", 0, "# Fault codes\n\nCode E1742 ...", heading="Pump manual > Fault codes")
    assert indexed_text(first) == first.text


def test_convex_fusion_normalises_each_score_to_the_candidates():
    dense = {"a:0": 0.8, "b:0": 0.6, "c:0": 0.4}
    hits = _fuse(dense, {"b:0": 6.0, "c:0": 3.0}, dense_weight=0.5, fusion="convex", known={})
    # dense min-max: 1, .5, 0; BM25 min-max (a has none, so 0): 0, 1, .5
    assert [hit.fused for hit in hits] == pytest.approx([0.5, 0.75, 0.25])
    assert [hit.lexical for hit in hits] == [0.0, 6.0, 3.0]
    rrf = _fuse(dense, {"b:0": 6.0, "c:0": 3.0}, dense_weight=0.5, fusion="rrf", known={})
    assert rrf[1].fused == pytest.approx(0.5 / 62 + 0.5 / 61)  # b: dense rank 2, BM25 rank 1


@pytest.fixture
def engine(tmp_path, embedder) -> RAG:
    rag = RAG(Settings(data_dir=tmp_path / "data"), embedder=embedder)
    results = rag.ingest([("pump.md", PUMP_MANUAL.encode()), ("garden.md", GARDEN_NOTES.encode())])
    assert [r.status for r in results] == ["indexed", "indexed"]
    return rag


def test_hybrid_ranks_the_chunk_naming_an_exact_code_first(engine):
    retrieval = engine.retrieve("What does E1742 mean?")
    top = retrieval.hits[0]
    assert "E1742" in top.chunk.text
    assert top.lexical > 0 and top.fused is not None
    assert all(np.isfinite(hit.similarity) for hit in retrieval.hits)  # BM25-only hits too


def test_bm25_cannot_make_an_off_topic_question_answerable(engine):
    """'pump' matches by keyword, but the question is not about this manual."""
    ranked = engine.rank("Which pump-action shotgun is best for duck hunting?", depth=5)
    assert any(hit.lexical for hit in ranked)
    retrieval = engine.retrieve("Which pump-action shotgun is best for duck hunting?")
    assert retrieval.hits == [] and retrieval.best_similarity < retrieval.threshold


def test_deleting_a_document_removes_it_from_bm25(engine):
    pump = next(info for info in engine.documents() if info.source == "pump.md")
    assert engine.delete(pump.doc_id)
    assert all(hit.chunk.source == "garden.md" for hit in engine.rank("E1742 fault code", 10))
    assert engine.lexical.doc_ids == {info.doc_id for info in engine.documents()}


def test_a_lost_bm25_folder_is_rebuilt_from_the_store(engine, embedder):
    """A crash between the vector write and the BM25 write: the next open repairs it."""
    data_dir = engine.settings.data_dir
    shutil.rmtree(data_dir / "bm25")
    reopened = RAG(Settings(data_dir=data_dir), embedder=embedder)
    assert len(reopened.lexical) == 0
    assert "E1742" in reopened.retrieve("What does E1742 mean?").hits[0].chunk.text
    assert reopened.lexical.doc_ids == {info.doc_id for info in reopened.documents()}
    assert LexicalIndex(data_dir / "bm25").doc_ids == reopened.lexical.doc_ids  # persisted
