"""PDF text per page with pypdf: damaged files, encryption and unreadable text layers are
refused or warned about by name, never passed on as garbage."""

from __future__ import annotations

import io
import logging
import re
import unicodedata

from pypdf import PasswordType, PdfReader

from rag.loaders.errors import LoaderError
from rag.types import Page

# pypdf logs every robustness fix it applies to a damaged file; the user sees our LoaderError or
# Document.warnings instead, so that noise would only bury real problems in the app's log.
logging.getLogger("pypdf").setLevel(logging.CRITICAL)


def load_pdf(data: bytes, source: str, password: str | None) -> tuple[list[Page], list[str]]:
    """One Page per PDF page with text; unreadable pages become warnings, all of them an error."""
    if b"%PDF" not in data[:1024]:
        raise LoaderError(source, "not a PDF (no %PDF header)")
    # pypdf raises anything from PdfReadError to KeyError or RecursionError on damaged files:
    # catch broadly here, at the boundary, and say which file and why.
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            _decrypt(reader, source, password)
        pdf_pages = reader.pages
        count = len(pdf_pages)
    except LoaderError:
        raise
    except Exception as exc:
        raise LoaderError(source, f"unreadable PDF: {_reason(exc)}") from exc
    if count == 0:
        raise LoaderError(source, "unreadable PDF: no pages")

    pages: list[Page] = []
    scanned: list[int] = []
    garbled: dict[str, list[int]] = {}
    failed: list[int] = []
    first_failure: Exception | None = None
    for number in range(1, count + 1):
        try:
            page = pdf_pages[number - 1]
            raw = page.extract_text() or ""
        except Exception as exc:
            failed.append(number)
            first_failure = first_failure or exc
            continue
        why = _unreadable_reason(raw)
        if why:
            garbled.setdefault(why, []).append(number)
            continue
        text = _tidy_pdf_text(raw)
        if text:
            pages.append(Page(text=text, page=number))
        elif _has_images(page):
            scanned.append(number)
        # else: a blank page, nothing lost by skipping it

    if not pages:
        if garbled:
            raise LoaderError(source, f"unreadable text layer ({next(iter(garbled))}), needs OCR")
        if scanned:
            raise LoaderError(source, "scanned PDF: no extractable text, needs OCR")
        if failed:
            raise LoaderError(
                source, f"unreadable PDF: text extraction failed ({_reason(first_failure)})"
            )
        raise LoaderError(source, "no text: the pages are blank (or their text is drawn as shapes)")

    warns = []
    if scanned:
        warns.append(f"{_page_list(scanned)}: no text layer (scanned?), skipped")
    for why, numbers in garbled.items():
        warns.append(f"{_page_list(numbers)}: unreadable text layer ({why}), skipped")
    if failed:
        why = _reason(first_failure)
        warns.append(f"{_page_list(failed)}: text extraction failed ({why}), skipped")
    return pages, warns


def _decrypt(reader: PdfReader, source: str, password: str | None) -> None:
    # Many PDFs are encrypted only to set permissions: the empty user password opens them.
    for attempt in dict.fromkeys((password or "", "")):
        if reader.decrypt(attempt) != PasswordType.NOT_DECRYPTED:
            return
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


def _page_list(numbers: list[int]) -> str:
    """[2, 3, 4, 7] -> "pages 2-4, 7": a warning people can act on, even for a 300-page book."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    spans = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
    return f"{'page' if len(numbers) == 1 else 'pages'} {spans}"


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
    except Exception:
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
