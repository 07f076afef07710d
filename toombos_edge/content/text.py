"""Text tools for rendering: CommonMark to HTML (optionally inline-styled), plain text,
sentences, summaries, slugs and reading time. Pure functions; CPU-bound, call off the loop.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

WORDS_PER_MINUTE = 200
SLUG_MAX = 80


@cache
def _markdown() -> MarkdownIt:
    """The one CommonMark parser, with raw HTML off: document text is user input and must
    not inject markup. Made, and markdown-it imported, at the first Markdown text: it adds
    about 1 MB of resident memory to a server that renders nothing (bench.startup)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+(?=[\"'(\[]?[A-Z0-9À-Ý])")
_SPACES = re.compile(r"\s+")
_NON_SLUG = re.compile(r"[^a-z0-9]+")


def markdown_html(text: str, styles: Mapping[str, str] | None = None) -> str:
    """CommonMark to HTML; ``styles`` maps tag names to inline ``style`` values (email)."""
    md = _markdown()
    tokens = md.parse(text)
    if styles:
        _style_tokens(tokens, styles)
    return str(md.renderer.render(tokens, md.options, {}))


def _style_tokens(tokens: list[Token], styles: Mapping[str, str]) -> None:
    for token in tokens:
        if token.nesting >= 0 and token.tag in styles:
            token.attrSet("style", styles[token.tag])
        if token.children:
            _style_tokens(token.children, styles)


def plain_text(text: str, bullets: bool = True) -> str:
    """Markdown as readable plain text: paragraphs kept, markup dropped, links as ``t (url)``.

    Headings end with a colon and list items with a full stop when they have no closing
    punctuation, so that the blocks still read as prose when joined on one line (a post, a
    summary); ``bullets`` keeps list items marked with ``- `` (the email's text part).
    """
    blocks: list[str] = []
    context: list[str] = []
    for token in _markdown().parse(text):
        if token.nesting == 1:
            context.append(token.type)
        elif token.nesting == -1 and context:
            context.pop()
        if token.type == "inline":
            line = _block_text(_inline_text(token), context, bullets)
            if bullets and "list_item_open" in context and blocks and blocks[-1].startswith("- "):
                blocks[-1] += "\n" + line  # one list, one block
            else:
                blocks.append(line)
        elif token.type in {"fence", "code_block"}:
            blocks.append(token.content.rstrip("\n"))
    return "\n\n".join(b for b in blocks if b.strip())


def _block_text(line: str, context: list[str], bullets: bool) -> str:
    closed = line.rstrip().endswith((".", "!", "?", ":", "…", ";"))
    if "heading_open" in context:
        return line if closed else line.rstrip() + ":"
    if "list_item_open" in context:
        return ("- " if bullets else "") + (line if closed else line.rstrip() + ".")
    return line


def _inline_text(token: Token) -> str:
    out: list[str] = []
    href: str | None = None
    for child in token.children or []:
        if child.type in {"text", "code_inline"}:
            out.append(child.content)
        elif child.type in {"softbreak", "hardbreak"}:
            out.append(" " if child.type == "softbreak" else "\n")
        elif child.type == "link_open":
            href = str(child.attrGet("href") or "")
        elif child.type == "link_close" and href:
            out.append(f" ({href})")
            href = None
        elif child.type == "image":
            out.append(child.content)
    return "".join(out)


def paragraphs(text: str, bullets: bool = False) -> list[str]:
    """The plain-text paragraphs of a Markdown text, whitespace collapsed."""
    blocks = plain_text(text, bullets).split("\n\n")
    return [_SPACES.sub(" ", p).strip() for p in blocks if p.strip()]


def sentences(paragraph: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(paragraph) if s.strip()]


def words(text: str) -> int:
    return len(text.split())


def reading_minutes(text: str) -> int:
    """Minutes to read at 200 words a minute, at least one."""
    return max(1, math.ceil(words(text) / WORDS_PER_MINUTE))


def truncate(text: str, limit: int, ellipsis: str = "…") -> str:
    """At most ``limit`` characters, cut at a word boundary when one is near."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - len(ellipsis))]
    space = cut.rfind(" ")
    if space > len(cut) * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + ellipsis


def summary(text: str, limit: int) -> str:
    """Whole leading sentences of the text that fit ``limit``; a cut sentence if none does."""
    chosen: list[str] = []
    length = 0
    for paragraph in paragraphs(text):
        for sentence in sentences(paragraph):
            extra = len(sentence) + (1 if chosen else 0)
            if length + extra > limit:
                return " ".join(chosen) if chosen else truncate(sentence, limit)
            chosen.append(sentence)
            length += extra
    return " ".join(chosen)


def slugify(title: str, fallback: str = "page") -> str:
    """ASCII, lower case, hyphens: ``Hello, Wörld!`` → ``hello-world``."""
    ascii_text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = _NON_SLUG.sub("-", ascii_text.lower()).strip("-")
    if len(slug) > SLUG_MAX:
        slug = slug[:SLUG_MAX].rsplit("-", 1)[0]
    return slug or fallback
