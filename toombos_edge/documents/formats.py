"""Readable text from decoded documents: Markdown, JSON and CSV as lines, RTF.

Each renderer takes the decoded text and returns ``(title or None, text)``; bad input
raises ``FormatError`` with a message meant for the job's error.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import orjson

from .webpage import render_html


class FormatError(ValueError):
    """The content does not parse as the format it claims."""


Rendered = tuple[str | None, str]

_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
_RTF_TITLE = re.compile(r"\\title\s?([^}\\]*)")
_RTF_CODEPAGE = re.compile(r"\\ansicpg(\d+)")


def render_markdown(text: str) -> Rendered:
    for line in text.splitlines():
        match = _MD_HEADING.match(line)
        if match:
            return match.group(1), text.strip()
    return None, text.strip()


def render_text(text: str) -> Rendered:
    return None, text.strip()


def render_json(text: str) -> Rendered:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise FormatError(f"invalid JSON: {exc}") from None
    title = value.get("title") if isinstance(value, dict) else None
    return (title if isinstance(title, str) else None), "\n".join(_json_lines(value, ""))


def _json_lines(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _json_lines(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_lines(item, f"{path}[{index}]")
    else:
        shown = "" if value is None else str(value).lower() if isinstance(value, bool) else value
        yield f"{path}: {shown}" if path else str(shown)


def render_csv(text: str) -> Rendered:
    """Each row as ``header: value`` pairs, so the text reads (and searches) by column."""
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            text[:8192], delimiters=",;\t|"
        )
    except csv.Error:
        dialect = csv.excel
    try:
        rows = list(csv.reader(io.StringIO(text), dialect))
    except csv.Error as exc:
        raise FormatError(f"invalid CSV: {exc}") from None
    return None, "\n".join(table_lines(rows))


def table_lines(rows: Iterable[Sequence[str]]) -> Iterator[str]:
    """The first non-empty row as the header, then each row as ``header: value`` pairs."""
    header: Sequence[str] | None = None
    for row in rows:
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = _trimmed(row)
            yield " | ".join(header)
            continue
        pairs = (f"{header[i] if i < len(header) else i + 1}: {cell}"
                 for i, cell in enumerate(_trimmed(row)))
        yield "; ".join(pairs)


def _trimmed(row: Sequence[str]) -> Sequence[str]:
    """Without its empty trailing cells (spreadsheets pad rows to the widest one)."""
    end = len(row)
    while end and not row[end - 1].strip():
        end -= 1
    return row[:end]


def render_rtf(text: str) -> Rendered:
    """RTF's text with striprtf (control words dropped, ``\\'xx`` decoded in the file's
    code page); the title from its ``\\info`` group."""
    from striprtf import striprtf

    rtf_to_text: Callable[..., str] = striprtf.rtf_to_text

    if not text.lstrip().startswith("{\\rtf"):
        raise FormatError("not an RTF document (it does not start with {\\rtf)")
    page = _RTF_CODEPAGE.search(text[:4096])
    encoding = f"cp{page.group(1)}" if page else "cp1252"
    try:
        body = rtf_to_text(text, encoding=encoding, errors="replace")
    except LookupError:
        body = rtf_to_text(text, errors="replace")
    except Exception as exc:  # striprtf's regular expressions raise on broken groups
        raise FormatError(f"unreadable RTF: {exc}") from None
    title = _RTF_TITLE.search(text)
    return (title.group(1).strip() or None) if title else None, body.strip()


RENDERERS = {
    "text": render_text,
    "html": render_html,
    "markdown": render_markdown,
    "rtf": render_rtf,
    "json": render_json,
    "csv": render_csv,
}
