"""BM25 over the indexed chunks: finds the exact words (names, codes, rare terms) that a dense
embedding blurs. It is derived state: rebuilt from the vector store's chunks after each change
and persisted beside it, so it can always be recovered and never disagrees with the store for
long."""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys
import uuid
from collections.abc import Iterable
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

from rag.index_files import exclusive
from rag.types import Chunk

log = logging.getLogger(__name__)

_STEMMER = Stemmer.Stemmer("english")  # Snowball: "cells"/"cell", "dividing"/"divide" meet
_CHUNK_IDS = "chunk_ids.json"
# Recorded in the index manifest: a change to how text becomes terms means a BM25 rebuild.
LEXICAL_FORMAT = f"bm25s {bm25s.__version__}; snowball english; stopwords en; heading prefix"


def indexed_text(chunk: Chunk) -> str:
    """What is embedded and BM25-indexed: the chunk with its section heading in front, so a
    chunk deep in a section still carries the topic its heading names."""
    if not chunk.heading:
        return chunk.text
    title = chunk.heading.rsplit(" > ", 1)[-1]
    if title in chunk.text[: len(title) + 16]:  # the chunk starts with its own heading line
        return chunk.text
    return f"{chunk.heading}\n{chunk.text}"


def terms(texts: list[str]) -> list[list[str]]:
    return bm25s.tokenize(texts, stopwords="en", stemmer=_STEMMER, return_ids=False,
                          show_progress=False)


class LexicalIndex:
    """One BM25 model over every listed chunk, kept in a folder that is replaced whole."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._model: bm25s.BM25 | None = None
        self._chunk_ids: list[str] = []
        self.doc_ids: frozenset[str] = frozenset()
        # Terms of the texts indexed last: a rebuild after one more file tokenizes that file
        # only (tokenizing every chunk again made BM25 upkeep grow with the square of the files).
        # Interned, so a term that occurs a million times is stored once.
        self._terms: dict[str, tuple[str, ...]] = {}
        self.reload()

    @property
    def _lock_file(self) -> Path:
        return self.path.with_name(f"{self.path.name}.lock")

    def __len__(self) -> int:
        return len(self._chunk_ids)

    def rebuild(self, chunks: Iterable[Chunk]) -> None:
        chunks = list(chunks)
        self._chunk_ids = [chunk.chunk_id for chunk in chunks]
        self.doc_ids = frozenset(chunk.doc_id for chunk in chunks)
        self._model = None
        texts = [indexed_text(chunk) for chunk in chunks]
        new = list(dict.fromkeys(text for text in texts if text not in self._terms))
        known = {text: self._terms[text] for text in texts if text in self._terms}
        self._terms = known | {
            text: tuple(map(sys.intern, found))
            for text, found in zip(new, terms(new) if new else [], strict=True)}
        if chunks:
            self._model = bm25s.BM25()
            self._model.index([self._terms[text] for text in texts], show_progress=False)
        self._save()

    def scores(self, question: str) -> dict[str, float]:
        """BM25 score of every chunk that shares a term with the question."""
        if self._model is None:
            return {}
        known = [t for t in terms([question])[0] if t in self._model.vocab_dict]
        if not known:
            return {}
        scores = self._model.get_scores(known)
        hits = np.flatnonzero(scores > 0)
        return {self._chunk_ids[i]: float(scores[i]) for i in hits}

    def term_idf(self, question: str) -> list[tuple[str, float]]:
        """The question's terms (repeats kept, as `scores` counts them) with their BM25 IDF; a term
        no chunk holds gets the highest IDF there is. No chunk can score more than their sum, so
        the top score over it is the share of the question that the best chunk matches."""
        if self._model is None:
            return []
        docs, indptr = self._model.scores["num_docs"], self._model.scores["indptr"]
        weights = []
        for term in terms([question])[0]:
            column = self._model.vocab_dict.get(term)
            df = 0 if column is None else int(indptr[column + 1] - indptr[column])
            weights.append((term, math.log(1 + (docs - df + 0.5) / (df + 0.5))))  # Lucene's IDF
        return weights

    def _save(self) -> None:
        """Written beside, then swapped in: a crash leaves the old folder or none (rebuilt on
        open), never a half-written one."""
        fresh = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex}.tmp")
        fresh.mkdir(parents=True)
        if self._model is not None:
            self._model.save(str(fresh), show_progress=False)
        (fresh / _CHUNK_IDS).write_text(json.dumps(self._chunk_ids), encoding="utf-8")
        old = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex}.old")
        # processes sharing a data_dir swap one at a time: two renames must not interleave
        with exclusive(self._lock_file):
            if self.path.exists():
                self.path.rename(old)
            fresh.rename(self.path)
        shutil.rmtree(old, ignore_errors=True)

    def reload(self) -> None:
        """Read the saved copy: another process sharing the data_dir may have saved a newer one."""
        ids_file = self.path / _CHUNK_IDS
        if not ids_file.exists():
            return
        try:  # under the swap's lock: never the ids of one save with the model of the next
            with exclusive(self._lock_file):
                chunk_ids = json.loads(ids_file.read_text(encoding="utf-8"))
                model = bm25s.BM25.load(str(self.path), show_progress=False) if chunk_ids else None
        except (OSError, ValueError) as error:  # unreadable: the caller rebuilds it
            log.warning("BM25 index at %s unreadable (%s); it will be rebuilt", self.path, error)
            return
        self._model, self._chunk_ids = model, chunk_ids
        self.doc_ids = frozenset(chunk_id.rsplit(":", 1)[0] for chunk_id in chunk_ids)
