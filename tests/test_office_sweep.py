"""Every office, e-book and CSV benchmark file (bench data office/MANIFEST.json) through the real
pipeline: indexed with each of its probe phrases retrievable, or refused by name and cause."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from rag.config import Settings
from rag.loaders import LoaderError, load
from rag.pipeline import RAG

# Files that need OCR (images, a scanned PDF) belong to the OCR loader's own tests, which check
# their probes; here they are only loaded, and must end indexed or refused by name.
OCR_FORMATS = frozenset({"png", "jpeg", "tiff"})
PROBES = ("probe_text", "probe_table", "probe_notes", "probe_end", "probe_value", "probe_latin",
          "probe_ascii")
# The cause each refused file must be given, after "<file>: ".
REFUSALS = {
    "testWORD_protected_passtika.docx":
        "password-protected Word file: remove the password and upload it again",
    "bug53475-password-is-pass.docx":
        "password-protected Word file: remove the password and upload it again",
    "truncated62886.docx": "damaged or truncated DOCX (not a valid zip)",
    "testWORD.doc": "legacy .doc format (Word 97-2003): save it as .docx and upload it again",
    "testPPT_protected_passtika.pptx":
        "password-protected PowerPoint file: remove the password and upload it again",
    "Divino_Revelado.pptx": "damaged or truncated PPTX (not a valid zip)",
    "no-slides.pptx": "no text: the presentation has no slides",
    "testEXCEL_protected_passtika.xlsx":
        "password-protected Excel file: remove the password and upload it again",
    "invalid.xlsx": "not a valid Excel file (an empty zip)",
    "poc-xmlbomb.xlsx": "unsafe XML in xl/sharedStrings.xml: entity declarations, which Excel "
                        "files never contain (an XML entity-expansion bomb?)",
}


@pytest.fixture(scope="module")
def office(bench_data: Path) -> Path:
    return bench_data / "office"


@pytest.fixture(scope="module")
def entries(office: Path) -> list[dict]:
    return json.loads((office / "MANIFEST.json").read_text(encoding="utf-8"))["files"]


def _needs_ocr(entry: dict) -> bool:
    return entry["format"] in OCR_FORMATS or entry["file"].startswith("ocr/")


@pytest.fixture(scope="module")
def swept(tmp_path_factory, embedder, office, entries) -> tuple[RAG, dict]:
    """One RAG holding every non-OCR file, ingested once for all the tests here; with the
    results by file name."""
    rag = RAG(Settings(data_dir=tmp_path_factory.mktemp("office-sweep")), embedder=embedder)
    files = [(Path(e["file"]).name, (office / e["file"]).read_bytes())
             for e in entries if not _needs_ocr(e)]
    started = time.perf_counter()
    results = rag.ingest(files)
    print(f"\noffice sweep: {len(files)} files ingested in {time.perf_counter() - started:.1f} s")
    return rag, {r.source: r for r in results}


def test_manifest_lists_every_file(office: Path, entries: list[dict]) -> None:
    found = sorted(p.relative_to(office).as_posix() for p in office.glob("*/*")
                   if p.parent.name != "LICENSES" and p.suffix != ".txt")
    assert found == sorted(e["file"] for e in entries) and len(entries) == 37
    assert set(REFUSALS) == {Path(e["file"]).name for e in entries if e["expect"] != "index"}


def test_each_file_is_indexed_or_refused_as_the_manifest_expects(swept, entries) -> None:
    rag, results = swept
    wrong = []
    for entry in (e for e in entries if not _needs_ocr(e)):
        name = Path(entry["file"]).name
        result = results[name]
        if entry["expect"] == "index":
            if result.status != "indexed" or result.chunks == 0:
                wrong.append(f"{name}: expected indexed, got {result.status} ({result.error})")
            elif result.doc_id != entry["sha256"]:
                wrong.append(f"{name}: doc_id {result.doc_id} is not the file's SHA-256")
        elif result.status != "failed" or result.error != f"{name}: {REFUSALS[name]}":
            wrong.append(f"{name}: expected refusal '{REFUSALS[name]}', got {result.status} "
                         f"({result.error})")
    assert not wrong, "\n".join(wrong)
    indexed = {r.doc_id for r in results.values() if r.status == "indexed"}
    assert {info.doc_id for info in rag.documents()} == indexed


def test_every_probe_is_retrievable_from_its_file(swept, entries) -> None:
    """The top 5 of the whole index hold a passage of the probe's own file containing it
    (whitespace normalised): the text survived loading and chunking where a search finds it."""
    rag, results = swept
    missed = []
    for entry in (e for e in entries if e["expect"] == "index" and not _needs_ocr(e)):
        name = Path(entry["file"]).name
        for key in (k for k in PROBES if entry.get(k)):
            probe = " ".join(entry[key].split())
            hits = rag.rank(entry[key], depth=5)
            if not any(h.chunk.doc_id == results[name].doc_id
                       and probe in " ".join(h.chunk.text.split()) for h in hits):
                missed.append(f"{name} {key}: {entry[key]!r}")
    assert not missed, "not in the top 5:\n" + "\n".join(missed)


def test_ocr_files_are_loaded_or_refused_by_name(office, entries) -> None:
    """OCR FILES: images and the scanned PDF only need to load or be refused by name here;
    their probes are the OCR loader's tests' to check."""
    for entry in (e for e in entries if _needs_ocr(e)):
        name = Path(entry["file"]).name
        try:
            doc = load((office / entry["file"]).read_bytes(), name, timeout_s=120)
        except LoaderError as err:
            assert re.match(rf"{re.escape(name)}: .+", str(err)), err
        else:
            assert doc.source == name and doc.pages
