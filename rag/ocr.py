"""Image -> text with Tesseract, for pages that carry no text layer (scans, photographed pages).

Tesseract runs as a subprocess of the Debian package tesseract-ocr, looked up on first use: an
install without it still loads every document with a text layer, and only a scanned page
fails, naming the package. RAG_TESSERACT points at another binary. bench/results/ocr.md has
the comparison that chose Tesseract over RapidOCR.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import unicodedata

from PIL import Image

TESSERACT_ENV = "RAG_TESSERACT"
INSTALL_HINT = "OCR needs the Debian package tesseract-ocr (apt install tesseract-ocr)"
LANGUAGES = "eng"  # the data tesseract-ocr always installs; more via apt tesseract-ocr-<lang>
PAGE_TIMEOUT_S = 30.0  # one page: five times the slowest benchmark page (6 s on a busy core)


class OcrUnavailable(RuntimeError):
    """The OCR engine is not installed: a page without a text layer cannot be read."""


class OcrFailed(RuntimeError):
    """The engine ran on a page and gave no text (a crash, a timeout, an image it rejects)."""


def engine_path() -> str:
    """The tesseract binary, from RAG_TESSERACT or PATH; OcrUnavailable naming the package."""
    wanted = os.environ.get(TESSERACT_ENV, "tesseract")
    found = shutil.which(wanted)
    if found is None:
        where = f" ({TESSERACT_ENV}={wanted} not found)" if TESSERACT_ENV in os.environ else ""
        raise OcrUnavailable(INSTALL_HINT + where)
    return found


def recognise(image: Image.Image, dpi: float | None = None) -> str:
    """The text of one page image, lines and paragraphs kept. `dpi` is the scale it was drawn
    or scanned at: Tesseract guesses it from the text size otherwise, and sometimes wrongly."""
    command = [engine_path(), "stdin", "stdout", "-l", LANGUAGES, "--psm", "3"]
    if dpi:
        command += ["--dpi", str(round(dpi))]
    try:
        # One OpenMP thread: on 2 shared cores the default (all cores) took 34 s for a page
        # that one thread read in 6 s, its threads spinning against each other and the embedder.
        run = subprocess.run(command, input=_png(image), capture_output=True,
                             env={**os.environ, "OMP_THREAD_LIMIT": "1"},
                             timeout=PAGE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise OcrFailed(f"OCR took longer than {PAGE_TIMEOUT_S:g} s") from None
    except OSError as exc:  # not executable, or removed since the lookup
        raise OcrUnavailable(f"{INSTALL_HINT} ({exc.strerror}: {command[0]})") from exc
    if run.returncode != 0:
        lines = run.stderr.decode("utf-8", "replace").strip().splitlines()
        why = lines[-1][:160] if lines else f"exit code {run.returncode}"
        raise OcrFailed(f"OCR failed: {why}")
    return tidy(run.stdout.decode("utf-8", "replace"))


def _png(image: Image.Image) -> bytes:
    """PNG for tesseract's stdin; transparency flattened onto white, or a transparent page
    would read as black on black."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    if image.mode not in ("1", "L", "RGB"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)  # speed over size: it is piped once
    return buffer.getvalue()


_HYPHEN_BREAK = re.compile(r"(\w)-\n(?=[a-z])")  # "ex-\nplain": the word people search for


def tidy(text: str) -> str:
    """NFKC and one space between words, like PDF text; words hyphenated at a line end joined."""
    text = unicodedata.normalize("NFKC", text).replace("\f", "\n")
    text = _HYPHEN_BREAK.sub(r"\1", text)
    text = re.sub(r"[^\S\n]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()
