"""Which format a file is: the request's word for it, else its bytes (PDF, RTF, what a
zip holds, HTML and mail headers), its name, its media type; ``binary`` when none says.

Cheap and blocking: the first ``SNIFF_BYTES`` and, for a zip, its central directory.
"""

from __future__ import annotations

import codecs
import mimetypes
import re
import zipfile
from pathlib import Path, PurePath

from .extracted import ExtractionError

#: A file of no format we read: kept, with its blob, title and media type, and no text.
BINARY = "binary"
#: The zip-based formats (read from a checked copy: ``archives``).
ARCHIVES = ("docx", "pptx", "xlsx", "odt", "ods", "odp", "epub")
FORMATS = ("text", "markdown", "html", "json", "csv", "pdf", "rtf", "eml", *ARCHIVES, BINARY)
SNIFF_BYTES = 8192
_ALIASES = {"txt": "text", "plain": "text", "md": "markdown", "htm": "html", "pdf": "pdf",
            "xhtml": "html", "tsv": "csv", "msg": "eml", "email": "eml"}
_EXTENSIONS = {
    ".txt": "text", ".text": "text", ".log": "text", ".md": "markdown",
    ".markdown": "markdown", ".html": "html", ".htm": "html", ".xhtml": "html",
    ".json": "json", ".csv": "csv", ".tsv": "csv", ".pdf": "pdf", ".rtf": "rtf",
    ".eml": "eml", ".docx": "docx", ".pptx": "pptx", ".xlsx": "xlsx", ".odt": "odt",
    ".ods": "ods", ".odp": "odp", ".epub": "epub",
}
CONTENT_TYPES = {
    "text": "text/plain; charset=utf-8", "markdown": "text/markdown; charset=utf-8",
    "html": "text/html; charset=utf-8", "json": "application/json",
    "csv": "text/csv; charset=utf-8", "pdf": "application/pdf", "rtf": "application/rtf",
    "eml": "message/rfc822",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "odt": "application/vnd.oasis.opendocument.text",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "odp": "application/vnd.oasis.opendocument.presentation",
    "epub": "application/epub+zip", BINARY: "application/octet-stream",
}
_MEDIA_TYPES = {
    **{media.split(";")[0]: fmt for fmt, media in CONTENT_TYPES.items() if fmt != BINARY},
    "text/x-markdown": "markdown", "application/xhtml+xml": "html", "text/rtf": "rtf",
    "text/tab-separated-values": "csv",
}
#: What a zip's members say it is: the ``mimetype`` member of ODF and EPUB, else OOXML's
#: main part.
_ZIP_MIMETYPES = {CONTENT_TYPES[fmt]: fmt for fmt in ("odt", "ods", "odp", "epub")}
_ZIP_PARTS = {"word/document.xml": "docx", "ppt/presentation.xml": "pptx",
              "xl/workbook.xml": "xlsx"}
_EML_START = re.compile(
    rb"(?:From|Return-Path|Received|Delivered-To|Message-ID|MIME-Version|Date|Subject|To"
    rb"|X-[\w-]+): ", re.IGNORECASE)
BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE,
         codecs.BOM_UTF32_BE)


def normalize_format(declared: str | None) -> str | None:
    """A declared format in our words (``md`` → ``markdown``); None if not given."""
    if not declared:
        return None
    name = declared.strip().lower()
    name = _ALIASES.get(name, name)
    if name not in FORMATS:
        raise ExtractionError(f"unsupported format {declared!r}; known: {', '.join(FORMATS)}")
    return name


def detect_format(path: Path, head: bytes, filename: str, content_type: str,
                  declared: str | None) -> str:
    """Declared format, else the bytes (PDF, RTF, a zip's members), the extension, the media
    type; text when it looks like text, else ``binary``."""
    by_name = _EXTENSIONS.get(PurePath(filename).suffix.lower())
    found = normalize_format(declared) or _by_magic(path, head, by_name) or by_name
    if found:
        return found
    media = content_type.split(";", 1)[0].strip().lower()
    if media in _MEDIA_TYPES:
        return _MEDIA_TYPES[media]
    if looks_binary(head):
        return BINARY
    return _by_text(head)


def _by_text(head: bytes) -> str:
    """A nameless text upload: a web page, an email message, or plain text."""
    start = head.lstrip()[:64].lower()
    if start.startswith((b"<!doctype html", b"<html")):
        return "html"
    if _EML_START.match(head) and (b"\nSubject:" in head or b"\nMIME-Version:" in head):
        return "eml"
    return "text"


def _by_magic(path: Path, head: bytes, by_name: str | None) -> str | None:
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"{\\rtf"):
        return "rtf"
    if head.startswith(b"PK\x03\x04"):  # a zip: what its members say, else its name
        return _zip_format(path) or by_name or BINARY
    return None


def _zip_format(path: Path) -> str | None:
    """The document kind a zip holds, from its member names (cheap: the central directory)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "mimetype" in names:
                info = archive.getinfo("mimetype")
                if info.file_size <= 100:
                    with archive.open(info) as member:
                        media = member.read(101).decode("ascii", "replace").strip()
                    return _ZIP_MIMETYPES.get(media)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError, NotImplementedError):
        return None
    return next((fmt for part, fmt in _ZIP_PARTS.items() if part in names), None)


def content_type_of(fmt: str, filename: str) -> str:
    """The media type to serve a document's file as, when its upload named none."""
    if fmt != BINARY:
        return CONTENT_TYPES[fmt]
    guessed, _encoding = mimetypes.guess_type(filename, strict=False)
    return guessed or CONTENT_TYPES[BINARY]


def looks_binary(head: bytes) -> bool:
    return b"\x00" in head and not head.startswith(BOMS)
