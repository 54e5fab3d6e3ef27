"""OCR through the real engine (Tesseract) on real scans: images with a ground truth, a scanned
PDF page indexed and found, the message when the engine is missing, and the ocr flag kept by
every store and by a stored conversation."""

from __future__ import annotations

import io
import json
import re
import sqlite3
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pypdf import PdfReader, PdfWriter

from rag import ocr
from rag.config import Settings
from rag.generation import create_llm
from rag.loaders import LoaderError, load
from rag.pipeline import RAG
from rag.stores import open_store
from rag.stores.faiss import DATABASE, FaissStore
from rag.types import Chunk, DocumentInfo, Hit

SCAN = "c02-22.pdf"  # one page, a 150 ppi JPEG and no text layer: a Huckleberry Finn page
SCAN_PHRASE = "went tip-toeing along a path amongst"  # its MANIFEST probe_text
MISSING = "OCR needs the Debian package tesseract-ocr (apt install tesseract-ocr)"


@pytest.fixture(scope="module")
def scans(bench_data: Path) -> Path:
    return bench_data / "office" / "ocr"


def words(text: str) -> list[str]:
    """As bench/ocr.py counts them: case and punctuation aside, hyphenated line ends joined."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return re.findall(r"[^\W_]+", re.sub(r"(\w)-\s*\n\s*(\w)", r"\1\2", text))


def word_f1(got: str, want: str) -> float:
    a, b = words(got), words(want)
    return 2 * sum((Counter(a) & Counter(b)).values()) / (len(a) + len(b))


# Floors: word F1 measured with Tesseract 5.3.0 (bench/ocr.py), less a margin for another
# Tesseract build: phototest 1.000, eurotext 0.918 (its accents, quotes and e-mail address).
@pytest.mark.parametrize(("name", "floor"), [("phototest.tif", 0.97), ("eurotext.tif", 0.88)])
def test_image_with_ground_truth_is_read_above_the_measured_floor(scans, name, floor) -> None:
    image = scans / name
    doc = load(image.read_bytes(), name, timeout_s=60)
    assert [(p.page, p.ocr) for p in doc.pages] == [(None, True)]  # one image: no page number
    assert doc.warnings == ()
    truth = image.with_suffix(".txt").read_text(encoding="utf-8")
    assert word_f1(doc.pages[0].text, truth) >= floor


def test_multi_page_tiff_is_one_page_per_frame(scans, tmp_path) -> None:
    """Two real scans saved as the frames of one TIFF, as a scanner's multi-page file."""
    first, second = (Image.open(scans / n) for n in ("phototest.tif", "eurotext.tif"))
    path = tmp_path / "both.tiff"
    first.save(path, save_all=True, append_images=[second], compression="group4")
    doc = load(path.read_bytes(), path.name, timeout_s=60)
    assert [(p.page, p.ocr) for p in doc.pages] == [(1, True), (2, True)]
    assert "quick brown dog" in doc.pages[0].text
    assert "braune Fuchs springt" in doc.pages[1].text


def test_scanned_pdf_page_is_indexed_as_ocr_and_its_phrase_found(
    tmp_path, embedder, scans, bench_data, smollm_gguf
) -> None:
    text_pdf = bench_data / "pdfs/pypdf-resources/crazyones.pdf"
    llm = create_llm(Settings(llm_gguf=smollm_gguf, llm_max_tokens=24))
    rag = RAG(Settings(data_dir=tmp_path, decline_probability=1.0), embedder=embedder, llm=llm)
    scanned, typed = rag.ingest([(SCAN, (scans / SCAN).read_bytes()),
                                 (text_pdf.name, text_pdf.read_bytes())])
    assert scanned.status == "indexed" and scanned.chunks > 0
    assert scanned.warnings == ("page 1: no text layer, read by OCR (words may be misread)",)
    assert typed.status == "indexed" and typed.warnings == ()

    hits = rag.retrieve(f"{SCAN_PHRASE} the trees").hits
    assert hits and hits[0].chunk.source == SCAN
    assert hits[0].chunk.ocr and hits[0].chunk.page == 1
    assert SCAN_PHRASE in hits[0].chunk.text
    everything = rag.rank("the crazy ones, the misfits, the rebels", depth=50)
    assert {(hit.chunk.source, hit.chunk.ocr) for hit in everything} == {
        (SCAN, True), (text_pdf.name, False)}

    # a question about the scan's text is answered from it by the real (small) model
    answer = rag.ask("Who went tip-toeing along a path amongst the trees?")
    assert not answer.refused and answer.hits[0].chunk.source == SCAN and answer.hits[0].chunk.ocr
    text = "".join(answer.deltas)
    assert text.strip() and not answer.withheld and "[The language model failed" not in text


def test_every_ocr_benchmark_file_is_indexed_with_its_probe(bench_data) -> None:
    """Every office/ocr file (PNG, JPEG, TIFF, the scanned PDF) loads through the worker with
    its pages marked OCR, and the phrase read off it by hand (MANIFEST probe_text) is found."""
    manifest = json.loads((bench_data / "office/MANIFEST.json").read_text(encoding="utf-8"))
    entries = [e for e in manifest["files"] if e["file"].startswith("ocr/")]
    assert len(entries) == 8 and all(e["expect"] == "index" for e in entries)
    missed = []
    for entry in entries:
        path = bench_data / "office" / entry["file"]
        doc = load(path.read_bytes(), path.name, timeout_s=60)
        assert all(page.ocr for page in doc.pages), path.name
        text = " ".join(words(" ".join(page.text for page in doc.pages)))
        if " ".join(words(entry["probe_text"])) not in text:
            missed.append(path.name)
    assert missed == []


