"""Text extraction: which format a document is, its encoding, and its readable text.

Everything here blocks (file reads, decoding, PDF parsing): the ingest job runs it through
``ctx.run_blocking``. Any failure is an ``ExtractionError`` whose message says what is
wrong with the file; nothing here raises anything else for bad input.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path, PurePath

from charset_normalizer import from_bytes

from .formats import RENDERERS, FormatError

FORMATS = ("text", "markdown", "html", "json", "csv", "pdf")
SNIFF_BYTES = 8192
_ALIASES = {"txt": "text", "plain": "text", "md": "markdown", "htm": "html", "pdf": "pdf"}
_EXTENSIONS = {
    ".txt": "text", ".text": "text", ".log": "text", ".md": "markdown",
    ".markdown": "markdown", ".html": "html", ".htm": "html", ".xhtml": "html",
    ".json": "json", ".csv": "csv", ".tsv": "csv", ".pdf": "pdf",
}
_MEDIA_TYPES = {
    "text/plain": "text", "text/markdown": "markdown", "text/x-markdown": "markdown",
    "text/html": "html", "application/xhtml+xml": "html", "application/json": "json",
    "text/csv": "csv", "text/tab-separated-values": "csv", "application/pdf": "pdf",
}
CONTENT_TYPES = {
    "text": "text/plain; charset=utf-8", "markdown": "text/markdown; charset=utf-8",
    "html": "text/html; charset=utf-8", "json": "application/json",
    "csv": "text/csv; charset=utf-8", "pdf": "application/pdf",
}
_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE,
         codecs.BOM_UTF32_BE)


class ExtractionError(Exception):
    """The file cannot be turned into text (unsupported, corrupt, undecodable)."""


@dataclass(frozen=True, slots=True)
class Extracted:
    format: str
    title: str | None
    text: str
    encoding: str | None = None
    truncated: bool = False
    pages: int | None = None


def normalize_format(declared: str | None) -> str | None:
    """A declared format in our words (``md`` → ``markdown``); None if not given."""
    if not declared:
        return None
    name = declared.strip().lower()
    name = _ALIASES.get(name, name)
    if name not in FORMATS:
        raise ExtractionError(f"unsupported format {declared!r}; known: {', '.join(FORMATS)}")
    return name


def detect_format(head: bytes, filename: str, content_type: str, declared: str | None) -> str:
    """Declared format, else the bytes (PDF magic), the extension, the media type, or text."""
    named = normalize_format(declared)
    if named:
        return named
    if head.startswith(b"%PDF-"):
        return "pdf"
    by_name = _EXTENSIONS.get(PurePath(filename).suffix.lower())
    if by_name:
        return by_name
    media = content_type.split(";", 1)[0].strip().lower()
    if media in _MEDIA_TYPES:
        return _MEDIA_TYPES[media]
    if looks_binary(head):
        raise ExtractionError(
            f"unsupported file type ({media or 'unknown media type'}): it is not text, "
            "and not one of " + ", ".join(FORMATS)
        )
    return "text"


def looks_binary(head: bytes) -> bool:
    return b"\x00" in head and not head.startswith(_BOMS)


def decode(data: bytes, declared_charset: str | None = None) -> tuple[str, str]:
    """(text, encoding): a BOM, a declared charset, strict UTF-8, else detection."""
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    if declared_charset and not data.startswith(_BOMS):
        try:
            return data.decode(declared_charset), codecs.lookup(declared_charset).name
        except (LookupError, UnicodeDecodeError):
            pass
    if not data.startswith(_BOMS):
        try:
            return data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError as exc:
            if exc.reason == "unexpected end of data":  # a cut through the last character
                return data[: exc.start].decode("utf-8"), "utf-8"
    best = from_bytes(data).best()
    if best is None:
        raise ExtractionError("could not detect the character encoding (binary content?)")
    return str(best), best.encoding


def charset_of(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return None


def extract_file(
    path: Path, *, filename: str, content_type: str, declared: str | None, max_bytes: int
) -> Extracted:
    """Extract the text of a stored file (blocking)."""
    with path.open("rb") as source:
        head = source.read(SNIFF_BYTES)
        fmt = detect_format(head, filename, content_type, declared)
        if fmt == "pdf":
            return extract_pdf(path, max_bytes)
        data = head + source.read(max(0, max_bytes + 1 - len(head)))
    truncated = len(data) > max_bytes
    if truncated:
        data = data[:max_bytes]
    if looks_binary(data[:SNIFF_BYTES]):
        raise ExtractionError(f"the file is binary, not {fmt}")
    return extract_bytes(data, fmt, charset_of(content_type), truncated=truncated)


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
    if fmt == "pdf":
        raise ExtractionError("a PDF must be uploaded as a file, not sent as text")
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
