"""Zip-based uploads (DOCX, PPTX, XLSX, EPUB) checked before any parser sees them: encrypted and
legacy Office files, damaged zips, zip bombs and XML entity bombs are refused by name and cause."""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass

from rag.loaders.errors import LoaderError

# Every OLE2 (Compound File) container starts so: a legacy .doc/.xls/.ppt, or an OOXML file
# encrypted with a password, which Office stores as an "EncryptedPackage" stream inside one.
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")  # OLE directory names are UTF-16

# Limits no real document comes near; each part is read through zipfile, which never yields
# more than the size the archive declares, so checking the declared sizes bounds the memory.
MAX_MEMBERS = 10_000
MAX_UNPACKED = 1 << 30  # 1 GiB in all
MAX_RATIO = 200  # for members over _RATIO_FLOOR; XML compresses about 10-30 times
_RATIO_FLOOR = 10 << 20

# An entity declaration in any XML part: OOXML parts never carry one (OPC forbids DTDs), and
# nested entities are how a few kB of XML expand to gigabytes ("billion laughs").
_ENTITY = tuple("<!ENTITY".encode(codec) for codec in ("ascii", "utf-16-le", "utf-16-be"))
_XML_PART = re.compile(r"\.(xml|rels)$", re.IGNORECASE)
# The main part's content type says which application a package is for, whatever its name.
_MAIN_PART = re.compile(rb"(wordprocessingml|presentationml|spreadsheetml)\.\w+\.main\+xml")
_FAMILIES = {b"wordprocessingml": ".docx", b"presentationml": ".pptx", b"spreadsheetml": ".xlsx"}
_BLOCK = 1 << 20


@dataclass(frozen=True)
class OfficeFormat:
    label: str  # as a cause names it: "DOCX"
    app: str  # "Word"
    legacy: str  # the binary format it replaced: ".doc"
    legacy_name: str  # "Word 97-2003"


OFFICE_FORMATS = {
    ".docx": OfficeFormat("DOCX", "Word", ".doc", "Word 97-2003"),
    ".pptx": OfficeFormat("PPTX", "PowerPoint", ".ppt", "PowerPoint 97-2003"),
    ".xlsx": OfficeFormat("XLSX", "Excel", ".xls", "Excel 97-2003"),
}
LEGACY_EXTENSIONS = {fmt.legacy: ext for ext, fmt in OFFICE_FORMATS.items()}


def legacy_cause(ext: str) -> str:
    """Why a .doc/.xls/.ppt upload is refused, and what to do instead."""
    modern = LEGACY_EXTENSIONS[ext]
    fmt = OFFICE_FORMATS[modern]
    return f"legacy {ext} format ({fmt.legacy_name}): save it as {modern} and upload it again"


def open_office(data: bytes, source: str, ext: str) -> zipfile.ZipFile:
    """The checked package of a .docx/.pptx/.xlsx: a password, a legacy format or another
    application's file is named as such rather than as a damaged zip, and an XML part that
    declares entities is refused before any parser reads it."""
    fmt = OFFICE_FORMATS[ext]
    if data.startswith(OLE_MAGIC):
        if _ENCRYPTED_STREAM in data:
            raise LoaderError(source, f"password-protected {fmt.app} file: "
                                      "remove the password and upload it again")
        raise LoaderError(
            source,
            f"legacy {fmt.legacy} format ({fmt.legacy_name}) named {ext}: "
            f"save it as {ext} and upload it again",
        )
    archive = open_zip(data, source, fmt.label)
    if "[Content_Types].xml" not in archive.namelist():
        why = "an empty zip" if not archive.infolist() else "no [Content_Types].xml"
        raise LoaderError(source, f"not a valid {fmt.app} file ({why})")
    main = _MAIN_PART.search(read_member(archive, "[Content_Types].xml", source, fmt.label))
    if main and _FAMILIES[main.group(1)] != ext:
        actual = _FAMILIES[main.group(1)]
        raise LoaderError(
            source, f"{OFFICE_FORMATS[actual].app} file named {ext}: rename it to {actual}"
        )
    for info in archive.infolist():
        if _XML_PART.search(info.filename) and _declares_entities(archive, info, source, fmt):
            raise LoaderError(
                source,
                f"unsafe XML in {info.filename}: entity declarations, which {fmt.app} files never "
                "contain (an XML entity-expansion bomb?)",
            )
    return archive


def open_zip(data: bytes, source: str, label: str) -> zipfile.ZipFile:
    """The archive, once its directory is readable and its declared sizes are within limits."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except Exception as exc:  # BadZipFile mostly; zipfile raises others on hostile directories
        raise LoaderError(source, f"damaged or truncated {label} (not a valid zip)") from exc
    members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise LoaderError(
            source, f"{len(members):,} parts in the {label}, over the {MAX_MEMBERS:,} limit "
            "(a zip bomb?)"
        )
    unpacked = sum(info.file_size for info in members)
    if unpacked > MAX_UNPACKED:
        raise LoaderError(
            source, f"{label} unpacks to {unpacked / (1 << 20):,.0f} MiB, over the "
            f"{MAX_UNPACKED >> 20:,} MiB limit (a zip bomb?)"
        )
    for info in members:
        if info.file_size > _RATIO_FLOOR and info.file_size > MAX_RATIO * info.compress_size:
            raise LoaderError(
                source, f"{info.filename} in the {label} unpacks {MAX_RATIO} times over or more "
                "(a zip bomb?)"
            )
    return archive


def read_member(archive: zipfile.ZipFile, name: str, source: str, label: str) -> bytes:
    """One part's bytes; a bad checksum or an unreadable compression is a damaged file."""
    try:
        return archive.read(name)
    except Exception as exc:
        raise LoaderError(source, f"damaged {label} ({name}: {exc})") from exc


def _declares_entities(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str, fmt: OfficeFormat
) -> bool:
    """Streamed, so a large part is never held whole; reading it also checks its CRC."""
    keep = max(len(p) for p in _ENTITY) - 1
    tail = b""
    try:
        with archive.open(info) as part:
            while block := part.read(_BLOCK):
                window = tail + block
                if any(p in window for p in _ENTITY):
                    return True
                tail = window[-keep:]
    except Exception as exc:
        raise LoaderError(source, f"damaged {fmt.label} ({info.filename}: {exc})") from exc
    return False
