"""What a follow-up question means: the text to search for it, given the conversation so far.

"How much RAM did it have?" alone matches nothing; searched with the question before it, it
finds the page that answered that one. Each method is measured in bench/followups.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

FollowupMethod = Literal["latest", "previous-questions", "previous-sources",
                         "questions-and-sources", "condense"]
FOLLOWUP_METHODS: tuple[FollowupMethod, ...] = (
    "latest", "previous-questions", "previous-sources", "questions-and-sources", "condense")

# Earlier questions searched with the newest: two reach back over one digression ("and in
# HTTP/2?" after a question about HTTP/1.1 headers and one about their size).
PREVIOUS_QUESTIONS = 2
_CONDENSE_ANSWER_CHARS = 400  # of each earlier answer, enough to resolve "it" and "that one"

CONDENSE_PROMPT = (
    "Rewrite the user's last question as one standalone question that can be understood "
    "without the conversation: replace pronouns and ellipses with what they refer to and keep "
    "names and technical terms. If the last question is about something unrelated to the "
    "conversation, repeat it unchanged. Reply with the question only."
)


@dataclass(frozen=True)
class Turn:
    """One earlier exchange, as much of it as searching needs."""

    question: str
    answer: str = ""
    sources: tuple[str, ...] = ()  # chunk ids of the passages the answer was given


@dataclass(frozen=True)
class SearchPlan:
    text: str  # what dense and BM25 search for
    latest: str  # the newest message alone; the gate also judges it
    carry: tuple[str, ...] = field(default=())  # chunk ids kept as candidates

    @property
    def rewritten(self) -> bool:
        return self.text != self.latest


def plan_search(
    question: str,
    earlier: Sequence[Turn],
    method: FollowupMethod,
    condense: Callable[[list[dict]], str] | None = None,
) -> SearchPlan:
    """A first question is searched as it is, whatever the method."""
    question = question.strip()
    if not earlier or method == "latest":
        return SearchPlan(question, question)
    if method == "previous-sources":
        return SearchPlan(question, question, earlier[-1].sources)
    if method in ("previous-questions", "questions-and-sources"):
        before = [turn.question for turn in earlier[-PREVIOUS_QUESTIONS:]]
        carry = earlier[-1].sources if method == "questions-and-sources" else ()
        # newest first: measured, recall@5 0.908 vs 0.892 with the earlier questions first
        return SearchPlan(" ".join([question, *before]), question, carry)
    if condense is None:
        raise ValueError("the condense method needs a language model")
    rewritten = _clean(condense(condense_messages(question, earlier)))
    return SearchPlan(rewritten or question, question)


def condense_messages(question: str, earlier: Sequence[Turn]) -> list[dict]:
    """The conversation as one user message: small models follow a transcript better than a
    replayed chat, and it reads no sources, so it is short."""
    lines = []
    for turn in earlier[-PREVIOUS_QUESTIONS:]:
        lines.append(f"User: {turn.question}")
        if turn.answer:
            lines.append(f"Assistant: {turn.answer[:_CONDENSE_ANSWER_CHARS]}")
    lines.append(f"User (last question): {question}")
    return [{"role": "system", "content": CONDENSE_PROMPT},
            {"role": "user", "content": "\n".join(lines) + "\n\nStandalone question:"}]


def _clean(text: str) -> str:
    """The first line, without a label or quotes the model may wrap it in."""
    line = next((line for line in text.strip().splitlines() if line.strip()), "")
    line = line.strip().strip('"“”').strip()
    for label in ("Standalone question:", "Question:"):
        line = line.removeprefix(label)
    return line.strip().strip('"“”').strip()
