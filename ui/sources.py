"""How a retrieved source is shown: where it is from, every score, whether the answer cited it,
and its text kept inert with the sentences the answer drew on marked."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import streamlit as st

from rag.citations import highlight
from rag.embeddings import Embedder
from rag.pipeline import RAG
from rag.types import Hit
from ui.pdf_page import show_page


def location(hit: Hit) -> str:
    if hit.chunk.page is not None:
        return f"page {hit.chunk.page}"
    return hit.chunk.heading or "whole document"


def scores(hit: Hit) -> str:
    parts = [f"similarity {hit.similarity:.3f}"]
    if hit.lexical is not None:
        parts.append(f"lexical {hit.lexical:.3f}")
    if hit.fused is not None:
        parts.append(f"fused {hit.fused:.3f}")
    if hit.rerank_score is not None:
        parts.append(f"re-rank {hit.rerank_score:.3f}")
    return " · ".join(parts)


def anchor(message_id: int, number: int) -> str:
    """The id a citation link in message `message_id` jumps to."""
    return f"m{message_id}-s{number}"


def passage_html(text: str, spans: Sequence[tuple[int, int]] = (), element_id: str = "") -> str:
    """The passage HTML-escaped, so no markup from a document can run: only our div and marks are
    live. Newlines become &#10; so the block stays one line: a blank line would end the HTML block
    and let Markdown parse the rest of the document's text."""
    parts, position = [], 0
    for start, end in sorted(spans):
        if start < position:
            continue
        parts += [escape(text[position:start]), "<mark>", escape(text[start:end]), "</mark>"]
        position = end
    parts.append(escape(text[position:]))
    body = "".join(parts).replace("\r\n", "\n").replace("\n", "&#10;")
    id_attribute = f' id="{escape(element_id)}"' if element_id else ""
    return f'<div{id_attribute} style="white-space: pre-wrap">{body}</div>'


@st.cache_data(max_entries=4096, show_spinner=False)
def _marked(passage: str, answer: str, model: str, _embedder: Embedder) -> list[tuple[int, int]]:
    """Sentence embeddings cost ~0.1 s a message on a CPU: once per passage, answer and model."""
    return highlight(passage, answer, _embedder)


def ordered(count: int, cited: Sequence[int]) -> list[int]:
    """1-based source numbers: the cited ones first, in the order the answer cites them."""
    first = [n for n in dict.fromkeys(cited) if 1 <= n <= count]
    return first + [n for n in range(1, count + 1) if n not in first]


def show_sources(
    hits: Sequence[Hit],
    engine: RAG,
    *,
    key: str,
    message_id: int | None = None,
    answer: str = "",
    cited: Sequence[int] = (),
    attributed: bool = False,
) -> None:
    """`key` makes the page viewers' widget keys unique on the page; `message_id` gives each
    source the anchor its citation links point at; `answer` marks the sentences it drew on."""
    mark = "matched" if attributed else "cited"
    cited_set = set(cited)
    summary = f"Sources ({len(hits)})"
    if cited_set:
        summary += f" · {len(cited_set)} {mark}"
    st.caption(summary)
    for number in ordered(len(hits), cited):
        hit = hits[number - 1]
        label = f"[{number}] {hit.chunk.source} — {location(hit)} — {scores(hit)}"
        if number in cited_set:
            label = f"{label} — **{mark}**"
        # A cited source is open: its citation links to its marked passage, to be checked.
        with st.expander(label, expanded=number in cited_set and not attributed):
            spans = (_marked(hit.chunk.text, answer, engine.index_model, engine.embedder)
                     if answer else [])
            element_id = anchor(message_id, number) if message_id is not None else ""
            st.markdown(passage_html(hit.chunk.text, spans, element_id), unsafe_allow_html=True)
            if hit.chunk.page is not None and st.toggle(
                f"View page {hit.chunk.page}", key=f"{key}-page-{number}"
            ):
                show_page(engine.settings.data_dir, hit.chunk.doc_id, hit.chunk.page,
                          hit.chunk.source)
