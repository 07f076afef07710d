"""Text extraction: a file's encoding and its readable text, by format (``sniff``).

Everything here blocks (file reads, decoding, parsing): the ingest job runs it in a reader
process (``readers``). Any failure is an ``ExtractionError`` whose message says what is
wrong with the file; nothing here raises anything else for bad input. ``extract_upload``
turns that failure into a document without text: an upload is kept whatever it holds.

Which library reads which format, and why, is said where each is declared (pyproject.toml)
and in each reader's module: ``office`` (DOCX, PPTX, XLSX), ``opendocument`` (ODF, EPUB),
``mail`` (EML), ``webpage`` (HTML), ``formats`` (text, Markdown, JSON, CSV, RTF), and
pypdf below. Zip-based formats are read from a checked copy (``archives``).
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .archives import ArchiveLimits, stored_copy
from .extracted import Extracted, ExtractionError, TextBudget
from .formats import RENDERERS, FormatError
from .mail import read_eml
from .office import read_docx, read_pptx, read_xlsx
from .opendocument import read_epub, read_odf
from .sniff import (
    BINARY,
    BOMS,
    CONTENT_TYPES,
    FORMATS,
    SNIFF_BYTES,
    content_type_of,
    detect_format,
    looks_binary,
    normalize_format,
)

if TYPE_CHECKING:
    from charset_normalizer import CharsetMatch

__all__ = [
    "BINARY", "CONTENT_TYPES", "Extracted", "ExtractionError", "content_type_of",
    "extract_file", "extract_text", "extract_upload", "normalize_format",
]

Reader = Callable[[Path, TextBudget], "str | None"]
ARCHIVE_READERS: dict[str, Reader] = {
    "docx": read_docx, "pptx": read_pptx, "xlsx": read_xlsx, "odt": read_odf,
    "ods": read_odf, "odp": read_odf, "epub": read_epub,
}


def decode(data: bytes, declared_charset: str | None = None) -> tuple[str, str]:
    """(text, encoding): a BOM, a declared charset, strict UTF-8, else detection."""
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    if declared_charset and not data.startswith(BOMS):
        try:
            return data.decode(declared_charset), codecs.lookup(declared_charset).name
        except (LookupError, UnicodeDecodeError):
            pass
    if not data.startswith(BOMS):
        try:
            return data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError as exc:
            if exc.reason == "unexpected end of data":  # a cut through the last character
                return data[: exc.start].decode("utf-8"), "utf-8"
    best = _detected(data)
    if best is None:
        raise ExtractionError("could not detect the character encoding (binary content?)")
    return str(best), best.encoding


def _detected(data: bytes) -> CharsetMatch | None:
    """charset-normalizer's best guess at the encoding of ``data``.

    Imported here, at the first text that is neither UTF-8 nor declared: it adds about
    2.6 MB of resident memory to a server that never meets one (bench.startup).
    """
    from charset_normalizer import from_bytes

    return from_bytes(data).best()


def charset_of(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return None


def extract_upload(
    path: Path, *, filename: str, content_type: str, declared: str | None, max_bytes: int,
    archive: ArchiveLimits | None = None,
) -> Extracted:
    """``extract_file``, but a file that gives no text is kept: an ``Extracted`` of its
    format with empty text and, in ``error``, why (blocking)."""
    try:
        return extract_file(path, filename=filename, content_type=content_type,
                            declared=declared, max_bytes=max_bytes, archive=archive)
    except ExtractionError as exc:
        return Extracted(exc.format or BINARY, None, "", error=str(exc))


def extract_file(
    path: Path, *, filename: str, content_type: str, declared: str | None, max_bytes: int,
    archive: ArchiveLimits | None = None,
) -> Extracted:
    """Extract the text of a stored file (blocking)."""
    with path.open("rb") as source:
        head = source.read(SNIFF_BYTES)
    fmt = detect_format(path, head, filename, content_type, declared)
    try:
        return _extract_as(fmt, path, content_type, max_bytes, archive or ArchiveLimits())
    except ExtractionError as exc:
        exc.format = exc.format or fmt
        raise


def _extract_as(fmt: str, path: Path, content_type: str, max_bytes: int,
                archive: ArchiveLimits) -> Extracted:
    if fmt == BINARY:
        media = content_type.split(";", 1)[0].strip() or "unknown media type"
        raise ExtractionError(f"no text can be drawn from this file ({media}): it is not "
                              "text, and not one of " + ", ".join(FORMATS[:-1]))
    if fmt == "pdf":
        return extract_pdf(path, max_bytes)
    if fmt in ARCHIVE_READERS or fmt == "eml":
        return _read_with(fmt, path, max_bytes, archive)
    with path.open("rb") as source:
        data = source.read(max_bytes + 1)
    truncated = len(data) > max_bytes
    if truncated:
        data = data[:max_bytes]
    if looks_binary(data[:SNIFF_BYTES]):
        raise ExtractionError(f"the file is binary, not {fmt}")
    return extract_bytes(data, fmt, charset_of(content_type), truncated=truncated)


def _read_with(fmt: str, path: Path, max_bytes: int, limits: ArchiveLimits) -> Extracted:
    """A library's reader on the file (a zip's on its checked stored copy)."""
    budget = TextBudget(max_bytes)
    try:
        if fmt == "eml":
            title = read_eml(path, budget)
        else:
            with stored_copy(path, limits) as copy:
                title = ARCHIVE_READERS[fmt](copy, budget)
    except ExtractionError:
        raise
    except Exception as exc:  # each library raises its own kinds on corrupt input
        raise ExtractionError(f"corrupt or unreadable {fmt.upper()}: {exc}") from None
    return Extracted(fmt, title, budget.text(), truncated=budget.truncated)


def extract_bytes(
    data: bytes, fmt: str, charset: str | None = None, *, truncated: bool = False
) -> Extracted:
    text, encoding = decode(data, charset)
    if truncated:
        text = text.rstrip("\ufffd")  # the cut may have split the last character
    return extract_text(text, fmt, encoding=encoding, truncated=truncated)


def extract_text(
    text: str, fmt: str, *, encoding: str | None = None, truncated: bool = False
) -> Extracted:
    """Render already decoded text of a format (JSON ingestion sends text, not bytes)."""
    if fmt not in RENDERERS:
        raise ExtractionError(f"a {fmt.upper()} document must be uploaded as a file, not "
                              "sent as text")
    try:
        title, body = RENDERERS[fmt](text.replace("\x00", ""))
    except FormatError as exc:
        raise ExtractionError(str(exc)) from None
    return Extracted(fmt, title, body, encoding, truncated)


def extract_pdf(path: Path, max_bytes: int) -> Extracted:
    """The text layer of each page, until ``max_bytes`` of text."""
    # Imported on first use: pypdf adds ~7 MB to every process's idle RSS (budget: 60 MB).
    from pypdf import PdfReader

    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractionError("the PDF is encrypted with a password")
        title = reader.metadata.title if reader.metadata else None
        pages, size, truncated = [], 0, False
        for page in reader.pages:
            text = page.extract_text() or ""
            pages.append(text.strip())
            size += len(text.encode("utf-8", errors="replace"))
            if size > max_bytes:
                truncated = True
                break
        count = len(reader.pages)
    except ExtractionError:
        raise
    except Exception as exc:  # pypdf raises many kinds on corrupt input
        raise ExtractionError(f"corrupt or unreadable PDF: {exc}") from None
    body = "\n\n".join(page for page in pages if page)
    return Extracted("pdf", title.strip() if title else None, body, None, truncated, count)
