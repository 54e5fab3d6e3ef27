"""One engine per server process, shared by every browser session; chat state per session."""

from __future__ import annotations

import streamlit as st

from rag.config import Settings
from rag.pipeline import RAG


@st.cache_resource(show_spinner="Loading the embedding model…")
def get_rag() -> RAG:
    engine = RAG(Settings())
    engine.embedder  # noqa: B018  load it now, under the spinner, not on the first question
    return engine


def chat_messages() -> list[dict]:
    """This browser session's conversation; another tab is another session and another list."""
    return st.session_state.setdefault("messages", [])

