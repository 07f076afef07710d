"""Publishing to real sinks: a local SMTP server, the outbox, a local webhook receiver."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import Inbox

from toombos_edge.content.channels import Channel
from toombos_edge.content.publish import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    PublishConfig,
    Publisher,
    PublishError,
    PublishRefused,
)
from toombos_edge.content.render import Renderer, RenderOptions
from toombos_edge.content.source import inline_source
from toombos_edge.content.templates import TemplateLibrary
from toombos_edge.events import CONTENT_PUBLISHED, Event, EventBus
from toombos_edge.records.content import ContentItem, new_item
from toombos_edge.store import Database
from toombos_edge.store.sqlite.content import SqliteContentStore

pytestmark = pytest.mark.backends

SECRET = b"test-webhook-secret"
FIXTURE = (Path(__file__).parent / "fixtures" / "launch.md").read_text()


@pytest.fixture
async def smtp_server(make_smtp: Any) -> tuple[Inbox, int]:
    inbox, port = await make_smtp()
    return inbox, port


@pytest.fixture
def events() -> list[Event]:
    return []


@pytest.fixture
def make_publisher(
    db: Database, tmp_path: Path, events: list[Event]
) -> Callable[..., Publisher]:
    def make(**config: Any) -> Publisher:
        bus = EventBus()
        bus.subscribe(events.append)
        base = PublishConfig("http://edge.test", tmp_path / "outbox", SECRET)
        return Publisher(replace(base, **config), SqliteContentStore(db), bus)

    return make


Stored = Callable[[Channel], Awaitable[ContentItem]]


@pytest.fixture
def stored(db: Database) -> Stored:
    renderer = Renderer(TemplateLibrary())
    source = inline_source(None, FIXTURE, ("offline sync",))

    async def make(channel: Channel) -> ContentItem:
        body = renderer.render(source, channel, RenderOptions(link="http://edge.test/site/x"))
        item = new_item(channel.value, body, job_id="job_t", document_id=None,
                        style="modern", tone="professional", content_type="update")
        return await SqliteContentStore(db).add(item)

    return make


async def test_email_goes_to_a_real_smtp_server(
    smtp_server: tuple[Inbox, int], make_publisher: Callable[..., Publisher], stored: Stored,
    events: list[Event], db: Database,
) -> None:
    inbox, port = smtp_server
    publisher = make_publisher(smtp_host="127.0.0.1", smtp_port=port,
                               smtp_from="news@edge.test", smtp_to=("team@edge.test",))
    item = await stored(Channel.email)
    publication = await publisher.publish(item, ("reader@example.org",))
    assert publication.sent and "SMTP" in publication.detail
    [(recipients, raw)] = inbox.messages
    assert recipients == ["reader@example.org"]
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == item.body["subject"]
    assert message["From"] == "news@edge.test"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and "Drafts are kept on the device" in plain.get_content()
    assert html is not None and "<strong>offline sync</strong>" in html.get_content()
    assert [e.type for e in events] == [CONTENT_PUBLISHED]
    assert (await SqliteContentStore(db).get(item.id)).status == "published"


async def test_smtp_down_raises_so_the_job_retries(
    make_publisher: Callable[..., Publisher], stored: Stored, unused_tcp_port: int,
    db: Database,
) -> None:
    publisher = make_publisher(smtp_host="127.0.0.1", smtp_port=unused_tcp_port,
                               smtp_to=("a@b.test",), timeout=2.0)
    item = await stored(Channel.email)
    with pytest.raises(PublishError, match="SMTP"):
        await publisher.publish(item)
    assert (await SqliteContentStore(db).get(item.id)).status == "draft"


async def test_without_smtp_email_goes_to_the_outbox(
    make_publisher: Callable[..., Publisher], stored: Stored, tmp_path: Path
) -> None:
    publisher = make_publisher()
    item = await stored(Channel.email)
    await publisher.publish(item)
    [eml] = list((tmp_path / "outbox").glob("*.eml"))
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message["Subject"] == item.body["subject"]
    assert message.get_body(("plain",)) is not None


async def test_a_title_cannot_inject_headers(
    make_publisher: Callable[..., Publisher], db: Database, tmp_path: Path
) -> None:
    item = new_item("email", {"subject": "Hi\r\nBcc: everyone@example.org", "text": "t",
                              "html": "<p>t</p>"}, job_id=None, document_id=None,
                    style="modern", tone="casual", content_type="update")
    await make_publisher().publish(await SqliteContentStore(db).add(item))
    [eml] = list((tmp_path / "outbox").glob("*.eml"))
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message["Bcc"] is None and message["Subject"] == "Hi Bcc: everyone@example.org"


async def test_social_webhook_signature_verifies(
    make_publisher: Callable[..., Publisher], stored: Stored, events: list[Event]
) -> None:
    received: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        stamp = request.headers[TIMESTAMP_HEADER]
        expected = "sha256=" + hmac.new(SECRET, f"{stamp}.".encode() + body,
                                        hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers[SIGNATURE_HEADER]):
            return web.json_response({"error": "bad signature"}, status=401)
        received.append(await request.json())
        return web.json_response({"url": "https://social.example/posts/1"})

    app = web.Application()
    app.router.add_post("/hook", receive)
    async with TestServer(app, host="127.0.0.1") as server:
        publisher = make_publisher(webhooks={"twitter": str(server.make_url("/hook"))})
        item = await stored(Channel.twitter)
        publication = await publisher.publish(item)
        assert publication.url == "https://social.example/posts/1"
        assert received[0]["posts"] == item.body["posts"] and received[0]["platform"] == "twitter"
        wrong = make_publisher(webhooks={"twitter": str(server.make_url("/hook"))},
                               webhook_secret=b"not the shared secret")
        with pytest.raises(PublishRefused, match="401"):  # final: a retry signs the same
            await wrong.publish(item)
    assert len(received) == 1 and [e.type for e in events] == [CONTENT_PUBLISHED]


async def test_social_without_a_webhook_fails_clearly(
    make_publisher: Callable[..., Publisher], stored: Stored
) -> None:
    with pytest.raises(PublishError, match="TOOMBOS_WEBHOOK_LINKEDIN"):
        await make_publisher().publish(await stored(Channel.linkedin))


async def test_website_is_published_at_its_site_url(
    make_publisher: Callable[..., Publisher], stored: Stored
) -> None:
    item = await stored(Channel.website)
    publication = await make_publisher().publish(item)
    assert publication.url == f"http://edge.test/site/{item.slug}"
