"""PDF text per page with pypdf, and by OCR for scanned pages: damaged files, encryption and
unreadable text layers are refused or warned about by name, never passed on as garbage."""

from __future__ import annotations

import io
import logging
import re
import unicodedata
from dataclasses import dataclass

import pypdfium2 as pdfium
from PIL import Image
from pypdf import PasswordType, PdfReader

from rag.loaders.errors import LoaderError
from rag.loaders.scans import OcrResult, call, page_list, recognise_pages
from rag.types import Page

# pypdf logs every robustness fix it applies to a damaged file; the user sees our LoaderError or
# Document.warnings instead, so that noise would only bury real problems in the app's log.
logging.getLogger("pypdf").setLevel(logging.CRITICAL)


DPI = 300  # scans are drawn for OCR at the resolution Tesseract is trained for
MAX_PIXELS = 25_000_000  # an A3 page at 300 dpi is 17 M: a huge page is drawn smaller instead


@dataclass
class PdfText:
    """What pypdf read of each page. Pages without a text layer are left for OCR, which runs in
    a second worker call under a time limit that counts them."""

    pages: list[Page]
    scanned: list[int]  # page numbers with images and no text
    garbled: dict[str, list[int]]  # reason -> page numbers
    failed: list[int]
    failure: str | None  # why the first failed page failed
    password: str | None  # the one that opened the file, to draw its scanned pages


def load_pdf(
    data: bytes, source: str, password: str | None, timeout_s: float | None
) -> tuple[list[Page], list[str]]:
    """One Page per PDF page with text, read from its text layer or, for a scan, by OCR;
    unreadable pages become warnings, all of them an error. Parsing runs within `timeout_s`,
    OCR within that plus a budget per scanned page (see scans.call)."""
    text = call(read_text_layer, (data, source, password), source, timeout_s)
    scans = OcrResult()
    if text.scanned:
        scans = call(ocr_pages, (data, text.password, text.scanned), source, timeout_s,
                     ocr_pages=len(text.scanned))
    pages = sorted(text.pages + scans.pages, key=lambda page: page.page or 0)
    if not pages:
        raise LoaderError(source, _refusal(text, scans))
    warns = []
    if scans.pages:
        read = [page.page for page in scans.pages]
        warns.append(f"{page_list(read)}: no text layer, read by OCR (words may be misread)")
    if scans.unavailable:
        warns.append(f"{page_list(text.scanned)}: no text layer, skipped: {scans.unavailable}")
    if scans.empty:
        warns.append(f"{page_list(scans.empty)}: no text layer and OCR found no text, skipped")
    for why, numbers in scans.failed.items():
        warns.append(f"{page_list(numbers)}: no text layer, {why}, skipped")
    for why, numbers in text.garbled.items():
        warns.append(f"{page_list(numbers)}: unreadable text layer ({why}), skipped")
    if text.failed:
        warns.append(f"{page_list(text.failed)}: text extraction failed ({text.failure}), skipped")
    return pages, warns


def _refusal(text: PdfText, scans: OcrResult) -> str:
    """Why a PDF gave no page at all, the most telling cause first."""
    if text.garbled:
        return f"unreadable text layer ({next(iter(text.garbled))}), needs OCR"
    if scans.unavailable:
        return f"scanned page: {scans.unavailable}"
    if scans.failed:
        return f"scanned PDF: {next(iter(scans.failed))}"
    if scans.empty:
        return "scanned PDF: OCR found no text"
    if text.failed:
        return f"unreadable PDF: text extraction failed ({text.failure})"
    return "no text: the pages are blank (or their text is drawn as shapes)"


def read_text_layer(data: bytes, source: str, password: str | None) -> PdfText:
    """Every page's text layer; refuses files that are not PDFs, broken or locked."""
    if b"%PDF" not in data[:1024]:
        raise LoaderError(source, "not a PDF (no %PDF header)")
    # pypdf raises anything from PdfReadError to KeyError or RecursionError on damaged files:
    # catch broadly here, at the boundary, and say which file and why.
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        opened_with = _decrypt(reader, source, password) if reader.is_encrypted else None
        pdf_pages = reader.pages
        count = len(pdf_pages)
    except LoaderError:
        raise
    except Exception as exc:
        raise LoaderError(source, f"unreadable PDF: {_reason(exc)}") from exc
    if count == 0:
        raise LoaderError(source, "unreadable PDF: no pages")

    text = PdfText([], [], {}, [], None, opened_with)
    for number in range(1, count + 1):
        try:
            page = pdf_pages[number - 1]
            raw = page.extract_text() or ""
        except Exception as exc:  # noqa: BLE001  (same boundary: one page, named in a warning)
            text.failed.append(number)
            text.failure = text.failure or _reason(exc)
            continue
        why = _unreadable_reason(raw)
        if why:
            text.garbled.setdefault(why, []).append(number)
            continue
        tidy = _tidy_pdf_text(raw)
        if tidy:
            text.pages.append(Page(text=tidy, page=number))
        elif _has_images(page):
            text.scanned.append(number)
        # else: a blank page, nothing lost by skipping it
    return text


