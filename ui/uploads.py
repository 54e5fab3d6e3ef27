"""The drop zone: dropped files go to the engine's queue at once, without parsing, so indexing
never depends on the page staying open; the uploader is emptied so nothing is sent twice."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath

import streamlit as st

from rag.loaders import PDF_EXTENSIONS, SUPPORTED_EXTENSIONS
from rag.loaders.archive import LEGACY_EXTENSIONS
from rag.pipeline import RAG

PASSWORD_KEY = "ingest-password"
_ROUND_KEY = "uploader-round"  # part of the uploader's key: a new round is an empty uploader
_FAILED_KEY = "upload-not-kept"  # files that could not be kept, said on the next run
# How the uploader names the families of the loaders' extensions, in this order; an extension
# not named here is shown as itself, so the label never omits a format the loaders accept.
FAMILY_NAMES = {
    ".pdf": "PDF", ".docx": "Word", ".pptx": "PowerPoint", ".xlsx": "Excel", ".csv": "CSV",
    ".tsv": "CSV", ".epub": "EPUB", ".png": "images", ".jpg": "images", ".jpeg": "images",
    ".tif": "images", ".tiff": "images", ".md": "Markdown", ".markdown": "Markdown",
    ".html": "HTML", ".htm": "HTML", ".txt": "text", ".text": "text", ".rst": "text",
}  # fmt: skip


def formats_text(extensions: Sequence[str] = SUPPORTED_EXTENSIONS) -> str:
    """"PDF, Word, Markdown or text" for the extensions the loaders accept."""
    order = list(FAMILY_NAMES)
    known = sorted((e for e in extensions if e in FAMILY_NAMES), key=order.index)
    names = list(dict.fromkeys([FAMILY_NAMES[e] for e in known]
                               + [e.lstrip(".").upper() for e in extensions
                                  if e not in FAMILY_NAMES]))
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def drop_zone(engine: RAG) -> None:
    """The uploader and the password field for encrypted PDFs beside it."""
    key = f"uploads-{st.session_state.setdefault(_ROUND_KEY, 0)}"
    files, password = st.columns([3, 1])
    limit_mb = st.get_option("server.maxUploadSize")
    files.file_uploader(
        f"Drop {formats_text()} files",
        # legacy Office files too: the queue then says to save them in the current format
        type=[extension.lstrip(".") for extension in (*SUPPORTED_EXTENSIONS, *LEGACY_EXTENSIONS)],
        accept_multiple_files=True, key=key, on_change=_submit, args=(engine, key),
        help=f"Accepted: {', '.join(SUPPORTED_EXTENSIONS)}, up to {limit_mb} MB each. Each "
             "file is queued at once and indexed by the app, even if you leave this page or "
             "close the tab.",
    )
    password.text_input(
        "Password for encrypted PDFs", type="password", key=PASSWORD_KEY,
        placeholder="Optional",
        help="Used for the encrypted PDFs among the files you drop next, or to retry one that "
             "asked for a password. Kept in this server's memory for that job only: never "
             "saved, shown or logged.",
    )
    for failure in st.session_state.pop(_FAILED_KEY, []):
        st.error(failure)


def _submit(engine: RAG, key: str) -> None:
    """Keeps and queues every dropped file, then starts a new, empty uploader."""
    uploads = st.session_state.get(key) or []
    if not uploads:
        return
    password = st.session_state.get(PASSWORD_KEY) or None
    failures = []
    for upload in uploads:
        is_pdf = PurePath(upload.name).suffix.lower() in PDF_EXTENSIONS
        try:
            engine.queue.submit(upload.name, upload.getvalue(), password if is_pdf else None)
        except OSError as error:  # the data dir is full or read-only: say so, by name
            failures.append(f"{upload.name}: not queued, it could not be kept ({error})")
    st.session_state[_FAILED_KEY] = failures
    st.session_state[_ROUND_KEY] += 1
    st.session_state[PASSWORD_KEY] = ""  # used for these files; not kept for the next drop
    st.session_state.pop("confirm_delete", None)  # another action cancels a pending delete
