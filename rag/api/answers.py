"""POST /v1/ask: a question answered in a stored conversation by the same worker as the app's
Chat page, so a client that goes away loses nothing: the answer completes and is stored.

As server-sent events (the default):
    event: sources  {"conversation", "message", "searched", "sources": [...]}, before any text
    data: {"text": "..."}  one event per piece of the answer, in order
    event: done     {"conversation", "message", "status", "refused", "answer", "note",
                     "cited": [n, ...], "cited_sources": [...], "error"?: {"code", "message"}}
`done.answer` is the answer as stored: citation markers normalised, so it may differ slightly
from the streamed text. `"stream": false` returns the stored answer as one JSON object.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse, JSONServerSentEvent

from rag.api.auth import Caller
from rag.api.conversations import of_caller, visible
from rag.api.deps import AccountsDep, Engine
from rag.api.errors import ApiError, llm_failure
from rag.api.schemas import AskRequest, AskResult, sources_out
from rag.chat_service import AnswerJob
from rag.conversations import Message
from rag.pipeline import RAG

router = APIRouter(prefix="/v1", tags=["answers"])
SSE_SEPARATOR = "\n"
GONE = "the conversation was deleted while it was answered"


def _scope(engine: RAG, documents: Sequence[str] | None) -> tuple[str, ...]:
    """The ids asked for, each indexed; () for the whole index."""
    known = {info.doc_id for info in engine.documents()} if documents else set()
    for doc_id in documents or ():
        if doc_id not in known:
            raise ApiError(404, "not_found", f"no document with id {doc_id[:64]!r}")
    return tuple(documents or ())


def _stored(engine: RAG, job: AnswerJob) -> Message | None:
    return next((message for message in engine.conversations.messages(job.conversation_id)
                 if message.id == job.message_id), None)


@router.post("/ask", response_model=None, summary="Answer a question from the documents",
             responses={200: {"model": AskResult, "description": (
                 "text/event-stream (see the module's events), or with stream false one "
                 "JSON object"), "content": {"text/event-stream": {"schema": {"type": "string"}}}}})
def ask(body: AskRequest, engine: Engine, accounts: AccountsDep, caller: Caller) -> Response:
    documents = _scope(engine, body.documents)
    own = of_caller(engine, accounts, caller)
    if body.conversation is None:
        conversation = own.create(documents=documents)
    else:
        conversation = visible(own, body.conversation)
    job = engine.chat.ask(conversation.id, body.question, documents=documents or None)
    if body.stream:
        return EventSourceResponse(_events(engine, job), sep=SSE_SEPARATOR)
    job.wait()
    stored = _stored(engine, job)
    if stored is None:
        raise ApiError(404, "not_found", GONE)
    answer, failure = llm_failure(stored.content)
    if failure is not None:
        raise failure
    result = AskResult(conversation=job.conversation_id, message=job.message_id,
                       status=stored.status, refused=stored.status == "refused", answer=answer,
                       note=stored.note, searched=stored.searched,
                       sources=sources_out(stored.sources, stored.cited),
                       cited=list(stored.cited))
    return JSONResponse(result.model_dump(mode="json"))


def _events(engine: RAG, job: AnswerJob) -> Iterator[JSONServerSentEvent]:
    """Blocking waits: sse-starlette runs a plain generator in a worker thread."""
    job.wait_for_sources()
    ids = {"conversation": job.conversation_id, "message": job.message_id}
    yield JSONServerSentEvent({**ids, "searched": job.searched, "sources": [
        found.model_dump(mode="json") for found in sources_out(job.hits)]}, event="sources")
    text = streamed = ""
    for delta in job.follow():
        text += delta
        answer, _ = llm_failure(text)  # the failure goes in `done`, not in the text
        if len(answer) > len(streamed):
            yield JSONServerSentEvent({"text": answer[len(streamed):]})
            streamed = answer
    yield JSONServerSentEvent({**ids, **_done(engine, job)}, event="done")


def _done(engine: RAG, job: AnswerJob) -> dict:
    stored = _stored(engine, job)
    if stored is None:
        return {"status": "failed", "refused": False, "answer": "", "note": None, "cited": [],
                "cited_sources": [], "error": {"code": "not_found", "message": GONE}}
    answer, failure = llm_failure(stored.content)
    cited = [found.model_dump(mode="json")
             for found in sources_out(stored.sources, stored.cited) if found.cited]
    done = {"status": stored.status, "refused": stored.status == "refused", "answer": answer,
            "note": stored.note, "cited": list(stored.cited), "cited_sources": cited}
    if failure is not None:
        done["error"] = {"code": failure.code, "message": failure.message}
    return done
