"""A PDF page drawn from the kept original, so a citation can be checked on the page itself."""

from __future__ import annotations

import threading
from io import BytesIO
from pathlib import Path

import pypdfium2 as pdfium
import streamlit as st

from rag.index_files import read_original

SCALE = 1.25  # 90 dpi: readable, about 100-200 KB of PNG for a letter page
_pdfium = threading.Lock()  # pdfium is not thread-safe and every browser session is a thread


@st.cache_data(max_entries=64, show_spinner=False)
def page_png(data_dir: str, doc_id: str, page: int) -> bytes | None:
    """PNG of one 1-based page; None when the original is gone or pdfium cannot draw it.
    A document id is the hash of its bytes, so the picture never goes stale."""
    data = read_original(Path(data_dir), doc_id)
    if data is None:
        return None
    with _pdfium:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError:
            return None
        try:
            if not 1 <= page <= len(pdf):
                return None
            image = pdf[page - 1].render(scale=SCALE).to_pil()
        finally:
            pdf.close()
    buffer = BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def show_page(data_dir: Path, doc_id: str, page: int, source: str) -> None:
    with st.spinner(f"Drawing page {page}…"):
        png = page_png(str(data_dir), doc_id, page)
    if png is None:
        st.caption(f"Page {page} of {source} cannot be shown: its original is not kept or "
                   "cannot be drawn.")
    else:
        st.image(png, caption=f"{source}, page {page}")