def _one_page_pdfs(*pages) -> bytes:
    writer = PdfWriter()
    for page in pages:
        writer.add_page(page)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def test_missing_engine_fails_only_the_scanned_page_by_name(
    monkeypatch, tmp_path, scans, bench_data
) -> None:
    """An install without tesseract: text still loads, a scan names the package to install."""
    absent = tmp_path / "no-such-tesseract"
    monkeypatch.setenv(ocr.TESSERACT_ENV, str(absent))
    why = f"{MISSING} ({ocr.TESSERACT_ENV}={absent} not found)"

    with pytest.raises(LoaderError) as refused:
        load((scans / SCAN).read_bytes(), SCAN)
    assert str(refused.value) == f"{SCAN}: scanned page: {why}"
    with pytest.raises(LoaderError) as refused:
        load((scans / "testOCR.png").read_bytes(), "testOCR.png")
    assert str(refused.value) == f"testOCR.png: scanned page: {why}"

    typed = PdfReader(bench_data / "pdfs/pypdf-resources/crazyones.pdf").pages[0]
    scanned = PdfReader(scans / SCAN).pages[0]
    doc = load(_one_page_pdfs(typed, scanned), "mixed.pdf")
    assert [(p.page, p.ocr) for p in doc.pages] == [(1, False)]
    assert doc.warnings == (f"page 2: no text layer, skipped: {why}",)


def test_an_engine_that_fails_is_reported_by_file(monkeypatch, scans) -> None:
    """A binary that runs but is no OCR engine (exit code 1): the page fails, named."""
    monkeypatch.setenv(ocr.TESSERACT_ENV, "false")
    with pytest.raises(LoaderError, match=r"^testOCR\.png: OCR failed: exit code 1$"):
        load((scans / "testOCR.png").read_bytes(), "testOCR.png")


def _chunks(doc_id: str) -> list[Chunk]:
    return [Chunk(doc_id, "scan.pdf", i, f"text {i}", 0, 6, page=i + 1, ocr=i == 0)
            for i in range(2)]


@pytest.mark.parametrize("store_type", ["chroma", "faiss"])
def test_ocr_flag_round_trips_through_the_store(tmp_path, store_type) -> None:
    settings = Settings(data_dir=tmp_path, vector_store_type=store_type)
    chunks = _chunks("d1")
    vectors = np.eye(2, 8, dtype=np.float32)
    open_store(settings).add(DocumentInfo("d1", "scan.pdf", 2, 2, 10, "2026-01-01T00:00:00+00:00"),
                             chunks, vectors)
    store = open_store(settings)  # reopened, as after a restart
    assert [chunk_id for chunk_id, _ in store.nearest(vectors[0], 2)] == ["d1:0", "d1:1"]
    assert [c.ocr for c, _ in store.get_chunks(["d1:0", "d1:1"])] == [True, False]
    assert [c for c, _ in store.get_chunks([c.chunk_id for c in chunks])] == chunks
    assert sorted(store.chunks(), key=lambda c: c.ordinal) == chunks


def test_faiss_index_from_before_ocr_reads_not_ocr(tmp_path) -> None:
    """The chunks table as it was before the ocr column: opening adds it, old rows read False."""
    folder = tmp_path / "faiss"
    folder.mkdir()
    db = sqlite3.connect(folder / DATABASE)
    db.executescript("""
        CREATE TABLE chunks (id INTEGER PRIMARY KEY AUTOINCREMENT, doc_id TEXT NOT NULL,
            source TEXT NOT NULL, ordinal INTEGER NOT NULL, text TEXT NOT NULL,
            char_start INTEGER NOT NULL, char_end INTEGER NOT NULL, page INTEGER, heading TEXT,
            vector BLOB NOT NULL, UNIQUE (doc_id, ordinal));
        CREATE TABLE documents (doc_id TEXT PRIMARY KEY, source TEXT NOT NULL,
            pages INTEGER NOT NULL, chunks INTEGER NOT NULL, size_bytes INTEGER NOT NULL,
            added_at TEXT NOT NULL, warnings TEXT NOT NULL);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO meta VALUES ('dimension', 8);
        INSERT INTO documents VALUES ('old', 'old.pdf', 1, 1, 10, '2025-01-01T00:00:00+00:00', '[]');
    """)
    vector = np.eye(1, 8, dtype=np.float32)[0]
    db.execute("INSERT INTO chunks (doc_id, source, ordinal, text, char_start, char_end, page,"
               " heading, vector) VALUES ('old', 'old.pdf', 0, 'old text', 0, 8, 1, NULL, ?)",
               (vector.tobytes(),))
    db.commit()
    db.close()

    store = FaissStore(folder)
    assert [c.ocr for c, _ in store.get_chunks([i for i, _ in store.nearest(vector, 1)])] == [False]
    store.add(DocumentInfo("d1", "scan.pdf", 2, 2, 10, "2026-01-01T00:00:00+00:00"),
              _chunks("d1"), np.eye(2, 8, dtype=np.float32))
    assert {c.chunk_id: c.ocr for c in FaissStore(folder).chunks()} == {
        "old:0": False, "d1:0": True, "d1:1": False}


def test_a_stored_conversation_keeps_the_ocr_flag() -> None:
    hit = Hit(_chunks("d1")[0], similarity=0.5)
    stored = json.loads(json.dumps(hit.to_dict()))
    assert stored["ocr"] is True and Hit.from_dict(stored) == hit
    del stored["ocr"]  # a conversation stored before OCR
    assert Hit.from_dict(stored).chunk.ocr is False
