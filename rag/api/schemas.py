"""What the API takes and returns, as pydantic models: they validate requests and make the
OpenAPI spec. Converters from the engine's types live beside them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from rag.conversations import Conversation, Message
from rag.ingest_jobs import Job, JobStatus
from rag.types import DocumentInfo, Hit

MAX_QUESTION_CHARS = 4000
MAX_MESSAGE_CHARS = 32000
Question = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                            max_length=MAX_QUESTION_CHARS)]


class Source(BaseModel):
    """A passage shown with an answer, with every score that chose it (the keys of
    `python -m rag ask --json`)."""

    number: int = Field(description="1-based; what [n] in the answer points at")
    document_id: str
    source: str = Field(description="the file name")
    page: int | None = Field(description="PDF or TIFF page, from 1")
    heading: str | None = Field(description="section heading path (Markdown, HTML, Office)")
    chunk: int = Field(description="position of the passage in its document, from 0")
    ocr: bool = Field(description="read from a scan: words may be misread")
    text: str
    similarity: float = Field(description="dense cosine similarity; the threshold applies to it")
    lexical: float | None = Field(description="BM25 score, when hybrid search ran")
    fused: float | None = Field(description="dense and BM25 fused, when hybrid search ran")
    rerank_score: float | None = Field(description="when a re-ranker ran")
    cited: bool | None = Field(None, description="whether the answer cites it; null until the "
                                                 "answer is complete")


def source_out(number: int, hit: Hit, cited: bool | None = None) -> Source:
    chunk = hit.chunk

    def score(value: float | None) -> float | None:  # numpy floats do not serialise
        return None if value is None else float(value)

    return Source(number=number, document_id=chunk.doc_id, source=chunk.source, page=chunk.page,
                  heading=chunk.heading, chunk=chunk.ordinal, ocr=chunk.ocr, text=chunk.text,
                  similarity=float(hit.similarity), lexical=score(hit.lexical),
                  fused=score(hit.fused), rerank_score=score(hit.rerank_score), cited=cited)


def sources_out(hits: Sequence[Hit], cited: Sequence[int] | None = None) -> list[Source]:
    """Numbered from 1; `cited` (the answer's numbers) marks them once the answer is done."""
    return [source_out(n, hit, None if cited is None else n in cited)
            for n, hit in enumerate(hits, start=1)]


class DocumentOut(BaseModel):
    id: str = Field(description="SHA-256 of the file's bytes")
    source: str = Field(description="the file name")
    pages: int
    chunks: int
    size_bytes: int
    added_at: str
    warnings: list[str]


def document_out(info: DocumentInfo) -> DocumentOut:
    return DocumentOut(id=info.doc_id, source=info.source, pages=info.pages, chunks=info.chunks,
                       size_bytes=info.size_bytes, added_at=info.added_at,
                       warnings=list(info.warnings))


class JobOut(BaseModel):
    """An uploaded file on its way into the index, as the Documents page shows it."""

    id: int
    source: str = Field(description="the file name")
    document_id: str
    status: JobStatus
    stage: str = Field(description="while running: parsing, embedding, writing")
    done: int
    total: int
    chunks: int
    error: str | None
    warnings: list[str]
    created_at: str
    updated_at: str


def job_out(found: Job) -> JobOut:
    return JobOut(id=found.id, source=found.source, document_id=found.doc_id,
                  status=found.status, stage=found.stage, done=found.done, total=found.total,
                  chunks=found.chunks, error=found.error, warnings=list(found.warnings),
                  created_at=found.created_at, updated_at=found.updated_at)


class Rejection(BaseModel):
    code: Literal["bad_file_name", "unsupported_type", "empty_file", "too_large", "not_kept"]
    message: str


class UploadedFile(BaseModel):
    """One file of an upload: queued as a job, or rejected at once with the cause."""

    file: str = Field(description="the file name as sent")
    job: JobOut | None = None
    error: Rejection | None = None


class UploadResult(BaseModel):
    files: list[UploadedFile]


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: Question
    conversation: str | None = Field(None, description=(
        "continue this conversation (an id); omitted: a new one, whose id the answer gives"))
    documents: list[str] | None = Field(None, description=(
        "search only these documents (ids); omitted: the conversation's scope, else all"))
    stream: bool = Field(True, description="server-sent events; false: one JSON object")


class AskResult(BaseModel):
    """The answer as stored in its conversation."""

    conversation: str
    message: int = Field(description="the answer's id in the conversation")
    status: Literal["done", "refused", "failed", "interrupted"]
    refused: bool = Field(description="declined: no passage was similar enough, or the model "
                                      "found the answer not stated")
    answer: str
    note: str | None = Field(description="why it was refused, or how sources were matched")
    searched: str | None = Field(description="what was searched: the question in its context")
    sources: list[Source]
    cited: list[int] = Field(description="numbers of the sources the answer cites")


class ConversationOut(BaseModel):
    id: str
    title: str
    created_at: str
    updated_at: str
    documents: list[str] = Field(description="the document ids it is scoped to; [] = all")


def conversation_out(found: Conversation) -> ConversationOut:
    return ConversationOut(id=found.id, title=found.title, created_at=found.created_at,
                           updated_at=found.updated_at, documents=list(found.documents))


class MessageOut(BaseModel):
    id: int
    role: Literal["user", "assistant"]
    content: str
    status: str
    created_at: str
    finished_at: str | None
    searched: str | None
    note: str | None
    sources: list[Source]
    cited: list[int]


def message_out(found: Message) -> MessageOut:
    return MessageOut(id=found.id, role=found.role, content=found.content, status=found.status,
                      created_at=found.created_at, finished_at=found.finished_at,
                      searched=found.searched, note=found.note,
                      sources=sources_out(found.sources, found.cited), cited=list(found.cited))


class ConversationDetail(ConversationOut):
    messages: list[MessageOut]


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")  # image parts and the like: not read

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_calls, ...: not read

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Annotated[str, StringConstraints(max_length=MAX_MESSAGE_CHARS)] | list[
        ContentPart] | None = None

    def text(self) -> str:
        """A string content, or the text parts of a list of parts."""
        if isinstance(self.content, list):
            return "\n".join(part.text for part in self.content
                             if part.type == "text" and part.text)
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    """OpenAI's request; sampling options (temperature, max_tokens...) are accepted and
    ignored: the server's settings decide them."""

    model_config = ConfigDict(extra="allow")

    model: str = "rag"
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
