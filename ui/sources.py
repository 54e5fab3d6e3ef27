"""How a retrieved source is shown: where it is from, every score, whether the answer cited it,
and its text kept inert with the sentences the answer drew on marked."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import streamlit as st

from rag.citations import highlight
from rag.context import Preview
from rag.embeddings import Embedder
from rag.pipeline import RAG
from rag.types import Hit
from ui.pdf_page import show_page

ELLIPSIS = "…"
PREVIEW_LABEL = "Most relevant passage"
PREVIEW_AROUND = 160  # characters of the passage kept beside its marked sentences


def location(hit: Hit) -> str:
    """Where in its document a source is; "· OCR" when its text was read off an image, so a
    misspelt word there is known to be the scan's, not the document's."""
    if hit.chunk.page is not None:
        where = f"page {hit.chunk.page}"
    else:
        where = hit.chunk.heading or "whole document"
    return f"{where} · OCR" if hit.chunk.ocr else where


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


def _shortened(text: str, keep: int, *, start: bool, end: bool) -> str:
    """Unmarked text cut to about `keep` characters, an ellipsis for what was left out: `start`
    keeps its beginning (the text after a mark), `end` its end (the text before one), both for
    text between two marks. Cuts fall between words when the kept part has more than one; the
    whitespace beside the marks stays. Text short enough is kept whole."""
    if len(text) <= keep * (start + end) + 2 * len(ELLIPSIS):
        return text
    parts = []
    if start:
        head = text[:keep]
        if not text[keep].isspace():  # the cut falls in a word: end before it
            gap = max((i for i, c in enumerate(head) if c.isspace()), default=0)
            head = head[:gap] if head[:gap].strip() else head
        parts.append(head.rstrip())
    parts.append(ELLIPSIS)
    if end:
        tail = text[-keep:]
        if not text[-keep - 1].isspace():  # the cut falls in a word: start after it
            gap = next((i for i, c in enumerate(tail) if c.isspace()), len(tail))
            tail = tail[gap:] if tail[gap:].strip() else tail
        parts.append(tail.lstrip())
    return " ".join(parts)


def passage_html(text: str, spans: Sequence[tuple[int, int]] = (), element_id: str = "",
                 around: int | None = None) -> str:
    """The passage HTML-escaped, so no markup from a document can run: only our div and marks are
    live. Newlines become &#10; so the block stays one line: a blank line would end the HTML block
    and let Markdown parse the rest of the document's text. With `around`, the unmarked text
    keeps only about that many characters beside each mark (a passage shortened to what it
    highlights); without marks it is kept whole."""
    pieces: list[tuple[str, bool]] = []  # (text, marked)
    position = 0
    for start, end in sorted(spans):
        if start < position:
            continue
        pieces += [(text[position:start], False), (text[start:end], True)]
        position = end
    pieces.append((text[position:], False))
    if around is not None and len(pieces) > 1:
        last = len(pieces) - 1
        pieces = [(piece if marked else _shortened(piece, around, start=index > 0,
                                                    end=index < last), marked)
                  for index, (piece, marked) in enumerate(pieces)]
    body = "".join(f"<mark>{escape(piece)}</mark>" if marked else escape(piece)
                   for piece, marked in pieces)
    body = body.replace("\r\n", "\n").replace("\n", "&#10;")
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
            # PDFium draws PDF pages only: a page of a multi-page TIFF has a number but no viewer
            viewable = hit.chunk.page is not None and hit.chunk.source.lower().endswith(".pdf")
            if viewable and st.toggle(f"View page {hit.chunk.page}", key=f"{key}-page-{number}"):
                show_page(engine.settings.data_dir, hit.chunk.doc_id, hit.chunk.page,
                          hit.chunk.source)


def show_preview(preview: Preview, hits: Sequence[Hit]) -> None:
    """Source 1's sentences closest to the question, marked in a shortened passage: something to
    read while the model reads the prompt. Framed and labelled as a passage, not an answer."""
    hit = hits[preview.source - 1]
    st.caption(f"**{PREVIEW_LABEL}** — source [{preview.source}], {hit.chunk.source} — "
               f"{location(hit)}")
    st.markdown(passage_html(preview.text, preview.spans, around=PREVIEW_AROUND),
                unsafe_allow_html=True)
