"""Entry point: navigation over the pages and the sidebar every page shares."""

from __future__ import annotations

import streamlit as st

import rag  # noqa: F401  (offline and thread settings before any model loads)
from rag.generation import public_url
from ui.state import get_rag, settings_problems

st.set_page_config(page_title="Chat with your documents", page_icon="📚", layout="wide")

page = st.navigation(
    [
        st.Page("app_pages/chat.py", title="Chat", icon=":material/chat:", default=True),
        st.Page("app_pages/documents.py", title="Documents", icon=":material/description:"),
        st.Page("app_pages/settings.py", title="Settings", icon=":material/tune:"),
        st.Page("app_pages/evaluation.py", title="Evaluation", icon=":material/query_stats:"),
        st.Page("app_pages/about.py", title="About", icon=":material/info:"),
    ]
)

engine = get_rag()
with st.sidebar:
    index_status = st.empty()
    for warning in engine.warnings:
        st.warning(warning)
    for problem in settings_problems:
        st.error(problem)
    st.page_link("app_pages/about.py", label="How it works (README)", icon=":material/menu_book:")


def show_index_status() -> None:
    with index_status.container():
        st.metric("Documents", len(engine.documents()))
        st.caption(f"{engine.store.count()} chunks · embedder {engine.index_model}")
        data_dir = engine.settings.data_dir
        st.caption(f"Store: {engine.index_location()}",
                   help=f"Kept originals, BM25 and saved settings: {data_dir.resolve()}")
        if engine.settings.uses_remote_llm:
            endpoint = public_url(engine.settings.llm_base_url or "https://api.openai.com/v1")
            st.caption(f"LLM: `{engine.settings.llm_model}` at `{endpoint}`")
        else:
            st.caption("LLM: embedded model, runs on this machine (no API key needed)")


show_index_status()  # before the page, which may take a while (indexing, answering)
page.run()
show_index_status()  # and after it: the page may have added or deleted documents
