"""PowerPoint (.pptx): one Page per slide, numbered as shown, headed by its title, with its tables
and speaker notes."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

import pptx
from pptx.enum.shapes import MSO_SHAPE_TYPE, PP_PLACEHOLDER

from rag.loaders.archive import open_office
from rag.loaders.errors import LoaderError
from rag.types import Page

# Filled in by PowerPoint itself, the same on every slide: noise for retrieval.
_CHROME = frozenset(
    (PP_PLACEHOLDER.SLIDE_NUMBER, PP_PLACEHOLDER.DATE, PP_PLACEHOLDER.SLIDE_IMAGE)
)
NOTES_MARK = "Notes:"


def load_pptx(data: bytes, source: str) -> list[Page]:
    """Slide text in shape order (title, text boxes, table rows, groups), then "Notes: ..."."""
    open_office(data, source, ".pptx")
    try:
        slides = list(pptx.Presentation(io.BytesIO(data)).slides)
    except Exception as exc:  # python-pptx raises KeyError, ValueError... on a broken package
        raise LoaderError(source, f"unreadable PPTX: {type(exc).__name__}: {exc}") from exc
    if not slides:
        raise LoaderError(source, "no text: the presentation has no slides")
    pages = []
    for number, slide in enumerate(slides, 1):
        blocks = list(_blocks(slide.shapes))
        if slide.has_notes_slide:
            notes = "\n".join(_blocks(slide.notes_slide.shapes))
            if notes:
                blocks.append(f"{NOTES_MARK} {notes}")
        title = slide.shapes.title
        has_title = title is not None and title.has_text_frame  # a title can be a picture
        heading = " ".join(title.text_frame.text.split()) if has_title else ""
        if blocks:
            pages.append(Page(text="\n\n".join(blocks), page=number, heading=heading or None))
    return pages


def _blocks(shapes: Iterable) -> Iterator[str]:
    """Each shape's text as one block: its paragraphs, or its table's rows, on their own lines."""
    for shape in shapes:
        if shape.is_placeholder and shape.placeholder_format.type in _CHROME:
            continue
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _blocks(shape.shapes)
        elif shape.has_text_frame:
            # "\v" is python-pptx's line break inside a paragraph: a line of its own here too
            raw = shape.text_frame.text.replace("\v", "\n").split("\n")
            text = "\n".join(line for line in (" ".join(r.split()) for r in raw) if line)
            if text:
                yield text
        elif shape.has_table:
            rows = (
                " | ".join(t for cell in row.cells if not cell.is_spanned
                           if (t := " ".join(cell.text.split())))
                for row in shape.table.rows
            )
            text = "\n".join(row for row in rows if row)
            if text:
                yield text
