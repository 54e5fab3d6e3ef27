"""Indexing feedback in the UI: one line per file, the settings-mismatch warning, re-index all."""

from __future__ import annotations

import streamlit as st

from rag.ingest import IngestResult
from rag.pipeline import RAG

MISMATCH_PREFIX = "The index was built with other settings: "


def mismatch_text(engine: RAG) -> str | None:
    differences = engine.index_mismatch()
    if not differences:
        return None
    return (MISMATCH_PREFIX + "; ".join(differences)
            + ". Answers use the old chunks until the documents are re-indexed.")


def show_result(result: IngestResult, done: str = "indexed") -> None:
    """One line per file; the engine's error already names the file, so it is said once."""
    if result.status == "indexed":
        st.success(f"{result.source}: {done} ({result.chunks} chunks)")
    elif result.status == "already indexed":
        st.info(f"{result.source}: already indexed")
    else:
        cause = (result.error or "unknown error").removeprefix(f"{result.source}: ")
        st.error(f"{result.source}: failed — {cause}")
    for warning in result.warnings:
        st.warning(f"{result.source}: {warning}")


def reindex_all(engine: RAG) -> None:
    """Re-chunk every document from its kept original, with a progress bar and one line per file."""
    total = max(len(engine.documents()), 1)
    progress = st.progress(0.0, text=f"Re-indexing {total} document(s) beside the live index…")
    failed = 0
    for done, result in enumerate(engine.reindex_iter(), start=1):
        show_result(result, done="re-indexed")
        failed += result.status == "failed"
        progress.progress(min(done / total, 1.0), text=f"{done} of {total} re-indexed")
    if failed:
        progress.progress(1.0, text="Re-index incomplete")
        st.error(f"{failed} document(s) could not be re-indexed, so the index stays as it was: "
                 "answers still use the old chunks.")
    else:
        progress.progress(1.0, text="Re-index done: the new index is live")
