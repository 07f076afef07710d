"""Rendering a source for one channel, in one style, tone and content type.

``Renderer.render`` is pure and CPU-bound (Markdown, Jinja): callers run it off the event
loop. Its output is the content item's body (JSON), the same whether fresh or cached.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from .channels import PLATFORMS, Channel, ContentType, Style, Tone
from .social import hashtags, single_post, thread
from .source import Source
from .templates import TemplateLibrary
from .text import (
    markdown_html,
    paragraphs,
    plain_text,
    reading_minutes,
    slugify,
    summary,
    truncate,
    words,
)

SUBJECT_MAX = 78
PREHEADER_MAX = 100
META_DESCRIPTION_MAX = 160
RENDER_VERSION = "1"  # bump when this module's output changes, to retire cached renders

_PREFIX = {ContentType.update: "Update: ", ContentType.blog: "",
           ContentType.announcement: "Announcing: "}
_CTA = {ContentType.update: "Read the full update", ContentType.blog: "Read the article",
        ContentType.announcement: "Read the announcement"}
_EMOJI = {ContentType.update: "📣 ", ContentType.blog: "✍️ ", ContentType.announcement: "🎉 "}


@dataclass(frozen=True, slots=True)
class Voice:
    greeting: str
    closing: str
    intros: dict[ContentType, str]


VOICES = {
    Tone.professional: Voice("Hello,", "Kind regards,", {
        ContentType.update: "Here is the latest update.",
        ContentType.blog: "A new article is available.",
        ContentType.announcement: "We are pleased to announce the following.",
    }),
    Tone.casual: Voice("Hi there!", "Cheers!", {
        ContentType.update: "Quick update for you:",
        ContentType.blog: "New post just went up:",
        ContentType.announcement: "Big news:",
    }),
    Tone.encouraging: Voice("Hello, friend!", "Keep going, we are cheering you on!", {
        ContentType.update: "Great progress to share with you:",
        ContentType.blog: "Something to inspire your week:",
        ContentType.announcement: "Exciting news, and it is for you:",
    }),
}

EMAIL_STYLES = {
    Style.modern: {"p": "margin:0 0 16px 0;", "a": "color:#4f46e5;",
                   "h1": "font-size:22px;margin:24px 0 12px 0;",
                   "h2": "font-size:19px;margin:24px 0 12px 0;",
                   "h3": "font-size:17px;margin:20px 0 8px 0;",
                   "ul": "margin:0 0 16px 0;padding-left:24px;",
                   "ol": "margin:0 0 16px 0;padding-left:24px;",
                   "li": "margin:0 0 6px 0;",
                   "blockquote": "margin:0 0 16px 0;padding-left:12px;"
                                 "border-left:3px solid #c7d2fe;",
                   "pre": "background-color:#f3f4f6;padding:12px;font-size:13px;",
                   "code": "font-family:Menlo,Consolas,monospace;"},
    Style.classic: {"p": "margin:0 0 16px 0;", "a": "color:#7a1f1f;",
                    "h1": "font-size:23px;font-weight:normal;margin:24px 0 12px 0;",
                    "h2": "font-size:20px;font-weight:normal;margin:24px 0 12px 0;",
                    "h3": "font-size:18px;font-style:italic;margin:20px 0 8px 0;",
                    "ul": "margin:0 0 16px 0;", "ol": "margin:0 0 16px 0;",
                    "blockquote": "margin:0 0 16px 0;padding-left:12px;"
                                  "border-left:2px solid #cccccc;",
                    "pre": "padding:12px;border:1px solid #dddddd;font-size:13px;"},
    Style.minimal: {"p": "margin:0 0 14px 0;", "a": "color:#111111;",
                    "h1": "font-size:18px;margin:20px 0 10px 0;",
                    "h2": "font-size:16px;margin:20px 0 10px 0;",
                    "h3": "font-size:15px;margin:16px 0 8px 0;"},
}


@dataclass(frozen=True, slots=True)
class RenderOptions:
    style: Style = Style.modern
    tone: Tone = Tone.professional
    content_type: ContentType = ContentType.update
    link: str | None = None  #: where readers go for more (the site page, or a given link)


def cache_key(source: Source, channel: Channel, options: RenderOptions, templates: str) -> str:
    """``content:<sha>:<channel>:<style>:<tone>:<type>:<template version>:<inputs>``."""
    extra = "\0".join([source.title, *source.tags, options.link or "", RENDER_VERSION])
    inputs = hashlib.sha256(extra.encode("utf-8")).hexdigest()[:12]
    return (f"content:{source.sha256}:{channel.value}:{options.style.value}:"
            f"{options.tone.value}:{options.content_type.value}:{templates}:{inputs}")


def cache_tags(source: Source, channel: Channel, options: RenderOptions) -> list[str]:
    tags = [f"sha256:{source.sha256}", f"channel:{channel.value}",
            f"style:{options.style.value}", f"tone:{options.tone.value}"]
    if source.document_id:
        tags.append(f"document:{source.document_id}")
    return tags


class Renderer:
    """Turns a source into a channel's content body with the template library."""

    def __init__(self, templates: TemplateLibrary) -> None:
        self.templates = templates

    def __repr__(self) -> str:
        return f"<Renderer {self.templates!r}>"

    def render(self, source: Source, channel: Channel, options: RenderOptions) -> dict[str, Any]:
        if channel is Channel.email:
            return self.email(source, options)
        if channel is Channel.website:
            return self.website(source, options)
        return self.social(source, channel, options)

    def email(self, source: Source, options: RenderOptions) -> dict[str, Any]:
        voice = VOICES[options.tone]
        subject = truncate(_PREFIX[options.content_type] + source.title, SUBJECT_MAX)
        variables = {
            "title": source.title, "subject": subject,
            "preheader": summary(_body_text(source), PREHEADER_MAX),
            "greeting": voice.greeting, "intro": voice.intros[options.content_type],
            "cta": _CTA[options.content_type], "link": options.link,
            "closing": voice.closing, "style": options.style.value,
            "tone": options.tone.value, "content_type": options.content_type.value,
        }
        body = _body_text(source)
        html_body = markdown_html(body, EMAIL_STYLES[options.style])
        # Safe: markdown-it escapes text and raw HTML is off in text.markdown_html.
        safe_body = Markup(html_body)  # noqa: S704
        html = self.templates.render("email", options.style, body_html=safe_body, **variables)
        text = self.templates.render("email_text", options.style,
                                     body_text=plain_text(body), **variables)
        return {"channel": Channel.email.value, "title": source.title, "subject": subject,
                "preheader": variables["preheader"], "html": html, "text": text,
                "link": options.link}

    def website(self, source: Source, options: RenderOptions) -> dict[str, Any]:
        article = markdown_html(_body_text(source))
        safe_article = Markup(article)  # noqa: S704 - raw HTML is off in markdown_html
        description = summary(_body_text(source), META_DESCRIPTION_MAX)
        minutes = reading_minutes(source.text)
        html = self.templates.render(
            "website", options.style, title=source.title, meta_description=description,
            reading_time=minutes, article_html=safe_article, tags=list(source.tags),
            published=None, canonical_url=options.link,
            content_type=options.content_type.value,
        )
        return {"channel": Channel.website.value, "title": source.title,
                "slug": slugify(source.title), "meta_description": description,
                "reading_time": minutes, "word_count": words(source.text),
                "html": html, "article_html": article, "tags": list(source.tags),
                "url": options.link}

    def social(self, source: Source, channel: Channel, options: RenderOptions) -> dict[str, Any]:
        platform = PLATFORMS[channel]
        voice = VOICES[options.tone]
        use_emoji = options.style is not Style.minimal and options.tone is not Tone.professional
        head = self.templates.render(
            "social", options.style, platform=channel.result_key, title=source.title,
            intro=voice.intros[options.content_type], cta=_CTA[options.content_type],
            emoji=_EMOJI[options.content_type] if use_emoji else "",
            content_type=options.content_type.value,
        ).strip()
        tags = hashtags(source.tags, platform.max_hashtags)
        tail = " ".join(t for t in [options.link or "", *tags] if t)
        if platform.threads:
            posts = thread(head, " ".join(paragraphs(_body_text(source))), tail, platform)
        else:
            body = summary(_body_text(source), platform.body_max)
            posts = [single_post(head, body, tail, platform)]
        return {"channel": channel.value, "platform": channel.result_key,
                "title": source.title, "posts": posts, "text": "\n\n".join(posts),
                "thread": len(posts) > 1, "hashtags": tags, "link": options.link,
                "limit": platform.limit}


def _body_text(source: Source) -> str:
    """The text without a leading heading that repeats the title."""
    parts = source.text.lstrip().split("\n", 1)
    first = parts[0].lstrip("#").strip()
    if parts[0].startswith("#") and first == source.title.strip():
        return parts[1] if len(parts) > 1 else ""
    return source.text
