"""Readable text from decoded documents: HTML's visible text, JSON and CSV as lines.

Each renderer takes the decoded text and returns ``(title or None, text)``; bad input
raises ``FormatError`` with a message meant for the job's error.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import orjson


class FormatError(ValueError):
    """The content does not parse as the format it claims."""


Rendered = tuple[str | None, str]

_HIDDEN = frozenset({"script", "style", "noscript", "template", "svg", "head", "iframe", "object"})
_BLOCK = frozenset({
    "p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "header",
    "footer", "nav", "aside", "main", "h1", "h2", "h3", "h4", "h5", "h6", "pre",
    "blockquote", "hr", "dt", "dd", "figcaption", "form", "title",
})
_VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "wbr"})
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")


class _VisibleText(HTMLParser):
    """Collects the text a browser shows, and the <title>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._hidden: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in _HIDDEN and tag not in _VOID:
            self._hidden.append(tag)
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif self._hidden and self._hidden[-1] == tag:
            self._hidden.pop()
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._hidden:
            self.parts.append(data)


def _tidy(text: str) -> str:
    """Collapse runs of spaces inside lines and blank lines between them."""
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def render_html(text: str) -> Rendered:
    parser = _VisibleText()
    parser.feed(text)
    parser.close()
    title = " ".join("".join(parser.title).split()) or None
    return title, _tidy("".join(parser.parts))


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
        rows = [row for row in csv.reader(io.StringIO(text), dialect) if any(row)]
    except csv.Error as exc:
        raise FormatError(f"invalid CSV: {exc}") from None
    if not rows:
        return None, ""
    header, lines = rows[0], [" | ".join(rows[0])]
    for row in rows[1:]:
        pairs = (f"{header[i] if i < len(header) else i + 1}: {cell}" for i, cell in
                 enumerate(row))
        lines.append("; ".join(pairs))
    return None, "\n".join(lines)


RENDERERS = {
    "text": render_text,
    "markdown": render_markdown,
    "html": render_html,
    "json": render_json,
    "csv": render_csv,
}
