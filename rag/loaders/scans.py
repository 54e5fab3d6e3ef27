"""Pages without a text layer through OCR, in the loader worker, under a time limit that grows
with their number: a 300-page scan rightly takes minutes, yet a file that hangs the renderer
must still be stopped."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from PIL import Image

from rag import ocr
from rag.loaders.worker import run_limited
from rag.types import Page

T = TypeVar("T")

# Time a page may add to the limit: drawing it plus OCR's own per-page limit, which is five
# times the slowest benchmark page (a 3312x2550 magazine scan, 6 s on one busy core).
OCR_PAGE_S = ocr.PAGE_TIMEOUT_S + 5.0


@dataclass
class OcrResult:
    """What OCR made of the pages it was given; the loader turns it into warnings or a refusal."""

    pages: list[Page] = field(default_factory=list)
    empty: list[int | None] = field(default_factory=list)  # recognised, but no text on them
    failed: dict[str, list[int | None]] = field(default_factory=dict)  # reason -> pages
    unavailable: str | None = None  # no engine: why, naming what to install


def recognise_pages(numbers: Sequence[int | None],
                    draw: Callable[[int | None], tuple[Image.Image, float | None]]) -> OcrResult:
    """Each page drawn by `draw` (its image and dpi), one in memory at a time, and recognised."""
    result = OcrResult()
    try:
        ocr.engine_path()  # before drawing anything: without an engine nothing can be read
    except ocr.OcrUnavailable as exc:
        result.unavailable = str(exc)
        return result
    for number in numbers:
        # PDFium and Pillow raise all kinds of errors on damaged data: at this boundary a page
        # that cannot be drawn is one failed page, named, not a failed upload.
        try:
            image, dpi = draw(number)
        except Exception as exc:  # noqa: BLE001
            result.failed.setdefault(f"cannot draw it ({reason(exc)})", []).append(number)
            continue
        try:
            text = ocr.recognise(image, dpi)
        except ocr.OcrUnavailable as exc:  # removed mid-file
            result.unavailable = str(exc)
            return result
        except ocr.OcrFailed as exc:
            result.failed.setdefault(str(exc), []).append(number)
            continue
        if text:
            result.pages.append(Page(text=text, page=number, ocr=True))
        else:
            result.empty.append(number)
    return result


def page_list(numbers: Sequence[int | None]) -> str:
    """[2, 3, 4, 7] -> "pages 2-4, 7": a warning people can act on, even for a 300-page book."""
    runs: list[list[int]] = []
    for n in numbers:
        if n is None:  # the one page of a single image
            return "the image"
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    spans = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
    return f"{'page' if len(numbers) == 1 else 'pages'} {spans}"


def reason(exc: Exception) -> str:
    """An exception in one line: its type, then the start of its message."""
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0][:120]}" if message else type(exc).__name__


def call(fn: Callable[..., T], args: tuple, source: str, timeout_s: float | None,
         ocr_pages: int = 0) -> T:
    """`fn(*args)` in-process when `timeout_s` is None, else in the loader worker within
    `timeout_s` plus OCR_PAGE_S for each of `ocr_pages` pages to recognise."""
    if timeout_s is None:
        return fn(*args)
    return run_limited(fn, args, source, timeout_s + ocr_pages * OCR_PAGE_S)
