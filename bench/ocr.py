"""OCR engines compared on real scans: word accuracy against a reference text, seconds per page.

Sets:
- scanned PDFs: the benchmark PDFs of category "scanned-ocr" (pdfs/MANIFEST.json), which carry
  an OCR text layer of their own. Each page is drawn by pypdfium2 at --dpi and recognised; the
  reference is that page's text layer as pypdf extracts it (itself OCR, so a ceiling below 1).
- images: office/ocr files with a hand-made ground truth (office/MANIFEST.json "ground_truth").
- probes: every office/ocr file with a probe_text (images without ground truth, the scanned
  c02-22.pdf): is the probe phrase found in the text?

Word accuracy is reported two ways, both on words normalised the same way (NFKC, case folded,
words hyphenated at a line end joined, punctuation dropped, a word = a run of letters/digits):
- word F1: multiset overlap of OCR and reference words, order ignored, so a two-column page
  read in another order loses nothing; it is the figure that decides, since retrieval
  searches words, not their order.
- 1-WER: one minus the word error rate (word edit distance / reference words), order kept.
Seconds per page time the engine call only (the same drawn image goes to each engine), after
a warm-up, on --threads threads. The engine is chosen by word F1 first, then speed.

    .venv/bin/python bench/ocr.py --subset   # 5 pages, about a minute: checks it works
    .venv/bin/python bench/ocr.py            # every page; writes bench/results/ocr.md

RapidOCR is not a dependency of the app: `pip install rapidocr-onnxruntime==1.4.4` first,
or its row says it is not installed.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
from common import BENCH_DATA, REPO, write_results
from PIL import Image, ImageSequence
from pypdf import PdfReader

from rag import ocr

SUBSET = {"phototest.tif", "eurotext.tif", "testOCR.jpg",
          "Seige_of_Vicksburg_Sample_OCR.pdf#1", "Seige_of_Vicksburg_Sample_OCR.pdf#2"}
Engine = Callable[[Image.Image, float | None], str]


@dataclass
class Sample:
    name: str  # file name, "#n" for a page of a PDF or a multi-page image
    kind: str  # "scanned PDFs", "images" or "probes"
    image: Callable[[], Image.Image]
    dpi: float | None
    reference: str | None = None
    probe: str | None = None


@dataclass
class Score:
    pages: int = 0
    seconds: float = 0.0
    matched: int = 0
    ocr_words: int = 0
    ref_words: int = 0
    edits: int = 0
    probes: list[bool] = field(default_factory=list)

    def row(self) -> list[str]:
        f1 = 2 * self.matched / (self.ocr_words + self.ref_words) if self.ref_words else None
        wer = 1 - self.edits / self.ref_words if self.ref_words else None
        found = f"{sum(self.probes)}/{len(self.probes)}" if self.probes else "-"
        return [str(self.pages), _fmt(f1), _fmt(wer), found, f"{self.seconds / self.pages:.2f}"]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def words(text: str) -> list[str]:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"(\w)-\s*\n\s*(\w)", r"\1\2", text)
    return re.findall(r"[^\W_]+", text)


def edit_distance(a: list[str], b: list[str]) -> int:
    """Word-level Levenshtein distance, one row at a time."""
    previous = list(range(len(b) + 1))
    for i, word in enumerate(a, 1):
        current = [i]
        for j, other in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (word != other)))
        previous = current
    return previous[-1]


def pdf_pages(path: Path, kind: str, dpi: float, with_reference: bool) -> Iterator[Sample]:
    reader = PdfReader(path)
    for number, page in enumerate(reader.pages, 1):
        reference = page.extract_text() if with_reference else None

        def draw(number: int = number) -> Image.Image:
            pdf = pdfium.PdfDocument(path)
            try:
                return pdf[number - 1].render(scale=dpi / 72, grayscale=True).to_pil()
            finally:
                pdf.close()

        yield Sample(f"{path.name}#{number}", kind, draw, dpi, reference=reference)


def image_pages(path: Path, kind: str, reference: str | None, probe: str | None
                ) -> Iterator[Sample]:
    with Image.open(path) as image:
        frames = getattr(image, "n_frames", 1)
        dpi = image.info.get("dpi", (None,))[0]
    for number in range(frames):

        def draw(number: int = number) -> Image.Image:
            with Image.open(path) as image:
                frame = ImageSequence.Iterator(image)[number]
                frame.load()
                return frame.copy()

        name = path.name if frames == 1 else f"{path.name}#{number + 1}"
        yield Sample(name, kind, draw, dpi, reference=reference, probe=probe)


def samples(dpi: float) -> list[Sample]:
    found: list[Sample] = []
    pdfs = BENCH_DATA / "pdfs"
    for entry in json.loads((pdfs / "MANIFEST.json").read_text(encoding="utf-8"))["pdfs"]:
        if "scanned-ocr" in entry["categories"]:
            found += pdf_pages(pdfs / entry["path"], "scanned PDFs", dpi, with_reference=True)
    office = BENCH_DATA / "office"
    for entry in json.loads((office / "MANIFEST.json").read_text(encoding="utf-8"))["files"]:
        if not entry["file"].startswith("ocr/"):
            continue
        path, probe = office / entry["file"], entry.get("probe_text")
        if path.suffix == ".pdf":
            for sample in pdf_pages(path, "probes", dpi, with_reference=False):
                sample.probe = probe
                found.append(sample)
            continue
        truth = entry.get("ground_truth")
        reference = (office / truth).read_text(encoding="utf-8") if truth else None
        found += image_pages(path, "images" if truth else "probes", reference, probe)
    return found


def tesseract() -> tuple[str, Engine]:
    version = subprocess.run([ocr.engine_path(), "--version"], capture_output=True, text=True,
                             check=True).stdout.split("\n", 1)[0]
    return f"{version} ({ocr.LANGUAGES}, psm 3, 1 thread)", ocr.recognise


def rapidocr(threads: int) -> tuple[str, Engine]:
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1)

    def recognise(image: Image.Image, dpi: float | None) -> str:
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        result, _ = engine(bgr)
        return ocr.tidy("\n".join(line[1] for line in result or []))  # boxes top to bottom

    version = metadata.version("rapidocr-onnxruntime")
    return f"rapidocr-onnxruntime {version} (PP-OCRv4, {threads} thread)", recognise


def measure(engine: Engine, chosen: list[Sample], verbose: bool) -> dict[str, Score]:
    engine(Image.new("L", (200, 60), "white"), None)  # warm up: load models, page in the binary
    scores: dict[str, Score] = {}
    for sample in chosen:
        image = sample.image()
        started = time.perf_counter()
        text = engine(image, sample.dpi)
        elapsed = time.perf_counter() - started
        score = scores.setdefault(sample.kind, Score())
        score.pages += 1
        score.seconds += elapsed
        note = f"{elapsed:6.2f} s"
        if sample.reference is not None:
            got, want = words(text), words(sample.reference)
            matched = sum((Counter(got) & Counter(want)).values())
            score.matched += matched
            score.ocr_words += len(got)
            score.ref_words += len(want)
            score.edits += edit_distance(got, want)
            note += f"  F1 {2 * matched / max(1, len(got) + len(want)):.3f}"
        if sample.probe is not None:
            found = " ".join(words(sample.probe)) in " ".join(words(text))
            score.probes.append(found)
            note += f"  probe {'found' if found else 'MISSED'}"
        if verbose:
            print(f"  {sample.name:45} {note}", flush=True)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subset", action="store_true",
                        help=f"only {len(SUBSET)} pages, to check the script; writes no results")
    parser.add_argument("--dpi", type=float, default=300, help="scale PDF pages are drawn at")
    parser.add_argument("--threads", type=int, default=1, help="RapidOCR's onnxruntime threads")
    parser.add_argument("--verbose", action="store_true", help="one line per page")
    args = parser.parse_args()

    chosen = [s for s in samples(args.dpi) if not args.subset or s.name in SUBSET]
    rows, skipped = [], []
    engines = {"tesseract": tesseract, "rapidocr": lambda: rapidocr(args.threads)}
    for label, make in engines.items():
        try:
            name, engine = make()
        except (ImportError, ocr.OcrUnavailable) as exc:
            skipped.append(f"{label}: not installed ({exc})")
            continue
        print(f"{name}: {len(chosen)} pages", flush=True)
        scores = measure(engine, chosen, args.verbose)
        rows += [[kind, name, *score.row()] for kind, score in sorted(scores.items())]

    table = ["| set | engine | pages | word F1 | 1-WER | probes found | s/page |",
             "|---|---|---:|---:|---:|---:|---:|"]
    table += ["| " + " | ".join(row) + " |" for row in sorted(rows, key=lambda r: r[0])]
    text = "\n".join(table)
    print(text, *skipped, sep="\n")
    if not args.subset:
        header = (f"# OCR engines\n\n`.venv/bin/python bench/ocr.py` ({len(chosen)} pages, PDF "
                  f"pages drawn at {args.dpi:g} dpi; see the script's docstring for the "
                  "metrics).\n\n")
        write_results(REPO / "bench" / "results" / "ocr.md", header + text + "\n", "## Decision")


if __name__ == "__main__":
    main()
