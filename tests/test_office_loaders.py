"""Office, e-book and delimited-text loaders: structure kept (sections, slides, sheets, rows) and
every refusal naming the file and the cause. Small files are built here; the real ones come from
the office benchmark folder."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import docx
import openpyxl
import pptx
import pytest
from docx.oxml import parse_xml
from docx.oxml.ns import nsdecls
from pptx.util import Inches

from rag.loaders import SUPPORTED_EXTENSIONS, LoaderError, load
from rag.loaders.archive import MAX_MEMBERS
from rag.loaders.sheets import ROWS_PER_PAGE
from rag.loaders.slides import NOTES_MARK
from rag.types import Document


@pytest.fixture(scope="module")
def office(bench_data: Path) -> Path:
    return bench_data / "office"


def _load(path: Path, name: str | None = None) -> Document:
    return load(path.read_bytes(), name or path.name)


def _refusal(data: bytes, name: str) -> str:
    """The message, checked to name the file first."""
    with pytest.raises(LoaderError) as info:
        load(data, name)
    assert str(info.value).startswith(f"{name}: ")
    return info.value.cause


def test_new_formats_are_supported() -> None:
    assert {".docx", ".pptx", ".xlsx", ".csv", ".tsv", ".epub"} <= set(SUPPORTED_EXTENSIONS)


# --------------------------------------------------------------------------- DOCX


def _docx(build) -> bytes:
    document = docx.Document()
    build(document)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_docx_headings_become_sections_and_tables_stay_rows_in_order() -> None:
    def build(d):
        d.add_paragraph("Before any heading.")
        d.add_heading("Intro", 1)
        d.add_heading("Scope", 2)
        d.add_paragraph("What is covered.")
        table = d.add_table(rows=2, cols=3)
        for r, row in enumerate([("Name", "Qty", ""), ("Bolt", "4", "each")]):
            for c, value in enumerate(row):
                table.cell(r, c).text = value
        d.add_paragraph("After the table.")
        d.add_heading("Limits", 2)
        d.add_paragraph("None.")
        d.add_heading("Usage", 1)
        d.add_paragraph("Run it.")

    doc = load(_docx(build), "guide.docx")
    assert [(p.heading, p.text) for p in doc.pages] == [
        (None, "Before any heading."),
        # "Intro" has no text of its own: it lives on in its child's heading path
        ("Intro > Scope", ("Scope\n\nWhat is covered.\n\nName | Qty\nBolt | 4 | each\n\n"
                           "After the table.")),
        ("Intro > Limits", "Limits\n\nNone."),
        ("Usage", "Usage\n\nRun it."),
    ]
    assert all(p.page is None for p in doc.pages)


def test_docx_heading_levels_from_title_outline_levels_and_inherited_styles() -> None:
    def build(d):
        d.add_heading("The Book", 0)  # the Title style
        custom = d.styles.add_style("Chapter Head", docx.enum.style.WD_STYLE_TYPE.PARAGRAPH)
        custom.base_style = d.styles["Heading 1"]
        d.add_paragraph("One", style="Chapter Head")
        outlined = d.add_paragraph("Deep")
        outlined._p.get_or_add_pPr().append(parse_xml(f'<w:outlineLvl {nsdecls("w")} w:val="2"/>'))
        d.add_paragraph("text")

    doc = load(_docx(build), "book.docx")
    assert [p.heading for p in doc.pages] == ["The Book > One > Deep"]


def test_docx_text_in_content_controls_revisions_and_nested_tables() -> None:
    def build(d):
        outer = d.add_table(rows=1, cols=2)
        outer.cell(0, 0).text = "outer"
        outer.cell(0, 1).add_table(rows=1, cols=2).cell(0, 0).text = "inner"
        w = nsdecls("w")
        outer._tbl.addprevious(parse_xml(
            f"<w:sdt {w}><w:sdtContent><w:p><w:r><w:t>In a content control</w:t></w:r></w:p>"
            "</w:sdtContent></w:sdt>"
        ))
        outer._tbl.addprevious(parse_xml(
            f"<w:p {w}><w:r><w:t xml:space='preserve'>kept </w:t></w:r>"
            "<w:ins w:id='1' w:author='a'><w:r><w:t>inserted</w:t></w:r></w:ins>"
            "<w:del w:id='2' w:author='a'><w:r><w:delText>deleted</w:delText></w:r></w:del>"
            "<w:r><w:tab/><w:t>after tab</w:t></w:r></w:p>"
        ))

    text = load(_docx(build), "edits.docx").pages[0].text
    assert text == "In a content control\n\nkept inserted after tab\n\nouter\ninner"


def test_real_docx_heading_path_and_nested_table(office: Path) -> None:
    doc = _load(office / "docx/testWORD.docx")
    assert [p.heading for p in doc.pages] == [
        "Sample Word Document Title",
        "Sample Word Document Title > Heading Level 1 > Heading Level 2 > Heading Level 3",
    ]
    assert "This is a table\nNested table\nMore of our nested table\n" in doc.pages[1].text


def test_real_docx_tables_and_long_documents_keep_all_their_text(office: Path) -> None:
    cases = _load(office / "docx/IllustrativeCases.docx").pages[0].text
    assert "\n2006 | 2007\n" in cases and "Total Income Tax Due" in cases
    long = _load(office / "docx/bug59058.docx")
    assert "Carcinogenicity of polyhalogenated biphenyls: PCBs and PBBs" in long.pages[-1].text
    assert long.pages[-1].heading.endswith(" > References")


# --------------------------------------------------------------------------- PPTX


def _pptx(build) -> bytes:
    deck = pptx.Presentation()
    build(deck)
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def test_pptx_one_page_per_slide_with_title_table_and_notes() -> None:
    def build(deck):
        first = deck.slides.add_slide(deck.slide_layouts[0])
        first.shapes.title.text = "Quarterly review"
        first.placeholders[1].text = "Line one\nLine two"
        first.notes_slide.notes_text_frame.text = "Say hello."
        deck.slides.add_slide(deck.slide_layouts[6])  # blank: no text, no Page
        third = deck.slides.add_slide(deck.slide_layouts[5])
        third.shapes.title.text = "Numbers"
        table = third.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(4), Inches(1)).table
        for r, row in enumerate([("Region", "Sales"), ("North", "12")]):
            for c, value in enumerate(row):
                table.cell(r, c).text = value
        untitled = deck.slides.add_slide(deck.slide_layouts[6])
        box = untitled.shapes.add_textbox(Inches(1), Inches(1), Inches(3), Inches(1))
        box.text_frame.text = "No title here"

    doc = load(_pptx(build), "deck.pptx")
    assert [(p.page, p.heading, p.text) for p in doc.pages] == [
        (1, "Quarterly review",
         f"Quarterly review\n\nLine one\nLine two\n\n{NOTES_MARK} Say hello."),
        (3, "Numbers", "Numbers\n\nRegion | Sales\nNorth | 12"),
        (4, None, "No title here"),
    ]


def test_real_pptx_notes_and_notes_page_footer(office: Path) -> None:
    show = _load(office / "pptx/SampleShow.pptx")
    headings = [p.heading for p in show.pages]
    assert headings == ["Title of the first slide", "This is the second slide"]
    assert show.pages[0].text.endswith("Notes: I am the notes of the first slide")
    various = _load(office / "pptx/testPPT_various.pptx").pages[0]
    assert "Row 2 Col 1 | Row 2 Col 2 | Row 2 Col 3" in various.text
    assert "Notes: This is the footer text." in various.text


def test_pptx_without_slides_is_refused(office: Path) -> None:
    data = (office / "pptx/no-slides.pptx").read_bytes()
    assert _refusal(data, "no-slides.pptx") == "no text: the presentation has no slides"


# --------------------------------------------------------------------------- XLSX


def _xlsx(build) -> bytes:
    workbook = openpyxl.Workbook()
    build(workbook)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def test_xlsx_sheets_are_sections_of_header_value_rows() -> None:
    def build(wb):
        sales = wb.active
        sales.title = "Sales"
        sales.append(["Quarterly sales"])  # a title row above the table
        sales.append([])
        sales.append(["Region", "Units", "Price", "Shipped", "Paid"])
        sales.append(["North", 12, 2.5, dt.datetime(2024, 3, 1), True])
        sales.append(["South", 7.0, 0.1 + 0.2, dt.datetime(2024, 3, 2, 14, 30), False])
        sales.append([None, None, "a note", None, None, "under no header"])
        wb.create_sheet("Empty")
        wb.create_sheet("Notes").append(["Just one line of prose."])

    doc = load(_xlsx(build), "book.xlsx")
    assert [(p.heading, p.text) for p in doc.pages] == [
        ("Sales", ("Quarterly sales\n\nRegion | Units | Price | Shipped | Paid\n\n"
                   "Region: North\nUnits: 12\nPrice: 2.5\nShipped: 2024-03-01\nPaid: TRUE\n\n"
                   "Region: South\nUnits: 7\nPrice: 0.3\nShipped: 2024-03-02 14:30:00\n"
                   "Paid: FALSE\n\nPrice: a note\nunder no header")),
        ("Notes", "Just one line of prose."),
    ]


def test_large_sheet_splits_into_pages_of_whole_rows() -> None:
    def build(wb):
        wb.active.title = "Big"
        wb.active.append(["id", "name"])
        for i in range(1, 2 * ROWS_PER_PAGE + 11):
            wb.active.append([i, f"item {i}"])

    doc = load(_xlsx(build), "big.xlsx")
    assert [p.heading for p in doc.pages] == ["Big"] * 3
    assert doc.pages[0].text.startswith("id | name\n\nid: 1\nname: item 1\n\n")
    assert doc.pages[1].text.startswith(f"id: {ROWS_PER_PAGE}\nname: item {ROWS_PER_PAGE}\n\n")
    assert doc.pages[2].text.endswith(f"id: {2 * ROWS_PER_PAGE + 10}\nname: item 210")
    assert sum(p.text.count("\nname: ") for p in doc.pages) == 2 * ROWS_PER_PAGE + 10


def test_real_xlsx_formulas_give_their_cached_values(office: Path) -> None:
    text = _load(office / "xlsx/simple-monthly-budget.xlsx").pages[0].text
    assert "Total Monthly Income: 3750\nTotal Monthly Expenses: 2336\nBalance: 1414" in text
    assert "SUM(" not in text and "=" not in text


# --------------------------------------------------------------------------- CSV


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"city,note\nParis,\"a, b\"\nLyon,\"say \"\"hi\"\"\"\n", "comma.csv"),
        ("city;note\r\nParis;a, b\r\nLyon;say \"hi\"\r\n".encode("cp1252"), "semicolon.csv"),
        (b"city\tnote\nParis\ta, b\nLyon\tsay \"hi\"\n", "tabs.tsv"),
        (b"city|note\nParis|a, b\nLyon|say \"hi\"\n", "pipes.csv"),
        (b"\xef\xbb\xbfcity,note\nParis,\"a, b\"\nLyon,\"say \"\"hi\"\"\"\n", "bom.csv"),
        ("city,note\nParis,\"a, b\"\nLyon,\"say \"\"hi\"\"\"\n".encode("utf-16"), "utf16.csv"),
    ],
)
def test_csv_dialects_give_the_same_rows(data: bytes, name: str) -> None:
    doc = load(data, name)
    assert [(p.heading, p.text) for p in doc.pages] == [
        (None, "city | note\n\ncity: Paris\nnote: a, b\n\ncity: Lyon\nnote: say \"hi\""),
    ]


def test_real_csv_encodings_and_delimiters(office: Path) -> None:
    accents = _load(office / "csv/table-with-accents.csv")
    assert accents.pages[0].text.startswith(
        "Classement | Quartier | Date | Année | Occupancy rate | Average Price | RevPAR | Source"
        "\n\nClassement: 3 stars\nQuartier: All\nDate: 01-01-13\nAnnée: 2013\n"
        "Occupancy rate: 0,611553068\n"
    )
    assert _load(office / "csv/bom.csv").pages[0].text.startswith("id | name\n\nid: 1\n")
    rifle = _load(office / "csv/ks_1033_data.csv").pages[0].text
    assert "\nitem_name: RIFLE,5.56 MILLIMETER\n" in rifle


def test_csv_of_one_column_has_no_header_lines() -> None:
    assert load(b"name\nAda\nGrace\n", "names.csv").pages[0].text == "name\n\nAda\n\nGrace"


# --------------------------------------------------------------------------- EPUB


def _epub(chapters: dict[str, str], spine: list[str], opf_extra: str = "",
          encryption: str | None = None) -> bytes:
    items = "".join(f'<item id="{n}" href="text/{n}.xhtml" media-type="application/xhtml+xml"/>'
                    for n in chapters)
    refs = "".join(f'<itemref idref="{n}"/>' for n in spine)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("mimetype", "application/epub+zip")
        z.writestr("META-INF/container.xml",
                   '<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
                   'version="1.0"><rootfiles><rootfile full-path="OEBPS/book.opf" '
                   'media-type="application/oebps-package+xml"/></rootfiles></container>')
        z.writestr("OEBPS/book.opf",
                   f'<?xml version="1.0"?>{opf_extra}<package xmlns="http://www.idpf.org/2007/opf"'
                   f' version="3.0"><manifest>{items}</manifest><spine>{refs}</spine></package>')
        for name, body in chapters.items():
            z.writestr(f"OEBPS/text/{name}.xhtml",
                       f"<html><head><title>{name.title()}</title></head>"
                       f"<body>{body}</body></html>")
        if encryption is not None:
            z.writestr("META-INF/encryption.xml", encryption)
    return out.getvalue()


def test_epub_chapters_follow_the_spine_with_one_heading_each() -> None:
    data = _epub(
        {"cover": "<p>A cover line</p>",
         "one": "<h1>Chapter One</h1><p>First words.</p><h2>Part A</h2><p>More.</p>",
         "two": "<h1>Chapter Two</h1><p>Last words.</p>"},
        spine=["cover", "two", "one"],
    )
    doc = load(data, "book.epub")
    assert [(p.heading, p.text) for p in doc.pages] == [
        ("Cover", "A cover line"),  # no heading in it: its <title> heads it
        ("Chapter Two", "Chapter Two\n\nLast words."),
        ("Chapter One", "Chapter One\n\nFirst words."),
        ("Chapter One > Part A", "Part A\n\nMore."),
    ]


def test_real_epub_in_reading_order(office: Path) -> None:
    doc = _load(office / "epub/testEPUB.epub")
    assert [p.heading for p in doc.pages] == [
        "Table of Contents", "Chapter 1", "Chapter 2", "Chapter 2 > Subchapter 2.1",
        "Chapter 2 > Subchapter 2.2",
    ]
    novel = _load(office / "epub/testEPUB_multi-metadata-vals.epub")
    chapters = [p.heading for p in novel.pages if p.heading in ("I", "II", "XIX")]
    assert chapters == ["I", "II", "XIX"]
    assert not any("\ufeff" in p.text for p in novel.pages)


def test_drm_epub_is_refused() -> None:
    encryption = ('<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
                  'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
                  '<enc:CipherData><enc:CipherReference URI="OEBPS/text/one.xhtml"/>'
                  '</enc:CipherData></enc:EncryptedData></encryption>')
    data = _epub({"one": "<p>x</p>"}, ["one"], encryption=encryption)
    assert _refusal(data, "locked.epub") == "DRM-protected EPUB: its chapters are encrypted"


def test_epub_entity_bomb_is_refused() -> None:
    bomb = ('<!DOCTYPE package [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
            ']>')
    cause = _refusal(_epub({"one": "<p>x</p>"}, ["one"], opf_extra=bomb), "bomb.epub")
    assert cause == ("unsafe XML in OEBPS/book.opf: entity declarations "
                     "(an XML entity-expansion bomb?)")


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("path", "cause"),
    [
        ("docx/testWORD_protected_passtika.docx",
         "password-protected Word file: remove the password and upload it again"),
        ("docx/bug53475-password-is-pass.docx",
         "password-protected Word file: remove the password and upload it again"),
        ("pptx/testPPT_protected_passtika.pptx",
         "password-protected PowerPoint file: remove the password and upload it again"),
        ("xlsx/testEXCEL_protected_passtika.xlsx",
         "password-protected Excel file: remove the password and upload it again"),
        ("docx/truncated62886.docx", "damaged or truncated DOCX (not a valid zip)"),
        ("pptx/Divino_Revelado.pptx", "damaged or truncated PPTX (not a valid zip)"),
        ("xlsx/invalid.xlsx", "not a valid Excel file (an empty zip)"),
        ("docx/testWORD.doc",
         "legacy .doc format (Word 97-2003): save it as .docx and upload it again"),
    ],
)
def test_real_bad_files_are_refused_by_name_and_cause(office: Path, path: str, cause: str) -> None:
    assert _refusal((office / path).read_bytes(), Path(path).name) == cause


def test_readonly_protection_is_not_encryption(office: Path) -> None:
    doc = _load(office / "docx/documentProtection_readonly_no_password.docx")
    assert doc.pages[0].text == "Readonly senza password."


@pytest.mark.parametrize(
    ("name", "cause"),
    [
        ("old.xls", "legacy .xls format (Excel 97-2003): save it as .xlsx and upload it again"),
        ("old.ppt",
         "legacy .ppt format (PowerPoint 97-2003): save it as .pptx and upload it again"),
    ],
)
def test_legacy_extensions_say_what_to_do(name: str, cause: str) -> None:
    assert _refusal(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504), name) == cause


def test_legacy_or_other_office_file_under_a_new_name(office: Path) -> None:
    doc = (office / "docx/testWORD.doc").read_bytes()
    assert _refusal(doc, "renamed.docx") == (
        "legacy .doc format (Word 97-2003) named .docx: save it as .docx and upload it again"
    )
    budget = (office / "xlsx/simple-monthly-budget.xlsx").read_bytes()
    assert _refusal(budget, "budget.docx") == "Excel file named .docx: rename it to .xlsx"


def test_truncated_docx_is_refused(office: Path) -> None:
    data = (office / "docx/testWORD.docx").read_bytes()
    cause = _refusal(data[: len(data) * 6 // 10], "cut.docx")
    assert cause == "damaged or truncated DOCX (not a valid zip)"


def test_damaged_part_is_refused(office: Path) -> None:
    data = bytearray((office / "docx/testWORD.docx").read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = z.getinfo("word/document.xml")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + 10] ^= 0xFF  # one flipped byte in the compressed document.xml
    cause = _refusal(bytes(data), "flipped.docx")
    assert cause.startswith("damaged DOCX (word/document.xml: ")


def _repack(data: bytes, replace: dict[str, bytes] | None = None,
            add: dict[str, bytes] | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, (replace or {}).get(info.filename, src.read(info)))
        for name, content in (add or {}).items():
            dst.writestr(name, content)
    return out.getvalue()


def test_docx_entity_bomb_is_refused_before_parsing(office: Path) -> None:
    data = (office / "docx/testWORD.docx").read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        xml = z.read("word/document.xml")
    laughs = (b'<!DOCTYPE w:document [<!ENTITY l0 "ha">'
              + b"".join(b'<!ENTITY l%d "%s">' % (i, b"&l%d;" % (i - 1) * 10) for i in range(1, 9))
              + b"]>")
    bomb = xml.replace(b"?>", b"?>" + laughs, 1).replace(b"Sample Word", b"&l8; Word", 1)
    cause = _refusal(_repack(data, replace={"word/document.xml": bomb}), "laughs.docx")
    assert cause == ("unsafe XML in word/document.xml: entity declarations, which Word files "
                     "never contain (an XML entity-expansion bomb?)")


def test_xlsx_entity_bomb_is_refused(office: Path) -> None:
    cause = _refusal((office / "xlsx/poc-xmlbomb.xlsx").read_bytes(), "poc-xmlbomb.xlsx")
    assert cause.startswith("unsafe XML in xl/sharedStrings.xml: entity declarations")


def test_zip_bombs_are_refused(office: Path) -> None:
    data = (office / "pptx/SampleShow.pptx").read_bytes()
    zeros = _repack(data, add={"ppt/media/zeros.bin": bytes(20 << 20)})  # 20 MiB, ~20 kB packed
    assert _refusal(zeros, "zeros.pptx") == (
        "ppt/media/zeros.bin in the PPTX unpacks 200 times over or more (a zip bomb?)"
    )
    many = _repack(data, add={f"x/{i}.bin": b"" for i in range(MAX_MEMBERS)})
    assert _refusal(many, "many.pptx").startswith(f"{MAX_MEMBERS + 46:,} parts in the PPTX, over")


def test_office_parsing_runs_under_the_time_limit(office: Path) -> None:
    data = (office / "xlsx/stress002.xlsx").read_bytes()
    with pytest.raises(LoaderError, match=r"^stress002\.xlsx: parsing took longer than the "):
        load(data, "stress002.xlsx", timeout_s=0.01)
    assert load(data, "stress002.xlsx", timeout_s=120).pages[0].heading == "Start Here"
