"""File bytes + name -> Document, per format; every refusal is a LoaderError naming the file."""

from __future__ import annotations

import codecs
import hashlib
import io
import logging
import re
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import PurePath

from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning, NavigableString, Tag
from bs4.element import PreformattedString
from markdown_it import MarkdownIt
from pypdf import PasswordType, PdfReader

from rag.types import Document, Page

# pypdf logs every robustness fix it applies to a damaged file; the user sees our LoaderError or
# Document.warnings instead, so that noise would only bury real problems in the app's log.
logging.getLogger("pypdf").setLevel(logging.CRITICAL)
# A short upload that looks like a file name or URL is still a document to us, not a mistake.
warnings.filterwarnings("ignore", category=MarkupResemblesLocatorWarning)

PDF_EXTENSIONS = (".pdf",)
MARKDOWN_EXTENSIONS = (".md", ".markdown")
HTML_EXTENSIONS = (".html", ".htm")
TEXT_EXTENSIONS = (".txt", ".text", ".rst")
SUPPORTED_EXTENSIONS: tuple[str, ...] = (
    PDF_EXTENSIONS + MARKDOWN_EXTENSIONS + HTML_EXTENSIONS + TEXT_EXTENSIONS
)


class LoaderError(Exception):
    """A file we refuse, with a message the UI and CLI can show as is: "<file>: <cause>"."""

    def __init__(self, source: str, cause: str) -> None:
        super().__init__(f"{source}: {cause}")
        self.source = source
        self.cause = cause

    def __reduce__(self):  # keep it picklable across a process pool despite the two-arg init
        return (type(self), (self.source, self.cause))


def load(data: bytes, source: str, *, password: str | None = None) -> Document:
    """Parse one uploaded file; the same bytes always give the same doc_id, whatever the name.

    `password` opens a PDF encrypted with a user password; it is ignored for other formats.
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
        pages, warns = _load_pdf(data, source, password)
    elif ext in HTML_EXTENSIONS:
        _refuse_binary(data, source)
        pages = _sections_to_pages(_html_sections(data))
    else:
        text = _decode_text(data, source)
        if ext in MARKDOWN_EXTENSIONS:
            pages = _sections_to_pages(_markdown_sections(text))
        else:
            pages = [Page(text=_tidy_plain(text))]
    pages = [p for p in pages if p.text.strip()]
    if not pages:
        raise LoaderError(source, "no text")
    return Document(
        doc_id=hashlib.sha256(data).hexdigest(),
        source=source,
        pages=tuple(pages),
        size_bytes=len(data),
        warnings=tuple(warns),
    )


# --------------------------------------------------------------------------- text encodings

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def _refuse_binary(data: bytes, source: str) -> None:
    # NUL bytes never occur in 8-bit or UTF-8 text; they mean a renamed binary (or BOM-less
    # UTF-16, which is too rare to guess at).
    if not data.startswith(_UTF16_BOMS) and b"\x00" in data[:8192]:
        raise LoaderError(source, "binary content, not a text file")


def _decode_text(data: bytes, source: str) -> str:
    """UTF-8 (BOM or not), else cp1252, else latin-1: a text upload never fails on its encoding."""
    _refuse_binary(data, source)
    if data.startswith(codecs.BOM_UTF8):
        text = data[len(codecs.BOM_UTF8) :].decode("utf-8", errors="replace")
    elif data.startswith(_UTF16_BOMS):
        text = data.decode("utf-16", errors="replace")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = _decode_legacy(data)
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def _decode_legacy(data: bytes) -> str:
    # A UTF-8 file with a few broken bytes stays UTF-8; mostly-invalid UTF-8 is an 8-bit file.
    lenient = data.decode("utf-8", errors="replace")
    broken = lenient.count("\ufffd")
    multibyte = sum(1 for c in lenient if ord(c) > 0x7F) - broken
    if multibyte > broken:
        return lenient
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:  # cp1252 leaves five bytes undefined; latin-1 maps every byte
        return data.decode("latin-1")


def _tidy_plain(text: str) -> str:
    # Keep indentation (RFC tables, ASCII art); drop trailing blanks and form-feed page breaks.
    text = text.replace("\f", "\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


# --------------------------------------------------------------------------- sections


@dataclass
class _Section:
    level: int | None  # heading level, None for text before the first heading
    path: str | None  # "Chapter > Section"
    text: str
    has_body: bool  # anything besides the heading itself


def _sections_to_pages(sections: list[_Section]) -> list[Page]:
    """A heading with no text of its own lives on in its children's heading path: drop it there."""
    pages = []
    for i, sec in enumerate(sections):
        nxt = sections[i + 1] if i + 1 < len(sections) else None
        child_follows = (
            nxt is not None
            and sec.level is not None
            and nxt.level is not None
            and nxt.level > sec.level
        )
        if not sec.text.strip() or (not sec.has_body and child_follows):
            continue
        pages.append(Page(text=sec.text, heading=sec.path))
    return pages


class _HeadingPath:
    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []

    def enter(self, level: int, title: str) -> str:
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, title))
        return " > ".join(t for _, t in self._stack if t)


_MD = MarkdownIt("commonmark")


