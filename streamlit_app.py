"""Entry point: navigation over the pages and the sidebar every page shares."""

from __future__ import annotations

import streamlit as st

import rag  # noqa: F401  (offline and thread settings before any model loads)
from rag.generation import public_url
from ui.state import get_rag

st.set_page_config(page_title="Chat with your documents", page_icon="📚", layout="wide")

page = st.navigation(
    [
        st.Page("app_pages/chat.py", title="Chat", icon=":material/chat:", default=True),
        st.Page("app_pages/documents.py", title="Documents", icon=":material/description:"),
    ]
)

engine = get_rag()
with st.sidebar:
    index_status = st.empty()
    for warning in engine.warnings:
        st.warning(warning)


def show_index_status() -> None:
    with index_status.container():
        st.metric("Documents", len(engine.documents()))
        st.caption(f"{engine.store.count()} chunks · embedder {engine.settings.embedding_model}")
        if engine.settings.uses_remote_llm:
            endpoint = public_url(engine.settings.llm_base_url or "https://api.openai.com/v1")
            st.caption(f"LLM: `{engine.settings.llm_model}` at `{endpoint}`")
        else:
            st.caption("LLM: embedded model, runs on this machine (no API key needed)")


show_index_status()  # before the page, which may take a while (indexing, answering)
page.run()
show_index_status()  # and after it: the page may have added or deleted documents
