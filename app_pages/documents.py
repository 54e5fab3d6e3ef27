"""Drop many files at once and follow each one through the engine's queue; list, delete and
re-index documents. The page only queues and reads: the engine indexes whatever the page does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import streamlit as st

from rag.ingest_jobs import Job
from ui.indexing import mismatch_text, reindex_all
from ui.ingest_queue import following, queue_section
from ui.state import get_rag
from ui.uploads import PASSWORD_KEY, drop_zone


def added(timestamp: str) -> str:
    """'2026-11-25T15:31:09+00:00' as '2026-11-25 15:31 UTC'."""
    try:
        return datetime.fromisoformat(timestamp).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return timestamp


def document_list() -> None:
    """Every indexed document; a delete asks first: the first click only marks it, Confirm
    removes it."""
    st.subheader("Indexed documents")
    documents = engine.documents()
    if not documents:
        st.info("No documents yet: drop some files above.")
    pending = st.session_state.get("confirm_delete")
    for info in documents:
        # the action column as wide as the queue's above, so their buttons line up
        name, details, action = st.columns([3.2, 4.3, 1.76], vertical_alignment="center")
        name.text(info.source)
        details.caption(
            f"{info.pages} page{'s' if info.pages != 1 else ''} · {info.chunks} chunks · "
            f"{info.size_bytes / 1024:.0f} KB · "
            f"added {added(info.added_at)}"
        )
        if action.button("Delete", key=f"delete-{info.doc_id}", width="stretch",
                         disabled=pending == info.doc_id):
            st.session_state["confirm_delete"] = info.doc_id
            st.rerun()
        if pending == info.doc_id:
            with st.container(border=True):
                st.warning(f"Delete {info.source}? This removes it from the index.")
                confirm, cancel, _ = st.columns([1, 1, 6])
                if confirm.button("Confirm", type="primary", key=f"confirm-delete-{info.doc_id}"):
                    engine.delete(info.doc_id)
                    st.session_state.pop("confirm_delete", None)
                    st.rerun()
                if cancel.button("Cancel", key=f"cancel-delete-{info.doc_id}"):
                    st.session_state.pop("confirm_delete", None)
                    st.rerun()


def queue_and_documents(jobs: Sequence[Job]) -> None:
    """Redrawn together, so a document appears in the list as its job finishes."""
    queue_section(engine.queue, jobs, PASSWORD_KEY)
    document_list()


engine = get_rag()
st.title("Documents")

if warning := mismatch_text(engine):
    mismatch_area = st.empty()
    with mismatch_area.container():
        st.warning(warning)
        reindex = st.button("Re-index all", icon=":material/sync:", key="reindex-all",
                            help="Chunk and embed every document again from its kept original")
    if reindex:
        st.session_state.pop("confirm_delete", None)  # another action cancels a pending delete
        mismatch_area.empty()
        reindex_all(engine)

drop_zone(engine)
following(engine, queue_and_documents)
