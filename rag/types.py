"""Value types passed between the layers; frozen so no layer can change another's data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Page:
    """One addressable unit of a document: a PDF page, a Markdown/HTML section, or a whole text."""

    text: str
    page: int | None = None  # 1-based page number of a PDF or a multi-page TIFF
    heading: str | None = None  # section heading path, e.g. "Ownership > The Stack and the Heap"
    ocr: bool = False  # the text was recognised in an image (a scan): it may misspell words


@dataclass(frozen=True)
class Document:
    doc_id: str  # SHA-256 hex of the file's bytes: the same file uploaded twice is one document
    source: str  # file name as the user gave it
    pages: tuple[Page, ...]
    size_bytes: int
    warnings: tuple[str, ...] = ()  # e.g. pages skipped because their text layer is unreadable


@dataclass(frozen=True)
class Chunk:
    """What gets embedded and cited. Offsets index into the text of the Page it came from."""

    doc_id: str
    source: str
    ordinal: int  # position of the chunk in its document, from 0
    text: str
    start: int
    end: int
    page: int | None = None
    heading: str | None = None
    ocr: bool = False  # from a page read by OCR, so a reader knows its text may be misread

    @property
    def chunk_id(self) -> str:
        return chunk_id(self.doc_id, self.ordinal)

    @property
    def label(self) -> str:
        """Where it is from, as a prompt or an export cites it: "a.pdf, page 3"."""
        parts = [self.source]
        if self.page is not None:
            parts.append(f"page {self.page}")
        if self.heading:
            parts.append(f"section {self.heading}")
        return ", ".join(parts)


def chunk_id(doc_id: str, ordinal: int) -> str:
    """A chunk's id is known from its document's id and its position, without reading it."""
    return f"{doc_id}:{ordinal}"


def doc_id_of(chunk_id: str) -> str:
    """The document a chunk id belongs to, without reading the chunk."""
    return chunk_id.rpartition(":")[0]


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with every score that led to it, so the UI can show why it was chosen."""

    chunk: Chunk
    similarity: float  # dense cosine similarity in [-1, 1]; the threshold applies to this
    lexical: float | None = None  # BM25 score when hybrid retrieval ran
    fused: float | None = None  # dense and lexical combined, when hybrid retrieval ran
    rerank_score: float | None = None  # when a re-ranker ran; hits are ordered by it then

    @property
    def score(self) -> float:
        """The score the hits are ordered by: the last stage that ran decides."""
        for value in (self.rerank_score, self.fused):
            if value is not None:
                return value
        return self.similarity

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: a stored conversation keeps its sources exactly as they were shown."""
        return {**asdict(self.chunk), **{name: getattr(self, name) for name in _SCORES}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hit:
        chunk = Chunk(**{name: data[name] for name in _CHUNK_FIELDS if name in data})
        return cls(chunk, **{name: data.get(name) for name in _SCORES})


# Fields a stored conversation may lack (ocr, added later) take their defaults.
_CHUNK_FIELDS = ("doc_id", "source", "ordinal", "text", "start", "end", "page", "heading", "ocr")
_SCORES = ("similarity", "lexical", "fused", "rerank_score")


@dataclass(frozen=True)
class DocumentInfo:
    """A document as listed in the index."""

    doc_id: str
    source: str
    pages: int
    chunks: int
    size_bytes: int
    added_at: str  # ISO 8601, UTC
    warnings: tuple[str, ...] = field(default=())
