"""OpenAI's chat completions over the indexed documents, so any OpenAI client, and chat front
ends such as Open WebUI, can use them as a model named "rag".

The last message is the question and the user/assistant pairs before it its conversation;
system messages are not read (the server's own prompt keeps answers to the sources) and nothing
is stored: such clients keep their own history.

Sources travel beside OpenAI's fields, which its clients keep as extras (`response.sources` in
the Python client):
- not streamed: top-level `sources`, each with `cited`, and `refused`;
- streamed: the first chunk carries `sources` as found (`cited` null), the last one (with
  `finish_reason` "stop") carries them again with `cited` set, and `refused`.
A failed language model is a 503, or when streamed a last `data: {"error": {...}}`, which
OpenAI's client raises as an APIError.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse, JSONServerSentEvent, ServerSentEvent

from rag.answering import Answer
from rag.api.auth import Caller
from rag.api.deps import Engine
from rag.api.errors import ApiError, llm_failure
from rag.api.schemas import ChatCompletionRequest, ChatMessage, Source, sources_out
from rag.chat_service import finish
from rag.followups import Turn
from rag.pipeline import RAG

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])
MODEL = "rag"


@dataclass(frozen=True)
class _Reply:
    """What every chunk of one completion repeats."""

    model: str
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))

    def completion(self, text: str, sources: list[Source], refused: bool) -> dict:
        return {"id": self.id, "object": "chat.completion", "created": self.created,
                "model": self.model, "choices": [{
                    "index": 0, "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop"}],
                "sources": _dump(sources), "refused": refused}

    def chunk(self, delta: dict, finish_reason: str | None = None, **extra) -> dict:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": [{
                    "index": 0, "delta": delta, "finish_reason": finish_reason}], **extra}


def _dump(sources: list[Source]) -> list[dict]:
    return [found.model_dump(mode="json") for found in sources]


def _question(messages: Sequence[ChatMessage]) -> tuple[str, list[Turn]]:
    """The last user message, and the exchanges before it."""
    earlier: list[Turn] = []
    pending: str | None = None
    for message in messages:
        if message.role == "user":
            if pending is not None:  # a question no answer followed
                earlier.append(Turn(pending))
            pending = message.text().strip()
        elif message.role == "assistant" and pending is not None:
            earlier.append(Turn(pending, message.text()))
            pending = None
    if not pending:
        raise ApiError(422, "invalid_request", "the last message must be the user's question")
    return pending, earlier


@router.get("/models", summary="The one model this server offers: the documents")
def models(_: Caller) -> dict:
    return {"object": "list",
            "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "rag"}]}


@router.post("/chat/completions", response_model=None, summary="OpenAI-compatible answers",
             responses={200: {"description": (
                 "OpenAI's chat.completion object, or with stream true its chunks as "
                 "server-sent events ending with [DONE]; plus `sources` and `refused`"),
                 "content": {"application/json": {"schema": {"type": "object"}},
                             "text/event-stream": {"schema": {"type": "string"}}}}})
def chat_completions(body: ChatCompletionRequest, engine: Engine, _: Caller) -> Response:
    question, earlier = _question(body.messages)
    answer = engine.ask(question, earlier)
    reply = _Reply(body.model)
    if body.stream:
        return EventSourceResponse(_chunks(engine, answer, reply), sep="\n")
    text, failure = llm_failure("".join(answer.deltas))
    if failure is not None:
        raise failure
    final = finish(text, answer.hits, engine.embedder, answer.withheld)
    return JSONResponse(reply.completion(final.text, sources_out(answer.hits, final.cited),
                                         answer.withheld))


def _chunks(engine: RAG, answer: Answer, reply: _Reply) -> Iterator[ServerSentEvent]:
    """The text as the model writes it; citations are judged once it is complete."""
    yield JSONServerSentEvent(reply.chunk({"role": "assistant", "content": ""},
                                          sources=_dump(sources_out(answer.hits))))
    text = streamed = ""
    for delta in answer.deltas:
        text += delta
        clean, failure = llm_failure(text)
        if len(clean) > len(streamed):
            yield JSONServerSentEvent(reply.chunk({"content": clean[len(streamed):]}))
            streamed = clean
        if failure is not None:
            yield JSONServerSentEvent({"error": {"code": failure.code,
                                                 "message": failure.message}})
            return
    final = finish(text, answer.hits, engine.embedder, answer.withheld)
    yield JSONServerSentEvent(reply.chunk({}, "stop", refused=answer.withheld,
                                          sources=_dump(sources_out(answer.hits, final.cited))))
    yield ServerSentEvent("[DONE]")
