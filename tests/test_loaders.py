"""Loaders against the real benchmark files: PDFs good and broken, Markdown, HTML and text."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
import unicodedata
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader, PdfWriter

from rag.loaders import SUPPORTED_EXTENSIONS, LoaderError, load
from rag.types import Document



@pytest.fixture(scope="session")
def pdfs(bench_data: Path) -> Path:
    return bench_data / "pdfs"


@pytest.fixture(scope="session")
def docs(bench_data: Path) -> Path:
    return bench_data / "docs"


def _load(path: Path, **kwargs) -> Document:
    return load(path.read_bytes(), path.name, **kwargs)


def _refusal(path: Path, data: bytes | None = None) -> LoaderError:
    with pytest.raises(LoaderError) as info:
        load(path.read_bytes() if data is None else data, path.name)
    return info.value


# --------------------------------------------------------------------------- PDF


def test_pdf_keeps_page_numbers_and_text_on_its_page(pdfs: Path) -> None:
    doc = _load(pdfs / "pdfjs/tracemonkey.pdf")
    assert [p.page for p in doc.pages] == list(range(1, 15))
    assert doc.warnings == ()
    assert all(p.heading is None for p in doc.pages)
    assert doc.pages[0].text.startswith("Trace-based Just-in-Time Type Specialization")
    # section headings seen with pypdf on exactly these pages
    assert [p.page for p in doc.pages if "\n3.3 Blacklisting\n" in p.text] == [6]
    assert [p.page for p in doc.pages if "\n8. Related Work\n" in p.text] == [12]


def test_pdf_text_is_normalised(pdfs: Path) -> None:
    doc = _load(pdfs / "pypdf-resources/GeoBase_NHNC1_Data_Model_UML_EN.pdf")
    for page in doc.pages:
        assert "\x00" not in page.text
        assert "  " not in page.text
        assert "\n\n\n" not in page.text
        assert "......" not in page.text  # table-of-contents leaders collapsed
    toc = doc.pages[3].text
    assert "TABLE OF CONTENTS" in toc and "OVERVIEW ... 6" in toc


def test_pdf_expected_text_matches_pypdf_companion(pdfs: Path) -> None:
    doc = _load(pdfs / "pypdf-resources/crazyones.pdf")
    expected = (pdfs / "pypdf-resources/crazyones.txt").read_text(encoding="utf-8")
    assert "misﬁts" in expected  # pypdf keeps the ﬁ ligature; we fold it so "misfits" matches
    expected = unicodedata.normalize("NFKC", expected)
    assert " ".join(doc.pages[0].text.split()) == " ".join(expected.split())
    assert "The misfits." in doc.pages[0].text


@pytest.mark.parametrize(
    "name",
    [
        "pypdf-resources/encryption/r4-user-password.pdf",
        "pypdf-resources/encrypted-file.pdf",
        "sample-files/005-libreoffice-writer-password/libreoffice-writer-password.pdf",
    ],
)
def test_encrypted_pdf_without_password_names_file_and_cause(pdfs: Path, name: str) -> None:
    path = pdfs / name
    err = _refusal(path)
    assert err.source == path.name
    assert err.cause == "encrypted PDF, no password given"
    assert str(err) == f"{path.name}: encrypted PDF, no password given"


def test_encrypted_pdf_opens_with_its_password(pdfs: Path) -> None:
    path = pdfs / "pypdf-resources/encryption/r4-user-password.pdf"
    assert "pdf encryption test" in _load(path, password="asdfzxcv").pages[0].text
    with pytest.raises(LoaderError, match="wrong password"):
        _load(path, password="qwerty")


@pytest.mark.parametrize(
    "name",
    [
        "pypdf-resources/encryption/r2-empty-password.pdf",
        "pypdf-resources/encryption/r6-empty-password.pdf",  # AES-256: needs cryptography
        "pypdf-resources/encryption/r4-aes-v2-no-key-length.pdf",
        "pypdf-resources/encryption/r4-owner-password.pdf",
    ],
)
def test_pdf_encrypted_with_empty_user_password_loads(pdfs: Path, name: str) -> None:
    doc = _load(pdfs / name)
    assert doc.pages[0].text.startswith("pdf encryption test")


def _manifest(pdfs: Path) -> list[dict]:
    return json.loads((pdfs / "MANIFEST.json").read_text(encoding="utf-8"))["pdfs"]


def test_broken_pdfs_give_a_clear_error(pdfs: Path) -> None:
    # the files pypdf itself cannot open, per the probe recorded in MANIFEST.json
    broken = [e["path"] for e in _manifest(pdfs) if "error" in e.get("pypdf_7.1.1_probe", {})]
    assert len(broken) >= 5
    for name in broken:
        err = _refusal(pdfs / name)
        assert err.cause.startswith("unreadable PDF: "), err
        assert len(err.cause) > len("unreadable PDF: ") + 5


@pytest.mark.parametrize("fraction", [0.6, 0.1])
def test_truncated_pdf_gives_a_clear_error(pdfs: Path, fraction: float) -> None:
    data = (pdfs / "pdfjs/tracemonkey.pdf").read_bytes()
    err = _refusal(Path("tracemonkey.pdf"), data[: int(len(data) * fraction)])
    assert str(err).startswith("tracemonkey.pdf: unreadable PDF: ")


def test_file_named_pdf_that_is_not_a_pdf(pdfs: Path) -> None:
    html = pdfs.parent / "docs/html/rfc6265.html"
    err = _refusal(Path("report.pdf"), html.read_bytes())
    assert str(err) == "report.pdf: not a PDF (no %PDF header)"
    # leading junk before the header is tolerated, as PDF readers do
    data = b"\r\n  junk" + (pdfs / "pypdf-resources/crazyones.pdf").read_bytes()
    assert "The Crazy Ones" in load(data, "crazy.pdf").pages[0].text


@pytest.mark.parametrize(
    "name",
    [
        "pypdf-resources/git.pdf",
        "sample-files/007-imagemagick-images/imagemagick-CCITTFaxDecode.pdf",
        "sample-files/019-grayscale-image/grayscale-image.pdf",
    ],
)
def test_image_only_pdf_without_words_is_refused_after_ocr(pdfs: Path, name: str) -> None:
    """Pictures, not scanned text: OCR reads them and finds no words."""
    path = pdfs / name
    assert str(_refusal(path)) == f"{path.name}: scanned PDF: OCR found no text"


def test_scanned_pages_inside_a_text_pdf_become_a_warning(pdfs: Path) -> None:
    doc = _load(pdfs / "sample-files/007-imagemagick-images/imagemagick-images.pdf")
    assert [p.page for p in doc.pages] == [1, 2, 3, 6]
    assert doc.warnings == ("pages 4-5: no text layer and OCR found no text, skipped",)


def _build_pdf(*pages) -> bytes:
    writer = PdfWriter()
    for page in pages:
        if page is None:
            writer.add_blank_page(width=612, height=792)
        else:
            writer.add_page(page)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def test_built_pdf_text_page_scanned_page_and_blank_page(pdfs: Path) -> None:
    text_page = PdfReader(pdfs / "pypdf-resources/crazyones.pdf").pages[0]
    scan_page = PdfReader(pdfs / "pypdf-resources/git.pdf").pages[0]
    doc = load(_build_pdf(text_page, scan_page, None), "mixed.pdf")
    assert [p.page for p in doc.pages] == [1]
    assert "The Crazy Ones" in doc.pages[0].text
    # the scanned page is worth telling the user about; the blank one is not
    assert doc.warnings == ("page 2: no text layer and OCR found no text, skipped",)

    with pytest.raises(LoaderError, match=r"^scan\.pdf: scanned PDF: OCR found no text$"):
        load(_build_pdf(scan_page, None), "scan.pdf")
    with pytest.raises(LoaderError, match=r"^blank\.pdf: no text: the pages are blank"):
        load(_build_pdf(None, None), "blank.pdf")


def test_glyph_name_text_layer_is_never_indexed(pdfs: Path) -> None:
    # TAMReview.pdf: pages 2-22 extract as "/g18/g152/g135..." (fonts without a Unicode map)
    doc = _load(pdfs / "pdfjs/TAMReview.pdf")
    assert [p.page for p in doc.pages] == [1, 23]
    assert "Technology Acceptance Model" in doc.pages[0].text
    assert not any(re.search(r"/g\d+", p.text) for p in doc.pages)
    assert doc.warnings == (
        "pages 2-22: unreadable text layer (glyph names instead of text), skipped",
    )


@pytest.mark.parametrize("name", ["pdfjs/XiaoBiaoSong.pdf", "pdfjs/SimFang-variant.pdf"])
def test_mis_decoded_cjk_text_layer_is_refused(pdfs: Path, name: str) -> None:
    err = _refusal(pdfs / name)
    assert err.cause.startswith("unreadable text layer (mis-decoded characters)")


@pytest.mark.parametrize(
    ("name", "snippet"),
    [
        ("pdfjs/french_diacritics.pdf", "à À â Â ä Ä ç Ç é É"),  # all Latin-1, and real
        ("pypdf-resources/multilang.pdf", "Привет"),
        ("sample-files/015-arabic/habibi.pdf", "habibi"),
        ("pdfjs/90ms_rksj_h_sample.pdf", "日本語テスト"),
    ],
)
def test_garbage_detector_spares_real_non_english_text(pdfs: Path, name: str, snippet: str) -> None:
    doc = _load(pdfs / name)
    assert snippet in doc.pages[0].text and doc.warnings == ()


@settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(data=st.data())
def test_damaged_pdf_bytes_never_escape_as_other_errors(pdfs: Path, data: st.DataObject) -> None:
    original = (pdfs / "pypdf-resources/crazyones.pdf").read_bytes()
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 40))):
        pos = data.draw(st.integers(0, len(mutated) - 1))
        mutated[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(len(mutated) // 2, len(mutated)))
    try:
        doc = load(bytes(mutated[:cut]), "fuzzed.pdf")
    except LoaderError as err:
        assert str(err).startswith("fuzzed.pdf: ")
    else:
        assert doc.pages


# --------------------------------------------------------------------------- any format


def test_empty_file() -> None:
    for name in ("a.pdf", "a.md", "a.html", "a.txt"):
        with pytest.raises(LoaderError, match=rf"^{re.escape(name)}: empty file$"):
            load(b"", name)


@pytest.mark.parametrize("name", ["a.txt", "a.md", "a.html"])
def test_whitespace_only_has_no_text(name: str) -> None:
    with pytest.raises(LoaderError, match=rf"^{re.escape(name)}: no text$"):
        load(b" \r\n\t\n  ", name)


@pytest.mark.parametrize("name", ["setup.exe", "slides.key", "README", "archive.tar.gz"])
def test_unsupported_extension(name: str) -> None:
    with pytest.raises(LoaderError) as info:
        load(b"MZ\x90\x00", name)
    assert info.value.cause.startswith("unsupported file type ")
    assert "(supported: .pdf, .md, " in info.value.cause
    if name == "setup.exe":
        assert str(info.value).startswith("setup.exe: unsupported file type '.exe' (supported: ")


def test_extension_is_case_insensitive_and_exported_for_the_uploader(pdfs: Path) -> None:
    assert {".pdf", ".md", ".markdown", ".html", ".htm", ".txt"} <= set(SUPPORTED_EXTENSIONS)
    assert all(ext.startswith(".") and ext == ext.lower() for ext in SUPPORTED_EXTENSIONS)
    assert load((pdfs / "pypdf-resources/crazyones.pdf").read_bytes(), "CRAZY.PDF").pages
    assert load(b"# Hi\n\nthere", "NOTES.MD").pages[0].heading == "Hi"


def test_same_bytes_same_doc_id(docs: Path) -> None:
    data = (docs / "text/rfc6066.txt").read_bytes()
    a, b = load(data, "rfc6066.txt"), load(data, "copy of rfc6066.txt")
    assert a.doc_id == b.doc_id == hashlib.sha256(data).hexdigest()
    assert a.size_bytes == len(data) and b.source == "copy of rfc6066.txt"
    assert load(data + b"\n", "rfc6066.txt").doc_id != a.doc_id


def test_loader_error_keeps_source_and_cause_and_pickles() -> None:
    err = LoaderError("report.pdf", "encrypted PDF, no password given")
    assert (err.source, err.cause) == ("report.pdf", "encrypted PDF, no password given")
    copy = pickle.loads(pickle.dumps(err))
    assert str(copy) == str(err) == "report.pdf: encrypted PDF, no password given"
    assert copy.source == "report.pdf"


@settings(max_examples=150, deadline=None, database=None)
@given(data=st.binary(max_size=2000), ext=st.sampled_from(SUPPORTED_EXTENSIONS))
def test_arbitrary_bytes_load_or_refuse(data: bytes, ext: str) -> None:
    try:
        doc = load(data, "x" + ext)
    except LoaderError:
        return
    assert doc.pages and all(p.text.strip() for p in doc.pages)


# --------------------------------------------------------------------------- Markdown


def test_markdown_heading_paths_from_rust_book(docs: Path) -> None:
    doc = _load(docs / "markdown/rust-book-ch04-01-what-is-ownership.md")
    headings = [p.heading for p in doc.pages]
    assert headings[0] == "What Is Ownership?"
    assert "What Is Ownership? > The String Type" in headings  # `String` loses its backticks
    move_path = (
        "What Is Ownership? > Memory and Allocation > Variables and Data Interacting with Move"
    )
    # a heading two levels up closes the deeper ones
    assert headings[-1] == "What Is Ownership? > Return Values and Scope"
    assert all(p.page is None for p in doc.pages)
    move = doc.pages[headings.index(move_path)]
    assert move.text.startswith("#### Variables and Data Interacting with Move\n")
    assert "```rust" in move.text  # kept as Markdown, not rendered


def test_markdown_hash_lines_in_code_and_comments_are_not_headings(docs: Path) -> None:
    # ch17-01 has "# extern crate trpl; ..." inside a ```rust fence and "# copy the output here"
    # inside an HTML comment
    doc = _load(docs / "markdown/rust-book-ch17-01-futures-and-syntax.md")
    text = "\n".join(p.text for p in doc.pages)
    assert "# extern crate trpl; // required for mdbook test" in text
    assert "# copy the output here" in text
    assert not any("extern crate" in p.heading or "copy the output" in p.heading for p in doc.pages)


def test_markdown_fences_preamble_and_heading_only_sections() -> None:
    md = (
        "Intro before any heading.\n\n"
        "# Guide\n\n"
        "## Install\n\n"
        "```sh\n# not a heading\n## nor this\n```\n\n"
        "~~~\n# nope\n~~~\n\n"
        "### Linux *and* `BSD`\n\nsteps\n\n"
        "## Use\n\ntext\n"
    )
    doc = load(md.encode(), "guide.md")
    assert [(p.heading, p.text.split("\n")[0]) for p in doc.pages] == [
        (None, "Intro before any heading."),
        # "# Guide" has no text of its own: it lives on in its children's heading path
        ("Guide > Install", "## Install"),
        ("Guide > Install > Linux and BSD", "### Linux *and* `BSD`"),
        ("Guide > Use", "## Use"),
    ]
    assert "# not a heading\n## nor this" in doc.pages[1].text
    assert "# nope" in doc.pages[1].text


def test_markdown_loses_no_line_of_the_rust_book(docs: Path) -> None:
    for path in sorted((docs / "markdown").glob("*.md")):
        doc = _load(path)
        text = "\n".join(p.text for p in doc.pages)
        paths = " > ".join(p.heading or "" for p in doc.pages)
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip() and line.rstrip() not in text:
                title = line.lstrip("#").strip()
                assert line.startswith("#") and title in paths, (path.name, line)


# --------------------------------------------------------------------------- HTML


@pytest.mark.parametrize("name", ["rfc6265.html", "rfc9112.html"])
def test_html_rfc_has_no_script_or_style_text(docs: Path, name: str) -> None:
    path = docs / "html" / name
    soup = BeautifulSoup(path.read_bytes(), "html.parser")
    hidden = [
        line.strip()
        for tag in soup.find_all(["script", "style"])
        for line in tag.get_text().splitlines()
        if len(line.strip()) >= 12
    ]
    assert len(hidden) > 20
    doc = _load(path)
    text = "\n".join(p.text for p in doc.pages)
    assert not [line for line in hidden if line in text]
    assert "XMLHttpRequest" not in text and "padding-top" not in text
    assert "&amp;" not in text and "&nbsp;" not in text


def test_html_rfc_sections_and_paragraphs(docs: Path) -> None:
    doc = _load(docs / "html/rfc6265.html")
    by_heading = {p.heading: p for p in doc.pages}
    page = by_heading["HTTP State Management Mechanism > 2. Conventions > 2.2. Syntax Notation"]
    assert page.text.startswith("2.2. Syntax Notation\n\nThis specification uses the Augmented")
    cookie = by_heading[
        "HTTP State Management Mechanism > 4. Server Requirements > 4.1. Set-Cookie"
    ]
    # <pre> ABNF keeps its line layout; paragraphs are separated by blank lines
    assert 'set-cookie-header = "Set-Cookie:" SP set-cookie-string\n' in cookie.text
    semantics = "The semantics of the cookie-value are not defined by this document."
    assert f"\n\n{semantics}\n\n" in cookie.text


def test_html_inline_document() -> None:
    html = b"""<!doctype html><html><head><title>Title</title><meta charset="utf-8">
    <style>p { color: red }</style><script>var secret = "leak";</script></head>
    <body><noscript>enable js</noscript><template><p>template text</p></template>
    <svg><text>svg text</text></svg>
    <p>Intro &amp; more&nbsp;text &lt;ok&gt;</p>
    <h1>Guide</h1><p>Para <b>one</b>
      wraps.</p><p>Para two</p><div hidden>invisible</div><div style="display: none">gone</div>
    <h2>Install</h2><ul><li>first</li><li>second</li></ul><script>alert("x")</script>
    <h3>Linux</h3><table><tr><th>key</th><th>value</th></tr>
      <tr><td>os</td><td>linux</td></tr></table>
    <h4>Details</h4><p>deep</p>
    <h2>Use</h2>text<br>next line<pre>  code
      indented</pre><!-- a comment --></body></html>"""
    doc = load(html, "page.html")
    assert [(p.heading, p.text) for p in doc.pages] == [
        (None, "Intro & more text <ok>"),
        ("Guide", "Guide\n\nPara one wraps.\n\nPara two"),
        ("Guide > Install", "Install\n\nfirst\nsecond"),
        ("Guide > Install > Linux", "Linux\n\nkey | value\nos | linux\n\nDetails\n\ndeep"),
        ("Guide > Use", "Use\n\ntext\nnext line\n\n  code\n      indented"),
    ]


def test_html_declared_encoding_is_honoured() -> None:
    html = '<html><head><meta charset="windows-1252"></head><body><p>café “x”</p></body></html>'
    doc = load(html.encode("cp1252"), "legacy.htm")
    assert doc.pages[0].text == "café “x”"


# --------------------------------------------------------------------------- text


def test_real_rfc_text_is_one_page(docs: Path) -> None:
    doc = _load(docs / "text/rfc2616.txt")
    assert len(doc.pages) == 1
    page = doc.pages[0]
    assert page.page is None and page.heading is None
    assert "Hypertext Transfer Protocol -- HTTP/1.1" in page.text
    assert "\f" not in page.text and "\r" not in page.text
    assert "\n   The Hypertext Transfer Protocol (HTTP) is an application-level" in page.text


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("café ünïcode 日本".encode(), "café ünïcode 日本"),
        (b"\xef\xbb\xbf" + "with BOM é".encode(), "with BOM é"),
        ("naïve “quoted” – €5".encode("cp1252"), "naïve “quoted” – €5"),
        (b"undefined in cp1252: \x81 and caf\xe9", "undefined in cp1252: \x81 and café"),
        ("utf-16 é".encode("utf-16"), "utf-16 é"),
        ("mostly utf-8 ü ö ä".encode() + b" \xff", "mostly utf-8 ü ö ä \ufffd"),
        (b"windows\r\nline\r\nends\rold mac", "windows\nline\nends\nold mac"),
    ],
)
def test_text_encodings_never_crash(data: bytes, expected: str) -> None:
    assert load(data, "notes.txt").pages[0].text == expected


def test_binary_content_is_not_text() -> None:
    with pytest.raises(LoaderError, match=r"^blob\.txt: binary content, not a text file$"):
        load(b"\x7fELF\x02\x01\x01\x00\x00\x00", "blob.txt")
