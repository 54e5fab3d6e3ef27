"""Searching the live index with the live retrieval settings: what the chat, the CLI's eval and
the Evaluation page all search with, so they judge a question the same way."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from rag.index import Index
from rag.rerank import Reranker, create_reranker
from rag.retrieval import Retrieval, judge, rank, retrieve
from rag.types import Hit

log = logging.getLogger(__name__)
T = TypeVar("T")


class Search:
    def __init__(self, index: Index) -> None:
        self.index = index
        self.reranker: Reranker | None = create_reranker(index.settings)

    def settings_changed(self) -> None:
        self.reranker = create_reranker(self.index.settings)

    def retrieve(self, question: str, *, latest: str | None = None, carry: Sequence[str] = (),
                 documents: Sequence[str] = ()) -> Retrieval:
        """`documents` scopes the search to those ids; `latest` is the newest message of a
        follow-up searched as `question` (see retrieval.retrieve)."""
        settings = self.index.settings
        within = self.index.chunk_ids(list(documents)) if documents else None
        return self._search(lambda parts: retrieve(
            question, top_k=settings.top_k, fetch_multiplier=settings.fetch_multiplier,
            threshold=settings.similarity_threshold, within=within, carry=carry,
            latest=latest, latest_threshold=settings.followup_threshold,
            keyword_floor=settings.keyword_floor,
            keyword_evidence=settings.keyword_evidence, **parts))

    def gate(self, question: str, hits: Sequence[Hit]) -> tuple[float | None, bool]:
        """The best similarity of a ranking and whether the chat would refuse the question for
        it, by the configured rule."""
        settings = self.index.settings
        lexical = self.index.lexical if settings.hybrid else None
        best, refused, _ = judge(question, hits, lexical, settings.similarity_threshold,
                                 settings.keyword_floor, settings.keyword_evidence)
        return best, refused

    def rank(self, question: str, depth: int) -> list[Hit]:
        """The full ranking to `depth`, without the threshold's gate: what evaluation scores."""
        return self._search(lambda parts: rank(question, depth=depth, **parts))

    def _search(self, search: Callable[[dict], T]) -> T:
        """A re-index drops the old generation as soon as the new one is live; a search caught
        on the old one runs again on the new one."""
        self.index.follow_other_processes()
        parts = self._parts()
        try:
            return search(parts)
        except Exception:
            self.index.follow_other_processes()
            if parts["store"] is self.index.store:
                raise
            log.info("the index was swapped during a search; searching the new one")
            return search(self._parts())

    def _parts(self) -> dict:
        self.index.sync_lexical()
        settings = self.index.settings
        return {
            "embedder": self.index.embedder,
            "store": self.index.store,
            "lexical": self.index.lexical if settings.hybrid else None,
            "reranker": self.reranker,
            "dense_weight": settings.dense_weight,
            "fusion": settings.fusion,
        }
