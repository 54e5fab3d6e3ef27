"""A question to a streamed answer: search (or a whole document's spread), the gate, the prompt's
context within its token budget, and the model, which may decline at its first token."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from rag.context import Context, Preview, select
from rag.followups import SearchPlan, Turn, plan_search
from rag.generation import (
    FAILURE_PREFIX,
    LLM,
    REFUSAL,
    FirstToken,
    build_messages,
    create_llm,
    failure_message,
)
from rag.index import Index
from rag.inert_markup import inert_images
from rag.overview import is_whole_document_question, spread, target_document
from rag.search import Search
from rag.types import DocumentInfo, Hit

log = logging.getLogger(__name__)

# A whole-document question gets the budget that held 5-6 spread passages (bench/followups.py):
# a summary is worth a longer wait than a fact.
OVERVIEW_TOKENS = 800


@dataclass
class Answer:
    """Hits are known before the first token, so a UI can show the sources while text streams."""

    hits: list[Hit]
    deltas: Iterator[str]
    refused: bool
    best_similarity: float | None
    threshold: float
    searched: str = ""  # what was searched: the question with its conversation's context
    overview: int = 0  # passages spread over the document, for a whole-document question
    latest_support: float | None = None  # the newest message alone vs the passages found
    keyword_floor: float | None = None  # the lower similarity that matching keywords allow
    keyword_evidence: float | None = None  # share of the question's keywords the best match has
    preview: Preview | None = None  # the top source's best sentences, shown while the model reads
    # set while the answer streams: the prompt's size, and the model's probability of starting
    # the refusal sentence; `declined` says why, when that probability declined the answer
    prompt_tokens: int | None = None
    refusal_probability: float | None = None
    declined: str | None = None

    @property
    def withheld(self) -> bool:
        """Refused before any model ran, or declined by the model at its first token."""
        return self.refused or self.declined is not None

    @property
    def refusal_note(self) -> str | None:
        """Why the answer was declined, in numbers: before any model was asked, or by it."""
        if self.declined:
            return self.declined
        if not self.refused or self.best_similarity is None:
            return None
        if self.latest_support is not None:
            return (f"Searched with the conversation, passages matched (best "
                    f"{self.best_similarity:.2f}), but the question alone matched none of them "
                    f"(best {self.latest_support:.2f}): it seems to be about something else.")
        note = (f"No passage reached the similarity threshold {self.threshold:.2f} "
                f"(best match {self.best_similarity:.2f}).")
        if self.keyword_floor is None or self.keyword_evidence is None:
            return note
        return note + (f" From {self.keyword_floor:.2f} a passage also counts when it holds the "
                       f"question's keywords; the best held {self.keyword_evidence:.0%} of them.")


def _history(earlier: Sequence[Turn]) -> list[dict]:
    """The conversation as chat messages for the prompt (build_messages keeps the last few)."""
    messages = []
    for turn in earlier:
        messages.append({"role": "user", "content": turn.question})
        if turn.answer:
            messages.append({"role": "assistant", "content": turn.answer})
    return messages


class Answering:
    """The language model loads on first use (or `prepare_llm`), never for listing documents."""

    def __init__(self, index: Index, search: Search, llm: LLM | None = None) -> None:
        self.index = index
        self.search = search
        self.llm = llm
        self._llm_lock = threading.Lock()

    def ask(self, question: str, earlier: Sequence[Turn] = (),
            documents: Sequence[str] = ()) -> Answer:
        """With no hit above the threshold the answer is the refusal, and no LLM is called.
        `earlier` is the conversation so far; `documents` limits the search to those ids."""
        settings = self.index.settings
        history = _history(earlier)
        # listing the documents costs a store read: only for questions that may need it
        target = (target_document(question, self.index.documents(), documents)
                  if is_whole_document_question(question) else None)
        if target is not None:
            hits = self._overview(target, question)
            whole = Context(hits, [hit.chunk.text for hit in hits], None)
            return self._answer(question, history, whole, max(hit.similarity for hit in hits),
                                settings.similarity_threshold, searched=question,
                                overview=len(hits))
        search = self.plan_search(question, earlier)
        retrieval = self.search.retrieve(search.text, latest=search.latest, carry=search.carry,
                                         documents=documents)
        if not retrieval.hits:
            return Answer([], iter([REFUSAL]), True, retrieval.best_similarity,
                          retrieval.threshold, searched=search.text,
                          latest_support=retrieval.latest_support,
                          keyword_floor=settings.keyword_floor,
                          keyword_evidence=retrieval.keyword_evidence)
        return self._answer(question, history, self.context(question, retrieval.hits),
                            retrieval.best_similarity, retrieval.threshold, searched=search.text)

    def _answer(self, question: str, history: list[dict], context: Context,
                best: float | None, threshold: float, **details) -> Answer:
        answer = Answer(context.hits, iter(()), False, best, threshold, preview=context.preview,
                        **details)
        messages = build_messages(question, context.hits, history, context.texts)
        answer.deltas = inert_images(self._declining_stream(answer, messages))
        return answer

    def _declining_stream(self, answer: Answer, messages: list[dict]) -> Iterator[str]:
        """The answer, or the refusal sentence when the model's first token makes declining
        likelier than the calibrated cut-off."""
        cutoff = self.index.settings.decline_cutoff

        def first_token(first: FirstToken) -> bool:
            answer.prompt_tokens = first.prompt_tokens
            answer.refusal_probability = p = first.refusal_probability
            if p is None or p < cutoff:
                return False
            answer.declined = (f"The passages found do not state this: the model was "
                               f"{p:.0%} likely to decline (cut-off {cutoff:.0%}).")
            return True

        yield from self._stream(messages, on_first_token=first_token)
        if answer.declined:
            yield REFUSAL

    def plan_search(self, question: str, earlier: Sequence[Turn]) -> SearchPlan:
        return plan_search(question, earlier, self.index.settings.followup_method, self.complete)

    def complete(self, messages: list[dict], max_tokens: int = 64) -> str:
        """A short whole reply (a rewritten question); empty when the model failed."""
        text = "".join(self._stream(messages, max_tokens))
        return "" if FAILURE_PREFIX in text else text

    def _overview(self, target: DocumentInfo, question: str) -> list[Hit]:
        """A spread of the whole document: at least OVERVIEW_TOKENS, as one passage or two
        cannot stand for a document."""
        chunks = self.index.store.get_chunks(self.index.chunk_ids([target.doc_id]))
        query = self.index.embedder.embed_query(question)
        budget = max(self.index.settings.context_tokens, OVERVIEW_TOKENS)
        return spread(chunks, query, budget, self.count_llm_tokens)

    def get_llm(self) -> LLM:
        with self._llm_lock:
            if self.llm is None:
                self.llm = create_llm(self.index.settings)
            return self.llm

    @property
    def llm_ready(self) -> bool:
        """False until the embedded model is in memory, so the UI can say it is loading."""
        if self.index.settings.uses_remote_llm:
            return True
        return self.llm is not None and getattr(self.llm, "loaded", True)

    def prepare_llm(self) -> None:
        """Join and load the embedded model before streaming. A failure is only logged here:
        the answer's stream reports it where the user looks."""
        try:
            llm = self.get_llm()
            if hasattr(llm, "load"):
                llm.load()
        except Exception:
            log.exception("preparing the language model failed")

    def _stream(self, messages: list[dict], max_tokens: int | None = None,
                on_first_token: Callable[[FirstToken], bool] | None = None) -> Iterator[str]:
        try:
            llm = self.get_llm()
        except Exception as error:  # e.g. a model package missing: say so where the answer goes
            log.exception("no language model")
            yield failure_message(str(error))
            return
        yield from llm.stream(messages, max_tokens, on_first_token)

    def count_llm_tokens(self, text: str) -> int:
        """The language model's tokens where it can count them (the embedded model); the
        embedder's otherwise, an estimate for a remote model's unknown tokenizer."""
        try:
            counter = getattr(self.get_llm(), "count_tokens", None)
        except Exception:  # no model: the answer reports that; the budget needs some count
            counter = None
        return (counter or self.index.embedder.count_tokens)(text)

    def context(self, question: str, hits: list[Hit]) -> Context:
        """What the prompt shows of the hits, within the context budget in the model's tokens:
        on a CPU, prompt reading is nearly all of the wait for the first word."""
        embedder = self.index.embedder
        return select(embedder.embed_query(question), hits, embedder.embed,
                      self.count_llm_tokens, budget=self.index.settings.context_tokens,
                      mode=self.index.settings.context_mode)
