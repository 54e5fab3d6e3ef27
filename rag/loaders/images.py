"""PNG, JPEG and TIFF uploads: each image (a TIFF may hold many pages) read by OCR."""

from __future__ import annotations

import io

from PIL import Image, ImageOps, UnidentifiedImageError

from rag.loaders.errors import LoaderError
from rag.loaders.scans import OcrResult, call, page_list, reason, recognise_pages
from rag.types import Page

FORMATS = ("PNG", "JPEG", "TIFF")


def load_image(data: bytes, source: str, timeout_s: float | None) -> tuple[list[Page], list[str]]:
    """One Page per image page with text; opening runs within `timeout_s`, OCR within that plus
    a budget per page. A single image has no page number; a multi-page TIFF numbers them."""
    count = call(count_pages, (data, source), source, timeout_s)
    numbers: list[int | None] = [None] if count == 1 else list(range(1, count + 1))
    result = call(ocr_image, (data, numbers), source, timeout_s, ocr_pages=count)
    if result.unavailable:
        raise LoaderError(source, f"scanned page: {result.unavailable}")
    if not result.pages:
        if result.failed:
            raise LoaderError(source, next(iter(result.failed)))
        raise LoaderError(source, "no text: OCR found none in the image")
    warns = [f"{page_list(result.empty)}: OCR found no text, skipped"] if result.empty else []
    warns += [f"{page_list(pages)}: {why}, skipped" for why, pages in result.failed.items()]
    return result.pages, warns


def count_pages(data: bytes, source: str) -> int:
    """Pages in the image; refuses what Pillow cannot open as PNG, JPEG or TIFF."""
    try:
        with _open(data) as image:
            # other formats' extra frames are previews or stereo views of the same picture
            return image.n_frames if image.format == "TIFF" else 1
    except UnidentifiedImageError:
        raise LoaderError(source, f"not an image ({', '.join(FORMATS)} expected)") from None
    except Image.DecompressionBombError as exc:
        raise LoaderError(source, f"image too large: {exc}") from exc
    except Exception as exc:  # Pillow raises anything from OSError to struct.error on damage
        raise LoaderError(source, f"unreadable image: {reason(exc)}") from exc


def ocr_image(data: bytes, numbers: list[int | None]) -> OcrResult:
    """The given pages (1-based; None for a single image) recognised one at a time."""
    return recognise_pages(numbers, lambda number: _draw(data, (number or 1) - 1))


def _draw(data: bytes, index: int) -> tuple[Image.Image, float | None]:
    """Page `index`, upright (cameras store the turn in EXIF), and its dpi when believable."""
    with _open(data) as image:
        image.seek(index)
        upright = ImageOps.exif_transpose(image)  # a copy, also when nothing turns
        dpi = image.info.get("dpi", (0, 0))[0]
    return upright, float(dpi) if 50 <= float(dpi or 0) <= 2400 else None


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data), formats=FORMATS)
