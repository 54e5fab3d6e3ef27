"""A conversation as Markdown, so a user can keep or share it with the sources each answer used."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rag.conversations import Conversation, Message
from rag.types import Hit

# Answers not finished as they were exported say so, or they would read as complete.
STATUS_NOTES = {"queued": "waiting to be answered", "streaming": "still being answered",
                "interrupted": "interrupted before it finished"}


def to_markdown(conversation: Conversation, messages: Sequence[Message]) -> str:
    """Citation markers stay as the answer had them ([n]), numbered like its source list."""
    dates = f"Created {_date(conversation.created_at)} · updated {_date(conversation.updated_at)}"
    lines = [f"# {conversation.title}", "", dates]
    question = None
    for message in messages:
        lines.append("")
        if message.role == "user":
            question = message.content
            lines.append(f"**You:** {message.content}")
            continue
        if message.searched and message.searched != question:
            lines += [f"*Searched for: {message.searched}*", ""]
        lines.append(f"**Assistant:** {message.content}")
        if message.status in STATUS_NOTES:
            lines += ["", f"*(Answer {STATUS_NOTES[message.status]}.)*"]
        if message.sources:
            lines += ["", "Sources:"]
            lines += [f"{number}. {_source(hit)}{' (cited)' if number in message.cited else ''}"
                      for number, hit in enumerate(message.sources, 1)]
        if message.note:
            lines += ["", f"*{message.note.strip()}*"]
    return "\n".join(lines) + "\n"


def _date(stamp: str) -> str:
    return datetime.fromisoformat(stamp).strftime("%Y-%m-%d %H:%M UTC")


def _source(hit: Hit) -> str:
    return f"{hit.chunk.label} — similarity {hit.similarity:.3f}"
