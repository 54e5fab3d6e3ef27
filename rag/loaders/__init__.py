"""File bytes + name -> Document, per format; every refusal is a LoaderError naming the file."""

from __future__ import annotations

import hashlib
from pathlib import PurePath

from rag.loaders.errors import LoaderError
from rag.loaders.markup import html_pages, markdown_pages
from rag.loaders.pdf import load_pdf
from rag.loaders.text import decode_text, refuse_binary, tidy_plain
from rag.loaders.worker import run_limited
from rag.types import Document, Page

PDF_EXTENSIONS = (".pdf",)
MARKDOWN_EXTENSIONS = (".md", ".markdown")
HTML_EXTENSIONS = (".html", ".htm")
TEXT_EXTENSIONS = (".txt", ".text", ".rst")
SUPPORTED_EXTENSIONS: tuple[str, ...] = (
    PDF_EXTENSIONS + MARKDOWN_EXTENSIONS + HTML_EXTENSIONS + TEXT_EXTENSIONS
)


def document_id(data: bytes) -> str:
    """The same bytes are the same document, whatever the file's name."""
    return hashlib.sha256(data).hexdigest()


def load(
    data: bytes, source: str, *, password: str | None = None, timeout_s: float | None = None
) -> Document:
    """Parse one uploaded file; the same bytes always give the same doc_id, whatever the name.

    `password` opens a PDF encrypted with a user password; it is ignored for other formats.
    `timeout_s` bounds PDF parsing, which then runs in a worker process: pypdf can spin for
    minutes on a hostile file. None parses in-process without a limit. The other formats are
    linear in their size and always parse in-process.
    """
    ext = PurePath(source).suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        kind = f"'{ext}'" if ext else "(no extension)"
        raise LoaderError(
            source, f"unsupported file type {kind} (supported: {', '.join(SUPPORTED_EXTENSIONS)})"
        )
    if not data:
        raise LoaderError(source, "empty file")

    warns: list[str] = []
    if ext in PDF_EXTENSIONS:
        args = (data, source, password)
        if timeout_s is None:
            pages, warns = load_pdf(*args)
        else:
            pages, warns = run_limited(load_pdf, args, source, timeout_s)
    elif ext in HTML_EXTENSIONS:
        refuse_binary(data, source)
        pages = html_pages(data)
    else:
        text = decode_text(data, source)
        if ext in MARKDOWN_EXTENSIONS:
            pages = markdown_pages(text)
        else:
            pages = [Page(text=tidy_plain(text))]
    pages = [p for p in pages if p.text.strip()]
    if not pages:
        raise LoaderError(source, "no text")
    return Document(
        doc_id=document_id(data),
        source=source,
        pages=tuple(pages),
        size_bytes=len(data),
        warnings=tuple(warns),
    )
