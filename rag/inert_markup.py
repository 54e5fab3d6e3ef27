"""Answers are written by a model that has read documents anyone may have written, so an answer
must not make a reader's browser or chat client fetch a URL by itself: an image in Markdown
(`![x](https://host/log?q=...)`, the usual way an injected instruction exfiltrates what the
model saw) is shown as text, escaped in the stream as it is written and so in the stored answer.
Links stay: they need a click, and the reader sees where they go."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

IMAGE = "!["
SHOWN = "!\\["  # Markdown: a literal bracket, so no image


def inert_images(deltas: Iterable[str]) -> Iterator[str]:
    """The same text with every `![` escaped, even when a delta ends between `!` and `[`."""
    held = ""
    for delta in deltas:
        text = held + delta
        held = "!" if text.endswith("!") else ""
        text = text[: len(text) - len(held)]
        if text:
            yield text.replace(IMAGE, SHOWN)
    if held:
        yield held
