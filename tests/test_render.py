"""Rendering checked as a reader would: every channel, style, tone and content type."""

from __future__ import annotations

import email
import email.policy
import itertools
from html.parser import HTMLParser
from pathlib import Path

import pytest

from toombos_edge.content.channels import (
    PLATFORMS,
    SOCIAL_CHANNELS,
    Channel,
    ContentType,
    Style,
    Tone,
)
from toombos_edge.content.publish import PublishConfig, build_email
from toombos_edge.content.render import Renderer, RenderOptions, cache_key
from toombos_edge.content.social import weighted_len
from toombos_edge.content.source import Source, inline_source
from toombos_edge.content.templates import TemplateLibrary
from toombos_edge.records.content import new_item

FIXTURE = (Path(__file__).parent / "fixtures" / "launch.md").read_text()
LINK = "http://127.0.0.1:8000/site/offline-sync-arrives-in-toombos-edge"
TAGS = ("offline sync", "release-notes", "field teams", "mobile")


class Page(HTMLParser):
    """Collects what a reader (or a mail client) sees: tags, styles, links and text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.styled: set[str] = set()
        self.links: list[str] = []
        self.text: list[str] = []
        self.scripts = 0
        self.meta: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append(tag)
        if found.get("style"):
            self.styled.add(tag)
        if tag == "a" and found.get("href"):
            self.links.append(str(found["href"]))
        if tag == "script":
            self.scripts += 1
        if tag == "meta" and found.get("name"):
            self.meta[str(found["name"])] = str(found.get("content"))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(TemplateLibrary())


@pytest.fixture(scope="module")
def source() -> Source:
    return inline_source(None, FIXTURE, TAGS)


COMBOS = list(itertools.product(Style, Tone, ContentType))


@pytest.mark.parametrize(("style", "tone", "kind"), COMBOS)
def test_email_reads_well_in_a_mail_client(
    renderer: Renderer, source: Source, style: Style, tone: Tone, kind: ContentType
) -> None:
    body = renderer.render(source, Channel.email, RenderOptions(style, tone, kind, LINK))
    assert 0 < len(body["subject"]) <= 78 and "Offline sync" in body["subject"]
    assert 0 < len(body["preheader"]) <= 100
    page = parse_html(body["html"])
    assert page.scripts == 0 and "style" not in page.tags  # inline styles only
    assert {"p", "a", "ul", "li", "strong"} <= set(page.tags)
    assert {"p", "a", "td", "body"} <= page.styled
    assert LINK in page.links and "https://docs.example.org/offline-sync" in page.links
    assert body["preheader"] in "".join(page.text)
    assert "\n- Drafts are kept on the device" in body["text"]  # a list stays a list
    assert "What changes for you:\n" in body["text"]
    assert "**" not in body["text"] and "<" not in body["text"]
    assert LINK in body["text"]
    item = new_item("email", body, job_id=None, document_id=None, style=style.value,
                    tone=tone.value, content_type=kind.value)
    config = PublishConfig("http://x", Path("/nonexistent"), b"k", smtp_to=("a@b.example",))
    message = email.message_from_bytes(build_email(item, config, ()).as_bytes(),
                                       policy=email.policy.default)
    assert message.get_content_type() == "multipart/alternative"
    parts = {part.get_content_type(): part.get_content() for part in message.iter_parts()}
    assert "Drafts are kept on the device" in parts["text/plain"]
    assert "<strong>offline sync</strong>" in parts["text/html"]


@pytest.mark.parametrize(("style", "tone", "kind"), COMBOS)
def test_website_article(
    renderer: Renderer, source: Source, style: Style, tone: Tone, kind: ContentType
) -> None:
    body = renderer.render(source, Channel.website, RenderOptions(style, tone, kind, LINK))
    assert body["slug"] == "offline-sync-arrives-in-toombos-edge"
    assert 0 < len(body["meta_description"]) <= 160
    assert body["reading_time"] == 1 and body["word_count"] > 100
    page = parse_html(body["html"])
    assert page.tags.count("h1") == 1  # the title, not repeated from the Markdown heading
    assert "h2" in page.tags and "li" in page.tags and page.scripts == 0
    assert page.meta["description"] == body["meta_description"]
    assert "Offline sync arrives in Toombos Edge" in "".join(page.text)


@pytest.mark.parametrize(("channel", "style", "tone", "kind"),
                         list(itertools.product(SOCIAL_CHANNELS, Style, Tone, ContentType)))
def test_social_posts_fit_their_platform(
    renderer: Renderer, source: Source, channel: Channel, style: Style, tone: Tone,
    kind: ContentType,
) -> None:
    body = renderer.render(source, channel, RenderOptions(style, tone, kind, LINK))
    platform = PLATFORMS[channel]
    posts = body["posts"]
    assert posts and all(0 < weighted_len(p) <= platform.limit for p in posts)
    assert len(posts) <= platform.max_posts
    assert LINK in posts[0]
    assert "#OfflineSync" in posts[0] and len(body["hashtags"]) <= platform.max_hashtags
    if platform.threads:
        assert body["thread"] and posts[0].endswith(f"1/{len(posts)}")
        assert any("What changes for you: Drafts are kept" in p for p in posts)
    else:
        assert len(posts) == 1
    if style is Style.minimal or tone is Tone.professional:
        assert not any(ch in posts[0] for ch in "📣🎉✍")


def test_a_long_text_becomes_a_bounded_thread(renderer: Renderer) -> None:
    long_text = " ".join(f"Sentence {i} explains one more detail of the release." for i in
                         range(300))
    body = renderer.render(inline_source("Long", long_text), Channel.twitter, RenderOptions())
    posts = body["posts"]
    assert len(posts) == PLATFORMS[Channel.twitter].max_posts
    assert all(weighted_len(p) <= 280 for p in posts)
    assert posts[-1].rsplit(" ", 1)[0].endswith("…")


def test_document_html_is_escaped_never_run(renderer: Renderer) -> None:
    evil = inline_source("<img src=x onerror=alert(1)>",
                         "Hello <script>alert(1)</script> [x](javascript:alert(1))")
    for channel in (Channel.email, Channel.website):
        html = renderer.render(evil, channel, RenderOptions())["html"]
        page = parse_html(html)
        assert page.scripts == 0 and "img" not in page.tags
        assert not any(link.startswith("javascript:") for link in page.links)


def test_cache_key_changes_with_each_input(source: Source) -> None:
    base = RenderOptions(Style.modern, Tone.casual, ContentType.blog, LINK)
    keys = {
        cache_key(source, Channel.email, base, "v1"),
        cache_key(source, Channel.website, base, "v1"),
        cache_key(source, Channel.email, RenderOptions(Style.classic, Tone.casual,
                                                       ContentType.blog, LINK), "v1"),
        cache_key(source, Channel.email, RenderOptions(Style.modern, Tone.professional,
                                                       ContentType.blog, LINK), "v1"),
        cache_key(source, Channel.email, base, "v2"),
        cache_key(inline_source(None, FIXTURE + "!", TAGS), Channel.email, base, "v1"),
    }
    assert len(keys) == 6
    assert cache_key(source, Channel.email, base, "v1").startswith(f"content:{source.sha256}:")
