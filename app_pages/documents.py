"""Upload many files at once, watch each one get indexed, list and delete documents."""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from rag.loaders import SUPPORTED_EXTENSIONS
from ui.indexing import mismatch_text, reindex_all, show_result
from ui.state import get_rag


def added(timestamp: str) -> str:
    """'2026-11-25T15:31:09+00:00' as '2026-11-25 15:31 UTC'."""
    try:
        return datetime.fromisoformat(timestamp).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return timestamp


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

limit_mb = st.get_option("server.maxUploadSize")
uploads = st.file_uploader(
    f"Drop PDF, Markdown, HTML or text files (up to {limit_mb} MB each)",
    type=[extension.lstrip(".") for extension in SUPPORTED_EXTENSIONS],
    accept_multiple_files=True,
)

# The uploader keeps its files across reruns; index each upload once per session.
indexed_uploads: set[str] = st.session_state.setdefault("indexed_uploads", set())
new_uploads = [upload for upload in uploads or [] if upload.file_id not in indexed_uploads]
if new_uploads:
    st.session_state.pop("confirm_delete", None)  # another action cancels a pending delete
    progress = st.progress(0.0, text=f"Indexing {len(new_uploads)} file(s)…")
    for done, upload in enumerate(new_uploads, start=1):
        progress.progress((done - 1) / len(new_uploads),
                          text=f"Indexing {upload.name} ({done} of {len(new_uploads)})…")
        result = engine.ingest_one(upload.name, upload.getvalue())
        indexed_uploads.add(upload.file_id)
        show_result(result)
        progress.progress(done / len(new_uploads), text=f"{done} of {len(new_uploads)} done")

st.subheader("Indexed documents")
documents = engine.documents()
if not documents:
    st.info("No documents yet: drop some files above.")
# A delete asks first: the first click only marks the document, Confirm removes it.
pending = st.session_state.get("confirm_delete")
for info in documents:
    name, details, action = st.columns([4, 4, 1], vertical_alignment="center")
    name.text(info.source)
    details.caption(
        f"{info.pages} page{'s' if info.pages != 1 else ''} · {info.chunks} chunks · "
        f"{info.size_bytes / 1024:.0f} KB · "
        f"added {added(info.added_at)}"
    )
    if action.button("Delete", key=f"delete-{info.doc_id}", disabled=pending == info.doc_id):
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
