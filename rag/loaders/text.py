"""Plain-text uploads: any encoding decodes, and a renamed binary is refused by name."""

from __future__ import annotations

import codecs
import re

from rag.loaders.errors import LoaderError

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def refuse_binary(data: bytes, source: str) -> None:
    # NUL bytes never occur in 8-bit or UTF-8 text; they mean a renamed binary (or BOM-less
    # UTF-16, which is too rare to guess at).
    if not data.startswith(_UTF16_BOMS) and b"\x00" in data[:8192]:
        raise LoaderError(source, "binary content, not a text file")


def decode_text(data: bytes, source: str) -> str:
    """UTF-8 (BOM or not), else cp1252, else latin-1: a text upload never fails on its encoding."""
    refuse_binary(data, source)
    if data.startswith(codecs.BOM_UTF8):
        text = data[len(codecs.BOM_UTF8) :].decode("utf-8", errors="replace")
    elif data.startswith(_UTF16_BOMS):
        text = data.decode("utf-16", errors="replace")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = _decode_legacy(data)
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def _decode_legacy(data: bytes) -> str:
    # A UTF-8 file with a few broken bytes stays UTF-8; mostly-invalid UTF-8 is an 8-bit file.
    lenient = data.decode("utf-8", errors="replace")
    broken = lenient.count("\ufffd")
    multibyte = sum(1 for c in lenient if ord(c) > 0x7F) - broken
    if multibyte > broken:
        return lenient
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:  # cp1252 leaves five bytes undefined; latin-1 maps every byte
        return data.decode("latin-1")


def tidy_plain(text: str) -> str:
    # Keep indentation (RFC tables, ASCII art); drop trailing blanks and form-feed page breaks.
    text = text.replace("\f", "\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")