def _markdown_sections(text: str) -> list[_Section]:
    """Split at top-level headings found by a CommonMark parser, so `#` in code is never one."""
    lines = text.split("\n")
    tokens = _MD.parse(text)
    heads: list[tuple[int, int, int, str]] = []  # start line, end line, level, title
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.level == 0 and tok.map:
            title = _md_inline_text(tokens[i + 1]) if i + 1 < len(tokens) else ""
            heads.append((tok.map[0], tok.map[1], int(tok.tag[1]), title))

    sections = []
    first = heads[0][0] if heads else len(lines)
    preamble = _tidy_markdown(lines[:first])
    if preamble.strip():
        sections.append(_Section(None, None, preamble, True))
    path = _HeadingPath()
    for n, (start, end, level, title) in enumerate(heads):
        stop = heads[n + 1][0] if n + 1 < len(heads) else len(lines)
        has_body = bool(_tidy_markdown(lines[end:stop]).strip())
        text = _tidy_markdown(lines[start:stop])
        sections.append(_Section(level, path.enter(level, title), text, has_body))
    return sections


def _md_inline_text(inline) -> str:
    # "## The `String` Type" -> "The String Type": a heading path is for people, not Markdown.
    parts = []
    for child in inline.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(child.content)
    title = "".join(parts) if parts else inline.content
    return re.sub(r"\s+", " ", title).strip()


def _tidy_markdown(lines: list[str]) -> str:
    return re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in lines)).strip("\n")


# --------------------------------------------------------------------------- HTML

_HTML_DROP = frozenset(
    "script style noscript template head meta link title svg math iframe object embed canvas"
    .split()
)
_HTML_SPLIT = {"h1": 1, "h2": 2, "h3": 3}
_HTML_PARAGRAPH = frozenset(
    "p pre blockquote table ul ol dl h4 h5 h6 figure section article header footer nav aside main "
    "form fieldset address details hr".split()
)
_HTML_LINE = frozenset(
    "div li dt dd tr caption figcaption summary option legend body html center".split()
)
_HTML_CELL = frozenset(("td", "th"))


def _hidden(tag: Tag) -> bool:
    style = (tag.get("style") or "").replace(" ", "").lower()
    return tag.has_attr("hidden") or "display:none" in style or "visibility:hidden" in style


def _html_sections(data: bytes) -> list[_Section]:
    """Visible text only, blocks on their own lines, split at h1-h3 like Markdown."""
    soup = BeautifulSoup(data, "html.parser")
    out = _HtmlText()
    # An explicit stack, not recursion: deeply nested (or hostile) HTML must not hit the limit.
    stack: list[tuple[object, bool]] = [(soup, False)]
    while stack:
        node, leaving = stack.pop()
        if leaving:
            assert isinstance(node, Tag)
            if node.name == "pre":
                out.pre -= 1
            out.block_end(node.name)
            continue
        if isinstance(node, NavigableString):
            if not isinstance(node, PreformattedString):  # comments, doctype, CDATA, PIs
                out.text(str(node))
            continue
        if not isinstance(node, Tag) or node.name in _HTML_DROP or _hidden(node):
            continue
        name = node.name
        if name in _HTML_SPLIT:
            out.heading(_HTML_SPLIT[name], re.sub(r"\s+", " ", node.get_text(" ")).strip())
            continue
        if name == "br":
            out.brk(1)
            continue
        if name in _HTML_CELL:
            out.cell()
        out.block_start(name)
        if name == "pre":
            out.pre += 1
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(node.contents))
    return out.sections()


class _HtmlText:
    """Collects visible text; block boundaries become newlines and headings start sections."""

    def __init__(self) -> None:
        self.pre = 0
        self._done: list[_Section] = []
        self._level: int | None = None
        self._path: str | None = None
        self._parts: list[str] = []
        self._body = False
        self._pending = 0
        self._headings = _HeadingPath()

    def brk(self, n: int) -> None:
        self._pending = max(self._pending, n)

    def block_start(self, name: str) -> None:
        if name in _HTML_PARAGRAPH:
            self.brk(2)
        elif name in _HTML_LINE:
            self.brk(1)

    def block_end(self, name: str) -> None:
        self.block_start(name)

    def cell(self) -> None:
        if self._parts and not self._pending and not self._parts[-1].endswith("\n"):
            if self._parts[-1] == " ":
                self._parts.pop()
            self._parts.append(" | ")

    def text(self, s: str) -> None:
        if not self.pre:
            s = re.sub(r"\s+", " ", s)
            if not s.strip():
                # whitespace between inline elements is one space; between blocks it is nothing
                if self._parts and not self._pending and not self._parts[-1].endswith((" ", "\n")):
                    self._parts.append(" ")
                return
        if not s:
            return
        if self._pending:
            if self._parts:
                self._parts.append("\n" * self._pending)
            self._pending = 0
            if not self.pre:
                s = s.lstrip()
        elif not self.pre and self._parts and self._parts[-1].endswith((" ", "\n")):
            s = s.lstrip()
        if s:
            self._parts.append(s)
            self._body = True

    def heading(self, level: int, title: str) -> None:
        self._flush()
        self._level = level
        self._path = self._headings.enter(level, title)
        self._parts = [title] if title else []
        self._body = False
        self._pending = 2

    def sections(self) -> list[_Section]:
        self._flush()
        return self._done

    def _flush(self) -> None:
        text = "".join(self._parts)
        text = "\n".join(line.rstrip() for line in text.split("\n"))
        text = re.sub(r"\n{3,}", "\n\n", text).strip("\n")
        if text.strip():
            self._done.append(_Section(self._level, self._path, text, self._body))


# --------------------------------------------------------------------------- PDF


def _load_pdf(data: bytes, source: str, password: str | None) -> tuple[list[Page], list[str]]:
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
