"""Spreadsheets (.xlsx) and delimited text (.csv, .tsv): each row as "header: value" lines, so a
chunk cut from anywhere in a long table still says what its numbers are."""

from __future__ import annotations

import csv
import datetime as dt
import io
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import chain, islice

import openpyxl

from rag.loaders.archive import open_office
from rag.loaders.errors import LoaderError
from rag.loaders.text import decode_text
from rag.types import Page

ROWS_PER_PAGE = 100  # a Page never splits a row, so neither does a chunk cut from it
HEADER_SEARCH = 10  # non-empty rows in which to look for the header under any title rows
_SNIFF_CHARS = 65_536
_SNIFF_LINES = 50
_DELIMITERS = ",;\t|"


def load_xlsx(data: bytes, source: str) -> list[Page]:
    """Every worksheet, in workbook order, as Pages headed by the sheet's name; formulas give
    the values Excel last calculated (data_only), not their text."""
    open_office(data, source, ".xlsx")
    pages: list[Page] = []
    # openpyxl warns about every extension it does not read (conditional formats, slicers...)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
            try:
                for sheet in workbook.worksheets:
                    sheet.reset_dimensions()  # read-only mode trusts the saved size, often wrong
                    rows = ([_cell(v) for v in row] for row in sheet.iter_rows(values_only=True))
                    pages.extend(table_pages(rows, sheet.title))
            finally:
                workbook.close()
        except LoaderError:
            raise
        except Exception as exc:  # openpyxl raises KeyError, ValueError... on a broken workbook
            raise LoaderError(source, f"unreadable XLSX: {type(exc).__name__}: {exc}") from exc
    return pages


def load_csv(data: bytes, source: str) -> list[Page]:
    """Any encoding decode_text reads (BOMs included); a .csv's delimiter is sniffed, a .tsv's
    is a tab; fields may be quoted with '"'."""
    text = decode_text(data, source)
    delimiter = "\t" if source.lower().endswith(".tsv") else _sniff(text[:_SNIFF_CHARS])
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        return table_pages(([" ".join(v.split()) for v in row] for row in reader), None)
    except csv.Error as exc:
        raise LoaderError(source, f"unreadable CSV (line {reader.line_num}): {exc}") from exc


def table_pages(rows: Iterable[Sequence[str]], heading: str | None) -> list[Page]:
    """Rows (cells as text, "" for empty) as Pages of ROWS_PER_PAGE rows under `heading`.

    The header is the row with the most text (not number) cells among the first HEADER_SEARCH
    non-empty ones, so title rows above a table stay lines of text and a data row is not taken
    for it. A table with no row of two or more cells (a list, a sheet of prose) has no header:
    its rows are cells joined with " | ".
    """
    rows = (row for row in rows if any(row))
    head = list(islice(rows, HEADER_SEARCH))
    score = [(sum(1 for v in row if v and not _is_number(v)), sum(1 for v in row if v))
             for row in head]
    best = max(range(len(head)), key=score.__getitem__, default=None)
    if best is None or score[best][1] < 2:
        return _paginate((_line(row) for row in chain(head, rows)), heading)
    names = ["" if _is_number(v) else v for v in head[best]]
    lines = (_line(row) for row in head[: best + 1])
    records = (_record(names, row) for row in chain(head[best + 1 :], rows))
    return _paginate(chain(lines, records), heading)


def _line(row: Sequence[str]) -> str:
    return " | ".join(v for v in row if v)


def _record(names: Sequence[str], row: Sequence[str]) -> str:
    """A row's non-empty cells, one "header: value" line each, a value under no header alone;
    a row with no value under a header is one line, as if there were no header."""
    cells = [(names[i] if i < len(names) else "", v) for i, v in enumerate(row) if v]
    if not any(name for name, _ in cells):
        return _line(row)
    return "\n".join(f"{name}: {value}" if name else value for name, value in cells)


def _paginate(blocks: Iterable[str], heading: str | None) -> list[Page]:
    pages, batch = [], []
    for block in blocks:
        batch.append(block)
        if len(batch) == ROWS_PER_PAGE:
            pages.append(Page(text="\n\n".join(batch), heading=heading))
            batch = []
    if batch:
        pages.append(Page(text="\n\n".join(batch), heading=heading))
    return pages


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _cell(value: object) -> str:
    """A cell as Excel shows it, near enough: 2336 not 2336.0, dates without a midnight time."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else format(value, ".15g")
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return " ".join(str(value).split())


def _sniff(sample: str) -> str:
    """The delimiter that splits the first lines into the same number of fields most often (the
    most fields on a tie): decimal commas in ";" files split rows less evenly than ";" does.
    Not csv.Sniffer: its regular expressions are quadratic, seconds on a hostile 16 kB sample."""
    lines = sample.split("\n")[:_SNIFF_LINES]
    best, best_score = ",", (0.0, 0)
    for delimiter in _DELIMITERS:
        widths = Counter(len(row) for row in csv.reader(lines, delimiter=delimiter) if row)
        if not widths:
            continue
        width, rows = widths.most_common(1)[0]
        score = (rows / widths.total(), width)
        if width > 1 and score > best_score:
            best, best_score = delimiter, score
    return best
