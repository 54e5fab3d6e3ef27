"""Answers that outlive the page: a worker owned by the engine searches, streams and stores each
answer, so leaving the page, closing the tab or asking again never cancels one.

A page submits a question and follows the job; every state the user could see is in the
conversation store, so a reload or a restart shows the same conversation.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from rag import citations
from rag.context import Preview
from rag.conversations import ConversationStore, Message
from rag.followups import Turn
from rag.generation import FAILURE_PREFIX, failure_message
from rag.liveness import alive
from rag.types import Hit

if TYPE_CHECKING:
    from rag.embeddings import TextEmbedder
    from rag.pipeline import RAG

log = logging.getLogger(__name__)

JobState = Literal["queued", "searching", "reading", "streaming", "done"]
SAVE_EVERY_S = 1.0  # a crash mid-answer loses at most this much of the streamed text
ATTRIBUTED_NOTE = ("The answer cites no source: the sources below are matched to its sentences "
                   "by similarity.")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Finished:
    """An answer as it is stored and shown: citations normalised and, when the model cited
    nothing, attributed by similarity."""

    text: str
    cited: tuple[int, ...]
    attributed: bool


def finish(text: str, hits: Sequence[Hit], embedder: TextEmbedder, refused: bool) -> Finished:
    if refused or not hits:
        return Finished(text, (), False)
    normalised = citations.normalise(text, len(hits))
    if normalised.cited or FAILURE_PREFIX in text:
        return Finished(normalised.text, normalised.cited, False)
    matched = citations.attribute(normalised.text, [hit.chunk.text for hit in hits], embedder,
                                  citations.MIN_SIMILARITY)
    return Finished(normalised.text, matched, bool(matched))


class AnswerJob:
    """One question being answered; any number of pages may follow it."""

    def __init__(self, conversation_id: str, question: str, question_id: int,
                 message_id: int, documents: Sequence[str] | None = None) -> None:
        self.conversation_id, self.question = conversation_id, question
        self.question_id, self.message_id = question_id, message_id  # the stored rows
        self.documents = documents  # this question's own scope, if any
        self.state: JobState = "queued"
        self.text = ""
        self.hits: list[Hit] = []
        self.searched: str | None = None
        self.refused = False
        self.preview: Preview | None = None  # source 1's best sentences, while the model reads
        self._changed = threading.Condition()

    @property
    def done(self) -> bool:
        return self.state == "done"

    def _update(self, **fields) -> None:
        with self._changed:
            for name, value in fields.items():
                setattr(self, name, value)
            self._changed.notify_all()

    def _append(self, delta: str) -> None:
        with self._changed:
            self.text += delta
            self.state = "streaming"
            self._changed.notify_all()

    def follow(self) -> Iterator[str]:
        """The answer's text from its start, as it arrives, until it is complete."""
        sent = 0
        while True:
            with self._changed:
                self._changed.wait_for(lambda sent=sent: len(self.text) > sent or self.done)
                delta, finished = self.text[sent:], self.done
            sent += len(delta)
            if delta:
                yield delta
            if finished:
                return

    def wait(self, timeout: float | None = None) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.done, timeout)

    def wait_for_sources(self, timeout: float | None = None) -> bool:
        """Until the sources are known (before the first token), or the job is done."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self.state in ("reading", "streaming", "done"), timeout)


class ChatService:
    """Answers questions of stored conversations, one at a time per conversation and in order,
    so a second question waits for the first answer instead of cancelling it."""

    def __init__(self, rag: RAG, store: ConversationStore) -> None:
        self._rag, self._store = rag, store
        self._lock = threading.Lock()
        self._queues: dict[str, list[AnswerJob]] = {}
        # Answers another process was writing when it died stay as they stood, marked so.
        store.mark_interrupted(keep=lambda message: alive(message.meta.get("pid")))

    def ask(self, conversation_id: str, question: str,
            documents: Sequence[str] | None = None) -> AnswerJob:
        """Stores the question at once and queues its answer. `documents` scopes this question
        only; by default the conversation's own scope applies."""
        question = question.strip()
        if not question:
            raise ValueError("the question is empty")
        with self._lock:
            asked = self._store.add_message(conversation_id, "user", question)
            message = self._store.add_message(conversation_id, "assistant", "", status="queued",
                                              meta={"pid": os.getpid()})
            job = AnswerJob(conversation_id, question, asked.id, message.id, documents)
            queue = self._queues.setdefault(conversation_id, [])
            queue.append(job)
            if len(queue) == 1:
                threading.Thread(target=self._drain, args=(conversation_id,),
                                 name=f"answer-{conversation_id[:8]}", daemon=True).start()
        return job

    def jobs(self, conversation_id: str) -> list[AnswerJob]:
        """Unfinished answers of a conversation: the one being written first."""
        with self._lock:
            return list(self._queues.get(conversation_id, []))

    def _drain(self, conversation_id: str) -> None:
        while True:
            with self._lock:
                job = self._queues[conversation_id][0]
            self._answer(job)
            with self._lock:
                queue = self._queues[conversation_id]
                queue.pop(0)
                if not queue:
                    del self._queues[conversation_id]
                    return

    def _answer(self, job: AnswerJob) -> None:
        """Never raises: a failure is stored with the text so far and the failure line."""
        store, message_id = self._store, job.message_id
        try:
            documents = job.documents
            if documents is None:
                conversation = store.get(job.conversation_id)
                documents = conversation.documents if conversation else ()
            job._update(state="searching")
            answer = self._rag.ask(job.question, self.earlier(job.conversation_id, job.question_id),
                                   documents=documents)
            job._update(state="reading", hits=answer.hits, searched=answer.searched,
                        refused=answer.refused, preview=answer.preview)
            store.update_message(message_id, status="streaming", searched=answer.searched,
                                 sources=answer.hits, note=answer.refusal_note)
            saved = time.monotonic()
            for delta in answer.deltas:
                job._append(delta)
                if time.monotonic() - saved > SAVE_EVERY_S:
                    store.update_message(message_id, content=job.text)
                    saved = time.monotonic()
            self._store_final(job, answer)
        except Exception as error:
            if isinstance(error, KeyError) and store.get(job.conversation_id) is None:
                log.info("conversation %s was deleted while it was answered", job.conversation_id)
                return
            log.exception("answering %r failed", job.question)
            job._update(text=job.text + failure_message(f"{type(error).__name__}: {error}"))
            try:
                store.update_message(message_id, content=job.text, status="failed",
                                     finished_at=_now())
            except Exception:
                log.exception("storing the failed answer failed")
        finally:
            job._update(state="done")

    def _store_final(self, job: AnswerJob, answer) -> None:
        refused = answer.withheld
        final = finish(job.text, answer.hits, self._rag.embedder, refused)
        status = ("refused" if refused else
                  "failed" if FAILURE_PREFIX in job.text else "done")
        note = answer.refusal_note or (ATTRIBUTED_NOTE if final.attributed else None)
        meta = {"attributed": final.attributed, "overview": answer.overview,
                "best_similarity": answer.best_similarity, "threshold": answer.threshold,
                "prompt_tokens": answer.prompt_tokens,
                "refusal_probability": answer.refusal_probability}
        self._store.update_message(job.message_id, content=final.text, status=status,
                                   cited=final.cited, note=note, meta=meta, finished_at=_now())

    def earlier(self, conversation_id: str, before: int | None = None) -> list[Turn]:
        """The conversation's finished exchanges before a message, for searching and the prompt."""
        return turns(self._store.messages(conversation_id), before)


def turns(messages: Sequence[Message], before: int | None = None) -> list[Turn]:
    """Each question with the answer that followed it; answers cut off or failed count as
    asked but unanswered, so their text never misleads the next search."""
    result: list[Turn] = []
    for message in messages:
        if before is not None and message.id >= before:
            break
        if message.role == "user":
            result.append(Turn(message.content))
        elif result and message.status == "done":
            last = result[-1]
            result[-1] = Turn(last.question, message.content,
                              tuple(hit.chunk.chunk_id for hit in message.sources))
    return [turn for turn in result if turn.question]
