"""Every benchmark PDF through the real pipeline (loader worker under the time limit, OCR of
pages without a text layer, chunker, embedder, Chroma folder, BM25): indexed, or refused with
the file's name and the cause."""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from rag.config import Settings
from rag.loaders import LoaderError
from rag.loaders.worker import run_limited
from rag.pipeline import RAG

# Text layers pypdf extracts but the loader refuses by design as mis-decoded CJK (Latin-1
# mojibake); test_loaders.py checks each of them by its cause.
GARBLED = frozenset({"XiaoBiaoSong.pdf", "SimFang-variant.pdf"})
# User-password files that pypdf 7.1.1 nonetheless opens with the empty password (decrypt("")
# returns USER_PASSWORD and the real text comes out); the probe only tried "asdfzxcv" on them.
OPEN_WITHOUT_PASSWORD = frozenset({"r5-user-password.pdf", "r6-user-password.pdf"})
# Files with a page that has no text layer but text OCR reads: the cover of freeculture.pdf
# (its title; its other pages have text layers) and page 2 of encrypted_doc_no_id.pdf, a
# scanned patent page and the only page of that file with text, which is therefore indexed
# thanks to OCR alone. Image-only files (a logo, test patterns, photos) give OCR no text and
# are refused for it.
READ_BY_OCR = frozenset({"freeculture.pdf", "encrypted_doc_no_id.pdf"})
# Every cause a refusal may state after "<file>: "; a new kind of refusal should be looked at.
CAUSES = re.compile(
    r"unreadable PDF: .{5,}"
    r"|encrypted PDF, no password given"
    r"|scanned PDF: OCR found no text"
    r"|unreadable text layer \(.+\), needs OCR"
    r"|no text: the pages are blank \(or their text is drawn as shapes\)"
)
DUPLICATE = ("crazyones-copy.pdf", "pypdf-resources/crazyones.pdf")


@pytest.fixture(scope="module")
def pdfs(bench_data: Path) -> Path:
    return bench_data / "pdfs"


def _has_text_layer(entry: dict) -> bool:
    """pypdf's probe (MANIFEST.json) opened the file without error and extracted at least one
    character; the file needs no password (unencrypted, encrypted with the empty password as
    the probe's password_used "" says, or OPEN_WITHOUT_PASSWORD); and its text layer is not one
    of the GARBLED ones."""
    probe, name = entry["pypdf_7.1.1_probe"], Path(entry["path"]).name
    opens = (
        not probe.get("encrypted")
        or probe.get("password_used") == ""
        or name in OPEN_WITHOUT_PASSWORD
    )
    return (
        "error" not in probe
        and opens
        and probe.get("text_chars_pypdf", 0) > 0
        and name not in GARBLED
    )


def test_every_benchmark_pdf_is_indexed_or_refused_by_name(tmp_path, embedder, pdfs) -> None:
    """A PDF with a text layer (see _has_text_layer) or text read by OCR ends "indexed"; every
    other one is refused with "<file>: <cause>". A byte-identical copy under another name is
    "already indexed". The vector store and BM25 then hold exactly the indexed documents, and
    chunks marked OCR come from exactly the files whose warnings say a page was read by OCR."""
    entries = json.loads((pdfs / "MANIFEST.json").read_text(encoding="utf-8"))["pdfs"]
    found = sorted(p.relative_to(pdfs).as_posix() for p in pdfs.rglob("*.pdf"))
    assert found == sorted(e["path"] for e in entries) and len(found) == 91
    files = [(Path(e["path"]).name, (pdfs / e["path"]).read_bytes()) for e in entries]
    files.append((DUPLICATE[0], (pdfs / DUPLICATE[1]).read_bytes()))
    rag = RAG(Settings(data_dir=tmp_path), embedder=embedder)

    started = time.perf_counter()
    results = rag.ingest(files)
    elapsed = time.perf_counter() - started

    assert [r.source for r in results] == [name for name, _ in files]
    by_name = {r.source: r for r in results}
    causes = Counter()
    for r in results:
        if r.status == "failed":
            assert r.error.startswith(f"{r.source}: "), r.error
            cause = r.error.removeprefix(f"{r.source}: ")
            assert CAUSES.fullmatch(cause), r.error
            causes[re.split(r"[:(,]", cause)[0].strip()] += 1
    expected = {Path(e["path"]).name for e in entries if _has_text_layer(e)} | READ_BY_OCR
    indexed = {r.source for r in results if r.status == "indexed"}
    assert indexed == expected
    assert all(by_name[name].chunks > 0 for name in indexed)
    sha256 = {Path(e["path"]).name: e["sha256"] for e in entries}
    assert all(by_name[name].doc_id == sha256[name] for name in indexed)
    copy, original = by_name[DUPLICATE[0]], by_name[Path(DUPLICATE[1]).name]
    assert copy.status == "already indexed" and copy.doc_id == original.doc_id

    doc_ids = {by_name[name].doc_id for name in indexed}
    assert {info.doc_id for info in rag.documents()} == doc_ids
    assert rag.lexical.doc_ids == doc_ids
    assert rag.store.count() == sum(by_name[name].chunks for name in indexed)
    told = {r.source for r in results if any("read by OCR" in w for w in r.warnings)}
    assert told == READ_BY_OCR
    assert {chunk.source for chunk in rag.store.chunks() if chunk.ocr} == READ_BY_OCR
    print(f"\nPDF pipeline sweep: {len(indexed)} indexed, refused {dict(causes)}; "
          f"{elapsed:.1f} s")


def test_slow_pdf_is_refused_at_the_time_limit_and_the_next_file_loads(
    tmp_path, embedder, pdfs
) -> None:
    """freeculture.pdf (352 pages) takes seconds to parse: with a 0.5 s limit it is refused by
    name, its worker is killed rather than left parsing, and a fresh one loads the next file."""
    rag = RAG(Settings(data_dir=tmp_path, load_timeout_s=0.5), embedder=embedder)
    slow, quick = pdfs / "pdfjs/freeculture.pdf", pdfs / "pypdf-resources/crazyones.pdf"

    started = time.perf_counter()
    refused, loaded = rag.ingest([(p.name, p.read_bytes()) for p in (slow, quick)])
    elapsed = time.perf_counter() - started

    assert refused.status == "failed"
    assert refused.error == "freeculture.pdf: parsing took longer than the 0.5 s time limit"
    assert loaded.status == "indexed" and loaded.chunks > 0
    assert [info.source for info in rag.documents()] == ["crazyones.pdf"]
    assert elapsed < 20, "the limit, not the whole parse, bounded the wait"
    assert len(_loader_workers()) == 1, "the timed-out worker is gone, one fresh worker is left"


def _loader_workers() -> list[int]:
    """Live loader workers of this process, from /proc (Linux): a timed-out one must be gone,
    not parsing on in the background."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):  # a process that ended while we looked
            continue
        if ppid == os.getpid() and b"rag.loaders.worker" in cmdline:
            pids.append(int(stat.parent.name))
    return pids


def test_a_worker_that_dies_is_reported_by_file_and_replaced(pdfs) -> None:
    """A parser crash (a segfault, the OOM killer) takes the worker down, not the app."""
    with pytest.raises(LoaderError, match=r"^crash\.pdf: the parser process died \(exit code 3\)$"):
        run_limited(os._exit, (3,), "crash.pdf", 10)
    assert run_limited(len, (b"next",), "next.pdf", 10) == 4
