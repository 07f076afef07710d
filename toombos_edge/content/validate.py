"""Checking a draft before generation: issues, warnings and what it is fit for.

The answer has the client contract's fields: ``is_valid``, ``content_type``, ``issues``,
``warnings`` and ``enhanced_metadata`` (word count, reading time, an SEO score from 0 to
100 and the recommended channels). ``strict`` turns warnings into issues.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import Invalid
from .channels import ContentType, parse_choice
from .text import paragraphs, reading_minutes, words

MAX_CONTENT = 1_000_000
TITLE_SEO = (30, 65)
MIN_WORDS = {ContentType.update: 30, ContentType.blog: 300, ContentType.announcement: 20}
LONG_PARAGRAPH_WORDS = 150
_HEADING = re.compile(r"^#{1,6}\s", re.MULTILINE)
_LINK = re.compile(r"\]\((https?://[^)\s]+)\)|https?://\S+")


@dataclass
class Findings:
    issues: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def validate(body: dict[str, Any]) -> dict[str, Any]:
    """Validate ``{"content": str | {title, text|body}, "content_type", "strict"}``."""
    title, text = _title_and_text(body.get("content"))
    content_type = parse_choice(ContentType, body.get("content_type"), "content_type",
                                ContentType.update)
    strict = body.get("strict", False)
    if not isinstance(strict, bool):
        raise Invalid("'strict' must be true or false", {"field": "strict"})
    findings = _check(title, text, content_type)
    issues = findings.issues + (findings.warnings if strict else [])
    return {
        "is_valid": not issues,
        "content_type": content_type.value,
        "issues": issues,
        "warnings": [] if strict else findings.warnings,
        "enhanced_metadata": {
            "word_count": words(text),
            "reading_time": reading_minutes(text) if text.strip() else 0,
            "seo_score": seo_score(title, text),
            "recommended_channels": recommended_channels(text, content_type),
        },
    }


def _title_and_text(content: Any) -> tuple[str, str]:
    if isinstance(content, str):
        title, text = "", content
    elif isinstance(content, dict):
        title = content.get("title") or ""
        text = content.get("text") or content.get("body") or content.get("content") or ""
    else:
        raise Invalid("'content' must be a string or an object with 'title' and 'text'",
                      {"field": "content"})
    if not isinstance(title, str) or not isinstance(text, str):
        raise Invalid("'title' and 'text' must be strings", {"field": "content"})
    if len(text) > MAX_CONTENT:
        raise Invalid(f"'content' is longer than {MAX_CONTENT} characters", {"field": "content"})
    if not title and text.lstrip().startswith("#"):
        title = text.lstrip().split("\n", 1)[0].lstrip("#").strip()
    return title.strip(), text


def _check(title: str, text: str, content_type: ContentType) -> Findings:
    found = Findings()
    count = words(text)
    if not text.strip():
        found.issues.append("content is empty")
        return found
    if count < MIN_WORDS[content_type]:
        found.warnings.append(f"{count} words is short for a {content_type.value} "
                              f"(at least {MIN_WORDS[content_type]} recommended)")
    if not title:
        found.warnings.append("no title: give one, or start the text with a '# heading'")
    elif len(title) > 120:
        found.issues.append("title is longer than 120 characters")
    elif not TITLE_SEO[0] <= len(title) <= TITLE_SEO[1]:
        found.warnings.append(f"title of {len(title)} characters; "
                              f"{TITLE_SEO[0]} to {TITLE_SEO[1]} reads best in search results")
    if any(words(p) > LONG_PARAGRAPH_WORDS for p in paragraphs(text)):
        found.warnings.append(f"a paragraph runs past {LONG_PARAGRAPH_WORDS} words; split it")
    if "TODO" in text or "lorem ipsum" in text.lower():
        found.issues.append("placeholder text (TODO or lorem ipsum) left in the content")
    return found


def seo_score(title: str, text: str) -> int:
    """0 to 100: title length, length of the text, headings, links, paragraph lengths."""
    score = 0
    if title:
        score += 25 if TITLE_SEO[0] <= len(title) <= TITLE_SEO[1] else 10
    count = words(text)
    score += 30 if count >= 300 else 15 if count >= 100 else 5 if count else 0
    score += 15 if _HEADING.search(text) else 0
    score += 15 if _LINK.search(text) else 0
    parts = paragraphs(text)
    if parts and all(words(p) <= LONG_PARAGRAPH_WORDS for p in parts):
        score += 15
    return min(100, score)


def recommended_channels(text: str, content_type: ContentType) -> list[str]:
    """Where this content would do well: long reads on the site, news by email, social."""
    count = words(text)
    channels = []
    if count >= 150 or content_type is ContentType.blog:
        channels.append("website")
    if content_type in {ContentType.update, ContentType.announcement}:
        channels.append("email")
    channels.append("social_linkedin")
    if content_type is ContentType.announcement or count < 400:
        channels.append("social_twitter")
    channels.append("social_facebook")
    return channels
