"""File bytes + name -> Document, per format; every refusal is a LoaderError naming the file."""

from __future__ import annotations

import hashlib
from pathlib import PurePath

from rag.loaders.archive import LEGACY_EXTENSIONS, legacy_cause
from rag.loaders.epub import load_epub
from rag.loaders.errors import LoaderError
from rag.loaders.images import load_image
from rag.loaders.markup import html_pages, markdown_pages
from rag.loaders.pdf import load_pdf
from rag.loaders.sheets import load_csv, load_xlsx
from rag.loaders.slides import load_pptx
from rag.loaders.text import decode_text, refuse_binary, tidy_plain
from rag.loaders.word import load_docx
from rag.loaders.worker import run_limited
from rag.types import Document, Page

PDF_EXTENSIONS = (".pdf",)
MARKDOWN_EXTENSIONS = (".md", ".markdown")
HTML_EXTENSIONS = (".html", ".htm")
TEXT_EXTENSIONS = (".txt", ".text", ".rst")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")  # read by OCR
# Zip packages: their parsers run under the time limit too, as a hostile package can spin them.
_PACKAGE_LOADERS = {".docx": load_docx, ".pptx": load_pptx, ".xlsx": load_xlsx, ".epub": load_epub}
PACKAGE_EXTENSIONS = tuple(_PACKAGE_LOADERS)
TABLE_EXTENSIONS = (".csv", ".tsv")
SUPPORTED_EXTENSIONS: tuple[str, ...] = (
    PDF_EXTENSIONS + MARKDOWN_EXTENSIONS + HTML_EXTENSIONS + TEXT_EXTENSIONS + IMAGE_EXTENSIONS
    + PACKAGE_EXTENSIONS + TABLE_EXTENSIONS
)


def document_id(data: bytes) -> str:
    """The same bytes are the same document, whatever the file's name."""
    return hashlib.sha256(data).hexdigest()


def load(
    data: bytes, source: str, *, password: str | None = None, timeout_s: float | None = None
) -> Document:
    """Parse one uploaded file; the same bytes always give the same doc_id, whatever the name.

    `password` opens a PDF encrypted with a user password; it is ignored for other formats.
    `timeout_s` bounds PDF, image and zip-package (Office, EPUB) parsing, which then runs in a
    worker process: pypdf can spin for minutes on a hostile file. Pages read by OCR add a
    budget each (loaders/scans.py). None parses in-process without a limit. The other formats
    are linear in their size and always parse in-process.
    """
    ext = PurePath(source).suffix.lower()
    if ext in LEGACY_EXTENSIONS:  # .doc, .xls, .ppt: say what to do, not just "unsupported"
        raise LoaderError(source, legacy_cause(ext))
    if ext not in SUPPORTED_EXTENSIONS:
        kind = f"'{ext}'" if ext else "(no extension)"
        raise LoaderError(
            source, f"unsupported file type {kind} (supported: {', '.join(SUPPORTED_EXTENSIONS)})"
        )
    if not data:
        raise LoaderError(source, "empty file")

    warns: list[str] = []
    if ext in PDF_EXTENSIONS:
        pages, warns = load_pdf(data, source, password, timeout_s)
    elif ext in IMAGE_EXTENSIONS:
        pages, warns = load_image(data, source, timeout_s)
    elif ext in PACKAGE_EXTENSIONS:
        loader = _PACKAGE_LOADERS[ext]
        if timeout_s is None:
            pages = loader(data, source)
        else:
            pages = run_limited(loader, (data, source), source, timeout_s)
    elif ext in TABLE_EXTENSIONS:
        pages = load_csv(data, source)
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
