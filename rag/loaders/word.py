"""Word (.docx): one Page per heading's section with its heading path, tables kept as rows, all in
document order."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import docx
from docx.enum.style import WD_STYLE_TYPE
from docx.oxml.ns import qn

from rag.loaders.archive import open_office
from rag.loaders.errors import LoaderError
from rag.loaders.markup import HeadingPath, Section, sections_to_pages
from rag.types import Page

_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_P, _TBL, _TR, _TC = qn("w:p"), qn("w:tbl"), qn("w:tr"), qn("w:tc")
# Elements that only wrap content (content controls, custom XML, smart tags): looked through.
_WRAPPERS = frozenset(qn(t) for t in ("w:sdt", "w:sdtContent", "w:customXml", "w:smartTag"))
# Text that is not part of the document as shown: deleted revisions, properties, field codes,
# and mc:Fallback, the older copy of what mc:Choice already holds (a text box's text, twice).
_SKIP = frozenset(
    [_MC_FALLBACK] + [qn(t) for t in ("w:del", "w:moveFrom", "w:pPr", "w:rPr", "w:instrText")]
)
_CHARS = {qn("w:tab"): "\t", qn("w:ptab"): "\t", qn("w:br"): "\n", qn("w:cr"): "\n",
          qn("w:noBreakHyphen"): "-"}
_HEADING_NAME = re.compile(r"heading ([1-9])")
_SPACES = re.compile(r"[^\S\n]+")


def load_docx(data: bytes, source: str) -> list[Page]:
    """Headings (Title, Heading 1-9 or any outline level) start sections, as in Markdown."""
    open_office(data, source, ".docx")
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises KeyError, ValueError... on a broken package
        raise LoaderError(source, f"unreadable DOCX: {type(exc).__name__}: {exc}") from exc
    levels = _style_levels(document)
    headings = HeadingPath()
    sections: list[Section] = []
    current = Section(None, None, "", False)
    blocks: list[str] = []
    for element in _content(document.element.body, (_P, _TBL)):
        if element.tag == _TBL:
            rows = _table_rows(element)
            if rows:
                blocks.append("\n".join(rows))
                current.has_body = True
            continue
        text = _tidy(_text(element))
        if not text:
            continue
        level = _level(element, levels)
        if level is None:
            blocks.append(text)
            current.has_body = True
            continue
        current.text = "\n\n".join(blocks)
        sections.append(current)
        title = " ".join(text.split())
        current = Section(level, headings.enter(level, title), "", False)
        blocks = [title]
    current.text = "\n\n".join(blocks)
    sections.append(current)
    return sections_to_pages(sections)


def _style_levels(document) -> dict[str, int]:
    """Heading level of each paragraph style id: Title is 0, "Heading N" or outline level N-1 is
    N, also when inherited from the style it is based on (a custom style based on Heading 2)."""
    levels = {}
    for style in document.styles:
        if style.type != WD_STYLE_TYPE.PARAGRAPH:
            continue
        seen, base = set(), style
        while base is not None and base.style_id not in seen:
            seen.add(base.style_id)
            level = _own_level(base)
            if level is not None:
                levels[style.style_id] = level
                break
            base = base.base_style
    return levels


def _own_level(style) -> int | None:
    name = (style.name or "").lower()
    if name == "title":
        return 0
    if match := _HEADING_NAME.fullmatch(name):
        return int(match.group(1))
    return _outline_level(style.element.find(qn("w:pPr")))


def _outline_level(ppr) -> int | None:
    outline = ppr.find(qn("w:outlineLvl")) if ppr is not None else None
    value = outline.get(qn("w:val")) if outline is not None else None
    # 0-8 are outline levels 1-9; 9 is body text
    return int(value) + 1 if value is not None and value.isdigit() and int(value) < 9 else None


def _level(paragraph, levels: dict[str, int]) -> int | None:
    ppr = paragraph.find(qn("w:pPr"))
    own = _outline_level(ppr)
    if own is not None:
        return own
    style = ppr.find(qn("w:pStyle")) if ppr is not None else None
    return levels.get(style.get(qn("w:val"))) if style is not None else None


def _content(parent, tags: tuple[str, ...]) -> Iterator:
    """Children of `parent` with one of `tags`, in order, looking through wrapper elements."""
    for child in parent:
        if child.tag in tags:
            yield child
        elif child.tag in _WRAPPERS:
            yield from _content(child, tags)


def _text(paragraph) -> str:
    """A paragraph's text as shown: inserted revisions, hyperlinks, fields' results and text
    boxes (on lines of their own) included, unlike python-docx's Paragraph.text."""
    parts: list[str] = []

    def walk(element) -> None:
        for child in element:
            tag = child.tag
            if tag in _SKIP:
                continue
            if tag == qn("w:t"):
                parts.append(child.text or "")
            elif tag in _CHARS:
                parts.append(_CHARS[tag])
            elif tag == _P:  # a paragraph of a text box inside this one
                parts.append("\n")
                walk(child)
                parts.append("\n")
            else:
                walk(child)

    walk(paragraph)
    return "".join(parts)


def _tidy(text: str) -> str:
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _table_rows(table) -> list[str]:
    """One line per row, its non-empty cells joined with " | "; a table nested in a cell follows
    the row it sits in."""
    rows = []
    for row in _content(table, (_TR,)):
        cells, nested = [], []
        for cell in _content(row, (_TC,)):
            texts = []
            for block in _content(cell, (_P, _TBL)):
                if block.tag == _TBL:
                    nested.extend(_table_rows(block))
                elif text := " ".join(_text(block).split()):
                    texts.append(text)
            if texts:
                cells.append(" ".join(texts))
        if cells:
            rows.append(" | ".join(cells))
        rows.extend(nested)
    return rows
