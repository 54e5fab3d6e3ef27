"""Markdown and HTML: one Page per section, split at headings, with the heading path kept."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning, NavigableString, Tag
from bs4.element import PreformattedString
from markdown_it import MarkdownIt

from rag.types import Page

# A short upload that looks like a file name or URL is still a document to us, not a mistake.
warnings.filterwarnings("ignore", category=MarkupResemblesLocatorWarning)


def markdown_pages(text: str) -> list[Page]:
    return sections_to_pages(_markdown_sections(text))


def html_pages(data: bytes) -> list[Page]:
    return sections_to_pages(_html_sections(data))


@dataclass
class Section:
    """A heading's stretch of text; shared with the Word loader, whose headings nest the same."""

    level: int | None  # heading level, None for text before the first heading
    path: str | None  # "Chapter > Section"
    text: str
    has_body: bool  # anything besides the heading itself


def sections_to_pages(sections: list[Section]) -> list[Page]:
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


class HeadingPath:
    """The "Chapter > Section" path of each heading, from the headings seen before it."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []

    def enter(self, level: int, title: str) -> str:
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, title))
        return " > ".join(t for _, t in self._stack if t)


_MD = MarkdownIt("commonmark")


def _markdown_sections(text: str) -> list[Section]:
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
        sections.append(Section(None, None, preamble, True))
    path = HeadingPath()
    for n, (start, end, level, title) in enumerate(heads):
        stop = heads[n + 1][0] if n + 1 < len(heads) else len(lines)
        has_body = bool(_tidy_markdown(lines[end:stop]).strip())
        text = _tidy_markdown(lines[start:stop])
        sections.append(Section(level, path.enter(level, title), text, has_body))
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


def _html_sections(data: bytes) -> list[Section]:
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
        self._done: list[Section] = []
        self._level: int | None = None
        self._path: str | None = None
        self._parts: list[str] = []
        self._body = False
        self._pending = 0
        self._headings = HeadingPath()

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

    def sections(self) -> list[Section]:
        self._flush()
        return self._done

    def _flush(self) -> None:
        text = "".join(self._parts)
        text = "\n".join(line.rstrip() for line in text.split("\n"))
        text = re.sub(r"\n{3,}", "\n\n", text).strip("\n")
        if text.strip():
            self._done.append(Section(self._level, self._path, text, self._body))
