"""How a retrieved source is shown: where it is from, every score, and its text as plain text."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from rag.types import Hit


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


def show_sources(hits: Sequence[Hit]) -> None:
    st.caption(f"Sources ({len(hits)})")
    for number, hit in enumerate(hits, start=1):
        # st.text never interprets markup: a document's HTML or script stays inert text.
        with st.expander(f"[{number}] {hit.chunk.source} — {location(hit)} — {scores(hit)}"):
            st.text(hit.chunk.text)
