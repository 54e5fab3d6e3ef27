"""EPUB: the chapters in reading (spine) order, each split at its headings like any HTML page."""

from __future__ import annotations

import html
import posixpath
import re
import zipfile
from urllib.parse import unquote
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException, EntitiesForbidden

from rag.loaders.archive import open_zip, read_member
from rag.loaders.errors import LoaderError
from rag.loaders.markup import html_pages
from rag.types import Page

_CONTAINER = "META-INF/container.xml"
_ENCRYPTION = "META-INF/encryption.xml"
_CHAPTER_TYPES = frozenset(("application/xhtml+xml", "text/html"))
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def load_epub(data: bytes, source: str) -> list[Page]:
    """Text before a chapter's first heading is headed by the chapter's <title>."""
    archive = open_zip(data, source, "EPUB")
    names = set(archive.namelist())
    if _CONTAINER not in names:
        raise LoaderError(source, f"not a valid EPUB (no {_CONTAINER})")
    container = _xml(read_member(archive, _CONTAINER, source, "EPUB"), source, _CONTAINER)
    rootfile = next((e.get("full-path") for e in container.iter() if _local(e) == "rootfile"), None)
    if not rootfile or rootfile not in names:
        raise LoaderError(source, "not a valid EPUB (its package document is missing)")
    chapters = _spine(_xml(read_member(archive, rootfile, source, "EPUB"), source, rootfile),
                      posixpath.dirname(rootfile))
    locked = _encrypted(archive, names, source)
    if any(path in locked for path in chapters):
        raise LoaderError(source, "DRM-protected EPUB: its chapters are encrypted")
    pages = []
    for path in chapters:
        if path not in names:
            raise LoaderError(source, f"damaged EPUB ({path}, listed in its spine, is missing)")
        raw = read_member(archive, path, source, "EPUB")
        title = _title(raw)
        for page in html_pages(raw):
            # U+FEFF inside text (some books put it before dashes) is invisible noise
            text = page.text.replace("\ufeff", "")
            pages.append(Page(text=text, heading=page.heading or title))
    return pages


def _xml(data: bytes, source: str, name: str) -> Element:
    """defusedxml: an entity declaration in the package's own XML is refused, not expanded."""
    try:
        return SafeET.fromstring(data)
    except EntitiesForbidden as exc:
        raise LoaderError(
            source, f"unsafe XML in {name}: entity declarations (an XML entity-expansion bomb?)"
        ) from exc
    except DefusedXmlException as exc:  # an external entity or DTD: a way to read local files
        raise LoaderError(source, f"unsafe XML in {name}: {type(exc).__name__}") from exc
    except SafeET.ParseError as exc:
        raise LoaderError(source, f"damaged EPUB ({name}: {exc})") from exc


def _local(element: Element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def _spine(package: Element, base: str) -> list[str]:
    """Zip paths of the (X)HTML documents in reading order, each once."""
    manifest = {
        e.get("id"): e for e in package.iter() if _local(e) == "item" and e.get("href")
    }
    paths = []
    for ref in (e for e in package.iter() if _local(e) == "itemref"):
        item = manifest.get(ref.get("idref"))
        if item is None or item.get("media-type") not in _CHAPTER_TYPES:
            continue
        href = unquote(item.get("href", "").split("#", 1)[0])
        path = posixpath.normpath(posixpath.join(base, href))
        if path not in paths:
            paths.append(path)
    return paths


def _encrypted(archive: zipfile.ZipFile, names: set[str], source: str) -> set[str]:
    """Paths listed in META-INF/encryption.xml: DRM, or only obfuscated fonts (harmless)."""
    if _ENCRYPTION not in names:
        return set()
    root = _xml(read_member(archive, _ENCRYPTION, source, "EPUB"), source, _ENCRYPTION)
    return {
        unquote(e.get("URI", "")) for e in root.iter() if _local(e) == "CipherReference"
    }


def _title(raw: bytes) -> str | None:
    match = _TITLE.search(raw)
    if not match:
        return None
    title = " ".join(html.unescape(match.group(1).decode("utf-8", "replace")).split())
    return title or None
