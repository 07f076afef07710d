"""Text of OpenDocument files (.odt, .ods, .odp) with odfpy, and of EPUB books with lxml.

Both take a path to a checked, stored copy of the archive (``archives.stored_copy``) and
fill a ``TextBudget``. ODF keeps its text in ``text:h`` and ``text:p`` elements whatever the
kind of document (a letter's paragraphs, a sheet's cells, a slide's boxes), so one walk in
document order reads all three; a table row becomes one line of ``|``-separated cells.

EPUB needs no library of its own: its container names the package file, whose spine lists
the XHTML chapters in reading order. ebooklib, the library for it, is AGPL-3.0, which would
bind this MIT server's users; lxml parses the two XML files and the chapters go through the
HTML renderer's visible text.
"""

from __future__ import annotations

import posixpath
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from .extracted import ExtractionError, TextBudget
from .webpage import visible_text

_TEXT_NS = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_TABLE_NS = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_BLOCKS = frozenset({(_TEXT_NS, "p"), (_TEXT_NS, "h")})
_ROW = (_TABLE_NS, "table-row")
_CONTAINER_NS = "urn:oasis:names:tc:opendocument:xmlns:container"
_OPF = {"opf": "http://www.idpf.org/2007/opf", "dc": "http://purl.org/dc/elements/1.1/"}


def read_odf(path: Path, budget: TextBudget) -> str | None:
    """Headings, paragraphs and table rows of the body, in document order."""
    from odf import teletype
    from odf.opendocument import load

    document = load(str(path))
    for block in _odf_blocks(document.body, teletype.extractText):
        if not budget.add(block, separator="\n"):
            break
    titles = [teletype.extractText(node) for node in _odf_titles(document.meta)]
    return next((title.strip() for title in titles if title.strip()), None)


def _odf_blocks(node: Any, extract: Any) -> Iterator[str]:
    """An explicit stack, not recursion: a hostile file may nest elements very deep."""
    stack = [iter(node.childNodes)]
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
        elif getattr(child, "qname", None) in _BLOCKS:
            yield extract(child)
        elif getattr(child, "qname", None) == _ROW:
            yield " | ".join(" ".join(extract(cell).split()) for cell in child.childNodes)
        elif getattr(child, "childNodes", None):
            stack.append(iter(child.childNodes))


def _odf_titles(meta: Any) -> list[Any]:
    from odf.dc import Title

    return list(meta.getElementsByType(Title)) if meta is not None else []


def read_epub(path: Path, budget: TextBudget) -> str | None:
    """The chapters of the spine, in reading order."""
    with zipfile.ZipFile(path) as book:
        package_path = _package_path(book)
        package = _xml(book.read(package_path))
        manifest = {item.get("id"): item.get("href")
                    for item in package.iterfind("opf:manifest/opf:item", _OPF)}
        base = posixpath.dirname(package_path)
        for ref in package.iterfind("opf:spine/opf:itemref", _OPF):
            href = manifest.get(ref.get("idref"))
            if not href:
                continue
            chapter = book.read(posixpath.normpath(posixpath.join(base, unquote(href))))
            if not budget.add(visible_text(chapter.decode("utf-8", errors="replace"))[1]):
                break
        title = package.findtext("opf:metadata/dc:title", namespaces=_OPF)
    return title.strip() if title and title.strip() else None


def _package_path(book: zipfile.ZipFile) -> str:
    container = _xml(book.read("META-INF/container.xml"))
    rootfile = container.find(f".//{{{_CONTAINER_NS}}}rootfile")
    if rootfile is None or not rootfile.get("full-path"):
        raise ExtractionError("the EPUB's container names no package file", "epub")
    return str(rootfile.get("full-path"))


def _xml(data: bytes) -> Any:
    """Parsed without entities, DTDs or the network (no XXE, no billion laughs)."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True)
    return etree.fromstring(data, parser=parser)
