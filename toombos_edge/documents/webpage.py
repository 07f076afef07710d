"""HTML's readable text: the page's main content, not its menus, sidebars and footers.

The main content is found by readability-lxml (the Readability algorithm: paragraphs are
scored by their text, commas and link density, and their best common ancestor wins). Its
result, and any HTML where it finds nothing (a fragment, a page of links), is turned into
text by ``visible_text``: what a browser would show, one line per block. EPUB chapters and
HTML email bodies use ``visible_text`` directly: all of them is content.
"""

from __future__ import annotations

import logging
from html.parser import HTMLParser

from .extracted import tidy

log = logging.getLogger(__name__)

_HIDDEN = frozenset({"script", "style", "noscript", "template", "svg", "head", "iframe", "object"})
_BLOCK = frozenset({
    "p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "header",
    "footer", "nav", "aside", "main", "h1", "h2", "h3", "h4", "h5", "h6", "pre",
    "blockquote", "hr", "dt", "dd", "figcaption", "form", "title",
})
_VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "wbr"})


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


def visible_text(html: str) -> tuple[str | None, str]:
    """(the <title>, every piece of text a browser would show), one line per block."""
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    title = " ".join("".join(parser.title).split()) or None
    return title, tidy("".join(parser.parts))


def main_content(html: str) -> str | None:
    """The HTML of the page's main content, or None when readability finds none."""
    from readability import Document
    from readability.readability import Unparseable

    try:
        summary = Document(html).summary(html_partial=True)
    except (Unparseable, ValueError) as exc:  # no body, or lxml refused the markup
        log.debug("no main content found: %s", exc)
        return None
    return summary or None


def render_html(text: str) -> tuple[str | None, str]:
    """(title, main content as text); all visible text when no main content is found."""
    title, everything = visible_text(text)
    main = main_content(text) if everything else None
    body = visible_text(main)[1] if main else ""
    return title, body or everything