def ocr_pages(data: bytes, password: str | None, numbers: list[int]) -> OcrResult:
    """The given pages drawn by PDFium, one at a time, and recognised."""
    try:
        pdf = pdfium.PdfDocument(data, password=password or None)
    except pdfium.PdfiumError as exc:  # pypdf read it, PDFium cannot: no page can be drawn
        return OcrResult(failed={f"cannot draw it ({exc})": list(numbers)})
    try:
        return recognise_pages(numbers, lambda number: _draw(pdf[number - 1]))
    finally:
        pdf.close()


def _draw(page: pdfium.PdfPage) -> tuple[Image.Image, float]:
    """The page in grey at DPI, or smaller when that would pass MAX_PIXELS; and its dpi."""
    width, height = page.get_size()  # in points, 1/72 inch
    scale = min(DPI / 72, (MAX_PIXELS / max(1.0, width * height)) ** 0.5)
    return page.render(scale=scale, grayscale=True).to_pil(), scale * 72


def _decrypt(reader: PdfReader, source: str, password: str | None) -> str:
    """The password that opened it: many PDFs are encrypted only to set permissions, and the
    empty user password opens them."""
    for attempt in dict.fromkeys((password or "", "")):
        if reader.decrypt(attempt) != PasswordType.NOT_DECRYPTED:
            return attempt
    raise LoaderError(
        source, "encrypted PDF, wrong password" if password else "encrypted PDF, no password given"
    )


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    lines = str(exc).strip().splitlines()
    msg = lines[0][:160] if lines else ""
    if type(exc).__module__.startswith("pypdf") and msg:
        return msg  # pypdf's own messages already read well: "startxref not found"
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _has_images(page, depth: int = 0) -> bool:
    """Tell a scanned page (an image, worth a warning) from a blank one (nothing to say)."""
    try:
        resources = page.get("/Resources")
        resources = resources.get_object() if resources is not None else None
        xobjects = resources.get("/XObject") if resources else None
        if xobjects is None:
            return False
        for ref in xobjects.get_object().values():
            obj = ref.get_object()
            kind = obj.get("/Subtype")
            if kind == "/Image":
                return True
            if kind == "/Form" and depth < 3 and _has_images(obj, depth + 1):
                return True
    except Exception:  # noqa: BLE001  (a damaged resource tree is not worth a warning)
        return False
    return False


# Glyph names a font without a Unicode map extracts as: /g135, /G065, /uni4E2D, /cid12.
_GLYPH_NAME = re.compile(r"/(?:uni[0-9A-Fa-f]{4,6}|[A-Za-z]{1,6}\d{1,5})")
# Runs of one repeated mark (dot leaders in a table of contents, rules of dashes) are not garbage.
_REPEATED_MARK = re.compile(r"([^\w\s])(?:\s?\1){3,}")
_SPACE = re.compile(r"\s")
_ALNUM = re.compile(r"[^\W_]")
_LATIN1 = re.compile("[\u00a1-\u00ff]")
_LATIN1_SYMBOL = re.compile("[\u00a1-\u00bf]")
_JUNK = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ue000-\uf8ff\ud800-\udfff\ufffd]")


def _unreadable_reason(raw: str) -> str | None:
    """Cheap tests on character shares; each catches a failure seen in real PDFs, and none fires on
    the real text, tables, CJK, Arabic or maths in the benchmark PDFs."""
    n = len(raw) - len(_SPACE.findall(raw))
    if not n:
        return None
    if sum(map(len, _GLYPH_NAME.findall(raw))) / n >= 0.3:  # TAMReview.pdf: ~98% on its bad pages
        return "glyph names instead of text"
    # GB2312 read as Latin-1 ("Ä¿ ¡¡ Â¼"): nearly all Latin-1, many of them symbols, unlike French
    if len(_LATIN1.findall(raw)) / n >= 0.5 and len(_LATIN1_SYMBOL.findall(raw)) / n >= 0.15:
        return "mis-decoded characters"
    if len(_JUNK.findall(raw)) / n >= 0.3:
        return "control or private-use characters"
    marks = _REPEATED_MARK.sub("", raw)
    m = len(marks) - len(_SPACE.findall(marks))
    if m >= 50 and len(_ALNUM.findall(marks)) / m < 0.15:
        return "symbols without words"
    return None


_DROP_CHARS = dict.fromkeys(map(ord, "\x00\u00ad\u200b\u200c\u200d\u2060\ufeff"))
_CONTROLS = re.compile(r"[\x01-\x08\x0b-\x1f\x7f-\x9f]")


def _tidy_pdf_text(raw: str) -> str:
    """NFKC so ligatures (ﬁ) and presentation forms match what people type; keep paragraphs."""
    text = unicodedata.normalize("NFKC", raw.translate(_DROP_CHARS))
    text = _CONTROLS.sub(" ", text)  # maths fonts without a Unicode map extract symbols as controls
    text = re.sub(r"(?: ?\.){5,}", " ... ", text)  # table-of-contents dot leaders
    text = re.sub(r"[^\S\n]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()
